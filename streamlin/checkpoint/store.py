"""Step-indexed zarr snapshots under ``model_dir``, published atomically, with retention.

Layout::

    model_dir/model.ckpt-<step>/     one zarr group: an array per TF variable name, attrs = model spec
    model_dir/checkpoints.json       the index: published snapshots, oldest first (replaced atomically)

A snapshot is written under a hidden temporary name, made durable, then renamed into place; the
index is rewritten (tmp + fsync + rename) only after that. A crash at any instant leaves the previous
index and every snapshot it lists intact; leftovers are removed on the next start.

How a snapshot is written fast (``perf/checkpoint_io.py`` measures it): zarr encodes the metadata
(each array's, cached across saves of the same model); the chunks are gathered from the model's
interleaved table and zstd-compressed on two worker threads with the codec zarr's metadata names, and
written under zarr's chunk keys, so every snapshot is plain zarr v3. Chunks are ~``CHUNK_BYTES`` (a
2^20-row float32 variable is one chunk: few files). Which chunks differ from the fill value is decided
by a numba scan, bit for bit; only those are stored. Durability is one ``syncfs(2)`` on Linux local
filesystems, else an fsync per file and directory. Reading fetches and decodes every variable
concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr.api.asynchronous as zarr_async
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.sync import sync as _zarr_sync  # zarr's own event-loop runner (works inside Jupyter too)
from zarr.storage import MemoryStore

from streamlin.errors import CheckpointError, ConfigError
from streamlin.kernels.scan import chunks_with_data

log = logging.getLogger("streamlin")

PREFIX = "model.ckpt-"
INDEX_FILE = "checkpoints.json"
TMP_PREFIX = ".tmp-"
CHUNK_BYTES = 4 << 20  # uncompressed bytes per chunk (whole rows): 2^20 float32 rows of one unit
COMPRESSORS = (ZstdCodec(level=1),)  # a core zarr v3 codec; faster and smaller here than level 3
# Filesystems whose syncfs(2) flushes everything (data, inodes, directory entries) to stable storage.
_SYNCFS_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "tmpfs"})
_SNAPSHOT_NAME = re.compile(r"^model\.ckpt-(\d+)$")


@dataclass(frozen=True)
class Snapshot:
    """One published checkpoint: its step, path, creation time (epoch s), size on disk and metrics."""

    step: int
    path: str
    time: float
    bytes: int
    metrics: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class KeepBest:
    """Also keep the ``n`` best snapshots by ``metric`` (as recorded by ``evaluate``)."""

    metric: str = "average_loss"
    n: int = 1
    mode: str = "min"
    eval_name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ConfigError(f"KeepBest: mode must be 'min' or 'max'; found {self.mode!r}.")
        if not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"KeepBest: n must be a positive integer; found {self.n!r}.")


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(directory, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(directory))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{uuid.uuid4().hex}")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


MANIFEST_FILE = "streamlin_manifest.json"


def write_manifest(root: Path, fsync: bool = False, files: dict | None = None) -> None:
    """Record every file under ``root`` with its size and CRC32, so damage is detected on load.

    ``files``: {relative path: [size, crc32]} already known for every file (else read back).
    """
    if files is None:
        files = {}
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory) / name
                data = path.read_bytes()
                files[path.relative_to(root).as_posix()] = [len(data), zlib.crc32(data)]
    with open(root / MANIFEST_FILE, "w", encoding="utf-8") as handle:
        json.dump({"format": "streamlin-manifest-1", "files": files}, handle)
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())


def verify_manifest(root: Path, variables: Iterable[str] | None = None, required: bool = True) -> None:
    """Check the files of ``variables`` (default: all) against the manifest every snapshot and
    export carries.

    Raises
    ------
    CheckpointError
        The manifest is missing or damaged, or a listed file is missing, truncated or has another
        checksum; the message names it.
    """
    path = root / MANIFEST_FILE
    if not path.is_file():
        if not required:
            return
        raise CheckpointError(f"{root}: {MANIFEST_FILE} is missing, so its files cannot be checked; the snapshot"
                              " is damaged or was not written by streamlin. Use another snapshot.")
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        entries = [(str(relative), int(size), int(crc)) for relative, (size, crc) in files.items()]
        if any(".." in Path(relative).parts or Path(relative).is_absolute() for relative, _, _ in entries):
            raise ValueError("a listed path leaves the snapshot")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path} is damaged ({exc}); the snapshot cannot be trusted.") from None
    prefixes = None if variables is None else tuple(f"{name}/" for name in variables)
    for relative, size, crc in entries:
        if prefixes is not None and "/" in relative and not relative.startswith(prefixes) and relative != "zarr.json":
            continue
        file = root / relative
        try:
            data = file.read_bytes()
        except OSError:
            raise CheckpointError(f"{root}: file {relative} is missing; the snapshot is damaged."
                                  " Evaluate or resume from another snapshot (streamlin.checkpoints.list).") from None
        if len(data) != size or zlib.crc32(data) != crc:
            raise CheckpointError(f"{root}: file {relative} is damaged (size or checksum differs from when it was"
                                  " written). Evaluate or resume from another snapshot (streamlin.checkpoints.list).")


def _chunk_rows(value: np.ndarray) -> int:
    """Rows per chunk: whole rows, about ``CHUNK_BYTES`` uncompressed."""
    row_bytes = value.dtype.itemsize * int(np.prod(value.shape[1:], dtype=np.int64))
    return max(1, min(value.shape[0], CHUNK_BYTES // max(1, row_bytes)))


def _stored_regions(value: np.ndarray, fill: float, rows: int) -> list:
    """The chunk-aligned row slices of ``value`` holding anything but ``fill``; a scalar's ``...``.

    Compared bit for bit (so -0.0 and NaN payloads survive a round trip), one chunk at a time.
    """
    if value.ndim == 0:
        return [...]
    bits = np.dtype(f"u{value.dtype.itemsize}")
    fill_bits = np.asarray(fill, dtype=value.dtype).view(bits)
    value_bits = value.view(bits)
    n_chunks = -(-value.shape[0] // rows)
    if value.ndim == 2 and value.dtype == np.float32:  # the weights and slots: a numba scan, early exit
        found = np.zeros(n_chunks, dtype=np.bool_)
        chunks_with_data(value_bits, np.uint32(fill_bits), rows, found)
        return [slice(c * rows, (c + 1) * rows) for c in np.flatnonzero(found)]
    return [slice(start, start + rows) for start in range(0, value.shape[0], rows)
            if (value_bits[start:start + rows] != fill_bits).any()]


def _write_file(path: Path, data, fsync: bool, written: dict, root: Path) -> None:
    """Write bytes-like ``data`` to ``path``, recording its size and CRC32 under its path below ``root``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
        if fsync:
            os.fsync(handle.fileno())
    written[path.relative_to(root).as_posix()] = [len(data), zlib.crc32(data)]


# Array metadata (zarr.json bytes, zarr's metadata object, the chunk encoder) by array signature: the
# same model saves the same arrays every time, and zarr takes ~0.6 ms to create each.
_METADATA_CACHE: dict[tuple, tuple[bytes, Any, Any]] = {}
_METADATA_CACHE_MAX = 4096


def _array_signature(name: str, value: np.ndarray, chunks: tuple, fill: float) -> tuple:
    fill_bits = np.asarray(fill, dtype=value.dtype).tobytes()
    return (name, value.shape, chunks, value.dtype.str, fill_bits, repr(COMPRESSORS))


def _zarr_metadata(attrs: Mapping[str, Any], specs: dict[str, tuple]) -> tuple[bytes, dict[str, tuple]]:
    """zarr's encoding of the group's ``zarr.json`` and of each array's (cached by signature).

    specs: name -> (signature, shape, chunks, dtype, fill). Returns (group json, name -> (array json,
    zarr ArrayV3Metadata, chunk encoder)).
    """
    missing = {name: spec for name, spec in specs.items() if spec[0] not in _METADATA_CACHE}
    encoded: dict = {}
    store = MemoryStore(store_dict=encoded)

    async def create() -> list:
        group = await zarr_async.create_group(store=store, zarr_format=3, attributes=dict(attrs))
        return await asyncio.gather(*(
            group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                               compressors=COMPRESSORS, config={"write_empty_chunks": True})
            for name, (_, shape, chunks, dtype, fill) in missing.items()))

    handles = _zarr_sync(create())
    if len(_METADATA_CACHE) + len(missing) > _METADATA_CACHE_MAX:
        _METADATA_CACHE.clear()
    for (name, spec), handle in zip(missing.items(), handles):
        _METADATA_CACHE[spec[0]] = (bytes(encoded[f"{name}/zarr.json"].as_buffer_like()), handle.metadata,
                                    _chunk_encoder(handle.metadata))
    group_json = bytes(encoded["zarr.json"].as_buffer_like())
    return group_json, {name: _METADATA_CACHE[spec[0]] for name, spec in specs.items()}


def _chunk_encoder(metadata) -> Any:
    """A function (contiguous ndarray -> encoded bytes) doing what ``metadata``'s codecs do: little-endian
    bytes, then zstd (the numcodecs codec zarr's ZstdCodec runs)."""
    codecs = list(metadata.codecs)
    if not (len(codecs) == 2 and isinstance(codecs[0], BytesCodec) and isinstance(codecs[1], ZstdCodec)):
        raise AssertionError(f"snapshot arrays must use bytes + zstd codecs; found {codecs}")
    zstd = numcodecs.Zstd(level=codecs[1].level, checksum=codecs[1].checksum)
    little = metadata.dtype.to_native_dtype().newbyteorder("<")

    def encode(block: np.ndarray) -> bytes:
        return zstd.encode(np.ascontiguousarray(block, dtype=little))

    return encode


def _write_group(tmp: Path, arrays: Mapping[str, tuple[np.ndarray, float]], attrs: Mapping[str, Any],
                 fsync: bool, all_fill: bool = False) -> tuple[int, dict]:
    """Write the zarr group of a snapshot under ``tmp``; returns (bytes, {file: [size, crc32]}).

    zarr encodes the metadata (array metadata is cached across saves). The chunks holding anything
    but their fill value are gathered and zstd-compressed here, two at a time on worker threads
    (zstd and numpy copies release the GIL), exactly as zarr's codecs would, and written as zarr's
    chunk keys name them: every file is standard zarr v3.
    """
    values = {name: (np.asarray(value), fill) for name, (value, fill) in arrays.items()}
    specs = {}
    for name, (value, fill) in values.items():
        chunks = (_chunk_rows(value),) + value.shape[1:] if value.ndim else ()
        specs[name] = (_array_signature(name, value, chunks, fill), value.shape, chunks, value.dtype, fill)
    group_json, metadata = _zarr_metadata(attrs, specs)
    written: dict = {}
    _write_file(tmp / "zarr.json", group_json, fsync, written, tmp)
    jobs = []
    for name, (value, fill) in values.items():
        array_json, array_metadata, encode = metadata[name]
        _write_file(tmp / name / "zarr.json", array_json, fsync, written, tmp)
        if value.ndim == 0:
            jobs.append((tmp / name / array_metadata.encode_chunk_key(()), encode, value))
            continue
        rows = specs[name][2][0]
        for region in [] if all_fill else _stored_regions(value, fill, rows):
            coords = (region.start // rows,) + (0,) * (value.ndim - 1)
            jobs.append((tmp / name / array_metadata.encode_chunk_key(coords), encode, value[region]))
    window = 8  # chunks in flight: bounds the memory of gathered, not yet written chunks
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1), thread_name_prefix="streamlin-save") as pool:
        for start in range(0, len(jobs), window):
            batch = jobs[start:start + window]
            for (path, _, _), data in zip(batch, pool.map(lambda job: job[1](job[2]), batch)):
                _write_file(path, data, fsync, written, tmp)
    return sum(size for size, _ in written.values()), written


def _filesystem_type(path: Path) -> str | None:
    """The type (``ext4``, ``nfs``, ...) of the filesystem holding ``path``, from /proc/self/mountinfo."""
    device = os.stat(path).st_dev
    key = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if fields[2] == key:
                    return fields[fields.index("-") + 1]
    except (OSError, ValueError, IndexError):
        pass
    return None


def _syncfs_function():
    """libc's syncfs where it flushes the whole filesystem and reports write-back errors, else None.

    Linux >= 5.8 only (older kernels return 0 even when write-back failed).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        major, minor = (int(part) for part in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
        if (major, minor) < (5, 8):
            return None
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (AttributeError, OSError, ValueError):
        return None


_SYNCFS = _syncfs_function()


def _open_syncfs_handle(root: Path) -> int | None:
    """A descriptor for one ``syncfs`` of ``root``'s filesystem, opened *before* writing (syncfs reports
    the write-back errors seen since its descriptor was opened); None where syncfs is not trusted."""
    if _SYNCFS is None or _filesystem_type(root) not in _SYNCFS_FILESYSTEMS:
        return None
    return os.open(root, os.O_RDONLY)


def _syncfs(fd: int) -> None:
    if _SYNCFS(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def write_snapshot(
    model_dir: str | os.PathLike,
    step: int,
    arrays: Mapping[str, tuple[np.ndarray, float]],
    attrs: Mapping[str, Any],
    all_fill: bool = False,
) -> str:
    """Write ``model_dir/model.ckpt-<step>`` atomically and list it in the index.

    Parameters
    ----------
    arrays : mapping of variable name -> (array, fill value)
        float32 (rows, units) or (units,) variables and slots; ``global_step`` int64 scalar.
        Chunks equal to the fill value (bit for bit) are not stored.
    attrs : JSON-ready dict describing the model.
    all_fill : the caller knows every non-scalar array equals its fill value (a fresh model), so
        nothing is scanned and only metadata is written.

    Returns
    -------
    str
        The snapshot's path.

    Raises
    ------
    CheckpointError
        The snapshot could not be written (disk full, permissions); the previous one is intact.
    """
    root = Path(model_dir)
    final = root / f"{PREFIX}{step}"
    tmp = root / f"{TMP_PREFIX}{PREFIX}{step}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fs_fd = None
    renamed = indexed = False
    try:
        root.mkdir(parents=True, exist_ok=True)
        fs_fd = _open_syncfs_handle(root)
        size, files = _write_group(tmp, arrays, attrs, fsync=fs_fd is None, all_fill=all_fill)
        write_manifest(tmp, fsync=fs_fd is None, files=files)
        if fs_fd is not None:
            _syncfs(fs_fd)  # every file and directory under tmp, in one call
        else:
            for directory, _, _ in os.walk(tmp):
                _fsync_dir(Path(directory))
        if final.exists():  # an unlisted leftover, or the same step saved again: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
        renamed = True
        _fsync_dir(root)
        snapshots = [s for s in _read_index_entries(root) if s["step"] != step]
        snapshots.append(
            {
                "step": step,
                "path": final.name,
                "time": float(attrs.get("time", time.time())),
                "bytes": size,
            }
        )
        snapshots.sort(key=lambda s: s["step"])
        _write_json_atomic(
            root / INDEX_FILE, {"format": "streamlin-checkpoints-1", "snapshots": snapshots}
        )
        indexed = True
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if renamed and not indexed:  # published but not listed: withdraw it, the save failed
            shutil.rmtree(final, ignore_errors=True)
        raise CheckpointError(
            f"could not save checkpoint {final} ({exc.strerror or exc}); the previous checkpoint is"
            " intact. Free disk space or fix permissions, then train again."
        ) from None
    finally:
        if fs_fd is not None:
            os.close(fs_fd)
    return str(final)


def _read_index_entries(root: Path) -> list[dict]:
    path = root / INDEX_FILE
    if not path.exists():
        return []
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        entries = payload["snapshots"]
        for entry in entries:
            valid = (isinstance(entry["step"], int) and not isinstance(entry["step"], bool)
                     and isinstance(entry["path"], str) and _SNAPSHOT_NAME.match(entry["path"])
                     and isinstance(entry["time"], (int, float)) and isinstance(entry["bytes"], int))
            if not valid:
                raise ValueError(f"bad entry {entry!r}")
        return entries
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{path} is damaged ({exc}); remove it to rebuild the list from the snapshot folders."
        ) from None


def cleanup_leftovers(model_dir: str | os.PathLike) -> None:
    """Remove half-written snapshots and index files a crash left behind (logged)."""
    root = Path(model_dir)
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            log.warning("removing %s, left by an interrupted checkpoint save", entry)
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def list_snapshots(model_dir: str | os.PathLike) -> list[Snapshot]:
    """Published snapshots of ``model_dir``, oldest first, with the metrics ``evaluate`` recorded.

    Raises
    ------
    CheckpointError
        The latest listed snapshot's folder is gone or incomplete: streamlin never falls back to an
        older snapshot silently. (An older listed folder may be missing while retention deletes it.)
    """
    root = Path(model_dir)
    entries = _read_index_entries(root)
    newest = entries[-1]["step"] if entries else -1
    if root.is_dir():
        # Folders newer than the index's latest: published (renamed into place only when complete)
        # but not yet listed when the process died, or the index was removed by hand.
        for child in root.iterdir():
            match = _SNAPSHOT_NAME.match(child.name)
            if match and int(match.group(1)) > newest and child.is_dir() and (
                    (child / MANIFEST_FILE).is_file() or not entries):
                entries.append({"step": int(match.group(1)), "path": child.name,
                                "time": child.stat().st_mtime, "bytes": _dir_bytes(child)})
        entries.sort(key=lambda s: s["step"])
    if entries and not (root / entries[-1]["path"] / "zarr.json").is_file():
        raise CheckpointError(
            f"{root / entries[-1]['path']}, the latest snapshot, is missing or incomplete; streamlin will not"
            " silently use an older one. Restore it, or remove it (and its entry in checkpoints.json) to"
            " fall back deliberately.")
    metrics = recorded_metrics(root)
    return [Snapshot(e["step"], str(root / e["path"]), e["time"], e["bytes"], metrics.get(e["path"], {}))
            for e in entries if (root / e["path"]).is_dir()]


def recorded_metrics(root: Path, eval_name: str | None = None) -> dict[str, dict]:
    """Snapshot folder name -> the latest metrics recorded for it under any (or one) eval dir."""
    found: dict[str, dict] = {}
    if not root.is_dir():
        return found
    for eval_dir in sorted(root.glob("eval*")):
        if eval_name is not None and eval_dir.name != (
            "eval" if not eval_name else f"eval_{eval_name}"
        ):
            continue
        path = eval_dir / "metrics.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                found.setdefault(Path(record["checkpoint_path"]).name, {}).update(record["metrics"])
            except (ValueError, KeyError, TypeError):
                continue
    return found


def latest_snapshot(model_dir: str | os.PathLike) -> Snapshot | None:
    snapshots = list_snapshots(model_dir)
    return snapshots[-1] if snapshots else None


def resolve(model_dir: str | os.PathLike | None, checkpoint_path: Any) -> str:
    """A snapshot path from a path, a model_dir (its latest) or a step number.

    Raises
    ------
    CheckpointError
        Nothing matches; the message lists the steps that exist.
    """
    if checkpoint_path is None:
        if model_dir is None:
            raise CheckpointError(
                "no model_dir and no checkpoint_path: nothing to load. Train first or pass checkpoint_path."
            )
        latest = latest_snapshot(model_dir)
        if latest is None:
            raise CheckpointError(
                f"Could not find trained model in model_dir: {model_dir}. Train first, or pass checkpoint_path=."
            )
        return latest.path
    if isinstance(checkpoint_path, (int, np.integer)) or (
        isinstance(checkpoint_path, str) and checkpoint_path.isdigit()
    ):
        if model_dir is None:
            raise CheckpointError(
                f"checkpoint_path={checkpoint_path} is a step, but there is no model_dir to look in."
            )
        step = int(checkpoint_path)
        snapshots = list_snapshots(model_dir)
        for snapshot in snapshots:
            if snapshot.step == step:
                return snapshot.path
        raise CheckpointError(
            f"{model_dir} has no checkpoint at step {step}; it keeps {', '.join(str(s.step) for s in snapshots) or 'none'}."
            " Pass one of those, or checkpoint_path=None for the latest."
        )
    path = Path(checkpoint_path)
    if (path / INDEX_FILE).exists() or (
        path.is_dir() and not (path / "zarr.json").exists() and list_snapshots(path)
    ):
        return resolve(path, None)
    if (path / "zarr.json").exists():
        return str(path)
    siblings = list_snapshots(path.parent) if path.parent.is_dir() else []
    keeps = ", ".join(str(s.step) for s in siblings) or "no snapshots"
    raise CheckpointError(
        f"{path} does not exist or is not a streamlin checkpoint; {path.parent} keeps {keeps}."
        " Pass one of those, or checkpoint_path=None for the latest."
    )


def load_snapshot(
    path: str | os.PathLike, names: Iterable[str] | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays (by TF variable name) and attributes of a snapshot; data only, nothing executed.

    Raises
    ------
    CheckpointError
        The snapshot is missing or damaged; the message names it.
    """
    if not (Path(path) / "zarr.json").is_file():
        raise CheckpointError(f"{path} does not exist or is not a streamlin snapshot (no zarr.json).")
    try:
        with _reading(Path(path)):
            verify_manifest(Path(path), names)
            arrays, attrs = _zarr_sync(_read_group(str(path), names))
    except CheckpointError:
        raise
    except KeyError as exc:
        raise CheckpointError(
            f"{path} lacks variable {exc}; the snapshot is damaged or from another model."
        ) from None
    except Exception as exc:  # zarr raises many types for a damaged store
        raise CheckpointError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); the snapshot is damaged."
        ) from None
    return arrays, attrs


async def _read_group(path: str, names: Iterable[str] | None) -> tuple[dict[str, np.ndarray], dict]:
    """Open ``path`` and read the named variables (default: all listed in its attrs) concurrently."""
    group = await zarr_async.open_group(store=path, mode="r")
    attrs = dict(group.attrs)
    wanted = list(names) if names is not None else list(attrs.get("variables", []))
    nodes = await asyncio.gather(*(group.getitem(name) for name in wanted))
    values = await asyncio.gather(*(node.getitem(...) for node in nodes))
    return {name: np.asarray(value) for name, value in zip(wanted, values)}, attrs


READERS_DIR = ".readers"


@contextlib.contextmanager
def _reading(snapshot: Path):
    """Mark ``snapshot`` as being read by this process, so retention in another process keeps it."""
    readers = snapshot.parent / READERS_DIR
    mark = readers / f"{snapshot.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        readers.mkdir(exist_ok=True)
        mark.touch()
    except OSError:  # a read-only model_dir: nobody can delete there either
        mark = None
    try:
        yield
    finally:
        if mark is not None:
            mark.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def snapshots_being_read(root: Path) -> set[str]:
    """Paths of snapshots that a live process is reading now (stale marks are removed)."""
    readers = root / READERS_DIR
    busy: set[str] = set()
    if not readers.is_dir():
        return busy
    for mark in readers.iterdir():
        parts = mark.name.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if _pid_alive(int(parts[1])):
            busy.add(str(root / parts[0]))
        else:
            mark.unlink(missing_ok=True)
    return busy


def apply_retention(
    model_dir: str | os.PathLike,
    keep_max: int | None,
    keep_every_n_hours: float,
    keep_best: KeepBest | None = None,
    protect: Iterable[str] = (),
) -> list[str]:
    """Delete snapshots the policy does not keep; returns the deleted paths.

    Kept: the ``keep_max`` newest (all if None or 0), one per ``keep_every_n_hours``, the
    ``keep_best.n`` best by a recorded metric, the latest, and any path in ``protect``.
    """
    root = Path(model_dir)
    snapshots = list_snapshots(root)
    if not snapshots or not keep_max:
        return []
    keep = (
        {s.path for s in snapshots[-keep_max:]} | {snapshots[-1].path} | {str(p) for p in protect}
        | snapshots_being_read(root)
    )
    last_kept_time = None
    for s in snapshots:
        if last_kept_time is None or s.time - last_kept_time >= keep_every_n_hours * 3600:
            if last_kept_time is not None:
                keep.add(s.path)
            last_kept_time = s.time
    if keep_best is not None:
        metrics = recorded_metrics(root, keep_best.eval_name)
        scored = [
            (metrics[Path(s.path).name][keep_best.metric], s.path)
            for s in snapshots
            if keep_best.metric in metrics.get(Path(s.path).name, {})
        ]
        scored.sort(reverse=keep_best.mode == "max")
        keep.update(path for _, path in scored[: keep_best.n])
    doomed = [s for s in snapshots if s.path not in keep]
    if not doomed:
        return []
    remaining = [e for e in _read_index_entries(root) if str(root / e["path"]) in keep]
    _write_json_atomic(
        root / INDEX_FILE, {"format": "streamlin-checkpoints-1", "snapshots": remaining}
    )
    for s in doomed:
        shutil.rmtree(s.path, ignore_errors=True)
    return [s.path for s in doomed]

"""streamlin.checkpoint.tf_reader: TensorFlow checkpoints read without TensorFlow.

Three kinds of evidence:

* the real TF 2.15 model_dirs in ``shared/tfref/checkpoints`` (every variable of every kept
  checkpoint, bit for bit, as TF's own reader returned it), and copies of them damaged on purpose;
* bundles written here by a small hand-written writer (several blocks, restarts, shards, dtypes,
  strings, slices, big-endian), for what the fixtures do not exercise;
* hypothesis round trips of the protobuf, OrderedCode and CRC32C pieces against independent
  hand-written encoders (a bit-at-a-time CRC, not the reader's tables).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlin.checkpoint import tf_reader
from streamlin.checkpoint.tf_reader import (
    map_tf_names,
    merge_partitioned_slots,
    read_tf,
    read_tf_metadata,
    resolve_tf_checkpoint,
)
from streamlin.errors import CheckpointError
from tests._shared import SHARED, requires_shared

FIXTURES = SHARED / "tfref" / "checkpoints"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) if FIXTURES.is_dir() else []


# =================================================================================================
# Independent encoders: CRC32C bit by bit, protobuf, OrderedCode, SSTable, tensor bundle
# =================================================================================================
def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    return (rotated + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def pb_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def pb_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def pb_fixed32(number: int, value: int) -> bytes:
    return varint(number << 3 | 5) + struct.pack("<I", value)


def pb_fixed64(number: int, value: int) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<Q", value)


def encode_shape(shape) -> bytes:
    return b"".join(pb_bytes(2, pb_varint(1, d)) for d in shape)


def encode_slice(extents) -> bytes:
    out = b""
    for start, length in extents:
        body = pb_varint(1, start) if start else b""
        body += pb_varint(2, length) if length is not None else b""
        out += pb_bytes(1, body)
    return out


def encode_entry(dtype, shape, shard_id=0, offset=0, size=0, crc=None, slices=()) -> list[bytes]:
    """The fields of a BundleEntryProto, each as its own chunk (proto3 omits zeros)."""
    fields = [pb_varint(1, dtype), pb_bytes(2, encode_shape(shape))]
    fields += [pb_varint(n, v) for n, v in ((3, shard_id), (4, offset), (5, size)) if v]
    if crc is not None:
        fields.append(pb_fixed32(6, crc))
    fields += [pb_bytes(7, encode_slice(s)) for s in slices]
    return fields


def oc_num(n: int) -> bytes:
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([len(body)]) + body


def oc_string(s: bytes) -> bytes:
    escaped = {0x00: b"\x00\xff", 0xFF: b"\xff\x00"}
    return b"".join(escaped.get(c, bytes([c])) for c in s) + b"\x00\x01"


def oc_signed(v: int) -> bytes:
    """n bytes: n copies of the sign bit, its opposite, then 7n - 1 bits of two's complement."""
    n = next(n for n in range(1, 11) if -(1 << (7 * n - 1)) <= v < 1 << (7 * n - 1))
    bits = 7 * n - 1
    header = ((1 << n) - 1) << (bits + 1) if v >= 0 else 1 << bits
    return (header | (v & ((1 << bits) - 1))).to_bytes(n, "big")


def slice_key(name: str, extents) -> bytes:
    """extents: (start, length) with length -1 for a full dimension."""
    out = oc_num(0) + oc_string(name.encode()) + oc_num(len(extents))
    return out + b"".join(oc_signed(s) + oc_signed(n) for s, n in extents)


def table_block(entries, restart_interval: int) -> bytes:
    out, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(prev), len(key)) and prev[shared] == key[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        prev = key
    restarts = restarts or [0]
    return bytes(out) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))


def sstable(items, *, block_entries=1000, restart_interval=16, compression=0) -> bytes:
    out = bytearray()

    def emit(block: bytes, kind: int = 0) -> tuple[int, int]:
        offset = len(out)
        out.extend(block + bytes([kind]) + struct.pack("<I", mask(crc32c_bitwise(block + bytes([kind])))))
        return offset, len(block)

    index = []
    for i in range(0, len(items), block_entries):
        chunk = items[i : i + block_entries]
        offset, size = emit(table_block(chunk, restart_interval), compression)
        index.append((chunk[-1][0], varint(offset) + varint(size)))
    meta = emit(table_block([], 1))
    idx = emit(table_block(index, 1))
    footer = varint(meta[0]) + varint(meta[1]) + varint(idx[0]) + varint(idx[1])
    return bytes(out) + footer + bytes(40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)


DT = {"f4": 1, "f8": 2, "i4": 3, "u1": 4, "i2": 5, "i1": 6, "O": 7, "i8": 9, "b1": 10, "u2": 17,
      "c16": 18, "f2": 19, "u8": 23}  # fmt: skip


def dt_code(dtype: np.dtype) -> int:
    return DT[dtype.kind + (str(dtype.itemsize) if dtype.kind != "O" else "")]


def tensor_bytes(arr: np.ndarray, order: str) -> tuple[bytes, int]:
    """(stored bytes, unmasked CRC32C), strings as TF's WriteStringTensor lays them out."""
    if arr.dtype != object:
        data = arr.astype(arr.dtype.newbyteorder(order)).tobytes()
        return data, crc32c_bitwise(data)
    flat = [bytes(x) for x in arr.reshape(-1)]
    lengths32 = b"".join(struct.pack(order + "I", len(s)) for s in flat)
    length_crc = struct.pack(order + "I", mask(crc32c_bitwise(lengths32)))
    body = b"".join(flat)
    data = b"".join(varint(len(s)) for s in flat) + length_crc + body
    return data, crc32c_bitwise(lengths32 + length_crc + body)


def write_bundle(prefix, tensors=None, *, sliced=None, num_shards=1, big_endian=False, header=None, **table) -> None:
    """Write ``prefix.index`` and its shards.

    tensors: name -> array. sliced: name -> (full shape, [(extents, array)]), extents as
    (start, length), length None for a full dimension.
    """
    order = ">" if big_endian else "<"
    shards = [bytearray() for _ in range(num_shards)]
    items, count = [], 0

    def store(arr: np.ndarray) -> dict:
        nonlocal count
        shard = count % num_shards
        count += 1
        data, crc = tensor_bytes(arr, order)
        offset = len(shards[shard])
        shards[shard] += data
        return {"shard_id": shard, "offset": offset, "size": len(data), "crc": mask(crc)}

    for name, arr in (tensors or {}).items():
        arr = np.asarray(arr)
        items.append((name.encode(), b"".join(encode_entry(dt_code(arr.dtype), arr.shape, **store(arr)))))
    for name, (full_shape, parts) in (sliced or {}).items():
        dtype = dt_code(np.asarray(parts[0][1]).dtype)
        items.append((name.encode(), b"".join(encode_entry(dtype, full_shape, slices=[e for e, _ in parts]))))
        for extents, arr in parts:
            arr = np.asarray(arr)
            key = slice_key(name, [(s, -1 if n is None else n) for s, n in extents])
            items.append((key, b"".join(encode_entry(dtype, arr.shape, **store(arr)))))
    if header is None:
        header = pb_varint(1, num_shards) + (pb_varint(2, 1) if big_endian else b"")
        header += pb_bytes(3, pb_varint(1, 1))
    items.append((b"", header))
    items.sort()
    Path(f"{prefix}.index").write_bytes(sstable(items, **table))
    for i, data in enumerate(shards):
        Path(f"{prefix}.data-{i:05d}-of-{num_shards:05d}").write_bytes(bytes(data))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object or b.dtype == object:
        return a.dtype == b.dtype and a.shape == b.shape and a.tolist() == b.tolist()
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# =================================================================================================
# The real TensorFlow model_dirs
# =================================================================================================
@functools.cache
def expected(case: str) -> dict:
    return json.loads((FIXTURES / case / "expected.json").read_text())


def kept_checkpoints() -> list[tuple[str, str, list]]:
    """(case, prefix name, recorded variables) for every kept checkpoint of every case."""
    out = []
    for case in CASES:
        e = expected(case)
        for name in e["model_dir"]["kept_checkpoints"]:
            recorded = (
                e["variables"]
                if name == e["model_dir"]["latest_checkpoint"]
                else e["variables_older_checkpoints"][name]
            )
            out.append((case, name, recorded))
    return out


def model_dir(case: str) -> Path:
    return FIXTURES / case / "model_dir"


def copy_model_dir(case: str, tmp_path: Path) -> Path:
    """A writable copy (the fixtures are read-only)."""
    return Path(shutil.copytree(model_dir(case), tmp_path / case, copy_function=shutil.copyfile))


def region(offset, shape):
    return tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))


@requires_shared
@pytest.mark.parametrize(
    ("case", "name", "recorded"),
    kept_checkpoints(),
    ids=[f"{c}/{n}" for c, n, _ in kept_checkpoints()],
)
def test_read_tf_matches_tensorflow_bit_for_bit(case, name, recorded):
    got = read_tf(model_dir(case) / name)
    assert list(got) == sorted(v["name"] for v in recorded)
    for v in recorded:
        value = got[v["name"]]
        assert value.dtype == np.dtype(v["dtype"]) and value.shape == tuple(v["shape"]), v["name"]
        if v["value"] is not None:
            assert not isinstance(value, np.ma.MaskedArray)
            assert same_bits(value, np.asarray(v["value"], dtype=v["dtype"])), v["name"]
            assert value.flags.writeable
            continue
        # A part's slot: full shape, only the part's saved slice holds values (TF refuses it whole).
        assert isinstance(value, np.ma.MaskedArray), v["name"]
        held = np.zeros(value.shape, dtype=bool)
        for s in v["saved_slices"]:
            part = value[region(s["offset"], s["shape"])]
            assert same_bits(part.data, np.asarray(s["value"], dtype=v["dtype"])), v["name"]
            held[region(s["offset"], s["shape"])] = True
        assert np.array_equal(np.ma.getmaskarray(value), ~held), v["name"]


@requires_shared
@pytest.mark.parametrize("case", CASES)
def test_model_dir_resolves_to_its_latest_checkpoint(case):
    e = expected(case)
    latest = str(model_dir(case) / e["model_dir"]["latest_checkpoint"])
    assert resolve_tf_checkpoint(model_dir(case)) == latest
    assert resolve_tf_checkpoint(latest) == latest
    assert resolve_tf_checkpoint(latest + ".index") == latest
    from_dir, from_prefix = read_tf(model_dir(case)), read_tf(latest)
    assert from_dir.keys() == from_prefix.keys()
    assert all(same_bits(from_dir[k], from_prefix[k]) for k in from_dir)


@requires_shared
@pytest.mark.parametrize("case", CASES)
def test_metadata_reads_only_the_index(case, tmp_path):
    d = copy_model_dir(case, tmp_path)
    for data in d.glob("*.data-*"):
        data.unlink()
    meta = read_tf_metadata(d)
    assert meta == {v["name"]: (np.dtype(v["dtype"]), tuple(v["shape"])) for v in expected(case)["variables"]}


@requires_shared
@pytest.mark.parametrize("case", CASES)
def test_map_tf_names_gives_streamlin_names(case):
    e = expected(case)
    tensors = read_tf(model_dir(case))
    variables, hyper = map_tf_names(tensors)
    weights = {g["saved_as"] for g in e["graph_variables"] if g["trainable"]}
    optimizer = e["estimator"]["optimizer"]["class"]
    kinds = ["accumulator", "linear"] if "Ftrl" in optimizer else ["accumulator"]
    opt = "Ftrl" if "Ftrl" in optimizer else "Adagrad"
    slots = {f"training/{opt}/{w}/{k}" for w in weights for k in kinds}
    assert set(variables) == {"global_step"} | weights | slots
    assert all(not isinstance(v, np.ma.MaskedArray) for v in variables.values())

    recorded = {v["name"]: v for v in e["variables"]}
    if e["estimator"]["api"] == "v2":  # names unchanged; the scalars are hyper-parameters
        for name, value in variables.items():
            assert same_bits(value, np.asarray(recorded[name]["value"], recorded[name]["dtype"]))
        assert hyper == {
            n: float(np.float32(v["value"]))
            for n, v in recorded.items()
            if n.count("/") == 2 and n.startswith("training/")
        }
        assert hyper[f"training/{opt}/learning_rate"] == float(
            np.float32(e["estimator"]["optimizer"]["params"]["learning_rate"])
        )
        return
    assert hyper == {}  # V1 saves no hyper-parameters
    for w in weights:
        assert same_bits(variables[w], np.asarray(recorded[w]["value"], "float32"))
        for k, suffix in zip(kinds, ["Ftrl", "Ftrl_1"], strict=False):
            pattern = re.escape(w) + r"/part_\d+/" + suffix
            parts = sorted(n for n in recorded if re.fullmatch(pattern, n))
            assert parts, w
            want = np.zeros(recorded[w]["shape"], np.float32)
            for p in parts:  # the union of every part's saved rows
                if recorded[p]["value"] is not None:
                    want[...] = np.asarray(recorded[p]["value"], np.float32)
                else:
                    (s,) = recorded[p]["saved_slices"]
                    want[region(s["offset"], s["shape"])] = np.asarray(s["value"], np.float32)
            assert same_bits(variables[f"training/Ftrl/{w}/{k}"], want), (w, k)


@requires_shared
def test_partitioned_case_really_has_parts():
    """Guards the test above: the partitioned fixture has 3 masked parts per slot."""
    tensors = read_tf(model_dir("v1_ftrl_binary_partitioned"))
    parts = [n for n in tensors if "/user/weights/part_" in n and n.endswith("/Ftrl")]
    assert len(parts) == 3 and all(isinstance(tensors[n], np.ma.MaskedArray) for n in parts)
    merged = merge_partitioned_slots(tensors)
    assert "linear/linear_model/user/weights/Ftrl" in merged
    assert not any("/part_" in n for n in merged)


# ---- damage -------------------------------------------------------------------------------------
def latest_files(d: Path) -> tuple[Path, Path]:
    state = (d / "checkpoint").read_text()
    name = re.search(r'model_checkpoint_path: "([^"]+)"', state).group(1)
    return d / f"{name}.index", d / f"{name}.data-00000-of-00001"


def damage(path: Path, at: int, xor: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= xor
    path.write_bytes(bytes(data))


@requires_shared
@pytest.mark.parametrize("keep", [0, 10, 47, 48, 200, -1])
def test_truncated_index(tmp_path, keep):
    d = copy_model_dir("v2_ftrl_binary", tmp_path)
    index, _ = latest_files(d)
    index.write_bytes(index.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match=re.escape(str(index)) + ".*damaged"):
        read_tf(d)


@requires_shared
@pytest.mark.parametrize("keep", [0, 100, -1])
def test_truncated_data_shard(tmp_path, keep):
    d = copy_model_dir("v2_ftrl_binary", tmp_path)
    _, data = latest_files(d)
    data.write_bytes(data.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match=re.escape(str(data)) + ".*truncated"):
        read_tf(d)


@requires_shared
def test_flipped_byte_in_data_names_file_and_tensor(tmp_path):
    d = copy_model_dir("v2_ftrl_binary", tmp_path)
    _, data = latest_files(d)
    damage(data, 0, 0xFF)  # the tensor stored first
    with pytest.raises(CheckpointError, match=re.escape(str(data)) + ".*tensor '.+'.*CRC32C") as err:
        read_tf(d)
    assert "keeps model.ckpt-0, model.ckpt-10" in str(err.value)


@requires_shared
@pytest.mark.parametrize("at", [20, 400])  # inside the data block's entries
def test_flipped_byte_in_index_block(tmp_path, at):
    d = copy_model_dir("v2_ftrl_binary", tmp_path)
    index, _ = latest_files(d)
    damage(index, at)
    with pytest.raises(CheckpointError, match=re.escape(str(index)) + ".*CRC32C"):
        read_tf(d)


@requires_shared
def test_every_single_byte_damage_is_caught(tmp_path):
    """Any flipped bit of the index is an error or provably harmless (the footer's padding and the
    unused metaindex block); any flipped bit of the data and any truncation is an error."""
    d = copy_model_dir("v2_adagrad_multiclass", tmp_path)
    index, data = latest_files(d)
    good = read_tf(d)
    original = index.read_bytes()
    footer = len(original) - 48
    meta_offset, pos = tf_reader._read_varint(original, footer)
    meta_size, _ = tf_reader._read_varint(original, pos)
    unchecked = set(range(meta_offset, meta_offset + meta_size + 5)) | set(range(footer, footer + 40))
    harmless = 0
    for at in range(len(original)):
        damage(index, at)
        try:
            got = read_tf(d)
        except CheckpointError as err:
            assert str(index) in str(err)
        else:
            harmless += 1
            assert at in unchecked, at
            assert got.keys() == good.keys() and all(same_bits(got[k], good[k]) for k in got)
        index.write_bytes(original)
    assert harmless <= len(unchecked)
    for keep in range(len(original)):
        index.write_bytes(original[:keep])
        with pytest.raises(CheckpointError, match=re.escape(str(index))):
            read_tf(d)
    index.write_bytes(original)
    payload = data.read_bytes()
    for at in range(len(payload)):
        damage(data, at)
        with pytest.raises(CheckpointError, match=re.escape(str(data)) + ".*CRC32C"):
            read_tf(d)
        data.write_bytes(payload)
    for keep in range(0, len(payload), 7):
        data.write_bytes(payload[:keep])
        with pytest.raises(CheckpointError, match=re.escape(str(data))):
            read_tf(d)


@requires_shared
def test_missing_shard(tmp_path):
    d = copy_model_dir("v1_ftrl_binary", tmp_path)
    _, data = latest_files(d)
    data.unlink()
    with pytest.raises(CheckpointError, match=re.escape(str(data)) + " is missing.*Copy every file"):
        read_tf(d)
    assert read_tf_metadata(d)  # the index alone still lists the tensors


@requires_shared
def test_checkpoint_file_names_a_missing_prefix(tmp_path):
    d = copy_model_dir("v2_ftrl_binary", tmp_path)
    (d / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-99"\n')
    pattern = re.escape(str(d / "checkpoint")) + ".*model.ckpt-99.*keeps|holds"
    with pytest.raises(CheckpointError, match=pattern) as err:
        resolve_tf_checkpoint(d)
    assert "model.ckpt-0, model.ckpt-10, model.ckpt-20" in str(err.value)
    with pytest.raises(CheckpointError, match=re.escape(str(d / "model.ckpt-99"))):
        read_tf(d)


@requires_shared
def test_missing_prefix_lists_what_the_folder_keeps(tmp_path):
    d = copy_model_dir("v2_ftrl_binary", tmp_path)
    with pytest.raises(
        CheckpointError,
        match=r"model.ckpt-15 is not a TF checkpoint.*keeps "
        r"model.ckpt-0, model.ckpt-10, model.ckpt-20",
    ):
        read_tf(d / "model.ckpt-15")
    (d / "checkpoint").unlink()
    with pytest.raises(CheckpointError, match=r"no `checkpoint` file.*model.ckpt-20"):
        read_tf(d)


# =================================================================================================
# Bundles written here
# =================================================================================================
def many_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "a/float32": rng.standard_normal((7, 3)).astype(np.float32),
        "a/float64": np.array([np.inf, -0.0, np.nan, 1e-310]),
        "b/int32": rng.integers(-(2**31), 2**31, (4, 2), dtype=np.int32),
        "b/int64": np.array(-(2**63), dtype=np.int64),
        "c/bool": np.array([[True, False, True]]),
        "c/int8": np.arange(-5, 5, dtype=np.int8),
        "c/uint16": np.array([0, 65535], dtype=np.uint16),
        "d/empty": np.zeros((0, 3), np.float32),
        "global_step": np.array(12, np.int64),
        "s/strings": np.array([[b"", b"\x00\xff"], ["é".encode(), b"x" * 300]], dtype=object),
        "s/scalar_string": np.array(b"vocab.txt", dtype=object),
    }


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("num_shards", [1, 3])
def test_written_bundle_round_trips(tmp_path, big_endian, num_shards):
    tensors = many_tensors()
    # 2 entries a block and a restart every other key: several data blocks, shared prefixes.
    write_bundle(
        tmp_path / "model.ckpt-5",
        tensors,
        num_shards=num_shards,
        big_endian=big_endian,
        block_entries=2,
        restart_interval=2,
    )
    got = read_tf(tmp_path / "model.ckpt-5")
    assert list(got) == sorted(tensors)
    for name, value in tensors.items():
        assert same_bits(got[name], value), name
        assert got[name].dtype.isnative
    meta = read_tf_metadata(tmp_path / "model.ckpt-5")
    assert meta == {n: (v.dtype, v.shape) for n, v in sorted(tensors.items())}


def test_slices_are_assembled_and_partial_ones_masked(tmp_path):
    full = np.arange(30, dtype=np.float32).reshape(5, 6)
    sliced = {
        "w": (
            (5, 6),
            [
                (((0, 2), (0, 4)), full[0:2, 0:4]),
                (((0, 2), (4, 2)), full[0:2, 4:6]),
                # a full dimension: no length in the proto, -1 in the key
                (((2, 3), (0, None)), full[2:5, :]),
            ],
        ),
        "w/part_1/Ftrl": ((5, 6), [(((2, 2), (0, None)), full[2:4] + 100)]),
        "w/part_0/Ftrl": ((5, 6), [(((0, 2), (0, None)), full[0:2] + 100)]),
        "w/part_2/Ftrl": ((5, 6), [(((4, 1), (0, None)), full[4:5] + 100)]),
    }
    write_bundle(tmp_path / "model.ckpt", {"global_step": np.array(3)}, sliced=sliced)
    got = read_tf(tmp_path / "model.ckpt")
    assert same_bits(got["w"], full) and not isinstance(got["w"], np.ma.MaskedArray)
    part = got["w/part_1/Ftrl"]
    assert isinstance(part, np.ma.MaskedArray) and part.shape == (5, 6)
    assert same_bits(part.data[2:4], full[2:4] + 100)
    assert np.ma.getmaskarray(part)[[0, 1, 4]].all() and not np.ma.getmaskarray(part)[2:4].any()
    merged = merge_partitioned_slots(got)
    assert sorted(merged) == ["global_step", "w", "w/Ftrl"]
    assert same_bits(merged["w/Ftrl"], full + 100)
    variables, hyper = map_tf_names(got)
    assert sorted(variables) == ["global_step", "training/Ftrl/w/accumulator", "w"] and hyper == {}


def test_missing_or_overlapping_slice_is_damage(tmp_path):
    full = np.ones((4, 1), np.float32)
    write_bundle(
        tmp_path / "p",
        sliced={"w": ((4, 1), [(((0, 2), (0, 1)), full[:2]), (((1, 2), (0, 1)), full[1:3])])},
    )
    with pytest.raises(CheckpointError, match=r"p.index is damaged: tensor 'w' \(slice 4 1 1,2:0,1\) overlaps"):
        read_tf(tmp_path / "p")
    write_bundle(tmp_path / "q", sliced={"w": ((4, 1), [(((0, 2), (0, 1)), full[:2])])})
    index = tmp_path / "q.index"  # rewrite so that the full entry names a slice with no data
    items = [
        (b"", pb_varint(1, 1) + pb_bytes(3, pb_varint(1, 1))),
        (b"w", b"".join(encode_entry(1, (4, 1), slices=[((2, 2), (0, 1))]))),
    ]
    index.write_bytes(sstable(items))
    with pytest.raises(CheckpointError, match=r"q.index is damaged: tensor 'w' \(slice 4 1 2,2:0,1\) has no entry"):
        read_tf(tmp_path / "q")


def test_prefix_without_step_and_absolute_checkpoint_path(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_bundle(elsewhere / "model.ckpt", {"x": np.float32(2.5)})
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint").write_text(f'model_checkpoint_path: "{elsewhere / "model.ckpt"}"\n')
    assert resolve_tf_checkpoint(run) == str(elsewhere / "model.ckpt")
    assert read_tf(run)["x"] == np.float32(2.5)
    (elsewhere / "checkpoint").write_text("model_checkpoint_path: 'model.ckpt'\nall_model_checkpoint_paths: 'x'\n")
    assert read_tf(elsewhere)["x"] == np.float32(2.5)


def test_moved_model_dir_with_absolute_path_suggests_the_local_prefix(tmp_path):
    write_bundle(tmp_path / "model.ckpt-7", {"x": np.float32(1)})
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/gone/run/model.ckpt-7"\n')
    with pytest.raises(CheckpointError, match=r"does not exist.*If the model_dir was moved, pass .*model.ckpt-7"):
        read_tf(tmp_path)


def test_compressed_table_is_refused(tmp_path):
    write_bundle(tmp_path / "p", {"x": np.float32(1)}, compression=1)
    with pytest.raises(CheckpointError, match=r"p.index: a table block is compressed \(snappy\).*Re-save"):
        read_tf(tmp_path / "p")


def test_newer_bundle_format_is_refused(tmp_path):
    header = pb_varint(1, 1) + pb_bytes(3, pb_varint(1, 2) + pb_varint(2, 2))
    write_bundle(tmp_path / "p", {"x": np.float32(1)}, header=header)
    with pytest.raises(CheckpointError, match=r"p.index was written by a newer .*min_consumer 2"):
        read_tf(tmp_path / "p")


def test_unsupported_dtype_names_the_tensor(tmp_path):
    items = [
        (b"", pb_varint(1, 1) + pb_bytes(3, pb_varint(1, 1))),
        (b"w", b"".join(encode_entry(14, (2,), size=4, crc=0))),
    ]
    (tmp_path / "p.index").write_bytes(sstable(items))
    (tmp_path / "p.data-00000-of-00001").write_bytes(bytes(4))
    with pytest.raises(CheckpointError, match=r"p.index: tensor 'w' has dtype bfloat16"):
        read_tf(tmp_path / "p")


def test_damaged_string_tensor(tmp_path):
    write_bundle(tmp_path / "p", {"s": np.array([b"abc", b"de"], dtype=object)})
    data = tmp_path / "p.data-00000-of-00001"
    good = data.read_bytes()
    for at, what in [(0, "lengths do not add up|lengths fail"), (3, "lengths fail"), (8, "CRC32C")]:
        damage(data, at)
        with pytest.raises(
            CheckpointError,
            match=f"p.data-00000-of-00001 is damaged: (string )?tensor 's'.*({what})",
        ):
            read_tf(tmp_path / "p")
        data.write_bytes(good)


def test_block_restarts_are_checked():
    """Blocks whose CRC is fine but whose restart array lies (only a buggy writer makes these)."""
    entries = [(b"ab", b"1"), (b"ac", b"2"), (b"b", b"3")]
    good = table_block(entries, 1)
    assert tf_reader._block_entries(good) == entries
    shared = table_block(entries, 2)  # restart at entry 0 and 2; entry 1 shares 'a'
    lie = shared[:-12] + struct.pack("<2I", 0, 6) + shared[-4:]  # 6: entry 1, which shares a byte
    with pytest.raises(tf_reader._FormatError, match="shares bytes"):
        tf_reader._block_entries(lie)
    inside = shared[:-12] + struct.pack("<2I", 0, 3) + shared[-4:]  # 3: not the start of an entry
    with pytest.raises(tf_reader._FormatError, match="not the start of an entry"):
        tf_reader._block_entries(inside)
    with pytest.raises(tf_reader._FormatError, match="restart count"):
        tf_reader._block_entries(good[:-4] + struct.pack("<I", 99))


def test_shard_id_out_of_range_is_damage(tmp_path):
    items = [
        (b"", pb_varint(1, 1) + pb_bytes(3, pb_varint(1, 1))),
        (b"w", b"".join(encode_entry(1, (1,), shard_id=2, size=4, crc=0))),
    ]
    (tmp_path / "p.index").write_bytes(sstable(items))
    with pytest.raises(CheckpointError, match=r"p.index is damaged: tensor 'w' names shard 2 of 1"):
        read_tf(tmp_path / "p")


# =================================================================================================
# merge_partitioned_slots and map_tf_names on hand-made dicts
# =================================================================================================
def part(full: np.ndarray, rows: slice) -> np.ma.MaskedArray:
    held = np.zeros(full.shape, dtype=bool)
    held[rows] = True
    return np.ma.MaskedArray(np.where(held, full, 0), mask=~held)


def test_merge_refuses_missing_overlapping_and_unmasked_parts():
    full = np.arange(6, dtype=np.float32).reshape(6, 1)
    ok = {"v/part_0/Ftrl": part(full, slice(0, 3)), "v/part_1/Ftrl": part(full, slice(3, 6))}
    assert same_bits(merge_partitioned_slots(ok)["v/Ftrl"], full)
    with pytest.raises(CheckpointError, match=r"v/Ftrl: its parts v/part_0/Ftrl leave 3 of 6"):
        merge_partitioned_slots({"v/part_0/Ftrl": ok["v/part_0/Ftrl"]})
    with pytest.raises(CheckpointError, match=r"v/part_1/Ftrl overlaps another part of v/Ftrl"):
        merge_partitioned_slots({"v/part_0/Ftrl": part(full, slice(0, 4)), "v/part_1/Ftrl": ok["v/part_1/Ftrl"]})
    with pytest.raises(CheckpointError, match=r"carries no mask.*Pass the dict read_tf returned"):
        merge_partitioned_slots({"v/part_0/Ftrl": full, "v/part_1/Ftrl": full})
    with pytest.raises(CheckpointError, match=r"must share shape and dtype"):
        merge_partitioned_slots({"v/part_0/Ftrl": ok["v/part_0/Ftrl"], "v/part_1/Ftrl": part(full[:5], slice(3, 5))})


def test_map_tf_names_v1_adagrad_and_collisions():
    w = np.ones((3, 1), np.float32)
    variables, hyper = map_tf_names(
        {
            "lin/w": w,
            "lin/w/part_0/Adagrad": w * 2,
            "global_step": np.int64(4),
            "lone/part_0/Ftrl": w,
        }
    )
    assert sorted(variables) == [
        "global_step",
        "lin/w",
        "lone/Ftrl",
        "training/Adagrad/lin/w/accumulator",
    ]
    assert hyper == {}
    with pytest.raises(CheckpointError, match=r"maps to 'training/Ftrl/lin/w/accumulator', which another"):
        map_tf_names({"lin/w": w, "lin/w/part_0/Ftrl": w, "training/Ftrl/lin/w/accumulator": w})


# =================================================================================================
# Hypothesis: the decoders against the hand-written encoders
# =================================================================================================
@given(st.integers(0, 2**64 - 1), st.binary(max_size=3))
def test_varint_round_trip(n, tail):
    encoded = varint(n)
    assert tf_reader._read_varint(encoded + tail, 0) == (n, len(encoded))
    assert tf_reader._signed64(n) == (n - 2**64 if n >= 2**63 else n)


int64s = st.integers(-(2**63), 2**63 - 1)
extents = st.tuples(st.integers(0, 2**40), st.none() | st.integers(0, 2**40))
unknown_fields = st.lists(
    st.one_of(
        st.builds(pb_varint, st.integers(8, 2**20), st.integers(0, 2**64 - 1)),
        st.builds(pb_bytes, st.integers(8, 2**20), st.binary(max_size=20)),
        st.builds(pb_fixed32, st.integers(8, 2**20), st.integers(0, 2**32 - 1)),
        st.builds(pb_fixed64, st.integers(8, 2**20), st.integers(0, 2**64 - 1)),
    ),
    max_size=4,
)


@given(
    dtype=st.integers(1, 23),
    shape=st.lists(st.integers(0, 2**40), max_size=4),
    shard_id=st.integers(0, 2**31 - 1),
    offset=st.integers(0, 2**62),
    size=st.integers(0, 2**62),
    crc=st.none() | st.integers(0, 2**32 - 1),
    slices=st.lists(st.lists(extents, max_size=3), max_size=3),
    unknown=unknown_fields,
    data=st.data(),
)
def test_entry_decoder_skips_unknown_fields(dtype, shape, shard_id, offset, size, crc, slices, unknown, data):
    fields = encode_entry(dtype, shape, shard_id, offset, size, crc, slices)
    for chunk in unknown:  # unknown fields anywhere between the known ones
        fields.insert(data.draw(st.integers(0, len(fields))), chunk)
    entry = tf_reader._decode_entry(b"".join(fields))
    assert (entry.dtype, entry.shape, entry.shard_id, entry.offset, entry.size, entry.crc32c) == (
        dtype,
        tuple(shape),
        shard_id,
        offset,
        size,
        crc,
    )
    assert entry.slices == [tuple(s) for s in slices]


@given(st.binary(max_size=40), st.integers(1, 50))
def test_entry_decoder_never_crashes_on_garbage(garbage, cut):
    """Malformed bytes raise the reader's format error, nothing else."""
    for buf in (garbage, b"".join(encode_entry(1, (3, 2), 0, 8, 24, 7))[:cut]):
        with contextlib.suppress(tf_reader._FormatError):
            tf_reader._decode_entry(buf)


@given(int64s, int64s)
def test_ordered_signed_numbers_round_trip_and_keep_order(a, b):
    ea, eb = oc_signed(a), oc_signed(b)
    assert tf_reader._read_signed_num_increasing(ea + b"\x07", 0) == (a, len(ea))
    assert (ea < eb) == (a < b)


def test_ordered_code_examples_from_tensorflow():
    # ordered_code.cc: 0x424242 -> f0 42 42 42; -0x800 -> 38 00. README: rows 0..2, cols 0..1.
    assert oc_signed(0x424242) == bytes.fromhex("f0424242") and oc_signed(-0x800) == bytes.fromhex("3800")
    assert tf_reader._read_signed_num_increasing(bytes.fromhex("3800"), 0) == (-0x800, 2)
    assert tf_reader._decode_slice_key(b"\x00w\x00\x01\x01\x02\x80\x82\x80\x81") == (
        "w",
        ((0, 2), (0, 1)),
    )


@given(st.binary(max_size=30), st.binary(max_size=3))
def test_ordered_strings_round_trip(s, tail):
    encoded = oc_string(s)
    assert tf_reader._read_ordered_string(encoded + tail, 0) == (s, len(encoded))


@given(
    st.text(max_size=30),
    st.lists(st.tuples(st.integers(0, 2**50), st.integers(-1, 2**50)), max_size=4),
)
def test_slice_keys_round_trip(name, ext):
    assert tf_reader._decode_slice_key(slice_key(name, ext)) == (name, tuple(ext))


@settings(max_examples=50)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_crc32c_implementations_agree_with_the_bitwise_one(data, lane):
    want = crc32c_bitwise(data)
    assert tf_reader._crc32c_python(data) == want
    assert tf_reader._crc32c_numpy(data, lane) == want
    assert tf_reader._crc32c(data) == want
    assert tf_reader._unmask_crc(mask(want)) == want and tf_reader._mask_crc(want) == mask(want)


def test_crc32c_check_value():
    assert tf_reader._crc32c(b"123456789") == crc32c_bitwise(b"123456789") == 0xE3069283
    big = os.urandom(100_003)
    assert tf_reader._crc32c_numpy(big) == tf_reader._crc32c_python(big)


@requires_shared
def test_fixtures_read_the_same_without_the_c_crc_library(monkeypatch):
    before = {case: read_tf(model_dir(case)) for case in CASES}
    monkeypatch.setattr(tf_reader, "_HAVE_C_CRC", False)
    monkeypatch.setattr(tf_reader, "_LANES_FROM", 1024)  # the 7 kB shards take the numpy path
    for case, with_c in before.items():
        without = read_tf(model_dir(case))
        assert without.keys() == with_c.keys()
        assert all(same_bits(without[k], with_c[k]) for k in without)

"""Read TensorFlow checkpoints (TF 1.x and 2.x tensor bundles) with numpy alone.

A checkpoint prefix ``P`` (``model_dir/model.ckpt-200``, or ``model.ckpt`` as a plain ``Saver``
writes it) is two kinds of file:

* ``P.index``, a LevelDB-style SSTable: a 48-byte footer (metaindex and index block handles, the
  magic ``0xdb4775248b80fb57``), an index block naming the data blocks, and data blocks of
  prefix-compressed ``key -> value`` entries with restart points. Each block is followed by a
  compression byte and the masked CRC32C of block and byte. Key ``""`` holds a ``BundleHeaderProto``
  (shard count, endianness, version); every tensor name holds a ``BundleEntryProto`` (dtype, shape,
  shard, offset, size, masked CRC32C, slices).
* ``P.data-<shard>-of-<num_shards>`` (5 digits each): the tensors' raw bytes at each entry's offset.

Every block's and every tensor's checksum is verified; a damaged, truncated or missing file raises
:class:`~streamlin.errors.CheckpointError` naming the file (and the tensor) and what to do. The
protobuf messages are decoded by a small wire-format reader below (no protobuf library).

**Sliced tensors.** A tensor saved in slices (TF 1.x ``partitioner=``) has a full-name entry with
its dtype, shape and the slice extents, and one entry per slice under an OrderedCode key (byte
``0x00``, the escaped name, the rank and a (start, length) pair per dimension). :func:`read_tf`
assembles the slices into the full tensor. The optimizer slots of a partitioned variable are saved
per part, ``<var>/part_<i>/Ftrl``, each with the *full* shape but holding only part ``i``'s rows;
:func:`read_tf` returns them under those names as :class:`numpy.ma.MaskedArray` whose mask marks the
elements the part does not hold, and :func:`merge_partitioned_slots` unions the parts.

CRC32C uses the ``google-crc32c`` package's C implementation when it is installed; otherwise a
numpy implementation (the same table-driven CRC over many lanes at once) that checks 16 MB in
about 0.2 s.
"""

from __future__ import annotations

import codecs
import itertools
import math
import os
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from streamlin.errors import CheckpointError

__all__ = [
    "map_tf_names",
    "merge_partitioned_slots",
    "read_tf",
    "read_tf_metadata",
    "resolve_tf_checkpoint",
]

# =================================================================================================
# CRC32C (Castagnoli), as LevelDB and TensorFlow mask it
# =================================================================================================
_CRC_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _make_crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CRC_POLY), table >> 1)
    return table.astype(np.uint32)


_CRC_TABLE = _make_crc_table()
_CRC_TABLE_LIST = [int(x) for x in _CRC_TABLE]
_LANES_FROM = 1 << 14  # inputs at least this long go through the numpy lane implementation


def _crc32c_python(data: bytes, crc: int = 0) -> int:
    """CRC32C of ``data`` continuing from ``crc``, one byte at a time (for short inputs)."""
    table = _CRC_TABLE_LIST
    reg = crc ^ _U32
    for byte in data:
        reg = table[(reg ^ byte) & 0xFF] ^ (reg >> 8)
    return reg ^ _U32


def _crc32c_numpy(data: bytes, lane_bytes: int | None = None) -> int:
    """CRC32C of ``data``: ``lanes`` stretches of ``lane_bytes`` side by side, then chained.

    With R(s, B) the CRC register after the bytes B starting from register s, R(s, B) =
    Z(s) ^ R(0, B), where Z, "feed len(B) zero bytes", is linear over GF(2). So the registers
    R(0, lane) of all lanes are computed together by numpy, and chained in order through Z, applied
    with four 256-entry tables (one per byte of the register). The tail after the last whole lane is
    fed byte by byte.
    """
    n = len(data)
    lane = lane_bytes if lane_bytes is not None else max(1, math.isqrt(n))
    lanes = n // lane
    if lanes < 2:
        return _crc32c_python(data)
    table = _CRC_TABLE
    columns = np.ascontiguousarray(np.frombuffer(data, dtype=np.uint8, count=lanes * lane).reshape(lanes, lane).T)
    regs = np.zeros(lanes, dtype=np.uint32)
    for j in range(lane):
        regs = table[(regs ^ columns[j]) & 0xFF] ^ (regs >> 8)
    # Z applied to each single-bit register, then tabulated per byte of the register.
    basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
    for _ in range(lane):
        basis = table[basis & 0xFF] ^ (basis >> 8)
    bits = (np.arange(256, dtype=np.uint32)[:, None] >> np.arange(8, dtype=np.uint32)) & 1
    z0, z1, z2, z3 = (
        np.bitwise_xor.reduce(np.where(bits == 1, basis[8 * b : 8 * b + 8], np.uint32(0)), axis=1)
        .astype(np.uint32)
        .tolist()
        for b in range(4)
    )
    reg = _U32
    for r in regs.tolist():
        reg = z0[reg & 0xFF] ^ z1[(reg >> 8) & 0xFF] ^ z2[(reg >> 16) & 0xFF] ^ z3[reg >> 24] ^ r
    return _crc32c_python(data[lanes * lane :], reg ^ _U32)


try:  # the C library is ~100x faster; the numpy fallback is exact and fine for small models
    import google_crc32c as _google_crc32c
except ImportError:  # pragma: no cover - depends on the environment
    _google_crc32c = None

_HAVE_C_CRC = _google_crc32c is not None and getattr(_google_crc32c, "implementation", "") == "c"


def _crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli) of ``data``, unmasked."""
    if _HAVE_C_CRC:
        return int(_google_crc32c.value(bytes(data)))
    if len(data) < _LANES_FROM:
        return _crc32c_python(data)
    return _crc32c_numpy(data)


def _mask_crc(crc: int) -> int:
    """LevelDB's masked CRC: rotate right by 15 bits, add a constant."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def _unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32


# =================================================================================================
# Protobuf wire format (varint, fixed64, length-delimited, fixed32) and the bundle messages
# =================================================================================================
class _FormatError(ValueError):
    """Malformed bytes; the caller turns it into a CheckpointError naming the file."""


_U64 = (1 << 64) - 1


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode the base-128 varint at ``buf[pos:]``; return (value mod 2**64, next position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise _FormatError("a varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _U64, pos
        shift += 7
        if shift >= 70:
            raise _FormatError("a varint is longer than 10 bytes")


def _signed64(value: int) -> int:
    """Reinterpret an unsigned 64-bit varint value as a two's-complement int64."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a message; values are ints or ``bytes``.

    Groups (wire types 3 and 4, unused by these messages) are refused.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _FormatError("a protobuf field has number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise _FormatError("a fixed64 field runs past the end of its message")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise _FormatError("a length-delimited field runs past the end of its message")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == 5:
            if pos + 4 > end:
                raise _FormatError("a fixed32 field runs past the end of its message")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise _FormatError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _want(wire: int, expected: int, what: str) -> None:
    if wire != expected:
        raise _FormatError(f"{what} has wire type {wire}, expected {expected}")


def _int64_fields(buf: bytes, names: dict[int, str]) -> dict[int, int]:
    """The int64 varint fields ``names`` (number -> what, for errors) of a message; others skipped."""
    out = {}
    for number, wire, value in _iter_fields(buf):
        if number in names:
            _want(wire, 0, names[number])
            out[number] = _signed64(value)  # type: ignore[arg-type]
    return out


def _packed_or_single_varints(wire: int, value: int | bytes) -> list[int]:
    if wire == 0:
        return [int(value)]  # type: ignore[arg-type]
    _want(wire, 2, "a repeated varint field")
    out, pos = [], 0
    while pos < len(value):  # type: ignore[arg-type]
        v, pos = _read_varint(value, pos)  # type: ignore[arg-type]
        out.append(v)
    return out


@dataclass
class _Header:
    """BundleHeaderProto: num_shards = 1, endianness = 2 (LITTLE = 0, BIG = 1), version = 3."""

    num_shards: int = 0
    big_endian: bool = False
    producer: int = 0
    min_consumer: int = 0
    bad_consumers: list[int] = field(default_factory=list)


@dataclass
class _Entry:
    """BundleEntryProto: dtype = 1, shape = 2, shard_id = 3, offset = 4, size = 5, crc32c = 6
    (fixed32, masked), slices = 7 (TensorSliceProto: extent = 1 {start = 1, length = 2}).

    ``slices`` holds one tuple of (start, length) per slice and dimension; length ``None`` is the
    full extent.
    """

    dtype: int = 0
    shape: tuple[int, ...] = ()
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int | None = None
    slices: list[tuple[tuple[int, int | None], ...]] = field(default_factory=list)


def _decode_header(buf: bytes) -> _Header:
    header = _Header()
    for number, wire, value in _iter_fields(buf):
        if number == 1:
            _want(wire, 0, "BundleHeaderProto.num_shards")
            header.num_shards = _signed64(value)  # type: ignore[arg-type]
        elif number == 2:
            _want(wire, 0, "BundleHeaderProto.endianness")
            header.big_endian = value == 1
        elif number == 3:
            _want(wire, 2, "BundleHeaderProto.version")
            version = _int64_fields(value, {1: "VersionDef.producer", 2: "VersionDef.min_consumer"})  # type: ignore[arg-type]
            header.producer = version.get(1, header.producer)
            header.min_consumer = version.get(2, header.min_consumer)
            for n2, w2, v2 in _iter_fields(value):  # type: ignore[arg-type]
                if n2 == 3:
                    header.bad_consumers += [_signed64(v) for v in _packed_or_single_varints(w2, v2)]
    return header


def _decode_shape(buf: bytes) -> tuple[int, ...]:
    """TensorShapeProto: dim = 2 (repeated Dim {size = 1, name = 2}), unknown_rank = 3."""
    dims = []
    for number, wire, value in _iter_fields(buf):
        if number == 2:
            _want(wire, 2, "TensorShapeProto.dim")
            size = _int64_fields(value, {1: "TensorShapeProto.Dim.size"}).get(1, 0)  # type: ignore[arg-type]
            if size < 0:
                raise _FormatError(f"a saved tensor has an unknown or negative dimension ({size})")
            dims.append(size)
        elif number == 3:
            _want(wire, 0, "TensorShapeProto.unknown_rank")
            if value:
                raise _FormatError("a saved tensor has unknown rank")
    return tuple(dims)


def _decode_slice(buf: bytes) -> tuple[tuple[int, int | None], ...]:
    extents = []
    for number, wire, value in _iter_fields(buf):
        if number == 1:
            _want(wire, 2, "TensorSliceProto.extent")
            extent = _int64_fields(value, {1: "TensorSliceProto.Extent.start",  # type: ignore[arg-type]
                                           2: "TensorSliceProto.Extent.length"})
            extents.append((extent.get(1, 0), extent.get(2)))
    return tuple(extents)


def _decode_entry(buf: bytes) -> _Entry:
    entry = _Entry()
    for number, wire, value in _iter_fields(buf):
        if number == 1:
            _want(wire, 0, "BundleEntryProto.dtype")
            entry.dtype = int(value)  # type: ignore[arg-type]
        elif number == 2:
            _want(wire, 2, "BundleEntryProto.shape")
            entry.shape = _decode_shape(value)  # type: ignore[arg-type]
        elif number in (3, 4, 5):
            _want(wire, 0, "BundleEntryProto.shard_id/offset/size")
            v = _signed64(value)  # type: ignore[arg-type]
            if v < 0:
                raise _FormatError(f"BundleEntryProto field {number} is negative ({v})")
            setattr(entry, {3: "shard_id", 4: "offset", 5: "size"}[number], v)
        elif number == 6:
            _want(wire, 5, "BundleEntryProto.crc32c")
            entry.crc32c = int(value)  # type: ignore[arg-type]
        elif number == 7:
            _want(wire, 2, "BundleEntryProto.slices")
            entry.slices.append(_decode_slice(value))  # type: ignore[arg-type]
    return entry


# =================================================================================================
# OrderedCode, the encoding of the keys of tensor slices
# =================================================================================================
def _read_num_increasing(buf: bytes, pos: int) -> tuple[int, int]:
    """OrderedCode ``WriteNumIncreasing``: one length byte, then that many big-endian bytes."""
    if pos >= len(buf):
        raise _FormatError("an OrderedCode number runs past the end of its key")
    length = buf[pos]
    if length > 8 or pos + 1 + length > len(buf):
        raise _FormatError("an OrderedCode number is too long or runs past the end of its key")
    return int.from_bytes(buf[pos + 1 : pos + 1 + length], "big"), pos + 1 + length


def _read_ordered_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    """OrderedCode ``WriteString``: 00 -> 00 ff, ff -> ff 00, terminated by 00 01."""
    out = bytearray()
    end = len(buf)
    while True:
        special = pos
        while special < end and buf[special] not in (0x00, 0xFF):
            special += 1
        out += buf[pos:special]
        if special + 1 >= end:
            raise _FormatError("an OrderedCode string has no terminator")
        pair = buf[special : special + 2]
        pos = special + 2
        if pair == b"\x00\x01":
            return bytes(out), pos
        if pair == b"\x00\xff":
            out.append(0x00)
        elif pair == b"\xff\x00":
            out.append(0xFF)
        else:
            raise _FormatError(f"an OrderedCode string has the invalid escape {pair.hex()}")


def _read_signed_num_increasing(buf: bytes, pos: int) -> tuple[int, int]:
    """OrderedCode ``WriteSignedNumIncreasing``.

    The leading bits hold the sign (1 for >= 0) repeated once per byte of the encoding, then one
    opposite bit; the remaining ``7 * length - 1`` bits are the value in two's complement,
    big-endian.
    For a negative number every header bit is inverted, so count ones after inverting.
    """
    if pos >= len(buf):
        raise _FormatError("an OrderedCode signed number runs past the end of its key")
    invert = 0xFF if buf[pos] < 0x80 else 0x00
    second = buf[pos + 1] ^ invert if pos + 1 < len(buf) else 0
    header = ((buf[pos] ^ invert) << 8) | second
    length = 0
    while length < 16 and header & (0x8000 >> length):
        length += 1
    if length > 10 or pos + length > len(buf):
        raise _FormatError("an OrderedCode signed number is too long or runs past its key")
    bits = 7 * length - 1
    value = int.from_bytes(buf[pos : pos + length], "big") & ((1 << bits) - 1)
    if invert:
        value -= 1 << bits
    if not -(1 << 63) <= value < 1 << 63:
        raise _FormatError("an OrderedCode signed number does not fit in int64")
    return value, pos + length


def _decode_slice_key(key: bytes) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Split the key of one stored slice into (tensor name, ((start, length), ...)).

    Layout (TF's ``EncodeTensorNameSlice``): NumIncreasing(0), String(name), NumIncreasing(rank),
    then SignedNumIncreasing(start), SignedNumIncreasing(length) per dimension; length -1 is the
    full extent.
    """
    tag, pos = _read_num_increasing(key, 0)
    if tag != 0:
        raise _FormatError(f"a slice key starts with {tag}, not 0")
    name, pos = _read_ordered_string(key, pos)
    rank, pos = _read_num_increasing(key, pos)
    extents = []
    for _ in range(rank):
        start, pos = _read_signed_num_increasing(key, pos)
        length, pos = _read_signed_num_increasing(key, pos)
        extents.append((start, length))
    if pos != len(key):
        raise _FormatError("a slice key has trailing bytes")
    try:
        return name.decode("utf-8"), tuple(extents)
    except UnicodeDecodeError as err:
        raise _FormatError("a slice key's tensor name is not UTF-8") from err


# =================================================================================================
# SSTable (.index)
# =================================================================================================
_FOOTER_BYTES = 48
_TABLE_MAGIC = 0xDB4775248B80FB57
_BLOCK_TRAILER_BYTES = 5
_COMPRESSION_NAMES = {1: "snappy", 2: "zlib"}


def _damaged(path: str, detail: str, prefix: str | None = None) -> CheckpointError:
    hint = _kept_hint(prefix) if prefix else ""
    return CheckpointError(
        f"{path} is damaged: {detail}. Restore the checkpoint's files from where they were"
        f" written, or read another checkpoint{hint}."
    )


def _read_block(raw: bytes, offset: int, size: int, limit: int, path: str, prefix: str) -> bytes:
    """Return the block at ``offset`` after checking its bounds, masked CRC32C and compression."""
    end = offset + size + _BLOCK_TRAILER_BYTES
    if end > limit:
        raise _damaged(
            path,
            f"a table block ({size} bytes at offset {offset}) runs past the end of the file's"
            f" {limit} bytes of blocks; the file may be truncated",
            prefix,
        )
    stored = int.from_bytes(raw[offset + size + 1 : end], "little")
    actual = _crc32c(raw[offset : offset + size + 1])
    if _unmask_crc(stored) != actual:
        raise _damaged(
            path,
            f"the table block of {size} bytes at offset {offset} fails its CRC32C check"
            f" (stored {_unmask_crc(stored):08x}, computed {actual:08x})",
            prefix,
        )
    compression = raw[offset + size]
    if compression != 0:
        name = _COMPRESSION_NAMES.get(compression, f"unknown type {compression}")
        raise CheckpointError(
            f"{path}: a table block is compressed ({name}), which streamlin's TF reader does not"
            " support (TensorFlow writes checkpoint indexes uncompressed since 1.2). Re-save the"
            " checkpoint with a current TensorFlow, e.g. tf.train.Saver().save(), and read that."
        )
    return raw[offset : offset + size]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Decode a block's prefix-compressed entries, checking them against its restart array."""
    if len(block) < 4:
        raise _FormatError(f"a table block of {len(block)} bytes has no restart count")
    num_restarts = int.from_bytes(block[-4:], "little")
    restarts_at = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 or restarts_at < 0:
        raise _FormatError(f"a table block has an invalid restart count ({num_restarts})")
    restarts = struct.unpack_from(f"<{num_restarts}I", block, restarts_at)
    entries: list[tuple[bytes, bytes]] = []
    starts: list[int] = []
    key = b""
    pos = 0
    while pos < restarts_at:
        starts.append(pos)
        shared, pos = _read_varint(block, pos)
        non_shared, pos = _read_varint(block, pos)
        value_len, pos = _read_varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > restarts_at:
            raise _FormatError("a table entry runs past its block or shares more than its key")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    starts_set = set(starts)
    for r in restarts:
        if not (r in starts_set or (r == 0 and not starts)):
            raise _FormatError(f"a table block's restart offset {r} is not the start of an entry")
    if entries and restarts[0] != 0:
        raise _FormatError("a table block's first restart is not at offset 0")
    for r in restarts:
        if r in starts_set:
            shared, _ = _read_varint(block, r)
            if shared:
                raise _FormatError("a table entry at a restart point shares bytes with its previous key")
    return entries


def _read_table(raw: bytes, path: str, prefix: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of the SSTable ``raw``, in key order."""
    if len(raw) < _FOOTER_BYTES:
        raise _damaged(
            path,
            f"it has {len(raw)} bytes, fewer than the {_FOOTER_BYTES}-byte table footer; it may be truncated",
            prefix,
        )
    footer = raw[-_FOOTER_BYTES:]
    if int.from_bytes(footer[-8:], "little") != _TABLE_MAGIC:
        raise _damaged(
            path,
            "it does not end with the table magic number 0xdb4775248b80fb57; it is truncated or not"
            " a TensorFlow checkpoint index",
            prefix,
        )
    limit = len(raw) - _FOOTER_BYTES
    try:
        pos = 0
        for _ in range(2):  # the metaindex handle, unused by tensor bundles
            _, pos = _read_varint(footer, pos)
        index_offset, pos = _read_varint(footer, pos)
        index_size, pos = _read_varint(footer, pos)
        index = _block_entries(_read_block(raw, index_offset, index_size, limit, path, prefix))
        items: list[tuple[bytes, bytes]] = []
        for _separator, handle in index:
            offset, hpos = _read_varint(handle, 0)
            size, _ = _read_varint(handle, hpos)
            items += _block_entries(_read_block(raw, offset, size, limit, path, prefix))
    except _FormatError as err:
        raise _damaged(path, str(err), prefix) from None
    for (a, _), (b, _) in itertools.pairwise(items):
        if not a < b:
            raise _damaged(path, f"its keys are out of order ({a!r} before {b!r})", prefix)
    return items


# =================================================================================================
# Tensor bundle
# =================================================================================================
_DT_STRING = 7
# TF DataType enum -> numpy type code, for the dtypes that have a numpy equivalent.
_NUMPY_CODES = {
    1: "f4", 2: "f8", 3: "i4", 4: "u1", 5: "i2", 6: "i1", 8: "c8", 9: "i8", 10: "?",
    17: "u2", 18: "c16", 19: "f2", 22: "u4", 23: "u8",
}  # fmt: skip
_TF_DTYPE_NAMES = {
    11: "qint8", 12: "quint8", 13: "qint32", 14: "bfloat16", 15: "qint16", 16: "quint16",
    20: "resource", 21: "variant",
}  # fmt: skip


def _numpy_dtype(code: int, name: str, path: str) -> np.dtype:
    if code == _DT_STRING:
        return np.dtype(object)
    if code in _NUMPY_CODES:
        return np.dtype(_NUMPY_CODES[code])
    what = _TF_DTYPE_NAMES.get(code, f"DataType {code}")
    raise CheckpointError(
        f"{path}: tensor {name!r} has dtype {what}, which streamlin's TF reader does not support"
        " (it reads numeric, bool and string tensors). A LinearClassifier checkpoint holds only"
        " float32 and int64; pass the checkpoint of a linear model."
    )


def _spec(shape: tuple[int, ...], extents: tuple[tuple[int, int], ...]) -> str:
    """TF's slice spec string, e.g. ``'64 1 0,22:0,1'``."""
    return " ".join([*map(str, shape), ":".join(f"{s},{n}" for s, n in extents)])


def _step_key(name: str) -> tuple[int, str]:
    match = re.search(r"-(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)


def _prefixes_in(directory: str) -> list[str]:
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    return sorted((n[: -len(".index")] for n in names if n.endswith(".index")), key=_step_key)


def _kept_hint(prefix: str | None) -> str:
    if not prefix:
        return ""
    directory = os.path.dirname(prefix)
    others = [p for p in _prefixes_in(directory) if p != os.path.basename(prefix)]
    return f" ({directory or '.'} keeps {', '.join(others)})" if others else ""


class _Bundle:
    """One checkpoint prefix: its parsed index, and the reading of its tensors."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.index_path = prefix + ".index"
        try:
            raw = Path(self.index_path).read_bytes()
        except FileNotFoundError:
            raise _missing_prefix(prefix) from None
        except OSError as err:
            raise CheckpointError(
                f"{self.index_path} cannot be read ({err.strerror}). Check its permissions."
            ) from None
        items = _read_table(raw, self.index_path, prefix)
        if not items or items[0][0] != b"":
            raise _damaged(self.index_path, "it has no header entry (key '')", prefix)
        try:
            self.header = _decode_header(items[0][1])
        except _FormatError as err:
            raise _damaged(self.index_path, f"its header entry is malformed: {err}", prefix) from None
        if self.header.num_shards < 1:
            raise _damaged(self.index_path, f"its header names {self.header.num_shards} shards", prefix)
        if self.header.min_consumer > 1 or 1 in self.header.bad_consumers:
            raise CheckpointError(
                f"{self.index_path} was written by a newer TensorFlow bundle format (producer"
                f" {self.header.producer}, min_consumer {self.header.min_consumer}) than the"
                " version 1 this reader understands. Re-save it with TensorFlow 2.15 or older."
            )
        self.entries: dict[str, _Entry] = {}
        # full tensor name -> [(extents as in the key, entry of that slice)]
        self.slices: dict[str, list[tuple[tuple[tuple[int, int], ...], _Entry]]] = {}
        for key, value in items[1:]:
            try:
                if key[:1] == b"\x00":
                    name, extents = _decode_slice_key(key)
                    self.slices.setdefault(name, []).append((extents, _decode_entry(value)))
                else:
                    name = key.decode("utf-8")
                    self.entries[name] = _decode_entry(value)
            except (_FormatError, UnicodeDecodeError) as err:
                raise _damaged(self.index_path, f"the entry under key {key!r} is malformed: {err}", prefix) from None
        self._files: dict[int, BinaryIO] = {}

    # -- data ------------------------------------------------------------------------------------
    def shard_path(self, shard_id: int) -> str:
        return f"{self.prefix}.data-{shard_id:05d}-of-{self.header.num_shards:05d}"

    def _read_bytes(self, what: str, entry: _Entry) -> bytes:
        if entry.shard_id >= self.header.num_shards:
            raise _damaged(
                self.index_path,
                f"tensor {what} names shard {entry.shard_id} of {self.header.num_shards}",
                self.prefix,
            )
        path = self.shard_path(entry.shard_id)
        handle = self._files.get(entry.shard_id)
        if handle is None:
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed in close()
            except FileNotFoundError:
                raise CheckpointError(
                    f"{path} is missing: tensor {what} of {self.prefix} is stored in shard"
                    f" {entry.shard_id} of {self.header.num_shards}. Copy every file of the"
                    f" checkpoint ({os.path.basename(self.prefix)}.index and all its"
                    f" .data-*-of-{self.header.num_shards:05d} files) together."
                ) from None
            except OSError as err:
                raise CheckpointError(f"{path} cannot be read ({err.strerror}). Check its permissions.") from None
            self._files[entry.shard_id] = handle
        file_size = os.fstat(handle.fileno()).st_size
        if entry.offset + entry.size > file_size:
            raise _damaged(
                path,
                f"tensor {what} takes bytes {entry.offset}..{entry.offset + entry.size} but the"
                f" file has {file_size} bytes; it may be truncated",
                self.prefix,
            )
        handle.seek(entry.offset)
        data = handle.read(entry.size)
        if len(data) != entry.size:
            raise _damaged(path, f"tensor {what} could not be read in full", self.prefix)
        return data

    def _check_crc(self, what: str, entry: _Entry, actual: int) -> None:
        stored = _unmask_crc(entry.crc32c) if entry.crc32c is not None else None
        if stored != actual and entry.size:
            raise _damaged(
                self.shard_path(entry.shard_id),
                f"tensor {what} ({entry.size} bytes at offset {entry.offset}) fails its CRC32C"
                f" check (stored {'none' if stored is None else f'{stored:08x}'}, computed"
                f" {actual:08x})",
                self.prefix,
            )

    def _tensor(self, what: str, entry: _Entry, dtype: np.dtype) -> np.ndarray:
        """Read one stored (unsliced) tensor and verify its checksum."""
        count = math.prod(entry.shape)
        if dtype.kind == "O":
            return self._string_tensor(what, entry, count)
        if entry.size != count * dtype.itemsize:
            raise _damaged(
                self.index_path,
                f"tensor {what} ({dtype} {list(entry.shape)}) records {entry.size} bytes instead of"
                f" {count * dtype.itemsize}",
                self.prefix,
            )
        data = self._read_bytes(what, entry)
        self._check_crc(what, entry, _crc32c(data))
        stored = dtype.newbyteorder(">" if self.header.big_endian else "<")
        return np.frombuffer(data, dtype=stored).reshape(entry.shape).astype(dtype)

    def _string_tensor(self, what: str, entry: _Entry, count: int) -> np.ndarray:
        """DT_STRING: varint64 lengths, a masked CRC32C of the lengths, then the bytes.

        The tensor's CRC32C runs over each length as uint32 (uint64 above 2**32 - 1) in the
        writer's byte order, the 4 stored checksum bytes, and the string bytes.
        """
        if count == 0 and entry.size == 0:
            return np.empty(entry.shape, dtype=object)
        if entry.size < count + 4:  # at least one length byte per string, and the length checksum
            raise _damaged(
                self.index_path,
                f"string tensor {what} of {count} strings records only {entry.size} bytes",
                self.prefix,
            )
        out = np.empty(count, dtype=object)
        data = self._read_bytes(what, entry)
        order = ">" if self.header.big_endian else "<"
        try:
            lengths, pos = [], 0
            for _ in range(count):
                n, pos = _read_varint(data, pos)
                lengths.append(n)
        except _FormatError:
            lengths, pos = [], len(data) + 1
        if pos + 4 + sum(lengths) != len(data):
            raise _damaged(
                self.shard_path(entry.shard_id),
                f"string tensor {what}: its lengths do not add up to its {entry.size} bytes",
                self.prefix,
            )
        length_bytes = b"".join(struct.pack(order + ("I" if n <= _U32 else "Q"), n) for n in lengths)
        length_crc = _crc32c(length_bytes)
        stored_length_crc = data[pos : pos + 4]
        if _unmask_crc(int.from_bytes(stored_length_crc, "big" if order == ">" else "little")) != length_crc:
            raise _damaged(
                self.shard_path(entry.shard_id),
                f"string tensor {what}: its lengths fail their CRC32C check",
                self.prefix,
            )
        pos += 4
        for i, n in enumerate(lengths):
            out[i] = data[pos : pos + n]
            pos += n
        strings = data[pos - sum(lengths) :]
        self._check_crc(what, entry, _crc32c(length_bytes + stored_length_crc + strings))
        return out.reshape(entry.shape)

    def read(self, name: str) -> np.ndarray:
        """The tensor ``name``, read whole or assembled from its slices (masked where uncovered)."""
        entry = self.entries[name]
        dtype = _numpy_dtype(entry.dtype, name, self.index_path)
        if not entry.slices:
            return self._tensor(repr(name), entry, dtype)
        shape = entry.shape
        out = np.full(shape, b"", dtype=object) if dtype.kind == "O" else np.zeros(shape, dtype)
        covered = np.zeros(shape, dtype=bool)
        stored = {
            self._normalise(name, shape, key_extents, full=-1): part for key_extents, part in self.slices.get(name, [])
        }
        for extents in entry.slices:
            norm = self._normalise(name, shape, extents, full=None)
            what = f"{name!r} (slice {_spec(shape, norm)})"
            slice_entry = stored.get(norm)
            if slice_entry is None:
                raise _damaged(self.index_path, f"tensor {what} has no entry for its data", self.prefix)
            if slice_entry.shape != tuple(n for _, n in norm) or slice_entry.dtype != entry.dtype:
                raise _damaged(
                    self.index_path,
                    f"tensor {what} is stored with shape {list(slice_entry.shape)} and DataType {slice_entry.dtype}",
                    self.prefix,
                )
            region = tuple(slice(s, s + n) for s, n in norm)
            if covered[region].any():
                raise _damaged(self.index_path, f"tensor {what} overlaps another slice", self.prefix)
            out[region] = self._tensor(what, slice_entry, dtype)
            covered[region] = True
        if covered.all():
            return out
        return np.ma.MaskedArray(out, mask=~covered)

    def _normalise(
        self,
        name: str,
        shape: tuple[int, ...],
        extents: tuple[tuple[int, int | None], ...],
        full: int | None,
    ) -> tuple[tuple[int, int], ...]:
        """(start, length) per dimension, the full extent (length ``full``) made explicit."""
        if len(extents) != len(shape):
            raise _damaged(
                self.index_path,
                f"a slice of tensor {name!r} has rank {len(extents)}, the tensor {len(shape)}",
                self.prefix,
            )
        norm = []
        for (start, length), dim in zip(extents, shape, strict=True):
            if length is None or length == full:
                start, length = 0, dim
            if start < 0 or length < 0 or start + length > dim:
                raise _damaged(
                    self.index_path,
                    f"a slice of tensor {name!r} (start {start}, length {length}) lies outside its shape {list(shape)}",
                    self.prefix,
                )
            norm.append((start, length))
        return tuple(norm)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def __enter__(self) -> _Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# =================================================================================================
# Public API
# =================================================================================================
def _missing_prefix(prefix: str) -> CheckpointError:
    directory = os.path.dirname(prefix) or "."
    kept = _prefixes_in(directory)
    where = f"{directory} keeps {', '.join(kept)}" if kept else f"{directory} holds no TF checkpoint"
    return CheckpointError(
        f"{prefix} is not a TF checkpoint: neither {prefix}.index nor a model_dir of that name"
        f" exists; {where}. Pass a checkpoint prefix (model_dir/model.ckpt-<step>) or a model_dir."
    )


_STATE_LINE = re.compile(r"""^\s*model_checkpoint_path\s*:\s*(["'])((?:\\.|(?!\1).)*)\1""", re.M)


def resolve_tf_checkpoint(path: str | os.PathLike[str]) -> str:
    """Return the checkpoint prefix that ``path`` names.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint prefix (``.../model.ckpt-200``, or ``.../model.ckpt`` without a step; its
        ``.index`` file's name is accepted too), or a model_dir whose ``checkpoint`` text file names
        the latest checkpoint (``model_checkpoint_path: "model.ckpt-20"``; a relative name is taken
        relative to the model_dir, as TensorFlow does).

    Returns
    -------
    str
        The prefix, such that ``prefix + ".index"`` exists.

    Raises
    ------
    CheckpointError
        Nothing exists at ``path``; a model_dir has no ``checkpoint`` file, or its ``checkpoint``
        file names a prefix whose ``.index`` does not exist.
    """
    p = os.fspath(path)
    if p.endswith(".index") and os.path.isfile(p):
        p = p[: -len(".index")]
    if os.path.isfile(p + ".index"):
        return p
    if not os.path.isdir(p):
        raise _missing_prefix(p)
    state = os.path.join(p, "checkpoint")
    kept = _prefixes_in(p)
    holds = f"; it holds {', '.join(kept)}" if kept else "; it holds no TF checkpoint"
    try:
        text = Path(state).read_text(encoding="utf-8")
    except FileNotFoundError:
        example = os.path.join(p, kept[-1]) if kept else os.path.join(p, "model.ckpt-<step>")
        raise CheckpointError(
            f"{p} has no `checkpoint` file naming its latest TF checkpoint{holds}. Pass a"
            f" checkpoint prefix such as {example}."
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{state} cannot be read ({err}). Pass a checkpoint prefix.") from None
    match = _STATE_LINE.search(text)
    if match is None or not match.group(2):
        raise CheckpointError(f"{state} names no model_checkpoint_path{holds}. Pass a checkpoint prefix instead.")
    try:
        name = codecs.escape_decode(match.group(2).encode("utf-8"))[0].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(
            f"{state}: model_checkpoint_path {match.group(2)!r} is not a valid string. Pass a"
            " checkpoint prefix instead."
        ) from None
    prefix = name if os.path.isabs(name) else os.path.join(p, name)
    if not os.path.isfile(prefix + ".index"):
        moved = os.path.join(p, os.path.basename(name))
        fix = (
            f" If the model_dir was moved, pass {moved}."
            if os.path.isabs(name) and os.path.isfile(moved + ".index")
            else ""
        )
        raise CheckpointError(
            f"{state} names {name!r} as the latest checkpoint, but {prefix}.index does not"
            f" exist{holds}.{fix} Pass one of those prefixes, or correct model_checkpoint_path."
        )
    return prefix


def read_tf(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every tensor of a TensorFlow checkpoint, without TensorFlow.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint prefix or a model_dir (its latest checkpoint); see
        :func:`resolve_tf_checkpoint`.

    Returns
    -------
    dict of str to numpy.ndarray
        Saved name -> value, in the index's (bytewise) name order, with the dtype and shape TF saved
        (float32, float64, int32, int64, bool, ...; strings as ``object`` arrays of ``bytes``);
        native byte order, writable. A tensor saved in slices is assembled. When its slices do not
        cover it, as for the per-part optimizer slots ``<var>/part_<i>/Ftrl`` of a partitioned
        TF 1.x variable (full shape, part ``i``'s rows only), the value is a
        :class:`numpy.ma.MaskedArray` masked (and 0) where nothing was saved; pass the dict to
        :func:`merge_partitioned_slots` or :func:`map_tf_names` to union the parts.

    Raises
    ------
    CheckpointError
        The prefix or a data shard is missing; a file is truncated or damaged (a table block or a
        tensor fails its CRC32C check, an entry is malformed or out of bounds); the index is
        compressed or from a newer format; a tensor has an unsupported dtype (bfloat16, resource,
        variant, quantized). The message names the file and the tensor.
    """
    with _Bundle(resolve_tf_checkpoint(path)) as bundle:
        return {name: bundle.read(name) for name in bundle.entries}


def read_tf_metadata(path: str | os.PathLike[str]) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Dtype and shape of every tensor of a TensorFlow checkpoint, reading only its ``.index``.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint prefix or a model_dir; see :func:`resolve_tf_checkpoint`.

    Returns
    -------
    dict of str to (numpy.dtype, tuple of int)
        Saved name -> (dtype, full shape), in name order; strings have dtype ``object``. Sliced
        tensors appear once, under their full name.

    Raises
    ------
    CheckpointError
        The prefix is missing, the ``.index`` is damaged, or a tensor's dtype is unsupported.
    """
    with _Bundle(resolve_tf_checkpoint(path)) as bundle:
        return {name: (_numpy_dtype(e.dtype, name, bundle.index_path), e.shape) for name, e in bundle.entries.items()}


_PART_NAME = re.compile(r"^(?P<var>.+)/part_(?P<part>\d+)/(?P<slot>[^/]+)$")


def merge_partitioned_slots(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Union the per-part slots ``<var>/part_<i>/<slot>`` into one ``<var>/<slot>`` each.

    TF 1.x saves the optimizer slots of a partitioned variable once per part, each with the
    variable's full shape but holding only that part's rows. Which rows a part holds is given by the
    extent of its one saved slice (start and length along axis 0; the whole of the other axes):
    :func:`read_tf` returns such a part as a :class:`numpy.ma.MaskedArray` masked outside that
    extent. Here the unmasked elements of all parts are copied into one array, which must then be
    covered exactly once. A single plain (unmasked) ``part_0`` covers the whole variable, as in an
    unpartitioned TF 1.x model, and is just renamed. Other names pass through unchanged.

    Parameters
    ----------
    tensors : Mapping of str to numpy.ndarray
        As returned by :func:`read_tf`.

    Returns
    -------
    dict of str to numpy.ndarray
        ``tensors`` with each group of parts replaced by the merged plain array.

    Raises
    ------
    CheckpointError
        Parts differ in shape or dtype, overlap, leave elements uncovered (a part is missing), carry
        no mask while there are several, or the merged name is already taken.
    """
    out: dict[str, np.ndarray] = {}
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for name, value in tensors.items():
        match = _PART_NAME.match(name)
        if match is None:
            out[name] = value
        else:
            groups.setdefault((match["var"], match["slot"]), []).append((int(match["part"]), name))
    for (var, slot), parts in groups.items():
        target = f"{var}/{slot}"
        names = [name for _, name in sorted(parts)]
        if target in tensors:
            raise CheckpointError(
                f"{names[0]}: the merged slot name {target!r} is already taken by another tensor;"
                " the checkpoint mixes partitioned and unpartitioned names. Rename one of them."
            )
        arrays = [tensors[name] for name in names]
        first = arrays[0]
        for name, a in zip(names, arrays, strict=True):
            if a.shape != first.shape or a.dtype != first.dtype:
                raise CheckpointError(
                    f"{name} ({a.dtype} {list(a.shape)}) does not match {names[0]} ({first.dtype}"
                    f" {list(first.shape)}); the parts of {target} must share shape and dtype."
                    " Read every part from the same checkpoint."
                )
        if len(arrays) == 1 and not isinstance(first, np.ma.MaskedArray):
            out[target] = first
            continue
        merged = np.zeros(first.shape, first.dtype)
        covered = np.zeros(first.shape, dtype=bool)
        for name, a in zip(names, arrays, strict=True):
            if not isinstance(a, np.ma.MaskedArray):
                raise CheckpointError(
                    f"{name} is one of {len(names)} parts of {target} but carries no mask of the"
                    " rows it holds. Pass the dict read_tf returned, whose partial slots are"
                    " numpy.ma.MaskedArray."
                )
            held = ~np.ma.getmaskarray(a)
            if (covered & held).any():
                raise CheckpointError(
                    f"{name} overlaps another part of {target}. Read every part from the same checkpoint."
                )
            merged[held] = np.ma.getdata(a)[held]
            covered |= held
        if not covered.all():
            missing = int((~covered).sum())
            raise CheckpointError(
                f"{target}: its parts {', '.join(names)} leave {missing} of {covered.size} elements"
                " unsaved, so a part is missing. Read the whole checkpoint with read_tf."
            )
        out[target] = merged
    return out


# TF 1.x slot suffix -> (optimizer, streamlin slot): FtrlOptimizer creates "accum" then "linear"
# under its name, uniquified to Ftrl and Ftrl_1; AdagradOptimizer's one slot is "accumulator".
_V1_SLOTS = {
    "Ftrl": ("Ftrl", "accumulator"),
    "Ftrl_1": ("Ftrl", "linear"),
    "Adagrad": ("Adagrad", "accumulator"),
}
_HYPERPARAMETER = re.compile(r"^training/[^/]+/[^/]+$")


def map_tf_names(
    tensors: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Rename a TF checkpoint's tensors to streamlin's variable names; split off hyper-parameters.

    * TF 1.x slots ``<var>/part_<i>/Ftrl`` and ``.../Ftrl_1`` become
      ``training/Ftrl/<var>/accumulator`` and ``training/Ftrl/<var>/linear``; ``.../Adagrad``
      becomes ``training/Adagrad/<var>/accumulator``; partitions are merged first with
      :func:`merge_partitioned_slots`. A slot is renamed only when ``<var>`` itself is present.
    * TF 2.x (Keras legacy optimizer) names already are streamlin's: ``training/Ftrl/<var>/
      accumulator`` and ``linear``, ``training/Adagrad/<var>/accumulator``.
    * Weights ``linear/linear_model/<col>/weights``, ``linear/linear_model/bias_weights`` and
      ``global_step`` keep their names, as does anything not listed here.
    * Scalars directly under an optimizer, ``training/<optimizer>/<name>`` (TF 2.x's
      ``learning_rate``, ``l1_regularization_strength``, ``decay``, ...), are hyper-parameters.

    Parameters
    ----------
    tensors : Mapping of str to numpy.ndarray
        As returned by :func:`read_tf`.

    Returns
    -------
    variables : dict of str to numpy.ndarray
        streamlin name -> value.
    hyperparameters : dict of str to float
        Full TF name (``training/Ftrl/learning_rate``) -> value; float32 values widened exactly.
        Empty for TF 1.x, which saves none.

    Raises
    ------
    CheckpointError
        Partitioned slots cannot be merged (see :func:`merge_partitioned_slots`), or two tensors map
        to the same name.
    """
    merged = merge_partitioned_slots(tensors)
    variables: dict[str, np.ndarray] = {}
    hyperparameters: dict[str, float] = {}
    for name, value in merged.items():
        if _HYPERPARAMETER.match(name) and np.ndim(value) == 0 and np.asarray(value).dtype.kind in "biuf":
            hyperparameters[name] = float(value)
            continue
        target = name
        var, _, slot = name.rpartition("/")
        if slot in _V1_SLOTS and var in merged:
            optimizer, kind = _V1_SLOTS[slot]
            target = f"training/{optimizer}/{var}/{kind}"
        if target in variables:
            raise CheckpointError(
                f"{name} maps to {target!r}, which another tensor of the checkpoint already has;"
                " the checkpoint mixes TF 1.x and TF 2.x slot names. Remove one of them."
            )
        variables[target] = value
    return variables, hyperparameters

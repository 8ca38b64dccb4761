"""FarmHash ``Fingerprint64`` and ``FingerprintCat64`` over whole arrays, as TensorFlow does.

``fingerprint64`` gives the values ``tf.fingerprint(..., 'farmhash64')`` and
``tf.strings.to_hash_bucket_fast`` start from: strings are hashed as their UTF-8 bytes, bytes as-is,
and integers as their decimal text (``tf.strings.as_string``), so ``42`` and ``"42"`` agree.
``fingerprint_cat64`` is the chaining step of ``crossed_column``.

Arrow string and binary arrays are read straight from their buffers (either offset width, honouring
``.offset``); no Python object is made per value. Python sequences and numpy arrays go through
``pyarrow.array`` first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from streamlin._arrow import is_flat_string_type, valid_mask
from streamlin.errors import InputError
from streamlin.kernels import hashing as _k

_MASK64 = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1

__all__ = ["fingerprint64", "fingerprint_cat64"]


def _readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view: numba then sees one array type whatever the source (Arrow is read-only)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _is_view_type(type_: pa.DataType) -> bool:
    is_string_view = getattr(pa.types, "is_string_view", None)
    is_binary_view = getattr(pa.types, "is_binary_view", None)
    return bool(
        (is_string_view is not None and is_string_view(type_))
        or (is_binary_view is not None and is_binary_view(type_))
    )


def arrow_string_buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Expose an Arrow string or binary array as one byte buffer plus int64 offsets.

    Zero-copy except for ``string``/``binary`` offsets, which are widened from int32 to int64.

    Parameters
    ----------
    array : pyarrow.Array
        ``string``, ``large_string``, ``binary`` or ``large_binary`` (``string_view`` and
        ``binary_view`` are cast to the large types). May be a slice: ``.offset`` is honoured.

    Returns
    -------
    data : numpy.ndarray
        uint8 (nbytes,), read-only: the whole data buffer.
    offsets : numpy.ndarray
        int64 (n + 1,), read-only: value ``i`` is ``data[offsets[i]:offsets[i + 1]]``. Null slots
        have valid (usually empty) ranges.
    valid : numpy.ndarray or None
        bool (n,), False where the value is null; None when there are no nulls.

    Raises
    ------
    InputError
        ``array`` is not a string or binary array.
    """
    if isinstance(array, pa.ChunkedArray):
        raise InputError(
            "arrow_string_buffers: expected one pyarrow.Array; found a ChunkedArray with"
            f" {array.num_chunks} chunks. Pass each chunk, or use fingerprint64_arrow.")
    if _is_view_type(array.type):
        target = pa.large_string() if "string" in str(array.type) else pa.large_binary()
        array = array.cast(target)
    if not is_flat_string_type(array.type):
        raise InputError(
            f"arrow_string_buffers: expected a string or binary array; found {array.type}."
            " Cast it with array.cast(pyarrow.string()) or use fingerprint64_arrow.")
    n = len(array)
    _, offsets_buf, data_buf = array.buffers()[:3]
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    width = 8 if large else 4
    if offsets_buf is None or n == 0 and offsets_buf.size < width * (array.offset + 1):
        offsets = np.zeros(n + 1, dtype=np.int64)
    else:
        offsets = np.frombuffer(
            offsets_buf, dtype=np.int64 if large else np.int32, count=n + 1,
            offset=width * array.offset)
        offsets = offsets.astype(np.int64, copy=False)
    if data_buf is None:
        data = np.empty(0, dtype=np.uint8)
    else:
        data = np.frombuffer(data_buf, dtype=np.uint8)
    if n and (offsets[0] < 0 or offsets[-1] > len(data) or (np.diff(offsets) < 0).any()):
        # Arrow validates buffers, not every offset; a corrupt one must never reach a kernel.
        raise InputError(f"a string array's offsets are invalid (outside its {len(data)}-byte buffer or"
                         " decreasing); the data is corrupt.")
    return _readonly(data), _readonly(offsets), valid_mask(array)


def _fingerprint_int64(values: np.ndarray) -> np.ndarray:
    values = _readonly(np.ascontiguousarray(values, dtype=np.int64))
    out = np.empty(values.shape[0], dtype=np.uint64)
    _k.fingerprint64_int64(values, out)
    return out


def _fingerprint_strings(array: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    data, offsets, valid = arrow_string_buffers(array)
    out = np.empty(len(array), dtype=np.uint64)
    _k.fingerprint64_strings(data, offsets, out)
    return out, valid


def _fingerprint_arrow_integers(array: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    valid = valid_mask(array)
    filled = array.fill_null(0) if valid is not None else array
    if pa.types.is_uint64(array.type) and len(filled) and filled.to_numpy().max() > _INT64_MAX:
        # Above int64: hash Arrow's own decimal text of the uint64 values.
        out, _ = _fingerprint_strings(filled.cast(pa.string()))
        return out, valid
    return _fingerprint_int64(filled.to_numpy(zero_copy_only=False)), valid


def fingerprint64_arrow(
    array: pa.Array | pa.ChunkedArray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fingerprint64 of every value of an Arrow array, with its validity mask.

    Parameters
    ----------
    array : pyarrow.Array or pyarrow.ChunkedArray
        ``string``, ``large_string``, ``binary``, ``large_binary`` (and their ``_view`` types),
        any integer type (hashed as decimal text), ``null``, or a ``dictionary`` of those: the
        dictionary is hashed once and gathered by the indices.

    Returns
    -------
    hashes : numpy.ndarray
        uint64 (n,). Null slots hold an unspecified value.
    valid : numpy.ndarray or None
        bool (n,), False where the value is null; None when there are no nulls.

    Raises
    ------
    InputError
        The array's type can't be fingerprinted (floats, booleans, nested types...).
    """
    if isinstance(array, pa.ChunkedArray):
        parts = [fingerprint64_arrow(chunk) for chunk in array.chunks]
        hashes = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.uint64)
        if all(p[1] is None for p in parts):
            return hashes, None
        masks = [np.ones(len(h), dtype=bool) if m is None else m for h, m in parts]
        return hashes, np.concatenate(masks)
    type_ = array.type
    if pa.types.is_dictionary(type_):
        return _fingerprint_dictionary(array)
    if is_flat_string_type(type_) or _is_view_type(type_):
        return _fingerprint_strings(array)
    if pa.types.is_integer(type_):
        return _fingerprint_arrow_integers(array)
    if pa.types.is_null(type_):
        return np.zeros(len(array), dtype=np.uint64), np.zeros(len(array), dtype=bool)
    raise InputError(
        f"fingerprint64: can't fingerprint Arrow values of type {type_}; only strings, binary and"
        " integers (hashed as their decimal text, like tf.strings.as_string) can be hashed."
        " Cast the column to string or int64 first.")


def _fingerprint_dictionary(array: pa.DictionaryArray) -> tuple[np.ndarray, np.ndarray | None]:
    dict_hashes, dict_valid = fingerprint64_arrow(array.dictionary)
    indices = array.indices
    valid = valid_mask(indices)
    if valid is not None:
        indices = indices.fill_null(0)
    idx = indices.to_numpy(zero_copy_only=False).astype(np.intp, copy=False)
    if len(dict_hashes) == 0:  # every index is null
        return np.zeros(len(idx), dtype=np.uint64), valid
    hashes = dict_hashes[idx]
    if dict_valid is not None:
        valid = dict_valid[idx] if valid is None else valid & dict_valid[idx]
    return hashes, valid


def _reject_nulls(valid: np.ndarray | None) -> None:
    if valid is not None and not valid.all():
        first = int(np.flatnonzero(~valid)[0])
        _raise_null(first, len(valid))


def _raise_null(index: int, n: int) -> None:
    raise InputError(
        f"fingerprint64: value {index} of {n} is null; nulls can't be fingerprinted. Drop or fill"
        " them first, e.g. pyarrow.compute.fill_null(values, '').")


def _value_bytes(value: Any, index: int, n: int) -> bytes:
    if value is None:
        _raise_null(index, n)
    if isinstance(value, (bool, np.bool_)):
        raise InputError(
            f"fingerprint64: value {index} of {n} is the bool {value!r}; booleans can't be"
            " fingerprinted. Convert them to str or int first.")
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value)).encode("ascii")
    raise InputError(
        f"fingerprint64: value {index} of {n} is {value!r} of type {type(value).__name__}; only"
        " str, bytes and ints can be fingerprinted. Convert it to str first.")


def _fingerprint_sequence(values: Any) -> np.ndarray:
    try:
        array = pa.array(values, from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = None
    if array is not None and (
        is_flat_string_type(array.type)
        or pa.types.is_integer(array.type)
        or pa.types.is_null(array.type)
    ):
        hashes, valid = fingerprint64_arrow(array)
        _reject_nulls(valid)
        return hashes
    # Mixed str/bytes/int, or something Arrow can't type: one Python object per value.
    n = len(values)
    encoded = [_value_bytes(v, i, n) for i, v in enumerate(values)]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    out = np.empty(n, dtype=np.uint64)
    _k.fingerprint64_strings(_readonly(data), _readonly(offsets), out)
    return out


def fingerprint64(values: Any) -> np.ndarray:
    """FarmHash ``Fingerprint64`` of each value, as ``tf.fingerprint(..., 'farmhash64')``.

    ``Fingerprint64(x) % n`` is ``tf.strings.to_hash_bucket_fast(x, n)``, the bucket id of
    ``categorical_column_with_hash_bucket``.

    Parameters
    ----------
    values : sequence, numpy.ndarray or pyarrow array
        str (hashed as UTF-8), bytes, or ints (hashed as decimal text, ``'-'`` for negatives, as
        ``tf.strings.as_string`` writes them). A list or tuple, a numpy array of any shape (unicode,
        bytes, integer or object dtype), or a pyarrow ``string``, ``large_string``, ``binary``,
        ``large_binary``, integer, ``dictionary`` or chunked array.

    Returns
    -------
    numpy.ndarray
        uint64, shaped like ``values`` (n,) for sequences and Arrow arrays.

    Raises
    ------
    InputError
        A value is null (None), or of a type that can't be fingerprinted (float, bool, ...).
    """
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        hashes, valid = fingerprint64_arrow(values)
        _reject_nulls(valid)
        return hashes
    if isinstance(values, np.ndarray):
        flat = values.reshape(-1)
        kind = values.dtype.kind
        if kind == "i" or kind == "u" and (flat.size == 0 or flat.max() <= _INT64_MAX):
            hashes = _fingerprint_int64(flat)
        elif kind in "uUSO":
            hashes = _fingerprint_sequence(flat)
        else:
            raise InputError(
                f"fingerprint64: can't fingerprint a numpy array of dtype {values.dtype}; only"
                " str, bytes and integer values can be hashed. Cast it to int64 or str first.")
        return hashes.reshape(values.shape)
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise InputError(
            f"fingerprint64: expected a sequence or array of values; found {type(values).__name__}."
            " Wrap a single value in a list: fingerprint64([value]).")
    return _fingerprint_sequence(list(values))


def _as_uint64(x: Any, name: str) -> np.ndarray:
    if isinstance(x, (pa.Array, pa.ChunkedArray)):
        if x.null_count:
            raise InputError(
                f"fingerprint_cat64: {name} holds {x.null_count} null(s); nulls can't be crossed."
                " Drop or fill them first.")
        x = x.to_numpy(zero_copy_only=False)
    if isinstance(x, (list, tuple)):
        flat = [_cat_int(v, name) for v in x]
        return np.array(flat, dtype=np.uint64)
    arr = np.asarray(x) if not isinstance(x, int) else np.asarray(_cat_int(x, name), np.uint64)
    kind = arr.dtype.kind
    if kind == "u":
        return arr.astype(np.uint64, copy=False)
    if kind == "i":
        return arr.astype(np.int64, copy=False).view(np.uint64)
    if kind == "O":
        flat = [_cat_int(v, name) for v in arr.reshape(-1)]
        return np.array(flat, dtype=np.uint64).reshape(arr.shape)
    raise InputError(
        f"fingerprint_cat64: {name} has dtype {arr.dtype}; expected uint64 fingerprints or int64"
        " ids. Hash strings with fingerprint64 first.")


def _cat_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(
            f"fingerprint_cat64: {name} holds {value!r} of type {type(value).__name__}; expected"
            " integers. Hash strings with fingerprint64 first.")
    value = int(value)
    if not -(1 << 63) <= value <= _MASK64:
        raise InputError(
            f"fingerprint_cat64: {name} holds {value}, outside the int64/uint64 range.")
    return value & _MASK64


def fingerprint_cat64(a: Any, b: Any) -> np.ndarray:
    """TensorFlow's ``FingerprintCat64(a, b)`` elementwise, the chaining step of ``crossed_column``.

    A cross of values ``v1, ..., vk`` is ``h = hash_key; h = fingerprint_cat64(h, fp(v_j))``,
    where ``fp`` is :func:`fingerprint64` for strings and the int64 itself for integer ids
    (so ``-1`` enters as ``0xffffffffffffffff``). Not commutative.

    Parameters
    ----------
    a, b : array_like or int
        uint64 fingerprints, or integers (int64 values are reinterpreted as two's-complement
        uint64). Broadcast against each other.

    Returns
    -------
    numpy.ndarray
        uint64 with the broadcast shape (0-d for two scalars).

    Raises
    ------
    InputError
        An input is not integer, or holds nulls.
    """
    a64, b64 = np.broadcast_arrays(_as_uint64(a, "a"), _as_uint64(b, "b"))
    shape = a64.shape
    flat_a = _readonly(np.ascontiguousarray(a64).reshape(-1))
    flat_b = _readonly(np.ascontiguousarray(b64).reshape(-1))
    out = np.empty(flat_a.shape[0], dtype=np.uint64)
    _k.fingerprint_cat64_arrays(flat_a, flat_b, out)
    return out.reshape(shape)

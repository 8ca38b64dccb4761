"""Arrow normalisation shared by inputs and feature columns: any feature value -> a pyarrow array."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlin.errors import InputError

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError, ValueError,
                 OverflowError, UnicodeError)


def as_arrow_array(value: Any, name: str) -> pa.Array:
    """One feature as a valid pyarrow array: numpy (1-D, or 2-D as a fixed-size list), list, or Arrow.

    Arrays the caller built are fully validated (offsets included), so kernels never read out of
    range; ``*_view`` string types become ``large_*``.

    Raises
    ------
    InputError
        The value cannot be converted, or the Arrow array is invalid.
    """
    try:
        array = _convert(value, name)
        if isinstance(value, (pa.Array, pa.ChunkedArray)):
            array.validate(full=True)
        return _without_views(array)
    except InputError:
        raise
    except _ARROW_ERRORS as exc:
        raise InputError(f"feature {name!r}: cannot be read as an array ({type(exc).__name__}: {exc}).") from None


def _without_views(array: pa.Array) -> pa.Array:
    t = array.type
    if getattr(pa.types, "is_string_view", lambda _: False)(t):
        return array.cast(pa.large_string())
    if getattr(pa.types, "is_binary_view", lambda _: False)(t):
        return array.cast(pa.large_binary())
    return array


def _convert(value: Any, name: str) -> pa.Array:
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    if isinstance(value, pa.Array):
        return value
    if isinstance(value, np.ndarray):
        if value.ndim == 2:
            flat = pa.array(value.reshape(-1)) if value.dtype != object else pa.array(list(value.reshape(-1)))
            return pa.FixedSizeListArray.from_arrays(flat, value.shape[1])
        if value.ndim != 1:
            raise InputError(f"feature {name!r}: expected a 1-D or 2-D array; found shape {value.shape}.")
        if value.dtype.kind in "US":
            return pa.array(value.tolist())
        if value.dtype == object:
            return pa.array(value.tolist())
        return pa.array(value)
    return pa.array(value)


def as_record_batch(features: Any) -> pa.RecordBatch:
    """A RecordBatch from a RecordBatch, Table, or mapping of name -> array-like."""
    if isinstance(features, (pa.RecordBatch, pa.Table)):
        arrays = {name: as_arrow_array(features.column(name), name) for name in features.schema.names}
        return pa.RecordBatch.from_pydict(arrays) if arrays else pa.record_batch([])
    if isinstance(features, Mapping):
        arrays = {str(k): as_arrow_array(v, str(k)) for k, v in features.items()}
        lengths = {k: len(a) for k, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise InputError(f"features have different numbers of rows: {lengths}; every feature needs one value per row.")
        return pa.RecordBatch.from_pydict(arrays)
    raise InputError(
        f"features must be a pyarrow RecordBatch/Table or a mapping of name -> array; found {type(features).__name__}.")


@dataclass
class RawFeature:
    """A feature's values flattened: row i owns ``values[indptr[i]:indptr[i+1]]``.

    ``dense`` is TF's dense input (flat or fixed-size list arrays), where ``''``/``-1`` mean missing;
    list arrays are TF's sparse input, where every non-null element is a value.
    """

    values: pa.Array
    indptr: np.ndarray  # int64 (n_rows + 1,)
    dense: bool


def raw_feature(array: pa.Array) -> RawFeature:
    """Flatten a flat, list, large_list or fixed_size_list array (honouring slices and null lists)."""
    n = len(array)
    t = array.type
    if pa.types.is_fixed_size_list(t):
        k = t.list_size
        values = array.flatten() if array.null_count == 0 else _fixed_list_values_with_nulls(array)
        return RawFeature(values, np.arange(n + 1, dtype=np.int64) * k, dense=True)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        values = array.flatten()
        if (lengths < 0).any() or indptr[-1] != len(values):  # corrupt offsets must never reach a kernel
            raise InputError(f"a list array's offsets are invalid ({int(indptr[-1])} values listed, {len(values)}"
                             " present); the data is corrupt.")
        return RawFeature(values, indptr, dense=False)
    return RawFeature(array, np.arange(n + 1, dtype=np.int64), dense=True)


def _fixed_list_values_with_nulls(array: pa.FixedSizeListArray) -> pa.Array:
    # A null fixed-size list row reads as k nulls (each then the dense '' / -1).
    k = array.type.list_size
    valid = np.repeat(array.is_valid().to_numpy(zero_copy_only=False), k)
    child = array.values.slice(array.offset * k, len(array) * k)
    return pc.if_else(pa.array(valid), child, pa.nulls(len(child), child.type))


def is_flat_string_type(t: pa.DataType) -> bool:
    """string, large_string, binary or large_binary: one data buffer plus offsets."""
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def is_string_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return is_flat_string_type(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)


def is_integer_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_integer(t)


def to_int64(values: pa.Array, null_as: int) -> np.ndarray:
    """Integer values as int64 (uint64 above int64's range wrap, as TF's int64 reading does), nulls
    replaced by ``null_as``."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    valid = valid_mask(values)
    if valid is not None:
        values = pc.fill_null(values, 0)
    out = values.to_numpy(zero_copy_only=False)
    out = out.view(np.int64) if out.dtype == np.uint64 else out.astype(np.int64, copy=False)
    if valid is not None:
        out = np.where(valid, out, np.int64(null_as))
    return out


def to_float64(values: pa.Array) -> np.ndarray:
    """Numeric values as float64 (ints beyond 2**53 rounded, as a float cast does), nulls as NaN."""
    if pa.types.is_null(values.type):
        return np.full(len(values), np.nan)
    out = pc.cast(values, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    valid = valid_mask(values)
    if valid is not None:
        out = np.where(valid, out, np.nan)
    return np.asarray(out, dtype=np.float64)


def valid_mask(values: pa.Array) -> np.ndarray | None:
    """bool (n,) True where not null, or None when there are no nulls."""
    if values.null_count == 0:
        return None
    return values.is_valid().to_numpy(zero_copy_only=False)


def string_lengths(values: pa.Array) -> np.ndarray:
    """Byte length of each string (0 for nulls) as int64."""
    if pa.types.is_dictionary(values.type):
        lengths = pc.binary_length(values.dictionary).to_numpy(zero_copy_only=False)
        indices = values.indices
        out = lengths[pc.fill_null(indices, 0).to_numpy(zero_copy_only=False)]
        if indices.null_count:
            out = np.where(indices.is_valid().to_numpy(zero_copy_only=False), out, 0)
        return out.astype(np.int64)
    return pc.fill_null(pc.binary_length(values), 0).to_numpy(zero_copy_only=False).astype(np.int64)

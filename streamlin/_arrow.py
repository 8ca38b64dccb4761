"""Arrow normalisation shared by inputs and feature columns: any feature value -> a pyarrow array."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlin.errors import InputError


def as_arrow_array(value: Any, name: str) -> pa.Array:
    """One feature as a pyarrow array: numpy (1-D, or 2-D as a fixed-size list), list, or Arrow."""
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
    try:
        return pa.array(value)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise InputError(f"feature {name!r}: cannot convert to an array ({exc}).") from None


def as_record_batch(features: Any) -> pa.RecordBatch:
    """A RecordBatch from a RecordBatch, Table, or mapping of name -> array-like."""
    if isinstance(features, pa.RecordBatch):
        return features
    if isinstance(features, pa.Table):
        return features.combine_chunks().to_batches()[0] if features.num_rows else pa.RecordBatch.from_pydict(
            {n: pa.array([], type=t) for n, t in zip(features.column_names, features.schema.types)})
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
        return RawFeature(array.flatten(), indptr, dense=False)
    return RawFeature(array, np.arange(n + 1, dtype=np.int64), dense=True)


def _fixed_list_values_with_nulls(array: pa.FixedSizeListArray) -> pa.Array:
    # A null fixed-size list row reads as k nulls (each then the dense '' / -1).
    k = array.type.list_size
    valid = np.repeat(array.is_valid().to_numpy(zero_copy_only=False), k)
    child = array.values.slice(array.offset * k, len(array) * k)
    return pc.if_else(pa.array(valid), child, pa.nulls(len(child), child.type))


def is_string_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or getattr(pa.types, "is_string_view", lambda _: False)(t))


def is_integer_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_integer(t)


def to_int64(values: pa.Array, null_as: int) -> np.ndarray:
    """Integer values as int64, nulls replaced by ``null_as``."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if values.null_count:
        values = pc.fill_null(values, null_as)
    out = values.to_numpy(zero_copy_only=False)
    if out.dtype == np.uint64 and (out > np.iinfo(np.int64).max).any():
        return out.view(np.int64)
    return out.astype(np.int64, copy=False)


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

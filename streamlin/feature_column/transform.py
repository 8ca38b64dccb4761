"""Batch -> ids: each categorical column's per-row int64 ids, and numeric columns' dense values.

All work is vectorised (pyarrow compute, numpy, numba kernels); no Python object per value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlin._arrow import (
    RawFeature,
    is_integer_type,
    is_string_type,
    raw_feature,
    string_lengths,
    to_float64,
    to_int64,
    valid_mask,
)
from streamlin.errors import InputError, MissingFeatureError
from streamlin.feature_column.columns import (
    BucketizedColumn,
    CrossedColumn,
    HashedCategoricalColumn,
    IdentityCategoricalColumn,
    NumericColumn,
    VocabularyFileCategoricalColumn,
    VocabularyListCategoricalColumn,
    WeightedCategoricalColumn,
)
from streamlin.hashing import fingerprint64, fingerprint64_arrow
from streamlin.kernels.cross import cross_counts, cross_hashed

Locate = Callable[[int], str]


def _default_locate(row: int) -> str:
    return f"row {row}"


class Ids(NamedTuple):
    """One categorical column's ids: row i owns ``ids[indptr[i]:indptr[i+1]]``.

    indptr int64 (n_rows + 1,); ids int64 (nnz,); weights float32 (nnz,) or None.
    """

    indptr: np.ndarray
    ids: np.ndarray
    weights: np.ndarray | None


def get_feature(batch: pa.RecordBatch, key: str, reader: str) -> pa.Array:
    """The array of feature ``key``; a missing key raises MissingFeatureError naming what exists."""
    index = batch.schema.get_field_index(key)
    if index < 0:
        raise MissingFeatureError(
            f"feature {key!r}, read by {reader}, is missing; the input has"
            f" {', '.join(repr(n) for n in batch.schema.names) or 'no columns'}."
            " Rename it in the data or change the column's key.")
    return batch.column(index)


def _compact(indptr: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """Row offsets after dropping entries where ``keep`` is False."""
    if keep is None:
        return indptr
    kept = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept[1:])
    return kept[indptr]


def _and(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _row_of_entry(indptr: np.ndarray, entry: int) -> int:
    return int(np.searchsorted(indptr, entry, side="right") - 1)


_EMPTY_FINGERPRINT = fingerprint64([""])[0]  # a dense null string reads as ''
_MINUS_ONE_FINGERPRINT = fingerprint64(["-1"])[0]  # a dense null int reads as -1


def _fingerprints(values: pa.Array) -> np.ndarray:
    """uint64 Fingerprint64 of each value; strings as bytes, ints as decimal text.

    A null reads as TF's dense missing value: ``''`` for strings, ``-1`` for ints.
    """
    fp, valid = fingerprint64_arrow(values)
    if valid is not None:
        missing = _EMPTY_FINGERPRINT if is_string_type(values.type) or pa.types.is_null(values.type) else _MINUS_ONE_FINGERPRINT
        fp = np.where(valid, fp, missing)
    return fp


def _missing_mask(raw: RawFeature) -> np.ndarray | None:
    """True for entries that carry a value: dense drops null, '' and -1; sparse drops nulls."""
    values = raw.values
    keep = valid_mask(values)
    if not raw.dense:
        return keep
    if is_string_type(values.type):
        return string_lengths(values) > 0
    if is_integer_type(values.type):
        value_type = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
        if pa.types.is_unsigned_integer(value_type):
            return keep  # no -1 among unsigned ints: only nulls are missing
        return _and(keep, to_int64(values, null_as=-1) != -1)
    return keep


def _hash_ids(column: HashedCategoricalColumn, raw: RawFeature, key: str) -> tuple[np.ndarray, np.ndarray | None]:
    t = raw.values.type
    if not (is_string_type(t) or is_integer_type(t)):
        raise InputError(
            f"feature {key!r} of categorical_column_with_hash_bucket must hold strings or ints;"
            f" found {t}. Cast it, or use numeric_column / bucketized_column.")
    fp = _fingerprints(raw.values)
    ids = (fp % np.uint64(column.hash_bucket_size)).astype(np.int64)
    return ids, _missing_mask(raw)


def _vocabulary_ids(column, raw: RawFeature, key: str) -> tuple[np.ndarray, np.ndarray | None]:
    values = raw.values
    vocabulary = column.vocabulary
    string_vocabulary = column.dtype == "string"
    if string_vocabulary:
        if is_integer_type(values.type):
            values = pc.cast(values.dictionary_decode() if pa.types.is_dictionary(values.type) else values, pa.string())
            raw = RawFeature(values, raw.indptr, raw.dense)
        elif not is_string_type(values.type):
            raise InputError(f"feature {key!r} of vocabulary column {column.name!r} must hold strings; found {values.type}.")
        value_set = pa.array(vocabulary, type=pa.string())
    else:
        if not is_integer_type(values.type):
            raise InputError(
                f"feature {key!r} of vocabulary column {column.name!r} must hold ints (its vocabulary"
                f" is ints); found {values.type}.")
        value_set = pa.array(vocabulary, type=pa.int64())
        # uint64 values beyond int64 are in no int64 vocabulary: give them a value below every
        # entry, so they take the out-of-vocabulary path.
        ints = to_int64(values, null_as=-1)
        if pa.types.is_unsigned_integer(values.type.value_type if pa.types.is_dictionary(values.type) else values.type):
            too_big = ints < 0
            if too_big.any():
                ints = np.where(too_big, np.int64(min(vocabulary) - 1 if vocabulary else -2), ints)
        valid = valid_mask(values.dictionary_decode() if pa.types.is_dictionary(values.type) else values)
        values = pa.array(ints, mask=None if valid is None else ~valid)
    if pa.types.is_dictionary(values.type):
        dict_ids = pc.index_in(values.dictionary, value_set=value_set)
        found = pc.take(dict_ids, values.indices)
    else:
        found = pc.index_in(values, value_set=value_set)
    ids = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    oov = ids < 0
    if oov.any():
        if column.num_oov_buckets:
            fp = _fingerprints(values)
            ids[oov] = len(vocabulary) + (fp[oov] % np.uint64(column.num_oov_buckets)).astype(np.int64)
        else:
            ids[oov] = column.default_value
    return ids, _missing_mask(raw)


def _identity_ids(column: IdentityCategoricalColumn, raw: RawFeature, key: str, locate: Locate):
    if not is_integer_type(raw.values.type):
        raise InputError(
            f"feature {key!r} of categorical_column_with_identity must hold ints; found {raw.values.type}.")
    ids = to_int64(raw.values, null_as=-1)
    keep = _missing_mask(raw)
    bad = (ids < 0) | (ids >= column.num_buckets)
    if keep is not None:
        bad &= keep
    if bad.any():
        if column.default_value is None:
            entries = np.flatnonzero(bad)
            entry = int(entries[0])
            rows = np.unique(np.searchsorted(raw.indptr, entries, side="right") - 1)
            raise InputError(
                f"{locate(_row_of_entry(raw.indptr, entry))}, column {key!r}: identity id {int(ids[entry])}"
                f" is outside [0, {column.num_buckets}). Pass default_value= to map such ids, or raise"
                " num_buckets.", rows=rows)
        ids = np.where(bad, column.default_value, ids)
    return ids, keep


def numeric_values(column: NumericColumn, batch: pa.RecordBatch, locate: Locate = _default_locate,
                   reader: str | None = None) -> np.ndarray:
    """A numeric column's values, defaults filled and normalizer applied: float32 (n_rows, dimension)."""
    array = get_feature(batch, column.key, reader or f"numeric_column {column.name!r}")
    n, dim = len(array), column.dimension
    raw = raw_feature(array)
    t = raw.values.type
    if pa.types.is_dictionary(t) or not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                                          or pa.types.is_decimal(t) or pa.types.is_null(t)):
        shown = f"{t.value_type} (dictionary-encoded)" if pa.types.is_dictionary(t) else t
        raise InputError(
            f"feature {column.key!r} of numeric_column must hold numbers; found {shown}. Use a categorical"
            " column for strings, or cast the column (csv_input_fn(column_types=...)).")
    counts = np.diff(raw.indptr)
    if n and not (counts == dim).all():
        row = int(np.flatnonzero(counts != dim)[0])
        raise InputError(
            f"{locate(row)}, column {column.key!r}: numeric_column of shape {column.shape} needs {dim}"
            f" values per row; found {int(counts[row])}.")
    out = to_float64(raw.values).reshape(n, dim)
    missing = np.isnan(out)
    if missing.any():
        if column.default_value is None:
            rows = np.flatnonzero(missing.any(axis=1))
            raise InputError(
                f"{locate(int(rows[0]))}, column {column.key!r}: value is null or NaN and numeric_column has no"
                " default_value. Pass default_value=... or clean the data.", rows=rows)
        out = np.where(missing, np.asarray(column.default_value, dtype=np.float64)[None, :], out)
    infinite = np.isinf(out)
    if infinite.any():
        rows = np.flatnonzero(infinite.any(axis=1))
        raise InputError(
            f"{locate(int(rows[0]))}, column {column.key!r}: value {out[rows[0]][infinite[rows[0]]][0]} is not finite"
            " (an overflowing number such as 1e400?). Clean the data or clip it.", rows=rows)
    if column.normalizer_fn is not None:
        out = np.asarray(column.normalizer_fn(out), dtype=np.float64).reshape(n, dim)
    values32 = out.astype(np.float32)
    if not np.isfinite(values32).all():  # NaN from a normalizer, or beyond float32's range
        rows = np.flatnonzero(~np.isfinite(values32).all(axis=1))
        raise InputError(
            f"{locate(int(rows[0]))}, column {column.key!r}: value {out[rows[0]].tolist()} is not finite as float32"
            " (after default_value and normalizer_fn). Clean or clip the data.", rows=rows)
    return values32


def _raw_ids(column, batch: pa.RecordBatch, locate: Locate, keep_negative: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(indptr, ids, keep mask, weights) before dropping; ids may be -1 (vocabulary default)."""
    reader = f"{type(column).__name__} {column.name!r}"
    if isinstance(column, BucketizedColumn):
        x = numeric_values(column.source_column, batch, locate, reader)
        n, dim = x.shape
        width = len(column.boundaries) + 1
        ids = np.searchsorted(np.asarray(column.boundaries, dtype=np.float64), x.astype(np.float64), side="right")
        ids = (ids + np.arange(dim) * width).reshape(-1).astype(np.int64)
        return np.arange(n + 1, dtype=np.int64) * dim, ids, None, None
    if isinstance(column, WeightedCategoricalColumn):
        indptr, ids, keep, _ = _raw_ids(column.categorical_column, batch, locate, keep_negative)
        weight_raw = raw_feature(get_feature(batch, column.weight_feature_key, reader))
        if not np.array_equal(weight_raw.indptr, indptr):
            raise InputError(
                f"weighted_categorical_column {column.name!r}: feature {column.weight_feature_key!r} must"
                f" have one weight per value of {column.categorical_column.keys[0]!r}, row by row.")
        wv = weight_raw.values
        if not (pa.types.is_floating(wv.type) or pa.types.is_integer(wv.type)):
            raise InputError(f"feature {column.weight_feature_key!r} (weights) must be numbers; found {wv.type}.")
        weights = np.nan_to_num(to_float64(wv), nan=0.0)
        with np.errstate(over="ignore"):
            bad = np.flatnonzero(~np.isfinite(weights.astype(np.float32)))
        if bad.size:
            rows = np.unique(np.searchsorted(indptr, bad, side="right") - 1)
            raise InputError(
                f"{locate(int(rows[0]))}, column {column.weight_feature_key!r}: weight {weights[bad[0]]} is not finite"
                " as float32. Clean or clip the data.", rows=rows)
        # TF drops dense 0.0 weights and prunes weights <= 0 before the lookup.
        keep = _and(keep, (weights > 0) & ~np.isnan(weights))
        return indptr, ids, keep, weights.astype(np.float32)
    if isinstance(column, CrossedColumn):
        indptr, ids = _cross(column, batch, locate)
        return indptr, ids, None, None
    key = column.key
    raw = raw_feature(get_feature(batch, key, reader))
    if isinstance(column, HashedCategoricalColumn):
        ids, keep = _hash_ids(column, raw, key)
    elif isinstance(column, (VocabularyListCategoricalColumn, VocabularyFileCategoricalColumn)):
        ids, keep = _vocabulary_ids(column, raw, key)
    elif isinstance(column, IdentityCategoricalColumn):
        ids, keep = _identity_ids(column, raw, key, locate)
    else:
        raise TypeError(f"not a categorical column: {column!r}")
    return raw.indptr, ids, keep, None


def categorical_ids(column, batch: pa.RecordBatch, locate: Locate = _default_locate,
                    keep_negative: bool = False) -> Ids:
    """The ids a categorical column gives each row of ``batch`` (missing values dropped as TF does).

    ``keep_negative`` keeps the ``-1`` of an out-of-vocabulary value (crosses hash it); the model
    prunes negative ids, as TF's ``safe_embedding_lookup_sparse`` does.
    """
    indptr, ids, keep, weights = _raw_ids(column, batch, locate, keep_negative)
    if not keep_negative:
        keep = _and(keep, ids >= 0) if (ids < 0).any() else keep
    if keep is not None and not keep.all():
        indptr = _compact(indptr, keep)
        ids = ids[keep]
        weights = weights[keep] if weights is not None else None
    return Ids(indptr, ids, weights)


def _cross_input(leaf, batch: pa.RecordBatch, locate: Locate, cross_name: str) -> tuple[bool, np.ndarray, np.ndarray]:
    """(is_sparse, indptr, uint64 values) of one leaf key of a cross."""
    if not isinstance(leaf, str):
        ids = categorical_ids(leaf, batch, locate, keep_negative=True)
        return True, ids.indptr, ids.ids.view(np.uint64)
    raw = raw_feature(get_feature(batch, leaf, f"crossed_column {cross_name!r}"))
    values = raw.values
    if is_string_type(values.type):
        fp = _fingerprints(values)  # a dense null reads as ''
    elif is_integer_type(values.type):
        fp = to_int64(values, null_as=-1).view(np.uint64)
    else:
        raise InputError(
            f"feature {leaf!r} of crossed_column {cross_name!r} must hold strings or ints; found"
            f" {values.type}. Bucketize numbers first (bucketized_column).")
    if raw.dense:
        return False, raw.indptr, fp
    keep = valid_mask(values)
    if keep is not None:
        return True, _compact(raw.indptr, keep), fp[keep]
    return True, raw.indptr, fp


def _cross(column: CrossedColumn, batch: pa.RecordBatch, locate: Locate) -> tuple[np.ndarray, np.ndarray]:
    inputs = [_cross_input(leaf, batch, locate, column.name) for leaf in column.leaf_keys]
    ordered = [i for i in inputs if i[0]] + [i for i in inputs if not i[0]]  # sparse first, as TF
    n = len(ordered[0][1]) - 1
    values = np.concatenate([v for _, _, v in ordered]) if ordered else np.empty(0, np.uint64)
    indptrs = np.empty((len(ordered), n + 1), dtype=np.int64)
    base = 0
    for j, (_, indptr, v) in enumerate(ordered):
        indptrs[j] = indptr + base
        base += len(v)
    counts = np.empty(n, dtype=np.int64)
    cross_counts(indptrs, counts)
    out_indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=out_indptr[1:])
    out_ids = np.empty(out_indptr[-1], dtype=np.int64)
    cross_hashed(indptrs, values, np.uint64(column.effective_hash_key), np.int64(column.hash_bucket_size),
                 out_indptr, out_ids)
    return out_indptr, out_ids

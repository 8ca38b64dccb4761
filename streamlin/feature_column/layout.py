"""The model's flat weight table: every column's rows, in TF's order, then the bias.

Columns are sorted by name (TF's ``_normalize_feature_columns``); column ``c`` owns slots
``[offsets[c], offsets[c] + num_buckets)`` and the bias is the last slot. Variables are views of
row ranges of that one table, so a step touches one array, and checkpoints write one zarr array
per TF variable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from streamlin._arrow import is_flat_string_type, valid_mask
from streamlin.errors import ConfigError, InputError
from streamlin.feature_column.columns import ALL_COLUMNS, HashedCategoricalColumn, NumericColumn
from streamlin.feature_column.transform import Locate, _default_locate, categorical_ids, numeric_values
from streamlin.hashing import arrow_string_buffers
from streamlin.kernels.hashing import hash_buckets_strings
from streamlin.kernels.sparse import (
    COMBINER_MEAN,
    COMBINER_SQRTN,
    COMBINER_SUM,
    interleave_rows,
    place_column,
    place_dense,
    place_dictionary_buckets,
    place_hashed_strings,
)

COMBINERS = {"sum": COMBINER_SUM, "mean": COMBINER_MEAN, "sqrtn": COMBINER_SQRTN}
VARIABLE_PREFIX = "linear/linear_model/"
BIAS_VARIABLE = VARIABLE_PREFIX + "bias_weights"


class _DenseStrings(NamedTuple):
    """A hash-bucket column over a flat string array: hashed and placed in one kernel pass."""

    data: np.ndarray
    offsets: np.ndarray
    valid: np.ndarray | None
    num_buckets: int


class _DictionaryStrings(NamedTuple):
    """A hash-bucket column over a flat dictionary-encoded string array (Parquet's dictionary pages,
    read as such): the dictionary is hashed once, rows are placed by their indices."""

    key: str
    indices: np.ndarray          # int32 or int64 (n_rows,)
    valid: np.ndarray | None     # bool (n_rows,)
    buckets: np.ndarray          # int64 (n_dictionary,), -1 for '' or a null entry


_NO_VALID = np.ones(0, dtype=np.bool_)


def _dense_strings(column, batch: pa.RecordBatch) -> _DenseStrings | _DictionaryStrings | None:
    """The fast path's inputs, when ``column`` hashes a flat (or dictionary-encoded) string/binary
    feature; else None."""
    if not isinstance(column, HashedCategoricalColumn):
        return None
    index = batch.schema.get_field_index(column.key)
    if index < 0:
        return None  # the general path raises the MissingFeatureError
    array = batch.column(index)
    t = array.type
    if pa.types.is_dictionary(t) and is_flat_string_type(t.value_type):
        return _dictionary_strings(column, array)
    if not is_flat_string_type(t):
        return None
    data, offsets, valid = arrow_string_buffers(array)
    return _DenseStrings(data, offsets, valid, column.hash_bucket_size)


def _dictionary_strings(column, array: pa.DictionaryArray) -> _DictionaryStrings:
    data, offsets, entry_valid = arrow_string_buffers(array.dictionary)
    buckets = np.empty(len(array.dictionary), dtype=np.int64)
    hash_buckets_strings(data, offsets, np.int64(column.hash_bucket_size), buckets)
    buckets[np.diff(offsets) == 0] = -1  # '': TF's dense missing value
    if entry_valid is not None:
        buckets[~entry_valid] = -1
    indices = array.indices
    if len(indices) == 0:
        raw = np.empty(0, dtype=np.int64)
    else:  # zero-copy, nulls included (their slots hold any value; the kernel skips them)
        dtype = np.dtype(indices.type.to_pandas_dtype())
        raw = np.frombuffer(indices.buffers()[1], dtype=dtype, count=indices.offset + len(indices))[indices.offset:]
    if raw.dtype not in (np.int32, np.int64):
        raw = raw.astype(np.int64)
    return _DictionaryStrings(column.key, raw, valid_mask(array), buckets)


class SparseRows(NamedTuple):
    """A batch as entries of the flat table.

    col_indptr int64 (n_groups, n_rows + 1): group g of row r owns entries
    ``col_indptr[g, r]:col_indptr[g, r + 1]``; slots int64 (nnz,); values float32 (nnz,).
    ``Layout.sparse_rows`` gives a group per column (column-major: each column's entries
    contiguous), or one row-major group; the kernels accept either. ``one_per_row`` bool
    (n_groups,): the group has exactly one entry in every row (single-valued columns), which the
    learn kernel walks without reading per-row bounds.
    """

    col_indptr: np.ndarray
    slots: np.ndarray
    values: np.ndarray
    one_per_row: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.col_indptr.shape[1] - 1


class EntryBuffers:
    """The arrays a chunk's ``SparseRows`` are written into, reused chunk after chunk: steady
    streaming allocates nothing (no page faults, no allocator churn). Grown, with headroom, when a
    chunk needs more; a chunk's rows stay valid until the buffers are handed to the next chunk."""

    def __init__(self) -> None:
        self._indptr = np.empty(0, dtype=np.int64)
        self._slots = np.empty(0, dtype=np.int64)
        self._values = np.empty(0, dtype=np.float32)
        self._staging: EntryBuffers | None = None

    @property
    def staging(self) -> EntryBuffers:
        """Second buffers: the column-major entries a row-major result is reordered from."""
        if self._staging is None:
            self._staging = EntryBuffers()
        return self._staging

    def take(self, n_groups: int, n_rows: int, nnz: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views: col_indptr int64 (n_groups, n_rows + 1), slots int64 (nnz,), values float32 (nnz,)."""
        size = n_groups * (n_rows + 1)
        if self._indptr.size < size:
            self._indptr = np.empty(size + size // 4, dtype=np.int64)
        if self._slots.size < nnz:
            self._slots = np.empty(nnz + nnz // 4, dtype=np.int64)
            self._values = np.empty(nnz + nnz // 4, dtype=np.float32)
        return self._indptr[:size].reshape(n_groups, n_rows + 1), self._slots[:nnz], self._values[:nnz]


@dataclass(frozen=True)
class Layout:
    """Where each column's weights live in the flat table of shape (n_slots, units)."""

    columns: tuple
    offsets: tuple[int, ...]
    n_slots: int

    @classmethod
    def build(cls, feature_columns: Sequence) -> Layout:
        columns = list(feature_columns)
        if not columns:
            raise ConfigError("feature_columns is empty; give at least one column.")
        for column in columns:
            if not isinstance(column, ALL_COLUMNS):
                raise ConfigError(
                    f"feature_columns must hold streamlin feature columns; found {column!r}. Build them"
                    " with streamlin.feature_column factories.")
        names = [c.name for c in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"feature_columns has two columns named {duplicates[0]!r}; names must be unique.")
        columns.sort(key=lambda c: c.name)
        offsets, total = [], 0
        for column in columns:
            offsets.append(total)
            total += column.num_buckets
        return cls(tuple(columns), tuple(offsets), total + 1)

    @property
    def bias_slot(self) -> int:
        return self.n_slots - 1

    @property
    def feature_keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for c in self.columns for k in c.keys))

    def variable_name(self, column) -> str:
        return f"{VARIABLE_PREFIX}{column.name}/weights"

    def variables(self) -> list[tuple[str, int, int]]:
        """(TF variable name, first slot, end slot) for every weights variable, bias last."""
        out = [(self.variable_name(c), o, o + c.num_buckets) for c, o in zip(self.columns, self.offsets)]
        out.append((BIAS_VARIABLE, self.bias_slot, self.n_slots))
        return out

    def sparse_rows(self, batch: pa.RecordBatch, combiner: str = "sum", locate: Locate = _default_locate,
                    row_major: bool = False, out: EntryBuffers | None = None) -> SparseRows:
        """Map one record batch to entries of the flat table: a group per column, in layout order.

        Categorical columns are scaled by ``combiner`` and an empty row gets a zero entry on the
        column's row 0 (TF's empty-row fill); numeric columns give their values densely.
        ``row_major``: reorder into one group (each row's entries contiguous), which learns faster
        when steps are a few rows each. ``out``: buffers to write the result into (else new arrays).
        """
        n = batch.num_rows
        parts: list = []
        for column in self.columns:
            if isinstance(column, NumericColumn):
                parts.append(numeric_values(column, batch, locate))
                continue
            strings = _dense_strings(column, batch)
            parts.append(strings if strings is not None else categorical_ids(column, batch, locate))
        # Entries per column, and whether each row has exactly one (an empty row gets one fill entry).
        sizes = np.empty(len(parts), dtype=np.int64)
        one_per_row = np.empty(len(parts), dtype=np.bool_)
        for c, part in enumerate(parts):
            if isinstance(part, np.ndarray):
                sizes[c], one_per_row[c] = part.size, part.shape[1] == 1
            elif isinstance(part, (_DenseStrings, _DictionaryStrings)):
                sizes[c], one_per_row[c] = n, True
            else:
                counts = np.diff(part.indptr)
                sizes[c] = len(part.ids) + np.count_nonzero(counts == 0)
                one_per_row[c] = bool((counts <= 1).all())
        total = int(sizes.sum())
        if out is not None:
            col_indptr, slots, values = (out.staging if row_major else out).take(len(parts), n, total)
        else:
            col_indptr = np.empty((len(parts), n + 1), dtype=np.int64)
            slots = np.empty(total, dtype=np.int64)
            values = np.empty(total, dtype=np.float32)
        code = COMBINERS[combiner]
        position = 0
        empty_weights = np.empty(0, dtype=np.float32)
        for c, (part, offset) in enumerate(zip(parts, self.offsets)):
            if isinstance(part, np.ndarray):
                position = place_dense(part, offset, col_indptr[c], slots, values, position)
            elif isinstance(part, _DenseStrings):
                has_valid = part.valid is not None
                position = place_hashed_strings(part.data, part.offsets, part.valid if has_valid else _NO_VALID,
                                                has_valid, part.num_buckets, offset, col_indptr[c], slots, values,
                                                position)
            elif isinstance(part, _DictionaryStrings):
                has_valid = part.valid is not None
                position, bad = place_dictionary_buckets(part.indices, part.valid if has_valid else _NO_VALID,
                                                         has_valid, part.buckets, offset, col_indptr[c], slots,
                                                         values, position)
                if bad:
                    raise InputError(f"feature {part.key!r}: {bad} dictionary indices lie outside the dictionary;"
                                     " the data is corrupt.")
            else:
                has_weights = part.weights is not None
                position = place_column(part.indptr, part.ids, part.weights if has_weights else empty_weights,
                                        has_weights, code, offset, True, col_indptr[c], slots, values, position)
        if not row_major:
            return SparseRows(col_indptr, slots, values, one_per_row)
        if out is not None:
            indptr, row_slots, row_values = out.take(1, n, total)
        else:
            indptr = np.empty((1, n + 1), dtype=np.int64)
            row_slots = np.empty(total, dtype=np.int64)
            row_values = np.empty(total, dtype=np.float32)
        interleave_rows(col_indptr, slots, values, one_per_row, indptr[0], row_slots, row_values)
        return SparseRows(indptr, row_slots, row_values, np.array([len(parts) == 1 and one_per_row[0]]))

"""Fuzz the feature stage: random Arrow batches through every column kind, ``transform`` and
``Layout.sparse_rows``. Property: nothing but a StreamlinError escapes, and a result is well formed
(ids and slots in range, offsets monotone and complete, values finite), so the kernels that consume
it can never read out of bounds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from streamlin import feature_column as fc
from streamlin._arrow import as_record_batch
from streamlin.feature_column.layout import Layout
from streamlin.feature_column.transform import categorical_ids
from tests.fuzz import strategies as S
from tests.fuzz.harness import Raised, expect, fuzz_settings, run_case


def check_ids(column, ids: pa.Array, n_rows: int, target: str, reproducer: str) -> None:
    expect(pa.types.is_list(ids.type) or pa.types.is_large_list(ids.type), target, "malformed ids",
           lambda: f"transform returned {ids.type}: {reproducer}")
    expect(len(ids) == n_rows, target, "malformed ids", lambda: f"{len(ids)} rows of ids for {n_rows}: {reproducer}")
    flat = ids.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    expect(((flat >= 0) & (flat < column.num_buckets)).all(), target, "id out of range",
           lambda: f"ids {flat} outside [0, {column.num_buckets}): {reproducer}")


def check_sparse_rows(layout: Layout, rows, n_rows: int, target: str, reproducer: str) -> None:
    col_indptr, slots, values, one_per_row = rows
    n_groups = col_indptr.shape[0] if col_indptr.ndim == 2 else -1
    ok = expect(col_indptr.dtype == np.int64 and slots.dtype == np.int64 and values.dtype == np.float32
                and n_groups in (1, len(layout.columns)) and col_indptr.shape[1] == n_rows + 1
                and len(slots) == len(values),
                target, "malformed SparseRows", lambda: f"{col_indptr.shape} {slots.dtype} {values.dtype}: {reproducer}")
    if not ok:
        return
    # Group g of row r is col_indptr[g, r]:col_indptr[g, r + 1]; the groups tile the entries in order.
    flat = np.append(col_indptr[:, :-1].reshape(-1), col_indptr[-1, -1])
    ok = (np.diff(flat) >= 0).all() and flat[0] == 0 and flat[-1] == len(slots) and (
        (col_indptr[1:, 0] == col_indptr[:-1, -1]).all())
    if not expect(ok, target, "malformed SparseRows", lambda: f"col_indptr {col_indptr}: {reproducer}"):
        return
    # The learn kernel trusts one_per_row: a group flagged must hold exactly one entry in every row.
    exact = (np.diff(col_indptr, axis=1) == 1).all(axis=1)
    if not expect(one_per_row.shape == (n_groups,) and (exact[one_per_row]).all(), target, "one_per_row wrong",
                  lambda: f"one_per_row {one_per_row}, counts {np.diff(col_indptr, axis=1)}: {reproducer}"):
        return
    starts = np.asarray(layout.offsets)
    ends = starts + np.asarray([c.num_buckets for c in layout.columns])
    for r in range(n_rows):
        row_slots = np.concatenate([slots[col_indptr[g, r]:col_indptr[g, r + 1]] for g in range(n_groups)])
        owners = np.searchsorted(starts, row_slots, side="right") - 1
        in_range = ((owners >= 0) & (row_slots < ends[np.clip(owners, 0, None)])).all()
        expect(in_range and (np.diff(owners) >= 0).all(), target, "slot out of range",
               lambda row_slots=row_slots: f"row slots {row_slots} outside their columns: {reproducer}")
    expect(np.isfinite(values).all(), target, "non-finite values",
           lambda: f"values {values[~np.isfinite(values)]} reach the kernels: {reproducer}")


@fuzz_settings(100)
@given(st.data())
def test_transform_any_batch_through_every_categorical_column(data):
    column = data.draw(S.feature_columns(max_columns=1))[0]
    if isinstance(column, fc.NumericColumn):
        column = fc.bucketized_column(column, [0.0, 1.0])
    sample = data.draw(S.record_batches([column]))
    reproducer = f"fc.transform({column!r}, {sample.recipe})"
    result = run_case("feature_column.transform", lambda: fc.transform(column, sample.batch), reproducer)
    if not isinstance(result, Raised):
        check_ids(column, result, sample.batch.num_rows, "feature_column.transform", reproducer)


@fuzz_settings(120)
@given(st.data())
def test_sparse_rows_any_batch(data):
    columns = data.draw(S.feature_columns())
    layout = Layout.build(columns)
    sample = data.draw(S.record_batches(columns))
    combiner = data.draw(st.sampled_from(["sum", "mean", "sqrtn"]))
    reproducer = f"Layout.build({columns!r}).sparse_rows({sample.recipe}, {combiner!r})"
    row_major = data.draw(st.booleans())
    reproducer = reproducer[:-1] + f", row_major={row_major})"
    result = run_case("Layout.sparse_rows", lambda: layout.sparse_rows(sample.batch, combiner, row_major=row_major),
                      reproducer)
    if not isinstance(result, Raised):
        check_sparse_rows(layout, result, sample.batch.num_rows, "Layout.sparse_rows", reproducer)


@fuzz_settings(60)
@given(st.data())
def test_sparse_rows_of_python_and_numpy_dicts(data):
    """What numpy_input_fn users pass: dicts of numpy arrays or Python lists, through as_record_batch."""
    columns = data.draw(S.feature_columns())
    layout = Layout.build(columns)
    sample = data.draw(S.record_batches(columns, extra_columns=False))
    features = S.as_python_dict(sample.batch, data.draw(st.sampled_from(["numpy", "pylist"])))
    reproducer = f"Layout.build({columns!r}).sparse_rows(as_record_batch({features!r}))"
    target = "as_record_batch+sparse_rows(dict)"
    result = run_case(target, lambda: layout.sparse_rows(as_record_batch(features)), reproducer)
    if not isinstance(result, Raised):
        check_sparse_rows(layout, result, sample.batch.num_rows, target, reproducer)


@fuzz_settings(60)
@given(st.data())
def test_transform_ignores_batch_size_and_slicing(data):
    """A column's ids for a batch equal the concatenation of its ids for two slices of it."""
    column = data.draw(S.feature_columns(max_columns=1))[0]
    if isinstance(column, fc.NumericColumn):
        return
    sample = data.draw(S.record_batches([column], n=data.draw(st.integers(1, 8)), extra_columns=False))
    batch = sample.batch
    cut = data.draw(st.integers(0, batch.num_rows))
    reproducer = f"categorical_ids({column!r}, {sample.recipe}) vs its slices at {cut}"
    whole = run_case("transform(split)", lambda: categorical_ids(column, batch), reproducer)
    if isinstance(whole, Raised):
        return
    parts = [run_case("transform(split)", lambda b=b: categorical_ids(column, b), reproducer)
             for b in (batch.slice(0, cut), batch.slice(cut))]
    if not expect(not any(isinstance(p, Raised) for p in parts), "transform(split)", "slice raised",
                  lambda: f"a slice raised though the whole batch did not: {parts}: {reproducer}"):
        return
    same = (np.array_equal(whole.ids, np.concatenate([p.ids for p in parts]))
            and np.array_equal(np.diff(whole.indptr), np.concatenate([np.diff(p.indptr) for p in parts])))
    expect(same, "transform(split)", "ids depend on slicing", lambda: f"ids differ: {reproducer}")

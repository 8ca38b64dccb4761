"""``streamlin.kernels.sparse`` against the numpy twins in tests/reference/sparse.py."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlin.kernels import sparse as k
from tests.reference import sparse as ref

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SENTINEL_SLOT = -7
SENTINEL_VALUE = np.float32(-123.5)

f32 = st.floats(-1e3, 1e3, width=32)
SPECIAL = [0.0, -0.0, math.nan, math.inf, -math.inf]
f32_any = st.one_of(f32, st.sampled_from(SPECIAL + [3.4e38, 1e-38]))
f32_special = st.one_of(f32, st.sampled_from(SPECIAL))  # no float32 overflow of products


def _indptr(counts) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


@st.composite
def columns(draw):
    """One categorical column's CSR ids, optional weights, combiner and placement."""
    n_rows = draw(st.integers(0, 8))
    size = draw(st.integers(1, 6))
    counts = draw(st.lists(st.integers(0, 4), min_size=n_rows, max_size=n_rows))
    nnz = sum(counts)
    ids = np.array(draw(st.lists(st.integers(0, size - 1), min_size=nnz, max_size=nnz)), dtype=np.int64)
    has_weights = draw(st.booleans())
    weight_values = draw(st.lists(f32_any if draw(st.booleans()) else st.floats(0.125, 10, width=32),
                                  min_size=nnz, max_size=nnz))
    weights = np.array(weight_values, dtype=np.float32) if has_weights else np.empty(0, dtype=np.float32)
    return dict(indptr=_indptr(counts), ids=ids, weights=weights, has_weights=has_weights,
                combiner=draw(st.sampled_from([k.COMBINER_SUM, k.COMBINER_MEAN, k.COMBINER_SQRTN])),
                slot_offset=draw(st.integers(0, 50)), fill_empty=draw(st.booleans()),
                out_start=draw(st.integers(0, 4)))


def _place_column(c):
    n_rows = len(c["indptr"]) - 1
    capacity = c["out_start"] + len(c["ids"]) + n_rows + 3
    row_indptr = np.full((1, n_rows + 1), -1, dtype=np.int64)[0]
    slots = np.full(capacity, SENTINEL_SLOT, dtype=np.int64)
    values = np.full(capacity, SENTINEL_VALUE, dtype=np.float32)
    end = k.place_column(c["indptr"], c["ids"], c["weights"], c["has_weights"], c["combiner"],
                         np.int64(c["slot_offset"]), c["fill_empty"], row_indptr, slots, values,
                         np.int64(c["out_start"]))
    return end, row_indptr, slots, values


@PROPERTY
@given(columns())
def test_place_column_matches_twin(c):
    end, row_indptr, slots, values = _place_column(c)
    want_indptr, want_slots, want_values = ref.place_column(
        c["indptr"], c["ids"], c["weights"] if c["has_weights"] else None, c["combiner"],
        c["slot_offset"], c["fill_empty"])
    start = c["out_start"]
    assert end == start + want_indptr[-1]
    np.testing.assert_array_equal(row_indptr, start + want_indptr)
    np.testing.assert_array_equal(slots[start:end], want_slots)
    np.testing.assert_allclose(values[start:end], want_values, rtol=1e-6, atol=0, equal_nan=True)
    # Nothing outside [out_start, end) is written.
    assert (slots[:start] == SENTINEL_SLOT).all() and (slots[end:] == SENTINEL_SLOT).all()
    assert (values[:start] == SENTINEL_VALUE).all() and (values[end:] == SENTINEL_VALUE).all()


def test_place_column_combiners_by_hand():
    # Row 0: ids [1, 1, 3] (a duplicate id counts twice); row 1 empty; row 2: id [0].
    c = dict(indptr=np.array([0, 3, 3, 4], dtype=np.int64), ids=np.array([1, 1, 3, 0], dtype=np.int64),
             weights=np.empty(0, dtype=np.float32), has_weights=False, slot_offset=10, fill_empty=True,
             out_start=0)
    for combiner, scale in [(k.COMBINER_SUM, 1.0), (k.COMBINER_MEAN, 1 / 3), (k.COMBINER_SQRTN, 1 / math.sqrt(3))]:
        end, row_indptr, slots, values = _place_column(dict(c, combiner=combiner))
        # The empty row gets one zero entry on the column's row 0 (slot_offset + 0).
        assert end == 5
        np.testing.assert_array_equal(row_indptr, [0, 3, 4, 5])
        np.testing.assert_array_equal(slots[:5], [11, 11, 13, 10, 10])
        np.testing.assert_allclose(values[:5], [scale, scale, scale, 0.0, 1.0], rtol=1e-7)


def test_place_column_weighted_combiners_by_hand():
    # One row, weights [1, 2, 2]: mean divides by sum(w) = 5, sqrtn by sqrt(1 + 4 + 4) = 3.
    c = dict(indptr=np.array([0, 3], dtype=np.int64), ids=np.array([0, 1, 2], dtype=np.int64),
             weights=np.array([1, 2, 2], dtype=np.float32), has_weights=True, slot_offset=0,
             fill_empty=False, out_start=0)
    expected = {k.COMBINER_SUM: [1, 2, 2], k.COMBINER_MEAN: [0.2, 0.4, 0.4], k.COMBINER_SQRTN: [1 / 3, 2 / 3, 2 / 3]}
    for combiner, want in expected.items():
        _, _, _, values = _place_column(dict(c, combiner=combiner))
        np.testing.assert_allclose(values[:3], want, rtol=1e-7)


def test_place_column_without_fill_leaves_empty_rows_empty():
    c = dict(indptr=np.array([0, 0, 2, 2], dtype=np.int64), ids=np.array([4, 0], dtype=np.int64),
             weights=np.empty(0, dtype=np.float32), has_weights=False, combiner=k.COMBINER_SUM,
             slot_offset=3, fill_empty=False, out_start=2)
    end, row_indptr, slots, _ = _place_column(c)
    assert end == 4
    np.testing.assert_array_equal(row_indptr, [2, 2, 4, 4])
    np.testing.assert_array_equal(slots[2:4], [7, 3])


@st.composite
def dense_blocks(draw):
    n, dim = draw(st.integers(0, 6)), draw(st.integers(1, 4))
    flat = draw(st.lists(f32_any, min_size=n * dim, max_size=n * dim))
    return np.array(flat, dtype=np.float32).reshape(n, dim), draw(st.integers(0, 30)), draw(st.integers(0, 4))


@PROPERTY
@given(dense_blocks())
def test_place_dense_matches_twin(block):
    values_in, offset, start = block
    n = values_in.shape[0]
    row_indptr = np.full(n + 1, -1, dtype=np.int64)
    slots = np.full(start + values_in.size + 2, SENTINEL_SLOT, dtype=np.int64)
    values = np.full(len(slots), SENTINEL_VALUE, dtype=np.float32)
    end = k.place_dense(values_in, np.int64(offset), row_indptr, slots, values, np.int64(start))
    want_indptr, want_slots, want_values = ref.place_dense(values_in, offset)
    assert end == start + values_in.size
    np.testing.assert_array_equal(row_indptr, start + want_indptr)
    np.testing.assert_array_equal(slots[start:end], want_slots)
    np.testing.assert_array_equal(values[start:end], want_values)  # NaN == NaN here
    assert (slots[end:] == SENTINEL_SLOT).all() and (slots[:start] == SENTINEL_SLOT).all()


@st.composite
def sparse_rows(draw, finite=True):
    """SparseRows-shaped input: columns laid out one after another, bias last."""
    n_rows = draw(st.integers(0, 7))
    n_columns = draw(st.integers(1, 3))
    units = draw(st.integers(1, 4))
    n_slots = draw(st.integers(2, 12))
    col_indptr = np.empty((n_columns, n_rows + 1), dtype=np.int64)
    base = 0
    for c in range(n_columns):
        counts = draw(st.lists(st.integers(0, 3), min_size=n_rows, max_size=n_rows))
        col_indptr[c] = base + _indptr(counts)
        base = int(col_indptr[c, -1])
    elements = f32 if finite else f32_special
    slots = np.array(draw(st.lists(st.integers(0, n_slots - 2), min_size=base, max_size=base)), dtype=np.int64)
    values = np.array(draw(st.lists(elements, min_size=base, max_size=base)), dtype=np.float32)
    weights = np.array(draw(st.lists(elements, min_size=n_slots * units, max_size=n_slots * units)),
                       dtype=np.float32).reshape(n_slots, units)
    row_begin = draw(st.integers(0, n_rows))
    row_end = draw(st.integers(row_begin, n_rows))
    return col_indptr, slots, values, weights, n_slots - 1, row_begin, row_end


def _table(weights, n_parts):
    """The estimator's table (n_slots, n_parts, units): weights at [:, 0], optimizer slots (here
    NaN, which add_logits must not read) after."""
    table = np.full((weights.shape[0], n_parts, weights.shape[1]), np.nan, dtype=np.float32)
    table[:, 0, :] = weights
    return table


@PROPERTY
@given(st.one_of(sparse_rows(), sparse_rows(finite=False)), st.integers(1, 3))
def test_add_logits_matches_twin(case, n_parts):
    col_indptr, slots, values, weights, bias_slot, row_begin, row_end = case
    units = weights.shape[1]
    out = np.full((row_end - row_begin + 2, units), np.nan)  # larger than needed, garbage on entry
    k.add_logits(col_indptr, slots, values, _table(weights, n_parts), np.int64(bias_slot), np.int64(row_begin),
                 np.int64(row_end), out)
    want = ref.add_logits(col_indptr, slots, values, weights, bias_slot, row_begin, row_end)
    n = row_end - row_begin
    # Inputs are float32: each product may be rounded to float32 (as TF computes), so allow a
    # float32 rounding of every term, measured on the sum of absolute terms.
    bound = ref.add_logits(col_indptr, slots, np.abs(values), np.abs(weights), bias_slot, row_begin, row_end)
    _assert_close_float32(out[:n], want, bound)
    assert np.isnan(out[n:]).all()


def _assert_close_float32(actual, desired, bound):
    finite = np.isfinite(desired)
    np.testing.assert_array_equal(actual[~finite], desired[~finite])  # same NaN / same inf
    excess = np.abs(actual[finite] - desired[finite]) - 2e-7 * bound[finite]
    assert (excess <= 1e-30).all(), (actual, desired)


def test_add_logits_empty_row_is_bias_and_units_are_separate():
    # Row 0: slot 0 with value 2 in column 0 and slot 2 with value -1 in column 1; row 1: nothing.
    col_indptr = np.array([[0, 1, 1], [1, 2, 2]], dtype=np.int64)
    slots = np.array([0, 2], dtype=np.int64)
    values = np.array([2.0, -1.0], dtype=np.float32)
    weights = np.array([[1, 10, 100], [5, 5, 5], [0.5, 0.25, 0.125], [7, 8, 9]], dtype=np.float32)
    out = np.empty((2, 3))
    k.add_logits(col_indptr, slots, values, _table(weights, 3), np.int64(3), np.int64(0), np.int64(2), out)
    # Row 0: bias + 2 * w[0] - w[2] = [7 + 2 - 0.5, 8 + 20 - 0.25, 9 + 200 - 0.125].
    np.testing.assert_array_equal(out, [[8.5, 27.75, 208.875], [7, 8, 9]])


# --- place_hashed_strings: hash-bucket column over a flat string array ---------------------------

string_value = st.one_of(st.none(), st.just(b""), st.binary(max_size=40),
                         st.text(max_size=12).map(lambda t: t.encode("utf-8")))


def _readonly(a):
    a = a.view()
    a.flags.writeable = False
    return a


@PROPERTY
@given(st.lists(string_value, max_size=12), st.binary(max_size=5), st.integers(1, 2**40),
       st.integers(0, 100), st.integers(0, 3), st.booleans(), st.binary(max_size=3))
def test_place_hashed_strings_matches_twin(values, prefix, num_buckets, offset, start, force_mask, null_bytes):
    # The strings sit after ``prefix`` in one buffer (an unaligned, non-zero first offset, as in a
    # sliced Arrow array); a null has valid=False and a range that may hold bytes (Arrow allows it).
    stored = [null_bytes if v is None else v for v in values]
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(v) for v in stored])
    offsets += len(prefix)
    data = np.frombuffer(prefix + b"".join(stored) + b"tail", dtype=np.uint8)
    has_valid = force_mask or any(v is None for v in values)
    valid = np.array([v is not None for v in values], dtype=np.bool_) if has_valid else np.ones(0, dtype=np.bool_)
    n = len(values)
    row_indptr = np.full(n + 1, -1, dtype=np.int64)
    slots = np.full(start + n + 2, SENTINEL_SLOT, dtype=np.int64)
    out_values = np.full(len(slots), SENTINEL_VALUE, dtype=np.float32)
    end = k.place_hashed_strings(_readonly(data), _readonly(offsets), valid, has_valid, num_buckets, np.int64(offset),
                                 row_indptr, slots, out_values, np.int64(start))
    want_indptr, want_slots, want_values = ref.place_hashed_strings(values, num_buckets, offset)
    assert end == start + n
    np.testing.assert_array_equal(row_indptr, start + want_indptr)
    np.testing.assert_array_equal(slots[start:end], want_slots)
    np.testing.assert_array_equal(out_values[start:end], want_values)
    assert (slots[end:] == SENTINEL_SLOT).all() and (slots[:start] == SENTINEL_SLOT).all()


# --- interleave_rows: column-major -> row-major -------------------------------------------------
@st.composite
def column_major_entries(draw):
    """Columns of entries (row counts 0..3, or exactly one per row), laid out one after another."""
    n_rows = draw(st.integers(0, 200))
    n_columns = draw(st.integers(1, 5))
    single = draw(st.booleans())
    col_indptr = np.empty((n_columns, n_rows + 1), dtype=np.int64)
    base = 0
    for c in range(n_columns):
        counts = [1] * n_rows if single else draw(st.lists(st.integers(0, 3), min_size=n_rows, max_size=n_rows))
        col_indptr[c] = base + _indptr(counts)
        base = int(col_indptr[c, -1])
    slots = np.arange(base, dtype=np.int64) * 7 + 3
    values = np.arange(base, dtype=np.float32) / 4
    return col_indptr, slots, values


@PROPERTY
@given(column_major_entries())
def test_interleave_rows_matches_twin(case):
    """Row r's entries, column by column; the one-entry-per-row transpose gives the same bits."""
    col_indptr, slots, values = case
    n_rows = col_indptr.shape[1] - 1
    order = [k for r in range(n_rows) for c in range(col_indptr.shape[0])
             for k in range(col_indptr[c, r], col_indptr[c, r + 1])]
    want_indptr = np.zeros(n_rows + 1, dtype=np.int64)
    want_indptr[1:] = np.cumsum(np.diff(col_indptr, axis=1).sum(axis=0))
    exact = (np.diff(col_indptr, axis=1) == 1).all(axis=1)
    for flags in (exact, np.zeros_like(exact)):  # the transpose where it applies, and the general walk
        indptr = np.full(n_rows + 1, -1, dtype=np.int64)
        out_slots = np.full(len(slots), -1, dtype=np.int64)
        out_values = np.full(len(values), np.nan, dtype=np.float32)
        k.interleave_rows(col_indptr, slots, values, flags, indptr, out_slots, out_values)
        np.testing.assert_array_equal(indptr, want_indptr)
        np.testing.assert_array_equal(out_slots, slots[order])
        np.testing.assert_array_equal(out_values, values[order])

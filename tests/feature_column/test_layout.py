"""``Layout``: TF's column order and slot offsets, and ``sparse_rows`` against a numpy twin built
from ``fc.transform`` ids, the combiner and TF's empty-row fill (tests/reference/sparse.py)."""

from __future__ import annotations

import math

import farmhash
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlin import feature_column as fc
from streamlin._arrow import as_record_batch
from streamlin.errors import ConfigError
from streamlin.feature_column.layout import BIAS_VARIABLE, Layout
from tests.reference import sparse as ref

PROPERTY = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

numeric = fc.numeric_column
hashed = fc.categorical_column_with_hash_bucket


def double(x):
    return 2.0 * x


X = numeric("x", default_value=0.5)
COLUMNS = [
    hashed("site", 50),                                                         # 'site'
    X,                                                                          # 'x'
    numeric("pair", shape=(2,), normalizer_fn=double),                          # 'pair'
    fc.bucketized_column(X, [-1.0, 0.0, 1.0]),                                  # 'x_bucketized'
    fc.categorical_column_with_vocabulary_list("tags", ["a", "b", "c"], num_oov_buckets=2),  # 'tags'
    fc.categorical_column_with_identity("n", 6, default_value=5),               # 'n'
    fc.weighted_categorical_column(hashed("n", 7, dtype="int64"), "w"),         # 'n_weighted_by_w'
    fc.crossed_column(["site", "tags"], 97),                                    # 'site_X_tags'
]


def test_build_sorts_by_name_and_places_the_bias_last():
    layout = Layout.build(COLUMNS)
    names = [c.name for c in layout.columns]
    assert names == sorted(names) == ["n", "n_weighted_by_w", "pair", "site", "site_X_tags", "tags", "x",
                                      "x_bucketized"]
    sizes = [6, 7, 2, 50, 97, 5, 1, 4]
    assert [c.num_buckets for c in layout.columns] == sizes
    assert list(layout.offsets) == [0, 6, 13, 15, 65, 162, 167, 168]
    assert layout.n_slots == sum(sizes) + 1 and layout.bias_slot == sum(sizes)
    variables = layout.variables()
    assert variables[0] == ("linear/linear_model/n/weights", 0, 6)
    assert variables[4] == ("linear/linear_model/site_X_tags/weights", 65, 162)
    assert variables[-1] == (BIAS_VARIABLE, sum(sizes), sum(sizes) + 1)
    assert BIAS_VARIABLE == "linear/linear_model/bias_weights"
    assert set(layout.feature_keys) == {"site", "x", "pair", "tags", "n", "w"}
    # The order the columns are given in does not matter.
    assert Layout.build(COLUMNS[::-1]) == layout


def test_build_rejects_empty_duplicate_and_foreign_columns():
    with pytest.raises(ConfigError, match="empty"):
        Layout.build([])
    with pytest.raises(ConfigError, match="'a_X_b'"):
        Layout.build([fc.crossed_column(["a", "b"], 10), fc.crossed_column(["b", "a"], 10)])
    with pytest.raises(ConfigError, match="'site'"):
        Layout.build([hashed("site", 5), numeric("site")])
    with pytest.raises(ConfigError, match="feature columns"):
        Layout.build(["site"])


def test_sparse_rows_by_hand_mean_combiner_and_empty_row_fill():
    tags = fc.categorical_column_with_vocabulary_list("tags", ["a", "b", "c"])
    layout = Layout.build([numeric("x"), tags])  # order: tags (slots 0-2), x (slot 3), bias 4
    batch = pa.RecordBatch.from_pydict({"x": [1.5, -2.0, 0.0],
                                        "tags": pa.array([["a", "c", "c"], [], ["zz"]])})
    rows = layout.sparse_rows(batch, combiner="mean")
    # Row 0: a, c, c -> three entries of 1/3 (a duplicate id counts twice). Row 1 is empty and
    # row 2's only value is out of vocabulary (id -1, pruned): both get one zero entry on slot 0.
    # By default, column-major: a group per column (tags, then x), each column's rows contiguous.
    assert rows.col_indptr.tolist() == [[0, 3, 4, 5], [5, 6, 7, 8]]
    assert rows.slots.tolist() == [0, 2, 2, 0, 0, 3, 3, 3]
    np.testing.assert_allclose(rows.values, [1 / 3, 1 / 3, 1 / 3, 0, 0, 1.5, -2.0, 0.0], rtol=1e-7)
    assert rows.n_rows == 3
    # row_major: one group, each row's columns in layout order, contiguous.
    rows = layout.sparse_rows(batch, combiner="mean", row_major=True)
    assert rows.col_indptr.tolist() == [[0, 4, 6, 8]]
    assert rows.slots.tolist() == [0, 2, 2, 3, 0, 3, 0, 3]
    np.testing.assert_allclose(rows.values, [1 / 3, 1 / 3, 1 / 3, 1.5, 0, -2.0, 0, 0.0], rtol=1e-7)
    assert rows.n_rows == 3


# --- sparse_rows against the twin ----------------------------------------------------------------


def _weighted_twin(column, features):
    """(indptr, ids, weights) of weighted_categorical_column(hash(n, int64), 'w'), from TF's rules:
    a dense -1 or null id is missing, and weights <= 0 (or null) are pruned."""
    size = column.categorical_column.hash_bucket_size
    indptr, ids, weights = [0], [], []
    for n, w in zip(features["n"].to_pylist(), features["w"].to_pylist()):
        if n is not None and n != -1 and w is not None and w > 0:
            ids.append(farmhash.fingerprint64(str(n).encode()) % size)
            weights.append(w)
        indptr.append(len(ids))
    return np.array(indptr), np.array(ids, dtype=np.int64), np.array(weights, dtype=np.float32)


def _numeric_twin(column, features):
    raw = features[column.key]
    if isinstance(raw, np.ndarray):
        values = raw.astype(np.float64).reshape(len(raw), -1)
    else:
        values = np.array([column.default_value[0] if v is None else v for v in raw.to_pylist()],
                          dtype=np.float64)[:, None]
    values = np.where(np.isnan(values), np.array(column.default_value or [np.nan])[None, :], values)
    if column.normalizer_fn is not None:
        values = column.normalizer_fn(values)
    return values.astype(np.float32)


def sparse_rows_twin(layout, features, combiner, row_major):
    col_indptr, slots, values, base = [], [], [], 0
    for column, offset in zip(layout.columns, layout.offsets):
        if isinstance(column, fc.NumericColumn):
            indptr, s, v = ref.place_dense(_numeric_twin(column, features), offset)
        else:
            if isinstance(column, fc.WeightedCategoricalColumn):
                row_indptr, ids, weights = _weighted_twin(column, features)
            else:
                listed = fc.transform(column, features)
                row_indptr, ids, weights = listed.offsets.to_numpy(), listed.values.to_numpy(), None
            indptr, s, v = ref.place_column(row_indptr, ids, weights, combiner, offset, fill_empty=True)
        col_indptr.append(base + indptr)
        slots.append(s)
        values.append(v)
        base += len(s)
    col_indptr, slots, values = np.array(col_indptr), np.concatenate(slots), np.concatenate(values)
    if not row_major:
        return col_indptr, slots, values
    # Row-major: row r's entries of every column in layout order.
    order = [k for r in range(col_indptr.shape[1] - 1) for c in range(col_indptr.shape[0])
             for k in range(col_indptr[c, r], col_indptr[c, r + 1])]
    indptr = np.zeros((1, col_indptr.shape[1]), dtype=np.int64)
    indptr[0, 1:] = np.cumsum(np.diff(col_indptr, axis=1).sum(axis=0))
    return indptr, slots[order], values[order]


tag = st.sampled_from(["a", "b", "c", "", "zz", "日本"])


@st.composite
def features(draw):
    n = draw(st.integers(1, 10))

    def column(strategy):
        return draw(st.lists(strategy, min_size=n, max_size=n))

    pair = np.array(column(st.tuples(st.floats(-5, 5), st.floats(-5, 5))), dtype=np.float64).reshape(n, 2)
    return {
        "site": pa.array(column(st.one_of(st.none(), st.sampled_from(["", "s1", "s2", "s3"]))), type=pa.string()),
        "x": pa.array(column(st.one_of(st.none(), st.floats(-3, 3))), type=pa.float64()),
        "pair": pair,
        "tags": pa.array(column(st.one_of(st.none(), st.lists(st.one_of(st.none(), tag), max_size=4))),
                         type=pa.list_(pa.string())),
        "n": pa.array(column(st.one_of(st.none(), st.integers(-2, 8))), type=pa.int64()),
        "w": pa.array(column(st.one_of(st.none(), st.sampled_from([0.0, -1.0, 0.5, 2.0, 1.0]))), type=pa.float32()),
    }


@PROPERTY
@given(features(), st.sampled_from(["sum", "mean", "sqrtn"]), st.booleans())
def test_sparse_rows_matches_twin(feats, combiner, row_major):
    layout = Layout.build(COLUMNS)
    rows = layout.sparse_rows(as_record_batch(feats), combiner=combiner, row_major=row_major)
    want_indptr, want_slots, want_values = sparse_rows_twin(layout, feats, combiner, row_major)
    np.testing.assert_array_equal(rows.col_indptr, want_indptr)
    np.testing.assert_array_equal(rows.slots, want_slots)
    np.testing.assert_allclose(rows.values, want_values, rtol=1e-6)
    assert rows.slots.dtype == np.int64 and rows.values.dtype == np.float32
    # The learn kernel walks flagged groups without reading their bounds: the flags must be exact.
    np.testing.assert_array_equal(rows.one_per_row, (np.diff(rows.col_indptr, axis=1) == 1).all(axis=1))
    # Every slot lies inside its column's range. Within a row, columns appear in layout order,
    # and every column has at least one entry (categorical ones through the empty-row fill).
    starts = np.asarray(layout.offsets)
    for r in range(rows.n_rows):
        row_slots = np.concatenate([rows.slots[rows.col_indptr[g, r]:rows.col_indptr[g, r + 1]]
                                    for g in range(rows.col_indptr.shape[0])])
        owners = np.searchsorted(starts, row_slots, side="right") - 1
        assert (np.diff(owners) >= 0).all()
        assert set(owners.tolist()) == set(range(len(layout.columns)))


def test_sparse_rows_sqrtn_with_weights_by_hand():
    column = fc.weighted_categorical_column(fc.categorical_column_with_identity("k", 4), "kw")
    layout = Layout.build([column])
    batch = pa.RecordBatch.from_pydict({"k": pa.array([[1, 3], [2]]), "kw": pa.array([[3.0, 4.0], [0.0]])})
    rows = layout.sparse_rows(batch, combiner="sqrtn")
    # Row 0: weights 3 and 4, sqrt(9 + 16) = 5 -> 0.6, 0.8. Row 1: its only weight is 0 (pruned),
    # so the row is empty and gets the zero entry on slot 0.
    assert rows.slots.tolist() == [1, 3, 0]
    np.testing.assert_allclose(rows.values, [0.6, 0.8, 0.0], rtol=1e-7)
    assert math.isclose(float(rows.values[0]) ** 2 + float(rows.values[1]) ** 2, 1.0, rel_tol=1e-6)


def test_sparse_rows_flat_string_nulls_are_missing_even_over_bytes():
    # A null whose slot still covers bytes ('junk') is missing, like '' (TF's dense missing value):
    # the row gets the empty-row entry, exactly as fc.transform drops it.
    full = pa.array(["a", "junk", "", "b"], type=pa.string())
    validity = pa.array([True, False, True, True]).buffers()[1]
    values = pa.StringArray.from_buffers(4, full.buffers()[1], full.buffers()[2], validity, 1)
    column = hashed("site", 1000)
    layout = Layout.build([column])
    assert values.to_pylist() == ["a", None, "", "b"]
    rows = layout.sparse_rows(pa.RecordBatch.from_pydict({"site": values}))
    fp = [farmhash.fingerprint64(b) % 1000 for b in (b"a", b"b")]
    assert rows.slots.tolist() == [fp[0], 0, 0, fp[1]]
    assert rows.values.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert fc.transform(column, {"site": values}).to_pylist() == [[fp[0]], [], [], [fp[1]]]


# --- dictionary-encoded strings (Parquet dictionary pages are read as such) ----------------------
@PROPERTY
@given(features(), st.booleans(), st.integers(0, 3), st.sampled_from(["mask", "encode"]))
def test_dictionary_encoded_strings_place_as_the_plain_strings(feats, row_major, start, null_encoding):
    """Hashing the dictionary once and placing rows by index gives the plain column's entries:
    nulls, '' and null dictionary entries are missing; slices keep their offset."""
    import pyarrow.compute as pc

    layout = Layout.build(COLUMNS)
    plain = as_record_batch(feats)
    start = min(start, plain.num_rows - 1)
    site = pc.dictionary_encode(plain.column("site"), null_encoding=null_encoding)
    encoded = plain.set_column(plain.schema.get_field_index("site"), "site", site)
    want = layout.sparse_rows(plain.slice(start), row_major=row_major)
    got = layout.sparse_rows(encoded.slice(start), row_major=row_major)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_dictionary_index_outside_the_dictionary_is_an_input_error():
    from streamlin.errors import InputError

    bad = pa.DictionaryArray.from_arrays(pa.array([0, 5, 1], type=pa.int32()), pa.array(["a", "b"]), safe=False)
    layout = Layout.build([hashed("site", 10)])
    with pytest.raises(InputError, match="'site'.*outside the dictionary"):
        layout.sparse_rows(pa.RecordBatch.from_arrays([bad], names=["site"]))

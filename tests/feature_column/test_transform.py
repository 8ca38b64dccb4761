"""``fc.transform(column, features)``: each categorical or crossed column's ids against TF's rules
(tfref README §1-§3, ``ref_impl.py``) and TF 2.15's golden ids in ``hash_buckets.json`` and
``crossed.json``. Expected ids are computed here with pyfarmhash, independently of streamlin."""

from __future__ import annotations

import bisect
import json

import farmhash
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlin import feature_column as fc
from streamlin._arrow import as_record_batch
from streamlin.errors import InputError, MissingFeatureError
from streamlin.feature_column.transform import categorical_ids
from tests._shared import SHARED
from tests.reference.cross import cross_row
from tests.reference.hashing import DEFAULT_HASH_KEY, MASK64

PROPERTY = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

numeric = fc.numeric_column
hashed = fc.categorical_column_with_hash_bucket
vocab_list = fc.categorical_column_with_vocabulary_list
vocab_file = fc.categorical_column_with_vocabulary_file
identity = fc.categorical_column_with_identity


def ids(column, features) -> list[list[int]]:
    out = fc.transform(column, features)
    assert out.type == pa.list_(pa.int64()) or out.type == pa.large_list(pa.int64())
    return out.to_pylist()


def fp(value) -> int:
    """Fingerprint64 of a str (UTF-8), bytes, or int (its decimal text, as tf.strings.as_string)."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    elif isinstance(value, int):
        value = str(value).encode("ascii")
    return farmhash.fingerprint64(value)


def bucket(value, n: int) -> int:
    return fp(value) % n


def _golden(name):
    path = SHARED / "tfref" / "golden" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text(encoding="utf-8"))


# --- categorical_column_with_hash_bucket --------------------------------------------------------


def test_hash_bucket_dense_strings_drop_empty_and_null():
    column = hashed("a", 100)
    values = ["x", "", None, "日本", "x"]
    assert ids(column, {"a": values}) == [[bucket("x", 100)], [], [], [bucket("日本", 100)], [bucket("x", 100)]]


def test_hash_bucket_list_input_keeps_empty_strings_and_drops_nulls():
    # A list array is TF's SparseTensor input: '' is a value and is hashed; a null element or a
    # null list adds nothing.
    column = hashed("a", 100)
    values = pa.array([["x", "", None], None, [], ["y", "y"]], type=pa.list_(pa.string()))
    assert ids(column, {"a": values}) == [[bucket("x", 100), bucket("", 100)], [], [],
                                          [bucket("y", 100), bucket("y", 100)]]


def test_hash_bucket_ints_hash_as_decimal_text_and_dense_minus_one_is_missing():
    column = hashed("n", 1000, dtype="int64")
    values = np.array([0, -1, 42, -5, 2**40, -(2**63)], dtype=np.int64)
    want = [[bucket(0, 1000)], [], [bucket(42, 1000)], [bucket(-5, 1000)], [bucket(2**40, 1000)],
            [bucket(-(2**63), 1000)]]
    assert ids(column, {"n": values}) == want
    assert ids(hashed("n", 1000, dtype="int32"), {"n": np.array([0, -1, 42, -5], dtype=np.int32)}) == want[:4]
    # An Arrow null in a flat int array reads as the dense -1: missing.
    assert ids(column, {"n": pa.array([7, None], type=pa.int64())}) == [[bucket(7, 1000)], []]
    # In a list (sparse) input -1 is a value: hashed as "-1".
    assert ids(column, {"n": pa.array([[-1, 3], [None]])}) == [[bucket(-1, 1000), bucket(3, 1000)], []]
    # A string column fed ints hashes their decimal text, like the same strings ('-1' as a string
    # is not missing; the int -1 is).
    text = hashed("n", 1000)
    assert ids(text, {"n": np.array([42, 7])}) == ids(text, {"n": ["42", "7"]})


def test_hash_bucket_two_dimensional_dense_input():
    column = hashed("a", 100)
    values = np.array([["a", ""], ["", ""], ["b", "c"]])
    assert ids(column, {"a": values}) == [[bucket("a", 100)], [], [bucket("b", 100), bucket("c", 100)]]
    ints = hashed("n", 100, dtype="int64")
    assert ids(ints, {"n": np.array([[1, -1], [-1, 2]])}) == [[bucket(1, 100)], [bucket(2, 100)]]


def test_golden_hash_bucket_columns():
    golden = _golden("hash_buckets.json")
    for case in golden["integer_hash_bucket_column"]:
        column = hashed("n", case["hash_bucket_size"], dtype=case["dtype"])
        got = ids(column, {"n": np.array([case["value"]], dtype=case["dtype"])})
        assert got == [case["ids"]], case
    dense = golden["string_column_dense_2d"]
    assert ids(hashed("a", dense["hash_bucket_size"]), {"a": np.array(dense["input"])}) == dense["ids_per_row"]
    sparse = golden["string_column_sparse_input"]
    rows = [[] for _ in range(sparse["input"]["dense_shape"][0])]
    for (r, _), v in zip(sparse["input"]["indices"], sparse["input"]["values"]):
        rows[r].append(v)
    assert ids(hashed("a", sparse["hash_bucket_size"]), {"a": pa.array(rows, type=pa.list_(pa.string()))}) == \
        sparse["ids_per_row"]


# --- vocabulary columns ---------------------------------------------------------------------------


def test_vocabulary_list_oov_default_value_and_buckets():
    values = ["b", "zz", "", None, "a"]
    # Default default_value=-1: OOV ids are -1 and the model prunes them (TF), so transform drops them.
    assert ids(vocab_list("v", ["a", "b", "c"]), {"v": values}) == [[1], [], [], [], [0]]
    assert ids(vocab_list("v", ["a", "b", "c"], default_value=2), {"v": values}) == [[1], [2], [], [], [0]]
    with_oov = vocab_list("v", ["a", "b", "c"], num_oov_buckets=4)
    assert ids(with_oov, {"v": values}) == [[1], [3 + bucket("zz", 4)], [], [], [0]]
    # Sparse input: '' is a value, here out of vocabulary.
    listed = pa.array([["", "c"], [None]], type=pa.list_(pa.string()))
    assert ids(with_oov, {"v": listed}) == [[3 + bucket("", 4), 2], []]


def test_vocabulary_list_of_ints():
    column = vocab_list("n", [10, 20, 30], num_oov_buckets=2)
    # Dense -1 is missing; OOV ints are hashed as their decimal text (TF's as_string before hashing).
    assert ids(column, {"n": np.array([20, -1, 7, 10])}) == [[1], [], [3 + bucket(7, 2)], [0]]
    assert ids(vocab_list("n", [10, 20], default_value=0), {"n": np.array([5, 20])}) == [[0], [1]]
    # A string vocabulary read from int input compares the decimal text.
    assert ids(vocab_list("s", ["1", "22"]), {"s": np.array([22, 1, 3])}) == [[1], [0], []]


def test_vocabulary_file_without_final_newline(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("apple\nbanana\ncherry", encoding="utf-8")
    values = ["cherry", "apple", "kiwi", ""]
    assert ids(vocab_file("f", str(path)), {"f": values}) == [[2], [0], [], []]
    assert ids(vocab_file("f", str(path), num_oov_buckets=3), {"f": values}) == \
        [[2], [0], [3 + bucket("kiwi", 3)], []]
    # vocabulary_size keeps the first lines only: cherry becomes out of vocabulary.
    assert ids(vocab_file("f", str(path), vocabulary_size=2, default_value=1), {"f": values}) == [[1], [0], [1], []]
    ints = tmp_path / "ints.txt"
    ints.write_text("5\n-7\n", encoding="utf-8")
    assert ids(vocab_file("i", str(ints), dtype="int64"), {"i": np.array([-7, 5, 6])}) == [[1], [0], []]


# --- identity -----------------------------------------------------------------------------------


def test_identity_ids_and_missing():
    column = identity("k", 5)
    assert ids(column, {"k": np.array([0, 4, -1, 2])}) == [[0], [4], [], [2]]
    assert ids(column, {"k": pa.array([[1, 1, 3], None, []])}) == [[1, 1, 3], [], []]


@pytest.mark.parametrize("values, row, value", [
    (np.array([0, 1, 5, 2]), 2, 5),
    (np.array([3, -2]), 1, -2),
    (pa.array([[0], [1, -1]]), 1, -1),  # in a list input -1 is a value, and out of range
    (np.array([[0, 1], [2, 9]]), 1, 9),
])
def test_identity_out_of_range_raises_naming_row_and_value(values, row, value):
    with pytest.raises(InputError, match=rf"row {row}\b.*'k'.*{value}.*\[0, 5\)"):
        fc.transform(identity("k", 5), {"k": values})


def test_identity_out_of_range_with_default_value():
    column = identity("k", 5, default_value=0)
    assert ids(column, {"k": np.array([4, 5, -1, -3, 99])}) == [[4], [0], [], [0], [0]]


# --- bucketized ---------------------------------------------------------------------------------


def test_bucketized_is_bisect_right():
    boundaries = [0.0, 1.0, 10.0]
    xs = [-5.0, 0.0, 0.5, 1.0, 9.99, 10.0, 1e9, -0.0]
    want = [[bisect.bisect_right(boundaries, x)] for x in xs]
    assert want[:6] == [[0], [1], [1], [2], [2], [3]]  # a boundary belongs to the bucket above it
    assert ids(fc.bucketized_column(numeric("x"), boundaries), {"x": np.array(xs, dtype=np.float32)}) == want
    assert ids(fc.bucketized_column(numeric("x", dtype="int64"), boundaries), {"x": np.array([0, 3, 11])}) == \
        [[1], [2], [3]]


def test_bucketized_multi_dimensional_source():
    # shape (2,): dimension j's bucket is offset by j * (len(boundaries) + 1), as TF.
    column = fc.bucketized_column(numeric("x", shape=(2,)), [0.0, 1.0])
    two_d = np.array([[0.0, 1.0], [-1.0, 5.0], [0.5, 0.5]], dtype=np.float32)
    want = [[1, 3 + 2], [0, 3 + 2], [1, 3 + 1]]
    assert ids(column, {"x": two_d}) == want
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(two_d.reshape(-1)), 2)
    assert ids(column, {"x": fixed}) == want


def test_bucketized_null_takes_default_or_raises_naming_the_row():
    values = pa.array([1.0, 2.0, None, float("nan")], type=pa.float64())
    with pytest.raises(InputError, match=r"row 2\b.*'x'"):
        fc.transform(fc.bucketized_column(numeric("x"), [1.5]), {"x": values})
    with_default = fc.bucketized_column(numeric("x", default_value=5.0), [1.5])
    assert ids(with_default, {"x": values}) == [[0], [1], [1], [1]]


# --- weighted categorical -----------------------------------------------------------------------


def test_weighted_categorical_drops_zero_and_missing_with_their_weights():
    column = fc.weighted_categorical_column(vocab_list("v", ["a", "b", "c"]), "w")
    features = {"v": ["a", "b", "", "c", "zz"], "w": np.array([0.5, 0.0, 2.0, -1.0, 3.0], dtype=np.float32)}
    # 'b' has weight 0, '' is missing, 'c' has a negative weight (TF prunes weights <= 0),
    # 'zz' is out of vocabulary (id -1, pruned).
    assert ids(column, features) == [[0], [], [], [], []]
    got = categorical_ids(column, as_record_batch(features))
    np.testing.assert_array_equal(got.weights, [0.5])
    listed = {"v": pa.array([["a", "c"], ["b"], []]), "w": pa.array([[2.0, 0.25], [0.0], []])}
    got = categorical_ids(column, as_record_batch(listed))
    assert got.indptr.tolist() == [0, 2, 2, 2] and got.ids.tolist() == [0, 2]
    np.testing.assert_array_equal(got.weights, np.array([2.0, 0.25], dtype=np.float32))


def test_weighted_categorical_weights_must_align():
    column = fc.weighted_categorical_column(hashed("v", 10), "w")
    with pytest.raises(InputError, match="'w'.*one weight per value"):
        fc.transform(column, {"v": pa.array([["a", "b"], ["c"]]), "w": pa.array([[1.0], [1.0]])})


# --- crossed: TF 2.15 golden cases --------------------------------------------------------------


def _leaf(desc: str):
    if "(" not in desc:
        return desc
    return {
        "crossed(a,b,H=7)": fc.crossed_column(["a", "b"], 7),
        "bucketized(x,[0,5,10])": fc.bucketized_column(numeric("x"), [0.0, 5.0, 10.0]),
        "vocab_list(v)": vocab_list("v", ["p", "q", "r"]),
        "identity(k,5)": identity("k", 5),
    }[desc]


def _golden_features(case, two_d: bool):
    features = {}
    for key, f in case["features"].items():
        if f["sparse"]:
            rows = [[] for _ in range(f["dense_shape"][0])]
            for (r, _), v in zip(f["indices"], f["values"]):
                rows[r].append(v)
            features[key] = pa.array(rows)
        else:
            flat = [v for row in f["values"] for v in row]
            dtype = {"object": str, "int64": np.int64, "float32": np.float32}[f["dtype"]]
            array = np.array(flat, dtype=dtype)
            features[key] = array.reshape(-1, 1) if two_d else array
    return features


def _golden_crossed_cases():
    return _golden("crossed.json")["cases"]


def test_golden_crossed_has_18_cases():
    assert len(_golden_crossed_cases()) == 18


@pytest.mark.parametrize("two_d", [False, True], ids=["flat", "2d"])
def test_golden_crossed_cases(two_d):
    for case in _golden_crossed_cases():
        spec = case["column"]
        column = fc.crossed_column([_leaf(k) for k in spec["keys"]], spec["hash_bucket_size"],
                                   hash_key=spec.get("hash_key"))
        assert ids(column, _golden_features(case, two_d)) == case["ids_per_row"], case["name"]


def test_crossed_dense_keeps_empty_and_minus_one_and_reads_nulls_as_them():
    column = fc.crossed_column(["a", "n"], 1000)
    want = [cross_row([[fp("")], [(-1) & MASK64]], DEFAULT_HASH_KEY, 1000),
            cross_row([[fp("x")], [5]], DEFAULT_HASH_KEY, 1000)]
    assert ids(column, {"a": ["", "x"], "n": np.array([-1, 5])}) == want
    assert ids(column, {"a": pa.array([None, "x"]), "n": pa.array([None, 5], type=pa.int64())}) == want


def test_crossed_sparse_inputs_go_first_then_dense_in_key_order():
    # 'z' is a list (sparse) input and 'a' a dense one: TF crosses [z, a] whatever the key order.
    features = {"a": ["p", "q", "r"], "z": pa.array([["u", "v"], [], ["", None]])}
    want = [cross_row([[fp("u"), fp("v")], [fp("p")]], DEFAULT_HASH_KEY, 2**20), [],
            cross_row([[fp("")], [fp("r")]], DEFAULT_HASH_KEY, 2**20)]
    assert ids(fc.crossed_column(["a", "z"], 2**20), features) == want
    assert ids(fc.crossed_column(["z", "a"], 2**20), features) == want
    # Two dense raw keys keep the given order.
    ab = ids(fc.crossed_column(["a", "b"], 2**20), {"a": ["p"], "b": ["q"]})
    ba = ids(fc.crossed_column(["b", "a"], 2**20), {"a": ["p"], "b": ["q"]})
    assert ab == [cross_row([[fp("p")], [fp("q")]], DEFAULT_HASH_KEY, 2**20)] and ab != ba


def test_crossed_hash_key():
    features = {"a": ["x"], "b": ["y"]}
    for key in (1, 12345, 2**64 - 1):
        want = [cross_row([[fp("x")], [fp("y")]], key, 1000)]
        assert ids(fc.crossed_column(["a", "b"], 1000, hash_key=key), features) == want
    assert ids(fc.crossed_column(["a", "b"], 1000, hash_key=0), features) == \
        ids(fc.crossed_column(["a", "b"], 1000), features)


def test_crossed_with_vocabulary_oov_minus_one_is_crossed_but_missing_is_not():
    column = fc.crossed_column([vocab_list("v", ["p", "q"]), "a"], 100)
    got = ids(column, {"v": ["zz", "", "q"], "a": ["x", "y", "z"]})
    assert got == [cross_row([[MASK64], [fp("x")]], DEFAULT_HASH_KEY, 100), [],
                   cross_row([[1], [fp("z")]], DEFAULT_HASH_KEY, 100)]


# --- Arrow layouts give the same ids ------------------------------------------------------------

STRINGS = ["x", "", None, "日本", "yy", "x", "é"]


def nulls_over_bytes(values, junk="junk"):
    """A string array whose null slots still cover bytes (valid Arrow, e.g. after a kernel masks
    values): readers must look at the validity bitmap, not only at the lengths."""
    full = pa.array([junk if v is None else v for v in values], type=pa.string())
    validity = pa.array([v is not None for v in values], type=pa.bool_()).buffers()[1]
    return pa.StringArray.from_buffers(len(values), full.buffers()[1], full.buffers()[2], validity,
                                       sum(v is None for v in values))


def _string_variants(values):
    base = pa.array(values, type=pa.string())
    padded = pa.array(["pad", "pad2"] + values + ["tail"], type=pa.string())
    yield "string", base
    yield "large_string", base.cast(pa.large_string())
    yield "binary", base.cast(pa.binary())
    yield "dictionary", base.dictionary_encode()
    yield "sliced", padded.slice(2, len(values))
    yield "sliced_large", padded.cast(pa.large_string()).slice(2, len(values))
    yield "sliced_dictionary", padded.dictionary_encode().slice(2, len(values))
    yield "chunked", pa.chunked_array([base.slice(0, 3), base.slice(3)])
    yield "nulls_over_bytes", nulls_over_bytes(values)
    yield "numpy", np.array([v if v is not None else "" for v in values])


@pytest.mark.parametrize("column", [
    hashed("s", 1000), vocab_list("s", ["x", "é", "yy"], num_oov_buckets=3),
    fc.crossed_column(["s", "t"], 2**20), fc.crossed_column([vocab_list("s", ["x", "yy"]), "t"], 1000),
], ids=["hash", "vocab", "cross", "vocab_cross"])
def test_arrow_string_layouts_give_the_same_ids(column):
    t = [str(i) for i in range(len(STRINGS))]
    want = ids(column, {"s": STRINGS, "t": t})
    for name, variant in _string_variants(STRINGS):
        assert ids(column, {"s": variant, "t": t}) == want, name


def test_arrow_list_layouts_give_the_same_ids():
    rows = [["a", "", None], None, [], ["日本", "a"]]
    base = pa.array(rows, type=pa.list_(pa.string()))
    padded = pa.array([["pad"]] + rows + [["tail", "x"]], type=pa.list_(pa.string()))
    variants = {
        "list": base, "large_list": base.cast(pa.large_list(pa.string())),
        "list_of_large_string": base.cast(pa.list_(pa.large_string())),
        "list_of_dictionary": pa.ListArray.from_arrays(base.offsets, base.values.dictionary_encode(),
                                                       mask=base.is_null()),
        "sliced": padded.slice(1, len(rows)), "python": rows,
    }
    for column in (hashed("s", 1000), fc.crossed_column(["s", "t"], 1000)):
        want = ids(column, {"s": base, "t": ["p", "q", "r", "s"]})
        assert want[0] and not want[1] and not want[2]
        for name, variant in variants.items():
            assert ids(column, {"s": variant, "t": ["p", "q", "r", "s"]}) == want, (column.name, name)


def test_arrow_int_layouts_give_the_same_ids():
    values = [3, -1, None, 2**20, 0]
    base = pa.array(values, type=pa.int64())
    variants = [base.cast(pa.int32()), pa.array([9, 9] + values, type=pa.int64()).slice(2, 5), base.dictionary_encode()]
    for column in (hashed("n", 1000, dtype="int64"), vocab_list("n", [0, 3], num_oov_buckets=2),
                   identity("n", 10, default_value=9), fc.crossed_column(["n", "t"], 1000)):
        want = ids(column, {"n": base, "t": list("abcde")})
        for variant in variants:
            assert ids(column, {"n": variant, "t": list("abcde")}) == want, (column, variant.type)


def test_record_batch_and_table_inputs():
    column = fc.crossed_column(["a", "b"], 1000)
    features = {"a": ["x", "y", "z"], "b": ["p", "", "r"]}
    want = ids(column, features)
    batch = pa.RecordBatch.from_pydict(features)
    assert ids(column, batch) == want
    assert ids(column, batch.slice(1)) == want[1:]
    table = pa.Table.from_batches([batch.slice(0, 1), batch.slice(1)])
    assert ids(column, table) == want


# --- errors -------------------------------------------------------------------------------------


def test_missing_feature_is_a_key_error_naming_feature_and_present_columns():
    column = fc.crossed_column(["country", "device"], 100)
    with pytest.raises(MissingFeatureError) as info:
        fc.transform(column, {"country": ["fr"], "devise": ["ios"], "label": [1]})
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "'device'" in message and "country_X_device" in message
    assert "'country'" in message and "'devise'" in message and "'label'" in message
    assert not message.startswith('"')  # not KeyError's quoted repr
    with pytest.raises(KeyError, match="'w'"):
        fc.transform(fc.weighted_categorical_column(hashed("v", 3), "w"), {"v": ["a"]})
    with pytest.raises(KeyError, match="'x'"):
        fc.transform(fc.bucketized_column(numeric("x"), [0.0]), {"y": [1.0]})


def test_transform_rejects_a_numeric_column():
    with pytest.raises(ValueError, match="NumericColumn"):
        fc.transform(numeric("x"), {"x": [1.0]})


# --- transform ignores batch size ---------------------------------------------------------------

text = st.sampled_from(["", "a", "b", "日本", "zz", "q"])
maybe_text = st.one_of(st.none(), text)


@st.composite
def batches(draw):
    n = draw(st.integers(0, 12))
    return dict(
        s=draw(st.lists(maybe_text, min_size=n, max_size=n)),
        m=draw(st.lists(st.one_of(st.none(), st.lists(maybe_text, max_size=3)), min_size=n, max_size=n)),
        n=draw(st.lists(st.one_of(st.none(), st.integers(-2, 6)), min_size=n, max_size=n)),
        x=draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n)),
    ), draw(st.integers(0, n))


COLUMNS = [
    hashed("s", 97), hashed("m", 97), hashed("n", 97, dtype="int64"),
    vocab_list("s", ["a", "b"], num_oov_buckets=2), vocab_list("m", ["a", "zz"], default_value=1),
    identity("n", 7, default_value=0), fc.bucketized_column(numeric("x"), [-1.0, 0.0, 2.0]),
    fc.weighted_categorical_column(hashed("n", 5, dtype="int64"), "x"),
    fc.crossed_column(["s", "m", "n"], 1000), fc.crossed_column([vocab_list("s", ["a"]), "n"], 1000, hash_key=5),
    fc.crossed_column([fc.bucketized_column(numeric("x"), [0.0]), "m"], 64),
]


def _features(d, lo, hi):
    return {"s": pa.array(d["s"][lo:hi], type=pa.string()), "m": pa.array(d["m"][lo:hi], type=pa.list_(pa.string())),
            "n": pa.array(d["n"][lo:hi], type=pa.int64()), "x": np.array(d["x"][lo:hi], dtype=np.float64)}


@PROPERTY
@given(batches())
def test_ids_of_a_concatenation_are_the_concatenation_of_ids(case):
    data, cut = case
    n = len(data["s"])
    whole = _features(data, 0, n)
    batch = pa.RecordBatch.from_pydict(whole)
    for column in COLUMNS:
        want = ids(column, whole)
        assert ids(column, _features(data, 0, cut)) + ids(column, _features(data, cut, n)) == want, column.name
        assert ids(column, batch.slice(cut)) == want[cut:], column.name  # Arrow offsets honoured

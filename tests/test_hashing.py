"""Public fingerprint64 / fingerprint_cat64 over lists, numpy and Arrow inputs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from streamlin.errors import InputError
from streamlin.hashing import (
    arrow_string_buffers,
    fingerprint64,
    fingerprint64_arrow,
    fingerprint_cat64,
)
from tests.reference import hashing as ref

farmhash = pytest.importorskip("farmhash")

WORDS = ["", "a", "hello", "日本", "x" * 17, "y" * 40, "z" * 100, "é\x00é"]


def fp(value) -> int:
    if isinstance(value, str):
        value = value.encode("utf-8")
    elif not isinstance(value, bytes):
        value = ref.int64_decimal(value)
    return farmhash.fingerprint64(value)


def expected(values) -> list[int]:
    return [fp(v) for v in values]


def as_ints(array: np.ndarray) -> list:
    return [int(v) for v in np.asarray(array).reshape(-1)]


# --- fingerprint64 ---------------------------------------------------------------------------


def test_golden_empty_string_and_a():
    # hash_buckets.json: Fingerprint64("") = 0x9ae16a3b2f90404f (farmhash's k2),
    # Fingerprint64("a") = 0xb3454265b6df75e3.
    out = fingerprint64(["", "a"])
    assert out.dtype == np.uint64 and out.tolist() == [0x9AE16A3B2F90404F, 0xB3454265B6DF75E3]


@pytest.mark.parametrize("container", [list, tuple])
def test_sequences_of_str_bytes_and_ints(container):
    assert as_ints(fingerprint64(container(WORDS))) == expected(WORDS)
    raw = [w.encode("utf-8") for w in WORDS] + [b"\xff\xfe"]
    assert as_ints(fingerprint64(container(raw))) == expected(raw)
    ints = [0, 1, -1, 42, -(1 << 63), (1 << 63) - 1]
    assert as_ints(fingerprint64(container(ints))) == expected(ints)


def test_ints_hash_like_their_decimal_text():
    # TF's integer hash-bucket columns hash tf.strings.as_string(v).
    assert as_ints(fingerprint64([42, -7])) == as_ints(fingerprint64(["42", "-7"]))


def test_mixed_sequence_falls_back_to_per_value_encoding():
    values = ["a", b"b", 3, np.int32(-4), "日本"]
    assert as_ints(fingerprint64(values)) == expected(["a", b"b", 3, -4, "日本"])


def test_empty_inputs():
    for values in ([], (), np.array([], dtype=object), pa.array([], pa.string())):
        out = fingerprint64(values)
        assert out.dtype == np.uint64 and out.shape == (0,)


def test_numpy_arrays_keep_their_shape():
    words = np.array(WORDS[:6], dtype=object).reshape(2, 3)
    out = fingerprint64(words)
    assert out.shape == (2, 3) and as_ints(out) == expected(words.reshape(-1))
    unicode = np.array(["a", "bc", "日本"])
    assert as_ints(fingerprint64(unicode)) == expected(["a", "bc", "日本"])
    raw = np.array([b"a", b"bc"], dtype="S")
    assert as_ints(fingerprint64(raw)) == expected([b"a", b"bc"])


@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, np.uint64]
)
def test_numpy_integer_arrays(dtype):
    info = np.iinfo(dtype)
    values = np.array([0, 1, info.max, info.min], dtype=dtype)
    assert as_ints(fingerprint64(values)) == expected([int(v) for v in values])


def test_uint64_above_int64_max_hashes_its_decimal_text():
    values = [(1 << 64) - 1, 1 << 63, 5]
    want = expected([str(v) for v in values])
    assert as_ints(fingerprint64(np.array(values, dtype=np.uint64))) == want
    assert as_ints(fingerprint64(pa.array(values, pa.uint64()))) == want
    assert as_ints(fingerprint64(values)) == want


@pytest.mark.parametrize("type_", [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()])
def test_arrow_string_types_and_slices(type_):
    values = [w.encode("utf-8") for w in WORDS]
    array = pa.array(values, type=type_)
    assert as_ints(fingerprint64(array)) == expected(values)
    assert as_ints(fingerprint64(array.slice(3))) == expected(values[3:])
    assert as_ints(fingerprint64(array.slice(2, 3))) == expected(values[2:5])


def test_arrow_string_view():
    array = pa.array(WORDS, type=pa.string_view())
    assert as_ints(fingerprint64(array)) == expected(WORDS)


@pytest.mark.parametrize("type_", [pa.int8(), pa.int32(), pa.int64(), pa.uint16()])
def test_arrow_integers(type_):
    values = [0, 7, 100, 127]
    array = pa.array(values, type=type_)
    assert as_ints(fingerprint64(array)) == expected(values)
    assert as_ints(fingerprint64(array.slice(1))) == expected(values[1:])


def test_arrow_dictionary_hashes_dictionary_then_gathers():
    array = pa.array(["b", "a", "b", "c", "a"]).dictionary_encode()
    assert as_ints(fingerprint64(array)) == expected(["b", "a", "b", "c", "a"])
    assert as_ints(fingerprint64(array.slice(2))) == expected(["b", "c", "a"])
    ints = pa.DictionaryArray.from_arrays(pa.array([1, 0, 1], pa.int8()), pa.array([-5, 9]))
    assert as_ints(fingerprint64(ints)) == expected([9, -5, 9])


def test_arrow_chunked():
    chunked = pa.chunked_array([pa.array(["a", "b"]), pa.array([], pa.string()), pa.array(["c"])])
    assert as_ints(fingerprint64(chunked)) == expected(["a", "b", "c"])
    assert fingerprint64(pa.chunked_array([], pa.string())).shape == (0,)
    dict_chunks = pa.chunked_array(
        [pa.array(["x", "y"]).dictionary_encode(), pa.array(["y"]).dictionary_encode()]
    )
    assert as_ints(fingerprint64(dict_chunks)) == expected(["x", "y", "y"])


@pytest.mark.parametrize(
    "values",
    [
        ["a", None, "b"],
        np.array(["a", None, "b"], dtype=object),
        pa.array(["a", None, "b"]),
        pa.array(["a", None, "b"], pa.large_binary()),
        pa.array(["a", None, "b"]).dictionary_encode(),
        pa.chunked_array([pa.array(["a"]), pa.array([None, "b"])]),
        pa.array([1, None, 3]),
        [1, None, 3],
        ["a", None, b"b"],
    ],
)
def test_nulls_are_rejected(values):
    with pytest.raises(InputError, match=r"value 1 of 3 is null; nulls can't be fingerprinted"):
        fingerprint64(values)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ([1.5, 2.0], r"value 0 of 2 is 1\.5 of type float"),
        ([True, False], "booleans can't be fingerprinted"),
        (np.array([1.5]), "dtype float64"),
        (np.array([True]), "dtype bool"),
        (pa.array([1.5]), "type double"),
        ("abc", "Wrap a single value in a list"),
        (["a", [1]], r"value 1 of 2 is \[1\]"),
    ],
)
def test_unhashable_values_are_rejected(values, match):
    with pytest.raises(InputError, match=match):
        fingerprint64(values)


# --- fingerprint64_arrow / arrow_string_buffers ----------------------------------------------


def test_fingerprint64_arrow_reports_nulls_in_a_mask():
    hashes, valid = fingerprint64_arrow(pa.array(["a", None, "b"]).slice(1))
    assert valid.tolist() == [False, True] and int(hashes[1]) == fp("b")
    hashes, valid = fingerprint64_arrow(pa.array(["a", "b"]))
    assert valid is None
    indices = pa.array([0, None, 1], pa.int32())
    dictionary = pa.DictionaryArray.from_arrays(indices, pa.array(["x", None]))
    hashes, valid = fingerprint64_arrow(dictionary)
    assert valid.tolist() == [True, False, False] and int(hashes[0]) == fp("x")
    chunked = pa.chunked_array([pa.array(["a"]), pa.array([None], pa.string())])
    hashes, valid = fingerprint64_arrow(chunked)
    assert valid.tolist() == [True, False]
    hashes, valid = fingerprint64_arrow(pa.nulls(2))
    assert valid.tolist() == [False, False]


def test_arrow_string_buffers_layout():
    array = pa.array(["ab", None, "cde", ""]).slice(1)
    data, offsets, valid = arrow_string_buffers(array)
    assert data.dtype == np.uint8 and offsets.dtype == np.int64 and not offsets.flags.writeable
    assert offsets.tolist() == [2, 2, 5, 5] and bytes(data[2:5]) == b"cde"
    assert valid.tolist() == [False, True, True]
    with pytest.raises(InputError, match="expected a string or binary array; found int64"):
        arrow_string_buffers(pa.array([1]))


# --- fingerprint_cat64 -----------------------------------------------------------------------


def test_fingerprint_cat64_matches_twin_and_broadcasts():
    a = np.array([0, 1, (1 << 64) - 1], dtype=np.uint64)
    b = np.array([[2], [3]], dtype=np.uint64)
    out = fingerprint_cat64(a, b)
    assert out.shape == (2, 3) and out.dtype == np.uint64
    for i in range(2):
        for j in range(3):
            assert int(out[i, j]) == ref.fingerprint_cat64(int(a[j]), int(b[i, 0]))
    scalar = fingerprint_cat64(1, 2)
    assert scalar.shape == () and int(scalar) == ref.fingerprint_cat64(1, 2) == 0xC89A2574412AC8E4


def test_fingerprint_cat64_takes_int64_ids_as_twos_complement():
    # A vocabulary OOV id -1 is crossed as 0xffffffffffffffff.
    want = ref.fingerprint_cat64(ref.DEFAULT_HASH_KEY, (1 << 64) - 1)
    assert int(fingerprint_cat64(ref.DEFAULT_HASH_KEY, -1)) == want
    assert int(fingerprint_cat64([ref.DEFAULT_HASH_KEY], np.array([-1], np.int64))[0]) == want
    arrow_key = pa.array([ref.DEFAULT_HASH_KEY], pa.uint64())
    assert int(fingerprint_cat64(arrow_key, pa.array([-1]))[0]) == want


def test_cross_chain_reproduces_golden_str_x_int():
    # crossed.json "str_x_int": crossed_column(['a', 'n'], 1000); n int64 enters raw;
    # default hash_key.
    a = ["x", "y", "z", "x", "", "y"]
    n = np.array([0, 1, -1, 42, 1 << 40, -(1 << 63)], dtype=np.int64)
    h = fingerprint_cat64(ref.DEFAULT_HASH_KEY, fingerprint64(a))
    h = fingerprint_cat64(h, n)
    assert (h % np.uint64(1000)).tolist() == [327, 326, 848, 602, 283, 481]


@pytest.mark.parametrize(
    ("a", "match"),
    [(np.array([1.0]), "dtype float64"), (["a"], "expected integers"), ([1 << 64], "outside the"),
     (pa.array([1, None]), "null")],
)
def test_fingerprint_cat64_rejects_non_integers(a, match):
    with pytest.raises(InputError, match=match):
        fingerprint_cat64(a, 1)

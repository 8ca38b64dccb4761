"""Feature column specs: validation at construction, TF's names, immutability and hashing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from streamlin import feature_column as fc
from streamlin.errors import ConfigError
from tests._shared import SHARED

numeric = fc.numeric_column
hashed = fc.categorical_column_with_hash_bucket
vocab_list = fc.categorical_column_with_vocabulary_list
vocab_file = fc.categorical_column_with_vocabulary_file
identity = fc.categorical_column_with_identity


@pytest.fixture
def vocab_path(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\nc", encoding="utf-8")  # no final newline
    return path


# --- validation: each bad argument raises ConfigError naming the key, the argument and the value ---

BAD_ARGUMENTS = [
    # (factory call, regex every part of which the message must contain)
    (lambda: hashed("site", 0), ["'site'", "hash_bucket_size", "0"]),
    (lambda: hashed("site", -5), ["'site'", "hash_bucket_size", "-5"]),
    (lambda: hashed("site", 2.5), ["'site'", "hash_bucket_size", "2.5"]),
    (lambda: hashed("site", True), ["'site'", "hash_bucket_size", "True"]),
    (lambda: hashed("site", 2**40), ["'site'", "hash_bucket_size", str(2**40)]),
    (lambda: hashed("site", 10, dtype="float32"), ["'site'", "dtype", "float32"]),
    (lambda: hashed("", 10), ["key", "''"]),
    (lambda: hashed(3, 10), ["key", "3"]),
    (lambda: numeric("x", shape=0), ["'x'", "shape", "0"]),
    (lambda: numeric("x", shape=(2, -1)), ["'x'", "shape", r"\(2, -1\)"]),
    (lambda: numeric("x", shape=(3,), default_value=(1.0, 2.0)), ["'x'", "default_value", r"\(1.0, 2.0\)"]),
    (lambda: numeric("x", default_value=float("nan")), ["'x'", "default_value", "nan"]),
    (lambda: numeric("x", dtype="string"), ["'x'", "dtype", "string"]),
    (lambda: numeric("x", normalizer_fn=3), ["'x'", "normalizer_fn"]),
    (lambda: fc.bucketized_column(numeric("x"), []), ["'x'", "boundaries", r"\[\]"]),
    (lambda: fc.bucketized_column(numeric("x"), [2.0, 1.0]), ["'x'", "boundaries", r"\[2.0, 1.0\]"]),
    (lambda: fc.bucketized_column(numeric("x"), ["a", "b"]), ["'x'", "boundaries", "'a'"]),
    (lambda: fc.bucketized_column(hashed("x", 3), [1.0]), ["source_column", "HashedCategoricalColumn"]),
    (lambda: vocab_list("v", []), ["'v'", "vocabulary"]),
    (lambda: vocab_list("v", ["a", "b", "a"]), ["'v'", "vocabulary", "'a'"]),
    (lambda: vocab_list("v", ["a", 1]), ["'v'", "vocabulary"]),
    (lambda: vocab_list("v", ["a", "b"], default_value=1, num_oov_buckets=2),
     ["'v'", "default_value", "num_oov_buckets"]),
    (lambda: vocab_list("v", ["a", "b"], default_value=5), ["'v'", "default_value", "5"]),
    (lambda: vocab_list("v", ["a", "b"], num_oov_buckets=-1), ["'v'", "num_oov_buckets", "-1"]),
    (lambda: vocab_list("v", ["a", "b"], dtype="float32"), ["'v'", "dtype", "float32"]),
    (lambda: identity("k", 0), ["'k'", "num_buckets", "0"]),
    (lambda: identity("k", 5, default_value=5), ["'k'", "default_value", "5"]),
    (lambda: identity("k", 5, default_value=-1), ["'k'", "default_value", "-1"]),
    (lambda: fc.weighted_categorical_column(numeric("x"), "w"), ["categorical_column", "NumericColumn"]),
    (lambda: fc.weighted_categorical_column(hashed("x", 3), ""), ["weighted_categorical_column", "''"]),
    (lambda: fc.weighted_categorical_column(hashed("x", 3), "w", dtype="int64"), ["'w'", "dtype", "int64"]),
    (lambda: fc.crossed_column(["a"], 10), ["crossed_column", "keys", r"\['a'\]"]),
    (lambda: fc.crossed_column("ab", 10), ["crossed_column", "keys", "'ab'"]),
    (lambda: fc.crossed_column(["a", "b"], 0), ["'a_X_b'", "hash_bucket_size", "0"]),
    (lambda: fc.crossed_column(["a", "b"], 10, hash_key=-1), ["'a_X_b'", "hash_key", "-1"]),
    (lambda: fc.crossed_column(["a", "b"], 10, hash_key=2**64), ["'a_X_b'", "hash_key", str(2**64)]),
    (lambda: fc.crossed_column(["a", numeric("x")], 10), ["crossed_column", "key", "NumericColumn"]),
    (lambda: fc.crossed_column(["a", ""], 10), ["crossed_column", "key", "''"]),
]


@pytest.mark.parametrize("make, parts", BAD_ARGUMENTS, ids=[f"bad{i}" for i in range(len(BAD_ARGUMENTS))])
def test_bad_arguments_raise_config_error_naming_them(make, parts):
    with pytest.raises(ConfigError) as info:
        make()
    assert isinstance(info.value, ValueError)  # API.md: ValueError, as TF raises
    for part in parts:
        with pytest.raises(ConfigError, match=part):
            make()


def test_bad_vocabulary_files(tmp_path, vocab_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError, match=r"'v'.*vocabulary_file.*nope\.txt"):
        vocab_file("v", str(missing))
    with pytest.raises(ConfigError, match=r"'v'.*vocabulary_size=5.*3 lines"):
        vocab_file("v", str(vocab_path), vocabulary_size=5)
    with pytest.raises(ConfigError, match=r"'v'.*int64"):
        vocab_file("v", str(vocab_path), dtype="int64")
    duplicated = tmp_path / "dup.txt"
    duplicated.write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'v'.*repeats 'a'"):
        vocab_file("v", str(duplicated))


def test_bucketized_boundaries_must_be_strictly_increasing():
    # TF 2.15 bucketized_column: `if boundaries[i] >= boundaries[i + 1]: raise ValueError(
    # 'boundaries must be a sorted list.')` -- equal neighbours are rejected, not only descending ones.
    with pytest.raises(ConfigError, match=r"'x'.*boundaries"):
        fc.bucketized_column(numeric("x"), [0.0, 1.0, 1.0, 2.0])


def test_hash_bucket_column_in_a_cross_is_rejected_as_tf_does():
    with pytest.raises(ConfigError, match="categorical_column_with_hash_bucket is not supported for crossing"):
        fc.crossed_column([hashed("a", 10), "b"], 100)
    # Also when nested: the inner cross is validated first.
    with pytest.raises(ConfigError, match="'a'"):
        fc.crossed_column([fc.crossed_column(["c", hashed("a", 10)], 7), "b"], 100)


def test_golden_hash_bucket_cross_error_is_tf_s():
    path = SHARED / "tfref" / "golden" / "crossed.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    tf_message = json.loads(path.read_text(encoding="utf-8"))["hash_bucket_column_in_cross"]["crossed_column_error"]
    assert tf_message.startswith("categorical_column_with_hash_bucket is not supported for crossing")
    with pytest.raises(ConfigError, match="hashing before crossing"):
        fc.crossed_column([hashed("a", 10), "b"], 100)


def test_valid_keys_and_defaults():
    assert hashed("a", 10, dtype="int32").dtype == "int32"
    assert hashed("a", 1).num_buckets == 1
    assert numeric("x", shape=3).shape == (3,)
    assert numeric("x", shape=(2, 3)).dimension == 6
    assert numeric("x", shape=(2,), default_value=1.5).default_value == (1.5, 1.5)
    assert vocab_list("v", ["a", "b"], num_oov_buckets=3).num_buckets == 5
    assert vocab_list("v", [3, 1, 2]).dtype == "int64"
    assert identity("k", 7).num_buckets == 7
    assert fc.bucketized_column(numeric("x", shape=(2,)), [0, 1, 2]).num_buckets == 8  # (3 + 1) * 2
    assert fc.crossed_column(["a", "b"], 5, hash_key=0).effective_hash_key == 0xDECAFCAFFE  # TF: `hash_key or default`
    assert fc.crossed_column(["a", "b"], 5, hash_key=7).effective_hash_key == 7


def test_vocabulary_file_without_final_newline(vocab_path, tmp_path):
    column = vocab_file("v", str(vocab_path))
    assert column.vocabulary == ("a", "b", "c") and column.num_buckets == 3
    assert vocab_file("v", str(vocab_path), vocabulary_size=2, num_oov_buckets=1).num_buckets == 3
    ints = tmp_path / "ints.txt"
    ints.write_text("10\n-3\n7\n", encoding="utf-8")
    assert vocab_file("n", str(ints), dtype="int64").vocabulary == (10, -3, 7)


# --- names (TF's) -------------------------------------------------------------------------------


def test_names():
    x = numeric("x")
    assert x.name == "x"
    assert hashed("site", 10).name == "site"
    assert fc.bucketized_column(x, [0.0]).name == "x_bucketized"
    assert fc.weighted_categorical_column(identity("k", 3), "kw").name == "k_weighted_by_kw"
    assert fc.crossed_column(["b", "a"], 10).name == "a_X_b"  # sorted, whatever the key order
    assert fc.crossed_column(["a", "b"], 10).name == "a_X_b"
    assert fc.crossed_column(["zz", fc.bucketized_column(x, [1.0]), vocab_list("m", ["p"])], 10).name == \
        "m_X_x_bucketized_X_zz"
    inner = fc.crossed_column(["c", "b"], 7)
    assert fc.crossed_column([inner, "a"], 10).name == "a_X_b_X_c"


def test_crossed_leaf_keys_flatten_nested_crosses():
    x = fc.bucketized_column(numeric("x"), [1.0])
    inner = fc.crossed_column(["a", x], 7)
    outer = fc.crossed_column([inner, "c", identity("k", 3)], 10)
    assert outer.leaf_keys == ("a", x, "c", identity("k", 3))
    assert outer.keys == ("a", "x", "c", "k")


# --- frozen and hashable ------------------------------------------------------------------------


def _all_columns(vocab_path):
    x = numeric("x", shape=(2,), default_value=0.0)
    return [
        x, fc.bucketized_column(x, [0.0, 1.0]), hashed("h", 10), vocab_list("v", ["a", "b"], num_oov_buckets=2),
        vocab_file("f", str(vocab_path)), identity("k", 4, default_value=0),
        fc.weighted_categorical_column(hashed("h", 10), "hw"), fc.crossed_column(["a", "b"], 100, hash_key=3),
    ]


def test_columns_are_frozen_hashable_and_equal_by_value(vocab_path):
    first, second = _all_columns(vocab_path), _all_columns(vocab_path)
    for a, b in zip(first, second):
        assert a == b and hash(a) == hash(b), a
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.key = "other"  # type: ignore[misc]
    assert len({*first, *second}) == len(first)
    lookup = {column: i for i, column in enumerate(first)}
    assert [lookup[c] for c in second] == list(range(len(first)))
    assert hashed("h", 10) != hashed("h", 11) and hashed("h", 10) != hashed("g", 10)
    assert fc.crossed_column(["a", "b"], 10) != fc.crossed_column(["b", "a"], 10)  # ids differ (TF)

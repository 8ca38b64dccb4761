"""Hypothesis strategies for hostile Arrow input: random schemas, nulls, unicode, extremes, slices.

Every generated array comes with a ``recipe``: Python source that rebuilds it (``pa.array(...)``),
so a crash is reported with a reproducer that can be pasted into a test.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from hypothesis import strategies as st

from streamlin import feature_column as fc
from streamlin.errors import ConfigError

KEYS = ("a", "b", "c")
WEIGHT_KEY = "w"

INT_TYPES = {"int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
             "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64()}
FLOAT_TYPES = {"float32": pa.float32(), "float64": pa.float64()}
STRING_TYPES = {"string": pa.string(), "large_string": pa.large_string(), "binary": pa.binary()}
OTHER_TYPES = {"bool": pa.bool_(), "null": pa.null()}
SCALAR_TYPES = {**INT_TYPES, **FLOAT_TYPES, **STRING_TYPES, **OTHER_TYPES}

SPECIAL_TEXT = ["", "\x00", "a\x00b", "😀", "🏳️\u200d🌈", "é", "-1", "1", " ", "\n", "\r\n", "\ufeff", "中文",
                "a" * 40]
SPECIAL_BYTES = [b"", b"\x00", b"\xff\xfe", b"\xc3\x28", b"-1", b"a" * 40]
SPECIAL_FLOATS = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 3.4e38, -3.4e38, 5e-324, 1e-45,
                  2.0**53 + 1, 0.5, 1.0]

# Text without lone surrogates (those are tested on their own in test_fuzz_regressions.py).
text = st.one_of(st.sampled_from(SPECIAL_TEXT),
                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=6))
binary = st.one_of(st.sampled_from(SPECIAL_BYTES), st.binary(max_size=6))


def int_values(t: pa.DataType) -> st.SearchStrategy:
    info = np.iinfo(t.to_pandas_dtype())
    lo, hi = int(info.min), int(info.max)
    edges = sorted({lo, hi, 0, 1, min(max(-1, lo), hi), min(hi, 2**53 + 1), max(lo, -(2**53) - 1)})
    return st.one_of(st.sampled_from(edges), st.integers(max(lo, -10), min(hi, 10)), st.integers(lo, hi))


def scalar_values(name: str) -> st.SearchStrategy:
    if name in INT_TYPES:
        return int_values(INT_TYPES[name])
    if name in FLOAT_TYPES:
        width = 32 if name == "float32" else 64
        return st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats(-10, 10, width=width), st.floats(width=width))
    if name in ("string", "large_string"):
        return text
    if name == "binary":
        return binary
    if name == "bool":
        return st.booleans()
    return st.none()


def type_source(t: pa.DataType) -> str:
    """Python source for a pyarrow type."""
    if pa.types.is_dictionary(t):
        return f"pa.dictionary({type_source(t.index_type)}, {type_source(t.value_type)})"
    if pa.types.is_fixed_size_list(t):
        return f"pa.list_({type_source(t.value_type)}, {t.list_size})"
    if pa.types.is_large_list(t):
        return f"pa.large_list({type_source(t.value_type)})"
    if pa.types.is_list(t):
        return f"pa.list_({type_source(t.value_type)})"
    names = {v: k for k, v in SCALAR_TYPES.items()}
    name = names.get(t, str(t))
    return {"bool": "pa.bool_()", "null": "pa.null()"}.get(name, f"pa.{name}()")


@dataclass
class Sample:
    """An Arrow array and the source that rebuilds it."""

    array: pa.Array
    recipe: str


def _finish(array: pa.Array, recipe: str, pre: int, n: int) -> Sample:
    if pre or len(array) != n:
        return Sample(array.slice(pre, n), f"{recipe}.slice({pre}, {n})")
    return Sample(array, recipe)


@st.composite
def flat_array(draw, n: int, names: list[str] | None = None) -> Sample:
    """A flat array of ``n`` rows (maybe a slice of a longer one), nulls allowed."""
    name = draw(st.sampled_from(names or sorted(SCALAR_TYPES)))
    pre, post = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    element = scalar_values(name)
    if draw(st.booleans()):
        element = st.one_of(element, st.none())
    values = draw(st.lists(element, min_size=n + pre + post, max_size=n + pre + post))
    t = SCALAR_TYPES[name]
    recipe = f"pa.array({values!r}, type={type_source(t)})"
    return _finish(pa.array(values, type=t), recipe, pre, n)


@st.composite
def dictionary_array(draw, n: int, value_names: list[str] | None = None) -> Sample:
    """A dictionary array (int8 or int32 indices), nulls in indices and in the dictionary allowed."""
    name = draw(st.sampled_from(value_names or ["string", "large_string", "binary", "int64", "int8", "uint64"]))
    index_type = draw(st.sampled_from([pa.int8(), pa.int32()]))
    element = scalar_values(name)
    dictionary = draw(st.lists(st.one_of(element, st.none()) if draw(st.booleans()) else element,
                               min_size=0 if n == 0 else 1, max_size=4, unique_by=repr))
    pre, post = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    index = st.integers(0, len(dictionary) - 1) if dictionary else st.none()
    if dictionary and draw(st.booleans()):
        index = st.one_of(index, st.none())
    indices = draw(st.lists(index, min_size=n + pre + post, max_size=n + pre + post))
    t = SCALAR_TYPES[name]
    array = pa.DictionaryArray.from_arrays(pa.array(indices, type=index_type), pa.array(dictionary, type=t))
    recipe = (f"pa.DictionaryArray.from_arrays(pa.array({indices!r}, type={type_source(index_type)}),"
              f" pa.array({dictionary!r}, type={type_source(t)}))")
    return _finish(array, recipe, pre, n)


@st.composite
def list_array(draw, n: int, value_names: list[str] | None = None, kinds=("list", "large_list", "fixed")) -> Sample:
    """A list, large_list or fixed_size_list array; null lists and null elements allowed."""
    name = draw(st.sampled_from(value_names or sorted(SCALAR_TYPES)))
    kind = draw(st.sampled_from(kinds))
    pre, post = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    element = scalar_values(name)
    if draw(st.booleans()):
        element = st.one_of(element, st.none())
    size = draw(st.integers(0, 3)) if kind == "fixed" else None
    item = st.lists(element, min_size=size or 0, max_size=size if size is not None else 4)
    if draw(st.booleans()):
        item = st.one_of(item, st.none())
    values = draw(st.lists(item, min_size=n + pre + post, max_size=n + pre + post))
    value_type = SCALAR_TYPES[name]
    t = {"list": pa.list_(value_type), "large_list": pa.large_list(value_type)}.get(kind) or pa.list_(value_type, size)
    recipe = f"pa.array({values!r}, type={type_source(t)})"
    return _finish(pa.array(values, type=t), recipe, pre, n)


@st.composite
def nested_list_array(draw, n: int) -> Sample:
    """list<list<string>>: a multi-valued feature of the wrong depth."""
    values = draw(st.lists(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.lists(text, max_size=2)),
                                                         max_size=2)), min_size=n, max_size=n))
    t = pa.list_(pa.list_(pa.string()))
    return Sample(pa.array(values, type=t), f"pa.array({values!r}, type={type_source(t)})")


def any_array(n: int) -> st.SearchStrategy:
    """Any supported (or unsupported) column layout."""
    return st.one_of(flat_array(n), dictionary_array(n), list_array(n), nested_list_array(n))


NUMERIC = sorted({**INT_TYPES, **FLOAT_TYPES, "bool": 0, "null": 0})
CATEGORICAL = sorted({**INT_TYPES, **STRING_TYPES})
WEIGHTS = sorted({**INT_TYPES, **FLOAT_TYPES})


def array_for(role: str, n: int, dimension: int = 1) -> st.SearchStrategy:
    """Mostly arrays of a layout the role accepts (so the success path is exercised), sometimes any."""
    if role == "numeric":
        fitting = st.one_of(flat_array(n, NUMERIC) if dimension == 1 else list_array(n, NUMERIC, ("fixed",)),
                            list_array(n, NUMERIC, ("fixed", "list")))
    elif role == "categorical":
        fitting = st.one_of(flat_array(n, CATEGORICAL), dictionary_array(n), list_array(n, CATEGORICAL))
    else:  # weight
        fitting = st.one_of(flat_array(n, WEIGHTS), list_array(n, WEIGHTS, ("list", "large_list")))
    return st.one_of(fitting, fitting, fitting, any_array(n))


# -- feature columns --------------------------------------------------------------------------------------
_VOCAB_DIR = tempfile.mkdtemp(prefix="streamlin-fuzz-vocab-")
atexit.register(shutil.rmtree, _VOCAB_DIR, ignore_errors=True)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
vocab_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=4)


def _vocab_file(entries: tuple[str, ...]) -> str:
    path = os.path.join(_VOCAB_DIR, f"vocab-{abs(hash(entries))}.txt")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("\n".join(entries) + ("\n" if entries and len(entries) % 2 else ""))
    return path


@st.composite
def numeric_spec(draw, key: str):
    shape = draw(st.sampled_from([1, 1, 2]))
    default = draw(st.one_of(st.none(), finite))
    return fc.numeric_column(key, shape=shape, default_value=default)


@st.composite
def categorical_spec(draw, key: str, crossable: bool = False):
    kind = draw(st.sampled_from(["vocab_str", "vocab_int", "vocab_file", "identity", "bucketized"]
                                + ([] if crossable else ["hash", "hash"])))
    if kind == "hash":
        return fc.categorical_column_with_hash_bucket(key, draw(st.integers(1, 64)),
                                                      dtype=draw(st.sampled_from(["string", "int64"])))
    if kind in ("vocab_str", "vocab_int", "vocab_file"):
        entry = st.integers(-3, 2**63 - 1) if kind == "vocab_int" else vocab_text
        vocabulary = tuple(draw(st.lists(entry, min_size=1, max_size=5, unique=True)))
        oov = draw(st.integers(0, 3))
        default = -1 if oov else draw(st.integers(-1, len(vocabulary) - 1))
        if kind == "vocab_file":
            return fc.categorical_column_with_vocabulary_file(key, _vocab_file(vocabulary), default_value=default,
                                                              num_oov_buckets=oov)
        return fc.categorical_column_with_vocabulary_list(key, vocabulary, default_value=default,
                                                          num_oov_buckets=oov)
    if kind == "identity":
        buckets = draw(st.integers(1, 10))
        return fc.categorical_column_with_identity(key, buckets,
                                                   default_value=draw(st.one_of(st.none(), st.integers(0, buckets - 1))))
    boundaries = sorted(set(draw(st.lists(finite, min_size=1, max_size=4))))
    return fc.bucketized_column(draw(numeric_spec(key)), boundaries)


@st.composite
def column_spec(draw, key: str):
    kind = draw(st.sampled_from(["numeric", "categorical", "categorical", "weighted", "crossed"]))
    if kind == "numeric":
        return draw(numeric_spec(key))
    if kind == "categorical":
        return draw(categorical_spec(key))
    if kind == "weighted":
        inner = draw(categorical_spec(key))
        if isinstance(inner, fc.BucketizedColumn):
            inner = fc.categorical_column_with_identity(key, 5)
        return fc.weighted_categorical_column(inner, WEIGHT_KEY)
    others = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2))
    keys = [key] + others
    leaves = [draw(st.one_of(st.just(k), categorical_spec(k, crossable=True))) for k in keys]
    if draw(st.booleans()):  # a nested cross
        leaves = [fc.crossed_column(leaves[:2], draw(st.integers(1, 64)))] + leaves[2:] + [draw(st.sampled_from(KEYS))]
    return fc.crossed_column(leaves, draw(st.integers(1, 64)), hash_key=draw(st.one_of(st.none(), st.integers(0, 2**64 - 1))))


@st.composite
def feature_columns(draw, max_columns: int = 3):
    """1..max_columns columns with distinct names over KEYS (and WEIGHT_KEY for weights)."""
    columns, names = [], set()
    for _ in range(draw(st.integers(1, max_columns))):
        try:
            column = draw(column_spec(draw(st.sampled_from(KEYS))))
        except ConfigError:
            continue  # an invalid combination the factories reject: fine, not what is fuzzed here
        if column.name not in names:
            names.add(column.name)
            columns.append(column)
    if not columns:
        columns.append(fc.categorical_column_with_hash_bucket("a", 8))
    return columns


def roles(columns) -> dict[str, tuple[str, int]]:
    """Feature key -> (role, numeric dimension) as the columns read it."""
    out: dict[str, tuple[str, int]] = {}

    def visit(column):
        if isinstance(column, str):
            out.setdefault(column, ("categorical", 1))
        elif isinstance(column, fc.NumericColumn):
            out.setdefault(column.key, ("numeric", column.dimension))
        elif isinstance(column, fc.BucketizedColumn):
            visit(column.source_column)
        elif isinstance(column, fc.WeightedCategoricalColumn):
            visit(column.categorical_column)
            out.setdefault(column.weight_feature_key, ("weight", 1))
        elif isinstance(column, fc.CrossedColumn):
            for leaf in column.keys_:
                visit(leaf)
        else:
            out.setdefault(column.key, ("categorical", 1))

    for column in columns:
        visit(column)
    return out


@dataclass
class BatchSample:
    batch: pa.RecordBatch
    recipe: str


@st.composite
def record_batches(draw, columns, n: int | None = None, extra_columns: bool = True) -> BatchSample:
    """A RecordBatch for ``columns``: usually fitting types, sometimes any; a key may be missing."""
    n = draw(st.integers(0, 8)) if n is None else n
    wanted = roles(columns)
    names, samples = [], []
    for key, (role, dimension) in sorted(wanted.items()):
        if draw(st.sampled_from(range(25))) == 24:
            continue  # a missing feature
        names.append(key)
        samples.append(draw(array_for(role, n, dimension)))
    if extra_columns and draw(st.booleans()):
        names.append("unused")
        samples.append(draw(any_array(n)))
    batch = pa.RecordBatch.from_arrays([s.array for s in samples], names=names) if names else \
        pa.RecordBatch.from_pydict({})
    recipe = "pa.RecordBatch.from_arrays([" + ", ".join(s.recipe for s in samples) + f"], names={names!r})"
    return BatchSample(batch, recipe)


# -- labels -----------------------------------------------------------------------------------------------
@st.composite
def labels(draw, n: int, n_classes: int, vocabulary: tuple[str, ...] | None):
    """Labels of random types: mostly valid ones, then anything (extremes, nulls, strings, lists, ...).

    Returns (labels, recipe).
    """
    choice = draw(st.integers(0, 9))
    if choice < 5:  # valid
        if vocabulary:
            values = draw(st.lists(st.sampled_from(vocabulary), min_size=n, max_size=n))
            t = draw(st.sampled_from([pa.string(), pa.large_string(), pa.binary()]))
            if t == pa.binary():
                values = [v.encode() for v in values]
            return pa.array(values, type=t), f"pa.array({values!r}, type={type_source(t)})"
        if n_classes == 2 and draw(st.booleans()):
            values = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
            return np.array(values), f"np.array({values!r})"
        values = draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
        dtype = draw(st.sampled_from(["int64", "int8", "uint8", "float32", "uint64"]))
        return np.array(values, dtype=dtype), f"np.array({values!r}, dtype={dtype!r})"
    if choice < 8:
        sample = draw(st.one_of(flat_array(n), dictionary_array(n), list_array(n)))
        return sample.array, sample.recipe
    if choice == 8:  # python list / numpy of mixed things
        values = draw(st.lists(st.one_of(st.integers(-2, 3), st.floats(), text, st.none(), st.booleans()),
                               min_size=n, max_size=n))
        return values, repr(values)
    m = draw(st.sampled_from([max(0, n - 1), n + 1]))  # wrong length
    values = draw(st.lists(st.integers(0, 1), min_size=m, max_size=m))
    return np.array(values), f"np.array({values!r})"


def as_python_dict(batch: pa.RecordBatch, mode: str) -> dict:
    """The batch as a dict of Python lists or numpy arrays (what numpy_input_fn users pass)."""
    out = {}
    for name, column in zip(batch.schema.names, batch.columns):
        if mode == "pylist" or pa.types.is_nested(column.type) or pa.types.is_dictionary(column.type):
            out[name] = column.to_pylist()
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out

"""Feature column specs: frozen, hashable, validated at construction, with TensorFlow's names.

A column holds no state and no weights; it says how a feature becomes slot ids (categorical
columns) or dense values (numeric columns). :mod:`streamlin.feature_column.transform` turns a
batch into ids; :mod:`streamlin.feature_column.layout` places every column's ids in the model's
one flat weight table.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from streamlin.errors import ConfigError

DEFAULT_HASH_KEY = 0xDECAFCAFFE  # tensorflow/python/ops/sparse_ops.py _DEFAULT_HASH_KEY
MAX_BUCKETS = 2**34  # a declared size above this is a mistake, not a model (16 GiB per unit)

_STRING = "string"
_INT_DTYPES = ("int64", "int32")


def _check_key(factory: str, key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{factory}: key must be a non-empty string; found {key!r}.")


def _check_size(factory: str, key: str, argument: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{factory}({key!r}): {argument} must be an integer >= {minimum}; found {value!r}.")
    if value > MAX_BUCKETS:
        raise ConfigError(
            f"{factory}({key!r}): {argument}={value} is larger than {MAX_BUCKETS}; such a table"
            " cannot be allocated. Use a smaller size (2**20 to 2**24 is typical).")


def _normalize_dtype(factory: str, key: str, dtype: Any, allowed: tuple[str, ...]) -> str:
    name = getattr(dtype, "__name__", None) or getattr(dtype, "name", None) or str(dtype)
    name = {"str": "string", "bytes": "string", "int": "int64", "float": "float32",
            "tf.string": "string", "tf.int64": "int64", "tf.int32": "int32"}.get(name, name)
    if name not in allowed:
        raise ConfigError(f"{factory}({key!r}): dtype must be one of {list(allowed)}; found {dtype!r}.")
    return name


def normalizer_import_name(fn: Callable | None) -> str | None:
    """``module:qualname`` of a normalizer function, or None when it has no import name."""
    if fn is None:
        return None
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def import_normalizer(name: str) -> Callable:
    """Import a normalizer recorded as ``module:qualname`` (data, never evaluated)."""
    module_name, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"normalizer_fn {name!r} cannot be imported here ({exc}); install the module that"
            " defines it where the model is loaded.") from None
    if not callable(obj):
        raise ConfigError(f"normalizer_fn {name!r} is not callable.")
    return obj


@dataclass(frozen=True)
class NumericColumn:
    """Dense float feature of ``shape``; contributes ``x @ weights``."""

    key: str
    shape: tuple[int, ...] = (1,)
    default_value: tuple[float, ...] | None = None
    dtype: str = "float32"
    normalizer_fn: Callable | None = field(default=None, compare=False, hash=False)
    normalizer_name: str | None = None

    def __post_init__(self) -> None:
        _check_key("numeric_column", self.key)
        shape = (self.shape,) if isinstance(self.shape, int) else tuple(self.shape)
        if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
            raise ConfigError(
                f"numeric_column({self.key!r}): shape must be positive integers; found {self.shape!r}.")
        object.__setattr__(self, "shape", shape)
        dim = math.prod(shape)
        if self.default_value is not None:
            default = self.default_value
            values = tuple(float(v) for v in (default if isinstance(default, (list, tuple)) else [default] * dim))
            if len(values) != dim or any(math.isnan(v) for v in values):
                raise ConfigError(
                    f"numeric_column({self.key!r}): default_value must be a number or {dim} numbers"
                    f" (no NaN); found {default!r}.")
            object.__setattr__(self, "default_value", values)
        object.__setattr__(self, "dtype", _normalize_dtype(
            "numeric_column", self.key, self.dtype, ("float32", "float64", "int64", "int32")))
        if self.normalizer_fn is not None and not callable(self.normalizer_fn):
            raise ConfigError(f"numeric_column({self.key!r}): normalizer_fn must be callable.")
        if self.normalizer_fn is not None and self.normalizer_name is None:
            object.__setattr__(self, "normalizer_name", normalizer_import_name(self.normalizer_fn))
        if self.normalizer_fn is None and self.normalizer_name is not None:
            object.__setattr__(self, "normalizer_fn", import_normalizer(self.normalizer_name))

    @property
    def name(self) -> str:
        return self.key

    @property
    def dimension(self) -> int:
        return math.prod(self.shape)

    @property
    def num_buckets(self) -> int:  # rows of the weights variable
        return self.dimension

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)


@dataclass(frozen=True)
class BucketizedColumn:
    """A numeric column split at ``boundaries``: id = bisect_right(boundaries, x) (+ offset per dim)."""

    source_column: NumericColumn
    boundaries: tuple[float, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.source_column, NumericColumn):
            raise ConfigError(
                "bucketized_column: source_column must be a numeric_column; found"
                f" {type(self.source_column).__name__}.")
        try:
            bounds = tuple(float(b) for b in self.boundaries)
        except (TypeError, ValueError):
            raise ConfigError(
                f"bucketized_column({self.source_column.key!r}): boundaries must be numbers;"
                f" found {self.boundaries!r}.") from None
        if not bounds or any(math.isnan(b) for b in bounds) or any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ConfigError(
                f"bucketized_column({self.source_column.key!r}): boundaries must be a sorted list of"
                f" distinct numbers (as TF requires); found {list(self.boundaries)!r}.")
        object.__setattr__(self, "boundaries", bounds)

    @property
    def name(self) -> str:
        return f"{self.source_column.name}_bucketized"

    @property
    def num_buckets(self) -> int:
        return (len(self.boundaries) + 1) * self.source_column.dimension

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.source_column.key,)


@dataclass(frozen=True)
class HashedCategoricalColumn:
    """id = Fingerprint64(value) % hash_bucket_size; ints are hashed as their decimal text."""

    key: str
    hash_bucket_size: int
    dtype: Literal["string", "int64", "int32"] = "string"

    def __post_init__(self) -> None:
        _check_key("categorical_column_with_hash_bucket", self.key)
        _check_size("categorical_column_with_hash_bucket", self.key, "hash_bucket_size",
                    self.hash_bucket_size)
        object.__setattr__(self, "dtype", _normalize_dtype(
            "categorical_column_with_hash_bucket", self.key, self.dtype, (_STRING,) + _INT_DTYPES))

    @property
    def name(self) -> str:
        return self.key

    @property
    def num_buckets(self) -> int:
        return self.hash_bucket_size

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)


def _vocabulary_dtype(factory: str, key: str, vocabulary: tuple, dtype: Any) -> str:
    if dtype is not None:
        return _normalize_dtype(factory, key, dtype, (_STRING,) + _INT_DTYPES)
    if all(isinstance(v, str) for v in vocabulary):
        return _STRING
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vocabulary):
        return "int64"
    raise ConfigError(f"{factory}({key!r}): vocabulary must be all strings or all ints.")


def _check_vocabulary(factory: str, key: str, vocabulary: tuple, default_value: int,
                      num_oov_buckets: int) -> None:
    if not vocabulary:
        raise ConfigError(f"{factory}({key!r}): the vocabulary is empty; give at least one entry.")
    if len(set(vocabulary)) != len(vocabulary):
        seen: set = set()
        duplicate = next(v for v in vocabulary if v in seen or seen.add(v))
        raise ConfigError(f"{factory}({key!r}): the vocabulary repeats {duplicate!r}; entries must be unique.")
    _check_size(factory, key, "num_oov_buckets", num_oov_buckets, minimum=0)
    if num_oov_buckets and default_value != -1:
        raise ConfigError(
            f"{factory}({key!r}): set default_value or num_oov_buckets, not both"
            f" (found default_value={default_value}, num_oov_buckets={num_oov_buckets}).")
    if not (-1 <= default_value < len(vocabulary) + num_oov_buckets):
        raise ConfigError(
            f"{factory}({key!r}): default_value must be -1 or a valid id below"
            f" {len(vocabulary) + num_oov_buckets}; found {default_value}.")


@dataclass(frozen=True)
class VocabularyListCategoricalColumn:
    """id = position in ``vocabulary_list``; OOV → ``default_value`` or a Fingerprint64 OOV bucket."""

    key: str
    vocabulary_list: tuple
    dtype: str | None = None
    default_value: int = -1
    num_oov_buckets: int = 0

    def __post_init__(self) -> None:
        factory = "categorical_column_with_vocabulary_list"
        _check_key(factory, self.key)
        vocabulary = tuple(self.vocabulary_list)
        object.__setattr__(self, "vocabulary_list", vocabulary)
        object.__setattr__(self, "dtype", _vocabulary_dtype(factory, self.key, vocabulary, self.dtype))
        object.__setattr__(self, "default_value", -1 if self.default_value is None else int(self.default_value))
        _check_vocabulary(factory, self.key, vocabulary, self.default_value, self.num_oov_buckets)

    @property
    def name(self) -> str:
        return self.key

    @property
    def vocabulary(self) -> tuple:
        return self.vocabulary_list

    @property
    def num_buckets(self) -> int:
        return len(self.vocabulary_list) + self.num_oov_buckets

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)


def read_vocabulary_file(path: str | Path, vocabulary_size: int | None, key: str) -> tuple[str, ...]:
    """Entries of a UTF-8 vocabulary file, one per line (a final newline is optional)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"categorical_column_with_vocabulary_file({key!r}): cannot read vocabulary_file"
            f" {str(path)!r}: {exc}.") from None
    entries = text.split("\n")
    if entries and entries[-1] == "":
        entries.pop()
    entries = [e[:-1] if e.endswith("\r") else e for e in entries]
    if vocabulary_size is not None:
        if vocabulary_size > len(entries):
            raise ConfigError(
                f"categorical_column_with_vocabulary_file({key!r}): vocabulary_size={vocabulary_size}"
                f" but {path} has only {len(entries)} lines.")
        entries = entries[:vocabulary_size]
    return tuple(entries)


@dataclass(frozen=True)
class VocabularyFileCategoricalColumn:
    """Vocabulary read from a file (one entry per line) at construction; otherwise as the list column."""

    key: str
    vocabulary_file: str
    vocabulary_size: int | None = None
    dtype: str = _STRING
    default_value: int | None = None
    num_oov_buckets: int = 0
    vocabulary: tuple = field(default=(), compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        factory = "categorical_column_with_vocabulary_file"
        _check_key(factory, self.key)
        object.__setattr__(self, "vocabulary_file", str(self.vocabulary_file))
        object.__setattr__(self, "dtype", _normalize_dtype(factory, self.key, self.dtype, (_STRING,) + _INT_DTYPES))
        if not self.vocabulary:
            entries = read_vocabulary_file(self.vocabulary_file, self.vocabulary_size, self.key)
        else:
            entries = tuple(self.vocabulary)
        if self.dtype != _STRING:
            try:
                entries = tuple(int(e) for e in entries)
            except ValueError:
                raise ConfigError(
                    f"{factory}({self.key!r}): dtype {self.dtype} but {self.vocabulary_file} holds a"
                    " non-integer line.") from None
        object.__setattr__(self, "vocabulary", entries)
        object.__setattr__(self, "vocabulary_size", len(entries))
        object.__setattr__(self, "default_value", -1 if self.default_value is None else int(self.default_value))
        _check_vocabulary(factory, self.key, entries, self.default_value, self.num_oov_buckets)

    @property
    def name(self) -> str:
        return self.key

    @property
    def num_buckets(self) -> int:
        return len(self.vocabulary) + self.num_oov_buckets

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)


@dataclass(frozen=True)
class IdentityCategoricalColumn:
    """id = the integer value itself, in ``[0, num_buckets)``."""

    key: str
    num_buckets: int
    default_value: int | None = None

    def __post_init__(self) -> None:
        _check_key("categorical_column_with_identity", self.key)
        _check_size("categorical_column_with_identity", self.key, "num_buckets", self.num_buckets)
        if self.default_value is not None and not (0 <= self.default_value < self.num_buckets):
            raise ConfigError(
                f"categorical_column_with_identity({self.key!r}): default_value must be in"
                f" [0, {self.num_buckets}); found {self.default_value}.")

    @property
    def name(self) -> str:
        return self.key

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)


@dataclass(frozen=True)
class WeightedCategoricalColumn:
    """A categorical column whose ids carry the weights of feature ``weight_feature_key``."""

    categorical_column: CategoricalColumn
    weight_feature_key: str
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not isinstance(self.categorical_column, _SINGLE_KEY_CATEGORICAL):
            raise ConfigError(
                "weighted_categorical_column: categorical_column must be a categorical column of one"
                f" key; found {type(self.categorical_column).__name__}.")
        _check_key("weighted_categorical_column", self.weight_feature_key)
        object.__setattr__(self, "dtype", _normalize_dtype(
            "weighted_categorical_column", self.weight_feature_key, self.dtype, ("float32", "float64")))

    @property
    def name(self) -> str:
        return f"{self.categorical_column.name}_weighted_by_{self.weight_feature_key}"

    @property
    def num_buckets(self) -> int:
        return self.categorical_column.num_buckets

    @property
    def keys(self) -> tuple[str, ...]:
        return self.categorical_column.keys + (self.weight_feature_key,)


CrossKey = Union[str, BucketizedColumn, VocabularyListCategoricalColumn,
                 VocabularyFileCategoricalColumn, IdentityCategoricalColumn, "CrossedColumn"]


@dataclass(frozen=True)
class CrossedColumn:
    """TF's ``sparse_cross_hashed``: FingerprintCat64 chain over the keys, mod hash_bucket_size."""

    keys_: tuple
    hash_bucket_size: int
    hash_key: int | None = None

    def __post_init__(self) -> None:
        keys = tuple(self.keys_)
        if len(keys) < 2:
            raise ConfigError(f"crossed_column: keys must have at least 2 entries; found {list(keys)!r}.")
        for key in keys:
            if isinstance(key, HashedCategoricalColumn):
                raise ConfigError(
                    "crossed_column: categorical_column_with_hash_bucket is not supported for crossing"
                    " (hashing before crossing increases collisions); use the feature name"
                    f" {key.key!r} as a string key instead.")
            if not isinstance(key, (str, BucketizedColumn, VocabularyListCategoricalColumn,
                                    VocabularyFileCategoricalColumn, IdentityCategoricalColumn,
                                    CrossedColumn)):
                raise ConfigError(
                    "crossed_column: each key must be a feature name or a bucketized, vocabulary,"
                    f" identity or crossed column; found {key!r}.")
            if isinstance(key, str):
                _check_key("crossed_column", key)
        object.__setattr__(self, "keys_", keys)
        _check_size("crossed_column", self.name, "hash_bucket_size", self.hash_bucket_size)
        if self.hash_key is not None and not (0 <= self.hash_key < 2**64):
            raise ConfigError(f"crossed_column({self.name!r}): hash_key must be a uint64; found {self.hash_key}.")

    @property
    def name(self) -> str:
        return "_X_".join(sorted(k if isinstance(k, str) else k.name for k in self.keys_))

    @property
    def num_buckets(self) -> int:
        return self.hash_bucket_size

    @property
    def leaf_keys(self) -> tuple:
        """Keys with nested crosses flattened, in order (TF's ``_collect_leaf_level_keys``)."""
        leaves: list = []
        for key in self.keys_:
            leaves.extend(key.leaf_keys if isinstance(key, CrossedColumn) else (key,))
        return tuple(leaves)

    @property
    def keys(self) -> tuple[str, ...]:
        names: list[str] = []
        for leaf in self.leaf_keys:
            names.extend((leaf,) if isinstance(leaf, str) else leaf.keys)
        return tuple(dict.fromkeys(names))

    @property
    def effective_hash_key(self) -> int:
        return self.hash_key or DEFAULT_HASH_KEY  # TF: `hash_key or _DEFAULT_HASH_KEY`


_SINGLE_KEY_CATEGORICAL = (HashedCategoricalColumn, VocabularyListCategoricalColumn,
                           VocabularyFileCategoricalColumn, IdentityCategoricalColumn)
CATEGORICAL_COLUMNS = _SINGLE_KEY_CATEGORICAL + (BucketizedColumn, WeightedCategoricalColumn, CrossedColumn)
CategoricalColumn = Union[HashedCategoricalColumn, VocabularyListCategoricalColumn,
                          VocabularyFileCategoricalColumn, IdentityCategoricalColumn,
                          BucketizedColumn, WeightedCategoricalColumn, CrossedColumn]
FeatureColumn = Union[NumericColumn, CategoricalColumn]
ALL_COLUMNS = (NumericColumn,) + CATEGORICAL_COLUMNS

"""Feature columns with TensorFlow's names, factories and id rules.

``transform(column, features)`` shows the ids a categorical or crossed column gives each row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from streamlin._arrow import as_record_batch
from streamlin.errors import ConfigError
from streamlin.feature_column.columns import (
    CATEGORICAL_COLUMNS,
    BucketizedColumn,
    CrossedColumn,
    HashedCategoricalColumn,
    IdentityCategoricalColumn,
    NumericColumn,
    VocabularyFileCategoricalColumn,
    VocabularyListCategoricalColumn,
    WeightedCategoricalColumn,
)
from streamlin.feature_column.transform import categorical_ids


def numeric_column(key: str, shape: int | Sequence[int] = (1,), default_value: float | Sequence[float] | None = None,
                   dtype: str = "float32", normalizer_fn: Callable | None = None) -> NumericColumn:
    """Dense numbers; ``normalizer_fn`` maps a whole float64 batch array (n, dim) to another."""
    return NumericColumn(key, shape, default_value, dtype, normalizer_fn)


def bucketized_column(source_column: NumericColumn, boundaries: Sequence[float]) -> BucketizedColumn:
    """Buckets ``bisect_right(boundaries, x)``: ``len(boundaries) + 1`` ids per dimension."""
    return BucketizedColumn(source_column, boundaries)


def categorical_column_with_hash_bucket(key: str, hash_bucket_size: int, dtype: Any = "string") -> HashedCategoricalColumn:
    """``Fingerprint64(value) % hash_bucket_size``; ints hash as decimal text; ''/-1 are missing."""
    return HashedCategoricalColumn(key, hash_bucket_size, dtype)


def categorical_column_with_vocabulary_list(key: str, vocabulary_list: Sequence, dtype: Any = None,
                                            default_value: int = -1,
                                            num_oov_buckets: int = 0) -> VocabularyListCategoricalColumn:
    """Position in the list; out-of-vocabulary → ``default_value`` or a hashed OOV bucket."""
    return VocabularyListCategoricalColumn(key, tuple(vocabulary_list), dtype, default_value, num_oov_buckets)


def categorical_column_with_vocabulary_file(key: str, vocabulary_file: str, vocabulary_size: int | None = None,
                                            dtype: Any = "string", default_value: int | None = None,
                                            num_oov_buckets: int = 0) -> VocabularyFileCategoricalColumn:
    """As the list column, with one UTF-8 entry per line of ``vocabulary_file``."""
    return VocabularyFileCategoricalColumn(key, vocabulary_file, vocabulary_size, dtype, default_value,
                                           num_oov_buckets)


def categorical_column_with_identity(key: str, num_buckets: int,
                                     default_value: int | None = None) -> IdentityCategoricalColumn:
    """The int value is the id; out-of-range raises unless ``default_value`` is set."""
    return IdentityCategoricalColumn(key, num_buckets, default_value)


def weighted_categorical_column(categorical_column, weight_feature_key: str,
                                dtype: Any = "float32") -> WeightedCategoricalColumn:
    """Each id of ``categorical_column`` carries the matching value of ``weight_feature_key``."""
    return WeightedCategoricalColumn(categorical_column, weight_feature_key, dtype)


def crossed_column(keys: Sequence, hash_bucket_size: int, hash_key: int | None = None) -> CrossedColumn:
    """TF's hashed cross of feature names and bucketized/vocabulary/identity/crossed columns."""
    if isinstance(keys, (str, bytes)):
        raise ConfigError(f"crossed_column: keys must be a list of keys; found the string {keys!r}.")
    return CrossedColumn(tuple(keys), hash_bucket_size, hash_key)


def transform(column, features: Any) -> pa.ListArray:
    """Each row's int64 ids, exactly as the model uses them (missing values dropped as TF drops them).

    Parameters
    ----------
    column : a categorical or crossed column
    features : RecordBatch, Table or mapping of name -> array-like

    Returns
    -------
    pyarrow.ListArray
        ``list<int64>``, one list per row.
    """
    if not isinstance(column, CATEGORICAL_COLUMNS):
        raise ConfigError(f"transform: expected a categorical or crossed column; found {type(column).__name__}.")
    ids = categorical_ids(column, as_record_batch(features))
    return pa.ListArray.from_arrays(pa.array(ids.indptr.astype("int32") if ids.indptr[-1] < 2**31 else ids.indptr),
                                    pa.array(ids.ids, type=pa.int64()))


__all__ = [
    "numeric_column", "bucketized_column", "categorical_column_with_hash_bucket",
    "categorical_column_with_vocabulary_list", "categorical_column_with_vocabulary_file",
    "categorical_column_with_identity", "weighted_categorical_column", "crossed_column", "transform",
    "NumericColumn", "BucketizedColumn", "HashedCategoricalColumn", "VocabularyListCategoricalColumn",
    "VocabularyFileCategoricalColumn", "IdentityCategoricalColumn", "WeightedCategoricalColumn", "CrossedColumn",
]

"""Feature columns <-> JSON-ready dicts, so a checkpoint rebuilds its model with no Python code.

Parsing is data only: a dict names a factory from a fixed table, never code to run. A
``normalizer_fn`` is recorded by its import name and imported on load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from streamlin.errors import ConfigError
from streamlin.feature_column.columns import (
    BucketizedColumn,
    CrossedColumn,
    HashedCategoricalColumn,
    IdentityCategoricalColumn,
    NumericColumn,
    VocabularyFileCategoricalColumn,
    VocabularyListCategoricalColumn,
    WeightedCategoricalColumn,
)


def column_to_config(column: Any) -> dict:
    """A JSON-ready description of ``column`` (vocabularies included, so files are not needed)."""
    if isinstance(column, NumericColumn):
        return {"type": "numeric_column", "key": column.key, "shape": list(column.shape),
                "default_value": list(column.default_value) if column.default_value is not None else None,
                "dtype": column.dtype, "normalizer_fn": column.normalizer_name,
                "has_normalizer": column.normalizer_fn is not None}
    if isinstance(column, BucketizedColumn):
        return {"type": "bucketized_column", "source_column": column_to_config(column.source_column),
                "boundaries": list(column.boundaries)}
    if isinstance(column, HashedCategoricalColumn):
        return {"type": "categorical_column_with_hash_bucket", "key": column.key,
                "hash_bucket_size": column.hash_bucket_size, "dtype": column.dtype}
    if isinstance(column, VocabularyListCategoricalColumn):
        return {"type": "categorical_column_with_vocabulary_list", "key": column.key,
                "vocabulary_list": list(column.vocabulary_list), "dtype": column.dtype,
                "default_value": column.default_value, "num_oov_buckets": column.num_oov_buckets}
    if isinstance(column, VocabularyFileCategoricalColumn):
        return {"type": "categorical_column_with_vocabulary_file", "key": column.key,
                "vocabulary_file": column.vocabulary_file, "vocabulary": list(column.vocabulary),
                "dtype": column.dtype, "default_value": column.default_value,
                "num_oov_buckets": column.num_oov_buckets}
    if isinstance(column, IdentityCategoricalColumn):
        return {"type": "categorical_column_with_identity", "key": column.key,
                "num_buckets": column.num_buckets, "default_value": column.default_value}
    if isinstance(column, WeightedCategoricalColumn):
        return {"type": "weighted_categorical_column", "categorical_column": column_to_config(column.categorical_column),
                "weight_feature_key": column.weight_feature_key, "dtype": column.dtype}
    if isinstance(column, CrossedColumn):
        return {"type": "crossed_column",
                "keys": [k if isinstance(k, str) else column_to_config(k) for k in column.keys_],
                "hash_bucket_size": column.hash_bucket_size, "hash_key": column.hash_key}
    raise ConfigError(f"cannot describe {column!r}: not a streamlin feature column.")


def _require(config: dict, *names: str) -> None:
    for name in names:
        if name not in config:
            raise ConfigError(f"feature column description {config.get('type')!r} lacks {name!r}.")


def _numpy_ufunc(name: str):
    module, _, attribute = name.partition(":")
    candidate = getattr(np, attribute, None) if module == "numpy" else None
    return candidate if isinstance(candidate, np.ufunc) else None


def resolve_normalizer(name: str, normalizers: Mapping[str, Any] | None, allow_unresolved: bool):
    """The function a saved model names, without importing anything a file names.

    A checkpoint or export comes from someone else: its ``normalizer_fn`` name is resolved only
    through ``normalizers`` (name -> function, given by the caller) or to a numpy ufunc.
    """
    if normalizers and name in normalizers:
        return normalizers[name]
    ufunc = _numpy_ufunc(name)
    if ufunc is not None:
        return ufunc
    if allow_unresolved:
        def unavailable(values):
            raise ConfigError(f"normalizer_fn {name!r} of this saved model was not provided; pass"
                              f" normalizers={{{name!r}: function}} when loading it.")
        return unavailable
    raise ConfigError(
        f"the saved model's numeric column uses normalizer_fn {name!r}; loading never imports code a file"
        f" names. Pass normalizers={{{name!r}: function}} (the function you trained with).")


def column_from_config(config: Any, normalizers: Mapping[str, Any] | None = None,
                       allow_unresolved: bool = False) -> Any:
    """Rebuild a column from :func:`column_to_config` output (validated like a new column).

    Raises ConfigError for anything malformed; a named ``normalizer_fn`` is resolved by
    :func:`resolve_normalizer`, never imported.
    """
    try:
        return _column_from_config(config, normalizers, allow_unresolved)
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise ConfigError(f"a saved feature column description is malformed ({type(exc).__name__}: {exc}).") from None


def _column_from_config(config: Any, normalizers, allow_unresolved: bool) -> Any:
    if not isinstance(config, dict) or not isinstance(config.get("type"), str):
        raise ConfigError(f"a feature column description must be a dict with a 'type'; found {config!r}.")
    kind = config["type"]
    if kind == "numeric_column":
        _require(config, "key")
        name = config.get("normalizer_fn")
        if config.get("has_normalizer") and not name:
            raise ConfigError(
                f"numeric_column({config['key']!r}) was trained with a normalizer_fn that has no import name (a"
                " lambda); it cannot be rebuilt from the checkpoint. Pass feature_columns= explicitly.")
        function = resolve_normalizer(name, normalizers, allow_unresolved) if name else None
        return NumericColumn(config["key"], tuple(config.get("shape", (1,))), config.get("default_value"),
                             config.get("dtype", "float32"), function, name)
    if kind == "bucketized_column":
        _require(config, "source_column", "boundaries")
        return BucketizedColumn(_column_from_config(config["source_column"], normalizers, allow_unresolved),
                                tuple(config["boundaries"]))
    if kind == "categorical_column_with_hash_bucket":
        _require(config, "key", "hash_bucket_size")
        return HashedCategoricalColumn(config["key"], int(config["hash_bucket_size"]), config.get("dtype", "string"))
    if kind == "categorical_column_with_vocabulary_list":
        _require(config, "key", "vocabulary_list")
        return VocabularyListCategoricalColumn(config["key"], tuple(config["vocabulary_list"]), config.get("dtype"),
                                               int(config.get("default_value", -1)), int(config.get("num_oov_buckets", 0)))
    if kind == "categorical_column_with_vocabulary_file":
        _require(config, "key", "vocabulary_file", "vocabulary")
        return VocabularyFileCategoricalColumn(config["key"], config["vocabulary_file"], None,
                                               config.get("dtype", "string"), config.get("default_value"),
                                               int(config.get("num_oov_buckets", 0)), tuple(config["vocabulary"]))
    if kind == "categorical_column_with_identity":
        _require(config, "key", "num_buckets")
        return IdentityCategoricalColumn(config["key"], int(config["num_buckets"]), config.get("default_value"))
    if kind == "weighted_categorical_column":
        _require(config, "categorical_column", "weight_feature_key")
        return WeightedCategoricalColumn(_column_from_config(config["categorical_column"], normalizers, allow_unresolved),
                                         config["weight_feature_key"],
                                         config.get("dtype", "float32"))
    if kind == "crossed_column":
        _require(config, "keys", "hash_bucket_size")
        keys = tuple(k if isinstance(k, str) else _column_from_config(k, normalizers, allow_unresolved)
                     for k in config["keys"])
        return CrossedColumn(keys, int(config["hash_bucket_size"]), config.get("hash_key"))
    raise ConfigError(f"unknown feature column type {kind!r} in a model description.")

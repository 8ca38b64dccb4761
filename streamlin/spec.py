"""Model spec files: a LinearClassifier, its input format and checkpoint policy, described in TOML.

A spec is data: it is read with the standard library's ``tomllib``, every key is checked (an
unknown or mistyped key is a :class:`~streamlin.errors.ConfigError` that names it and says what to
do), and columns are built by the same factories, with the same validation, as in Python. Nothing
in a spec is executed, except that a ``normalizer_fn = "module:function"`` is imported, as it is
when a checkpoint with one is loaded.

::

    label_key = "label"                 # the column holding the label (required)
    weight_column = "fnlwgt"            # optional example weights
    n_classes = 2                       # default 2, or len(label_vocabulary)
    label_vocabulary = ["<=50K", ">50K"]  # for string labels
    batch_size = 256                    # rows per step (default 1024)
    num_epochs = 1                      # passes over the data per `train`
    loss_reduction = "sum_over_batch_size"   # or "sum"
    sparse_combiner = "sum"             # or "mean", "sqrtn"

    [input]                             # optional; the format follows the file extension
    format = "csv"                      # "parquet", "csv" or "arrow"
    delimiter = ","
    header = true
    column_types = { zip = "string" }   # pyarrow type names

    [optimizer]                         # default: Ftrl with TF's learning rate 0.2
    type = "Ftrl"                       # "Ftrl", "Adagrad" or "SGD"
    learning_rate = 0.1                 # or { type = "ExponentialDecay", initial_learning_rate = 0.1,
                                        #      decay_steps = 1000, decay_rate = 0.9 }
    l1_regularization_strength = 0.001

    [checkpoints]
    save_checkpoints_steps = 1000       # or save_checkpoints_secs (default 600)
    keep_checkpoint_max = 5
    log_step_count_steps = 100
    keep_best = { metric = "auc", mode = "max", n = 1 }

    [[columns]]
    type = "bucketized"
    key = "age"
    boundaries = [18, 25, 30, 35, 40, 45, 50, 55, 60, 65]

    [[columns]]
    type = "vocabulary_file"
    key = "country"
    vocabulary_file = "vocab/country.txt"   # relative to this file's folder, inside it
    num_oov_buckets = 1

    [[columns]]
    type = "crossed"
    keys = [{ column = "age_bucketized" }, "education", "occupation"]   # raw keys, or columns
    hash_bucket_size = 1000

Column types are ``numeric``, ``bucketized``, ``hash_bucket``, ``vocabulary_list``,
``vocabulary_file``, ``identity``, ``weighted`` and ``crossed`` (TF's factory names, such as
``categorical_column_with_hash_bucket``, are accepted too). A crossed column's key is a raw feature
name (a string, crossed by its values as TF does), ``{ column = "<name>" }`` for a column defined in
``[[columns]]``, or an inline column table used only inside the cross.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

from streamlin import feature_column as fc
from streamlin._arrow import is_flat_string_type
from streamlin.config import RunConfig
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
from streamlin.heads import Head
from streamlin.optimizers import SGD, Adagrad, Ftrl, optimizer_from_config
from streamlin.optimizers.schedules import ExponentialDecay

SPEC_FILE = "streamlin.toml"
DEFAULT_BATCH_SIZE = 1024
DEFAULT_LEARNING_RATE = 0.2  # TF's canned linear default for an optimizer given by name
FORMATS = ("parquet", "csv", "arrow")
EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv", ".arrow": "arrow",
              ".ipc": "arrow", ".feather": "arrow"}

_TOP_KEYS = ("label_key", "weight_column", "n_classes", "label_vocabulary", "batch_size", "num_epochs",
             "loss_reduction", "sparse_combiner", "input", "optimizer", "checkpoints", "columns")
_INPUT_KEYS = ("format", "delimiter", "header", "column_names", "column_types", "shuffle_files", "seed")
_CHECKPOINT_KEYS = ("save_checkpoints_steps", "save_checkpoints_secs", "keep_checkpoint_max",
                    "keep_checkpoint_every_n_hours", "log_step_count_steps", "keep_best")
_KEEP_BEST_KEYS = ("metric", "n", "mode", "eval_name")

_KINDS = {
    "numeric": "numeric", "numeric_column": "numeric",
    "bucketized": "bucketized", "bucketized_column": "bucketized",
    "hash_bucket": "hash_bucket", "categorical_column_with_hash_bucket": "hash_bucket",
    "vocabulary_list": "vocabulary_list", "categorical_column_with_vocabulary_list": "vocabulary_list",
    "vocabulary_file": "vocabulary_file", "categorical_column_with_vocabulary_file": "vocabulary_file",
    "identity": "identity", "categorical_column_with_identity": "identity",
    "weighted": "weighted", "weighted_categorical_column": "weighted",
    "crossed": "crossed", "crossed_column": "crossed",
}
_NUMERIC_KEYS = ("key", "shape", "default_value", "dtype", "normalizer_fn")
_COLUMN_KEYS = {
    "numeric": _NUMERIC_KEYS,
    "bucketized": _NUMERIC_KEYS + ("boundaries", "source"),
    "hash_bucket": ("key", "hash_bucket_size", "dtype"),
    "vocabulary_list": ("key", "vocabulary_list", "dtype", "default_value", "num_oov_buckets"),
    "vocabulary_file": ("key", "vocabulary_file", "vocabulary_size", "dtype", "default_value", "num_oov_buckets"),
    "identity": ("key", "num_buckets", "default_value"),
    "weighted": ("categorical", "weight_feature_key", "dtype"),
    "crossed": ("keys", "hash_bucket_size", "hash_key"),
}
_OPTIMIZERS = {"ftrl": Ftrl, "adagrad": Adagrad, "sgd": SGD}


# ------------------------------------------------------------------------------------------------
# the spec
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputOptions:
    """How data files are read: format (None: by extension) and CSV options."""

    format: str | None = None
    delimiter: str | None = None
    header: bool = True
    column_names: tuple[str, ...] | None = None
    column_types: Mapping[str, str] = field(default_factory=dict, hash=False)
    shuffle_files: bool = False
    seed: int | None = None


@dataclass(frozen=True)
class Spec:
    """A parsed model spec: what :func:`load` returns.

    ``estimator(model_dir)`` builds the :class:`streamlin.LinearClassifier`; ``input_fn(paths, ...)``
    reads data files as the spec says. ``text`` is the TOML it was read from (None when built in
    Python), ``root`` the folder that vocabulary files are relative to.
    """

    label_key: str | None
    feature_columns: tuple
    weight_column: str | None = None
    n_classes: int = 2
    label_vocabulary: tuple[str, ...] | None = None
    optimizer: Any = None
    loss_reduction: str = "sum_over_batch_size"
    sparse_combiner: str = "sum"
    batch_size: int = DEFAULT_BATCH_SIZE
    num_epochs: int | None = 1
    input: InputOptions = field(default_factory=InputOptions)
    checkpoints: Mapping[str, Any] = field(default_factory=dict, hash=False)
    path: str | None = None
    root: str | None = None
    text: str | None = field(default=None, repr=False, compare=False)
    vocabulary_files: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False, compare=False)

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path else ""
        return (f"Spec({len(self.feature_columns)} columns, label_key={self.label_key!r}, n_classes={self.n_classes},"
                f" optimizer={type(self.optimizer).__name__}, batch_size={self.batch_size}{where})")

    # -- building ---------------------------------------------------------------------------
    def run_config(self, **changes: Any) -> RunConfig:
        """The checkpoint policy as a :class:`streamlin.RunConfig` (``changes`` override fields)."""
        policy = dict(self.checkpoints)
        keep_best = policy.pop("keep_best", None)
        if keep_best is not None:
            from streamlin.checkpoint.store import KeepBest

            policy["keep_best"] = KeepBest(**keep_best)
        config = RunConfig(**policy)
        return config.replace(**changes) if changes else config

    def estimator(self, model_dir: str | os.PathLike | None = None, **overrides: Any):
        """A :class:`streamlin.LinearClassifier` built from this spec.

        ``overrides`` replace LinearClassifier arguments (``optimizer=...``, ``warm_start_from=...``)
        or RunConfig fields (``save_checkpoints_steps=...``, ``resume_input=True``).

        Raises
        ------
        ConfigError
            An override is neither a LinearClassifier argument nor a RunConfig field.
        """
        from streamlin.estimator import LinearClassifier

        arguments = {"feature_columns": list(self.feature_columns), "n_classes": self.n_classes,
                     "weight_column": self.weight_column, "label_vocabulary": self.label_vocabulary,
                     "optimizer": self.optimizer if self.optimizer is not None else "Ftrl",
                     "loss_reduction": self.loss_reduction, "sparse_combiner": self.sparse_combiner}
        estimator_keys = set(arguments) | {"warm_start_from", "config"}
        config_keys = {f.name for f in dataclasses.fields(RunConfig)} - {"model_dir"}
        config_changes = {}
        for name, value in overrides.items():
            if name in estimator_keys:
                arguments[name] = value
            elif name in config_keys:
                config_changes[name] = value
            else:
                raise ConfigError(
                    f"Spec.estimator: {name!r} is neither a LinearClassifier argument nor a RunConfig field.")
        if "config" not in arguments:
            arguments["config"] = self.run_config(**config_changes)
        elif config_changes:
            arguments["config"] = arguments["config"].replace(**config_changes)
        return LinearClassifier(model_dir=None if model_dir is None else os.fspath(model_dir), **arguments)

    def files(self, paths: Any) -> tuple[str, list[str]]:
        """(format, files) of data ``paths``: files, directories or globs, of one format.

        Inside a directory, files whose extension is not a data format's are skipped unless
        ``[input] format`` is set.

        Raises
        ------
        InputError
            A path matches no file.
        ConfigError
            The format cannot be told from an extension, or the files mix formats.
        """
        from streamlin.inputs.files import expand_paths

        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        files: list[str] = []
        for item in items:
            found = expand_paths(item, "input")
            if os.path.isdir(os.fspath(item)) and self.input.format is None:
                known = [f for f in found if _extension_format(f)]
                found = known or found
            files.extend(found)
        files = sorted(dict.fromkeys(files))
        if self.input.format is not None:
            return self.input.format, files
        formats = {}
        for name in files:
            kind = _extension_format(name)
            if kind is None:
                raise ConfigError(
                    f"{name}: cannot tell the data format from the extension (known: {', '.join(EXTENSIONS)});"
                    " set format = \"parquet\", \"csv\" or \"arrow\" under [input] in the spec.")
            formats.setdefault(kind, name)
        if len(formats) > 1:
            shown = ", ".join(f"{name} ({kind})" for kind, name in formats.items())
            raise ConfigError(f"the input mixes formats: {shown}; give files of one format.")
        return next(iter(formats)), files

    def input_fn(self, paths: Any, for_training: bool, batch_size: int | None = None, *,
                 label_key: str | None = ..., num_epochs: int | None = ...):  # type: ignore[assignment]
        """A built-in input function over data ``paths`` as the spec's ``[input]`` says.

        The format follows the extension (``.parquet``, ``.csv``/``.tsv``, ``.arrow``/``.ipc``/
        ``.feather``) unless ``[input] format`` is set; ``paths`` may be files, directories or
        globs. ``for_training`` reads ``num_epochs`` passes, otherwise one.
        """
        from streamlin.inputs import ArrowInputFn, CsvInputFn, ParquetInputFn

        kind, files = self.files(paths)
        label = self.label_key if label_key is ... else label_key
        epochs = (self.num_epochs if for_training else 1) if num_epochs is ... else num_epochs
        size = batch_size or self.batch_size
        options = self.input
        if kind == "parquet":
            return ParquetInputFn(files, label, size, epochs, None, options.shuffle_files, options.seed)
        if kind == "arrow":
            return ArrowInputFn(files, label, size, epochs, options.shuffle_files, options.seed)
        delimiter = options.delimiter
        if delimiter is None:
            delimiter = "\t" if all(f.lower().endswith(".tsv") for f in files) else ","
        return CsvInputFn(files, label, size, epochs, list(options.column_names) if options.column_names else None,
                          dict(options.column_types), delimiter, options.header, options.shuffle_files, options.seed)

    # -- writing ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The spec as TOML-ready data (vocabulary files relative to ``root``)."""
        doc: dict[str, Any] = {}
        if self.label_key is not None:
            doc["label_key"] = self.label_key
        if self.weight_column is not None:
            doc["weight_column"] = self.weight_column
        doc["n_classes"] = self.n_classes
        if self.label_vocabulary is not None:
            doc["label_vocabulary"] = list(self.label_vocabulary)
        doc["batch_size"] = self.batch_size
        if self.num_epochs is not None:
            doc["num_epochs"] = self.num_epochs
        doc["loss_reduction"] = self.loss_reduction
        doc["sparse_combiner"] = self.sparse_combiner
        options = {k: v for k, v in dataclasses.asdict(self.input).items()
                   if v is not None and v != getattr(InputOptions(), k)}
        if "column_names" in options:
            options["column_names"] = list(options["column_names"])
        if options:
            doc["input"] = options
        doc["optimizer"] = optimizer_table(self.optimizer)
        if self.checkpoints:
            doc["checkpoints"] = dict(self.checkpoints)
        named = {c: c.name for c in self.feature_columns}
        doc["columns"] = [column_table(c, self.root, named, top=True) for c in self.feature_columns]
        return doc

    def to_toml(self) -> str:
        """TOML text that :func:`loads` reads back to an equal spec."""
        return dumps(self.to_dict())

    def write_to_model_dir(self, model_dir: str | os.PathLike) -> str:
        """Write this spec as ``model_dir/streamlin.toml`` and copy its vocabulary files beside it.

        Later commands then need only ``--model-dir``. Returns the spec file's path.

        Raises
        ------
        ConfigError
            A vocabulary file would overwrite a different file, or a file streamlin keeps in model_dir.
        """
        root = Path(model_dir)
        root.mkdir(parents=True, exist_ok=True)
        for relative, source in self.vocabulary_files.items():
            first = Path(relative).parts[0]
            if first in (SPEC_FILE, "checkpoints.json", "train_log.jsonl", "export", ".readers") or \
                    first.startswith(("model.ckpt-", "eval", ".tmp-")):
                raise ConfigError(
                    f"vocabulary_file {relative!r} has a name streamlin uses in model_dir; move it into a"
                    " subfolder such as vocab/ next to the spec.")
            target = root / relative
            if target.resolve() == Path(source).resolve():
                continue
            data = Path(source).read_bytes()
            if target.exists() and target.read_bytes() != data:
                raise ConfigError(
                    f"{target} already exists with other contents than {source}; the model in {model_dir}"
                    " was built with that vocabulary. Use a new --model-dir for a new vocabulary.")
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(target, data)
        path = root / SPEC_FILE
        _write_atomic(path, (self.text if self.text is not None else self.to_toml()).encode("utf-8"))
        return str(path)

    def check_model_dir(self, model_dir: str | os.PathLike) -> None:
        """Refuse a model_dir whose latest snapshot was trained with other columns or another head.

        Raises
        ------
        ConfigError
            Naming the columns that differ, and what to do.
        """
        from streamlin.checkpoint import store
        from streamlin.feature_column.serialize import column_to_config

        latest = store.latest_snapshot(model_dir)
        if latest is None:
            return
        _, attrs = store.load_snapshot(latest.path, names=[])

        def comparable(config: dict) -> Any:
            return _strip_paths(config)

        saved = {c.get("type") + ":" + _config_name(c): comparable(c) for c in attrs.get("feature_columns", [])}
        mine = {c.get("type") + ":" + _config_name(c): comparable(c)
                for c in (column_to_config(col) for col in self.feature_columns)}
        differing = sorted({k.split(":", 1)[1] for k in set(saved) ^ set(mine)}
                           | {k.split(":", 1)[1] for k in set(saved) & set(mine) if saved[k] != mine[k]})
        head = attrs.get("head") or {}
        problems = []
        if differing:
            problems.append(f"feature columns {', '.join(map(repr, differing))} differ")
        if head and (head.get("n_classes"), head.get("label_vocabulary")) != (
                self.n_classes, list(self.label_vocabulary) if self.label_vocabulary else None):
            problems.append(f"the head differs (n_classes {head.get('n_classes')}, label_vocabulary"
                            f" {head.get('label_vocabulary')})")
        if problems:
            raise ConfigError(
                f"{model_dir} holds a model trained with another spec: {'; '.join(problems)}. Use a new"
                " --model-dir for the new spec, or train without --spec to continue the old model.")


def _config_name(config: dict) -> str:
    try:
        from streamlin.feature_column.serialize import column_from_config

        return column_from_config(config, allow_unresolved=True).name
    except Exception:  # noqa: BLE001 - only used to label a difference
        return str(config.get("key", "?"))


def _strip_paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_paths(v) for k, v in value.items() if k != "vocabulary_file"}
    if isinstance(value, list):
        return [_strip_paths(v) for v in value]
    return value


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _extension_format(name: str) -> str | None:
    return EXTENSIONS.get(Path(name).suffix.lower())


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------
class _Reader:
    """Checks one spec's data, naming the file and the key in every error."""

    def __init__(self, source: str, root: Path):
        self.source = source
        self.root = root
        self.vocabulary_files: dict[str, str] = {}

    def error(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {message}")

    def check_keys(self, table: Mapping, allowed: Iterable[str], where: str) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                close = [a for a in allowed if _similar(key, a)]
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise self.error(where, f"unknown key {key!r}.{hint} Known keys: {', '.join(allowed)}.")

    def get(self, table: Mapping, key: str, kinds: tuple, where: str, default: Any = None,
            required: bool = False, what: str | None = None) -> Any:
        if key not in table:
            if required:
                raise self.error(where, f"{key!r} is missing; add {key} = <{what or _kind_names(kinds)}>.")
            return default
        value = table[key]
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        else:
            ok = isinstance(value, kinds)
        if not ok:
            raise self.error(where, f"{key} must be {what or _kind_names(kinds)}; found {_show(value)}.")
        return value

    def positive_int(self, table: Mapping, key: str, where: str, default: Any = None) -> Any:
        value = self.get(table, key, (int,), where, default, what="a positive integer")
        if value is not None and value < 1:
            raise self.error(where, f"{key} must be a positive integer; found {value}.")
        return value

    def string_list(self, table: Mapping, key: str, where: str, required: bool = False) -> tuple[str, ...] | None:
        value = self.get(table, key, (list,), where, required=required, what="a list of strings")
        if value is None:
            return None
        for item in value:
            if not isinstance(item, str):
                raise self.error(where, f"{key} must be a list of strings; found {_show(item)} in it.")
        return tuple(value)

    # -- sections -------------------------------------------------------------------------------
    def input_options(self, table: Any) -> InputOptions:
        where = "[input]"
        if not isinstance(table, dict):
            raise self.error("input", f"must be a table ([input]); found {_show(table)}.")
        self.check_keys(table, _INPUT_KEYS, where)
        kind = self.get(table, "format", (str,), where)
        if kind is not None:
            kind = kind.lower()
            if kind in ("ipc", "feather"):
                kind = "arrow"
            if kind not in FORMATS:
                raise self.error(where, f"format must be one of {', '.join(map(repr, FORMATS))}; found {table['format']!r}.")
        delimiter = self.get(table, "delimiter", (str,), where)
        if delimiter is not None and len(delimiter) != 1:
            raise self.error(where, f"delimiter must be one character; found {delimiter!r} (write \"\\t\" for a tab).")
        column_types = self.get(table, "column_types", (dict,), where, {}, what="a table of column = \"type\"")
        for name, type_name in column_types.items():
            if not isinstance(type_name, str):
                raise self.error(where, f"column_types.{name} must be a type name such as \"string\"; found {_show(type_name)}.")
            try:
                pa.type_for_alias(type_name)
            except (ValueError, KeyError):
                raise self.error(where, f"column_types.{name}: {type_name!r} is not a pyarrow type name; use e.g."
                                        " \"string\", \"int64\", \"float64\".") from None
        seed = self.get(table, "seed", (int,), where)
        return InputOptions(kind, delimiter, self.get(table, "header", (bool,), where, True),
                            self.string_list(table, "column_names", where), dict(column_types),
                            self.get(table, "shuffle_files", (bool,), where, False), seed)

    def checkpoint_policy(self, table: Any) -> dict:
        where = "[checkpoints]"
        if not isinstance(table, dict):
            raise self.error("checkpoints", f"must be a table ([checkpoints]); found {_show(table)}.")
        self.check_keys(table, _CHECKPOINT_KEYS, where)
        policy: dict[str, Any] = {}
        for key in ("save_checkpoints_steps", "keep_checkpoint_max", "log_step_count_steps"):
            value = self.get(table, key, (int,), where, what="an integer >= 0")
            if value is not None:
                if value < 0:
                    raise self.error(where, f"{key} must be an integer >= 0; found {value}.")
                policy[key] = value
        for key in ("save_checkpoints_secs", "keep_checkpoint_every_n_hours"):
            value = self.get(table, key, (int, float), where, what="a number >= 0")
            if value is not None:
                if not value >= 0:
                    raise self.error(where, f"{key} must be a number >= 0; found {value}.")
                policy[key] = value
        keep_best = self.get(table, "keep_best", (dict,), where,
                             what='a table such as { metric = "auc", mode = "max", n = 1 }')
        if keep_best is not None:
            self.check_keys(keep_best, _KEEP_BEST_KEYS, f"{where} keep_best")
            from streamlin.checkpoint.store import KeepBest

            try:
                KeepBest(**keep_best)
            except (ConfigError, TypeError) as exc:
                raise self.error(f"{where} keep_best", str(exc)) from None
            policy["keep_best"] = dict(keep_best)
        try:
            RunConfig(**{k: v for k, v in policy.items() if k != "keep_best"})
        except ConfigError as exc:
            raise self.error(where, str(exc)) from None
        return policy

    def optimizer(self, table: Any) -> Any:
        where = "[optimizer]"
        if isinstance(table, str):
            table = {"type": table}
        if not isinstance(table, dict):
            raise self.error("optimizer", f"must be a table ([optimizer] with type = \"Ftrl\"); found {_show(table)}.")
        name = self.get(table, "type", (str,), where, "Ftrl")
        cls = _OPTIMIZERS.get(name.lower())
        if cls is None:
            raise self.error(where, f"type must be \"Ftrl\", \"Adagrad\" or \"SGD\"; found {name!r}.")
        fields_ = [f.name for f in dataclasses.fields(cls)]
        self.check_keys(table, ("type",) + tuple(fields_), f"{where} ({cls.__name__})")
        arguments: dict[str, Any] = {}
        for key in fields_:
            if key not in table:
                continue
            value = table[key]
            if key == "learning_rate" and isinstance(value, dict):
                value = self.schedule(value)
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(where, f"{key} must be a number; found {_show(value)}.")
            arguments[key] = value
        arguments.setdefault("learning_rate", DEFAULT_LEARNING_RATE)
        try:
            return cls(**arguments)
        except (ConfigError, TypeError) as exc:
            raise self.error(where, str(exc)) from None

    def schedule(self, table: dict) -> ExponentialDecay:
        where = "[optimizer] learning_rate"
        kind = table.get("type", table.get("class"))
        if kind != "ExponentialDecay":
            raise self.error(where, f"a schedule must have type = \"ExponentialDecay\"; found {_show(kind)}.")
        allowed = ("type", "class", "initial_learning_rate", "decay_steps", "decay_rate", "staircase")
        self.check_keys(table, allowed, where)
        try:
            return ExponentialDecay(
                float(self.get(table, "initial_learning_rate", (int, float), where, required=True)),
                self.get(table, "decay_steps", (int,), where, required=True),
                float(self.get(table, "decay_rate", (int, float), where, required=True)),
                self.get(table, "staircase", (bool,), where, False))
        except ConfigError as exc:
            raise self.error(where, str(exc)) from None

    # -- columns --------------------------------------------------------------------------------
    def columns(self, tables: Any) -> tuple:
        if not isinstance(tables, list) or not tables:
            raise self.error("columns", "give at least one [[columns]] table, e.g.\n"
                             "[[columns]]\ntype = \"hash_bucket\"\nkey = \"user\"\nhash_bucket_size = 1048576")
        for i, table in enumerate(tables):
            if not isinstance(table, dict):
                raise self.error(f"columns[{i}]", f"must be a table ([[columns]]); found {_show(table)}.")
        built: list[Any] = [None] * len(tables)
        by_name: dict[str, tuple[int, Any]] = {}
        pending = list(range(len(tables)))
        while pending:
            progress = []
            for i in pending:
                column = self.column(tables[i], f"columns[{i}]", by_name, defer=True)
                if column is None:
                    continue
                built[i] = column
                progress.append(i)
                if column.name in by_name:
                    raise self.error(
                        f"columns[{i}]", f"a column named {column.name!r} is already defined by"
                        f" columns[{by_name[column.name][0]}]; names must be unique.")
                by_name[column.name] = (i, column)
            if not progress:  # an unresolved reference: report it
                self.column(tables[pending[0]], f"columns[{pending[0]}]", by_name, defer=False)
            pending = [i for i in pending if i not in progress]
        return tuple(built)

    def column(self, table: dict, where: str, by_name: Mapping[str, tuple[int, Any]], defer: bool,
               top: bool = True) -> Any:
        kind_name = self.get(table, "type", (str,), where, required=True, what="a column type such as \"numeric\"")
        kind = _KINDS.get(kind_name)
        if kind is None:
            raise self.error(where, f"type {kind_name!r} is unknown; use one of "
                             + ", ".join(sorted({k for k in _KINDS if "_column" not in k})) + ".")
        self.check_keys(table, ("type",) + _COLUMN_KEYS[kind], f"{where} ({kind})")
        key = table.get("key")
        label = f"{where} ({kind}{f' {key!r}' if isinstance(key, str) else ''})"
        try:
            return getattr(self, f"_{kind}")(table, label, by_name, defer)
        except ConfigError as exc:
            if str(exc).startswith(self.source):
                raise
            raise self.error(label, str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.error(label, f"{exc}. Check the value types against the column's factory.") from None

    def _require(self, table: dict, name: str, where: str, what: str) -> Any:
        if name not in table:
            raise self.error(where, f"{name!r} is missing; add {name} = <{what}>.")
        return table[name]

    def _numeric(self, table, where, by_name=None, defer=False) -> NumericColumn:
        key = self._require(table, "key", where, "a feature name")
        shape = table.get("shape", (1,))
        if isinstance(shape, list):
            shape = tuple(shape)
        normalizer = self.get(table, "normalizer_fn", (str,), where, what='"module:function"')
        if normalizer is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", normalizer):
            raise self.error(where, f"normalizer_fn must be an import name \"module:function\"; found {normalizer!r}.")
        default = table.get("default_value")
        if isinstance(default, bool) or (default is not None and not isinstance(default, (int, float, list))):
            raise self.error(where, f"default_value must be a number or a list of numbers; found {_show(default)}.")
        return NumericColumn(key, shape, default, table.get("dtype", "float32"), None, normalizer)

    def _bucketized(self, table, where, by_name=None, defer=False) -> BucketizedColumn:
        boundaries = self._require(table, "boundaries", where, "a sorted list of numbers")
        if not isinstance(boundaries, list) or any(isinstance(b, bool) or not isinstance(b, (int, float))
                                                   for b in boundaries):
            raise self.error(where, f"boundaries must be a sorted list of numbers; found {_show(boundaries)}.")
        if "source" in table:
            source_table = table["source"]
            if not isinstance(source_table, dict) or any(k in table for k in _NUMERIC_KEYS):
                raise self.error(where, "give either source = { key = ..., ... } or key = ... (with its numeric"
                                        " options), not both.")
            source = self._numeric(source_table, where + " source")
        else:
            source = self._numeric(table, where)
        return fc.bucketized_column(source, boundaries)

    def _hash_bucket(self, table, where, by_name=None, defer=False) -> HashedCategoricalColumn:
        key = self._require(table, "key", where, "a feature name")
        size = self._require(table, "hash_bucket_size", where, "an integer such as 1048576")
        return fc.categorical_column_with_hash_bucket(key, size, table.get("dtype", "string"))

    def _vocabulary_list(self, table, where, by_name=None, defer=False) -> VocabularyListCategoricalColumn:
        key = self._require(table, "key", where, "a feature name")
        vocabulary = self._require(table, "vocabulary_list", where, "a list of strings or ints")
        if not isinstance(vocabulary, list):
            raise self.error(where, f"vocabulary_list must be a list; found {_show(vocabulary)}.")
        return fc.categorical_column_with_vocabulary_list(key, vocabulary, table.get("dtype"),
                                                          table.get("default_value", -1),
                                                          table.get("num_oov_buckets", 0))

    def _vocabulary_file(self, table, where, by_name=None, defer=False) -> VocabularyFileCategoricalColumn:
        key = self._require(table, "key", where, "a feature name")
        relative = self._require(table, "vocabulary_file", where, "a path relative to the spec's folder")
        if not isinstance(relative, str) or not relative:
            raise self.error(where, f"vocabulary_file must be a path; found {_show(relative)}.")
        path = self.inside_root(relative, where)
        size = table.get("vocabulary_size")
        if size is not None:
            fc.columns._check_size("categorical_column_with_vocabulary_file", key, "vocabulary_size", size)
        column = fc.categorical_column_with_vocabulary_file(key, str(path), size, table.get("dtype", "string"),
                                                            table.get("default_value"), table.get("num_oov_buckets", 0))
        self.vocabulary_files[Path(os.path.relpath(path, self.root)).as_posix()] = str(path)
        return column

    def inside_root(self, relative: str, where: str) -> Path:
        if os.path.isabs(relative) or re.match(r"^[A-Za-z]:", relative):
            raise self.error(where, f"vocabulary_file {relative!r} must be relative to the spec's folder {self.root};"
                                    " copy the file next to the spec.")
        root = self.root.resolve()
        path = (root / relative).resolve()
        if path != root and root not in path.parents:
            raise self.error(where, f"vocabulary_file {relative!r} leaves the spec's folder {root}; keep vocabulary"
                                    " files inside it (e.g. vocab/country.txt).")
        if not path.is_file():
            raise self.error(where, f"vocabulary_file {relative!r} does not exist (looked for {path}).")
        return path

    def _identity(self, table, where, by_name=None, defer=False) -> IdentityCategoricalColumn:
        key = self._require(table, "key", where, "a feature name")
        buckets = self._require(table, "num_buckets", where, "an integer")
        return fc.categorical_column_with_identity(key, buckets, table.get("default_value"))

    def _weighted(self, table, where, by_name=None, defer=False) -> WeightedCategoricalColumn:
        inner = self._require(table, "categorical", where,
                              '{ type = "identity", key = ..., num_buckets = ... } or another categorical column')
        if not isinstance(inner, dict):
            raise self.error(where, f"categorical must be an inline column table; found {_show(inner)}.")
        weight_key = self._require(table, "weight_feature_key", where, "the feature holding the weights")
        categorical = self.column(inner, where + " categorical", by_name or {}, defer=False, top=False)
        return fc.weighted_categorical_column(categorical, weight_key, table.get("dtype", "float32"))

    def _crossed(self, table, where, by_name, defer) -> CrossedColumn | None:
        keys = self._require(table, "keys", where, 'a list of feature names, { column = "name" } or column tables')
        if not isinstance(keys, list):
            raise self.error(where, f"keys must be a list; found {_show(keys)}.")
        resolved: list[Any] = []
        for j, key in enumerate(keys):
            if isinstance(key, str):
                resolved.append(key)
            elif isinstance(key, dict) and "column" in key:
                if set(key) != {"column"} or not isinstance(key["column"], str):
                    raise self.error(where, f"keys[{j}]: a reference is {{ column = \"<name>\" }} alone; found {_show(key)}.")
                found = by_name.get(key["column"])
                if found is None:
                    if defer:
                        return None
                    raise self.error(where, f"keys[{j}] refers to column {key['column']!r}, which no [[columns]] entry"
                                            f" defines; defined: {', '.join(sorted(by_name)) or 'none'}.")
                resolved.append(found[1])
            elif isinstance(key, dict):
                resolved.append(self.column(key, f"{where} keys[{j}]", by_name, defer=False, top=False))
            else:
                raise self.error(where, f"keys[{j}] must be a feature name, {{ column = \"<name>\" }} or a column"
                                        f" table; found {_show(key)}.")
        size = self._require(table, "hash_bucket_size", where, "an integer such as 10000")
        return fc.crossed_column(resolved, size, table.get("hash_key"))

    # -- the whole spec ---------------------------------------------------------------------------
    def spec(self, doc: dict, text: str | None, path: str | None) -> Spec:
        self.check_keys(doc, _TOP_KEYS, "top level")
        where = "top level"
        label_key = self.get(doc, "label_key", (str,), where, required=True,
                             what="a string (the label column's name)")
        weight_column = self.get(doc, "weight_column", (str,), where)
        if weight_column is not None and weight_column == label_key:
            raise self.error(where, f"weight_column and label_key are both {label_key!r}; they must differ.")
        vocabulary = self.string_list(doc, "label_vocabulary", where)
        n_classes = self.get(doc, "n_classes", (int,), where, len(vocabulary) if vocabulary else 2,
                             what="an integer >= 2")
        loss_reduction = self.get(doc, "loss_reduction", (str,), where, "sum_over_batch_size")
        try:
            head = Head(n_classes, vocabulary, loss_reduction)
        except ConfigError as exc:
            raise self.error(where, str(exc)) from None
        sparse_combiner = self.get(doc, "sparse_combiner", (str,), where, "sum")
        if sparse_combiner not in ("sum", "mean", "sqrtn"):
            raise self.error(where, f"sparse_combiner must be \"sum\", \"mean\" or \"sqrtn\"; found {sparse_combiner!r}.")
        batch_size = self.positive_int(doc, "batch_size", where, DEFAULT_BATCH_SIZE)
        num_epochs = self.positive_int(doc, "num_epochs", where, 1)
        options = self.input_options(doc.get("input", {}))
        optimizer = self.optimizer(doc.get("optimizer", {}))
        policy = self.checkpoint_policy(doc.get("checkpoints", {}))
        columns = self.columns(doc.get("columns"))
        keys = {k for c in columns for k in c.keys}
        for name, role in ((label_key, "label_key"), (weight_column, "weight_column")):
            if name is not None and name in keys:
                readers = [c.name for c in columns if name in c.keys]
                raise self.error(where, f"{role} {name!r} is also read by column {readers[0]!r}; a model must not"
                                        " see its label or weights as a feature. Remove it from [[columns]].")
        spec = Spec(label_key, columns, weight_column, head.n_classes, head.label_vocabulary, optimizer,
                    head.loss_reduction, sparse_combiner, batch_size, num_epochs, options, policy, path,
                    str(self.root), text, dict(self.vocabulary_files))
        check_size(spec, self.source)
        return spec


def check_size(spec: Spec, source: str = "spec") -> None:
    """Refuse a model whose weight and slot tables cannot fit in this machine's memory.

    Raises
    ------
    ConfigError
        Naming the largest column and the size it would take.
    """
    units = 1 if spec.n_classes == 2 else spec.n_classes
    optimizer = spec.optimizer
    parts = 1 + len(getattr(optimizer, "slot_names", ("accumulator", "linear")))
    sizes = [(c.num_buckets, c.name) for c in spec.feature_columns]
    n_bytes = (sum(s for s, _ in sizes) + 1) * parts * units * 4
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if n_bytes > memory:
        largest = max(sizes)
        raise ConfigError(
            f"{source}: the model needs {n_bytes / 2**30:.1f} GiB for weights and optimizer slots, more than this"
            f" machine's {memory / 2**30:.1f} GiB; the largest column is {largest[1]!r} with {largest[0]:,}"
            " buckets. Use smaller hash_bucket_size values.")


def _similar(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    if a == b or a.replace("-", "_") == b:
        return True
    if abs(len(a) - len(b)) > 2:
        return False
    # edit distance <= 2 (small strings)
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] <= 2


def _kind_names(kinds: tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
             dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    kind = {bool: "boolean", int: "integer", float: "number", list: "list", dict: "table"}.get(type(value),
                                                                                             type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}"


def _parse(text: str, source: str) -> dict:
    if tomllib is None:
        raise ConfigError("reading a TOML spec needs Python 3.11 or later (tomllib), or `pip install tomli`.")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}.") from None


def loads(text: str, *, root: str | os.PathLike | None = None, source: str = "<spec>") -> Spec:
    """Parse spec TOML ``text``; vocabulary files are relative to ``root`` (default: the working folder).

    Raises
    ------
    ConfigError
        The TOML is malformed, or a key is unknown, missing or invalid (the message names it).
    """
    doc = _parse(text, source)
    return _Reader(source, Path(root) if root is not None else Path.cwd()).spec(doc, text, None)


def load(path: str | os.PathLike) -> Spec:
    """Read and check the spec file at ``path`` (vocabulary files are relative to its folder).

    Raises
    ------
    ConfigError
        The file is missing or malformed, or a key is unknown, missing or invalid.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read spec {path}: {exc.strerror or exc}. Write one with `streamlin init DATA"
                          " --label-key NAME`.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc}).") from None
    doc = _parse(text, str(path))
    spec = _Reader(str(path), path.resolve().parent).spec(doc, text, str(path))
    return spec


def from_snapshot(path: str | os.PathLike) -> Spec:
    """The spec of the model saved in a snapshot's attributes (no label_key or input options).

    Raises
    ------
    CheckpointError
        The snapshot is missing or damaged.
    """
    from streamlin.checkpoint import store
    from streamlin.feature_column.serialize import column_from_config

    _, attrs = store.load_snapshot(path, names=[])
    head = attrs.get("head") or {}
    columns = tuple(column_from_config(c, allow_unresolved=True) for c in attrs.get("feature_columns", []))
    optimizer = optimizer_from_config(attrs["optimizer"]) if attrs.get("optimizer") else None
    vocabulary = head.get("label_vocabulary")
    return Spec(None, columns, attrs.get("weight_column"), int(head.get("n_classes", 2)),
                tuple(vocabulary) if vocabulary else None, optimizer,
                head.get("loss_reduction", "sum_over_batch_size"), attrs.get("sparse_combiner", "sum"),
                path=str(path))


def from_model_dir(model_dir: str | os.PathLike) -> Spec:
    """``model_dir/streamlin.toml`` if there is one, else the spec recorded in the latest snapshot.

    Raises
    ------
    ConfigError, CheckpointError
        Neither exists, or the spec is invalid.
    """
    from streamlin.checkpoint import store

    path = Path(model_dir) / SPEC_FILE
    if path.is_file():
        return load(path)
    if not Path(model_dir).is_dir():
        raise ConfigError(f"model_dir {model_dir} does not exist. Train first: streamlin train DATA --spec SPEC"
                          f" --model-dir {model_dir}")
    latest = store.latest_snapshot(model_dir)
    if latest is None:
        raise ConfigError(f"{model_dir} has neither {SPEC_FILE} nor a checkpoint. Train first, or pass --spec.")
    return from_snapshot(latest.path)


# ------------------------------------------------------------------------------------------------
# writing: columns and optimizers as tables, and a small TOML emitter
# ------------------------------------------------------------------------------------------------
def _numeric_fields(column: NumericColumn, table: dict) -> dict:
    table["key"] = column.key
    if column.shape != (1,):
        table["shape"] = list(column.shape)
    if column.default_value is not None:
        table["default_value"] = column.default_value[0] if len(column.default_value) == 1 else list(column.default_value)
    if column.dtype != "float32":
        table["dtype"] = column.dtype
    if column.normalizer_name:
        table["normalizer_fn"] = column.normalizer_name
    return table


def column_table(column: Any, root: str | os.PathLike | None = None, named: Mapping | None = None,
                 top: bool = False) -> dict:
    """A spec ``[[columns]]`` table for ``column`` (the inverse of reading one).

    Inside a cross, a column that is also one of ``named`` (column -> name) is written as a
    ``{ column = "<name>" }`` reference.
    """
    named = named or {}
    if not top and column in named:
        return {"column": named[column]}
    if isinstance(column, NumericColumn):
        return _numeric_fields(column, {"type": "numeric"})
    if isinstance(column, BucketizedColumn):
        table = _numeric_fields(column.source_column, {"type": "bucketized"})
        table["boundaries"] = [int(b) if float(b).is_integer() and abs(b) < 2**53 else b for b in column.boundaries]
        return table
    if isinstance(column, HashedCategoricalColumn):
        table = {"type": "hash_bucket", "key": column.key, "hash_bucket_size": column.hash_bucket_size}
        if column.dtype != "string":
            table["dtype"] = column.dtype
        return table
    if isinstance(column, VocabularyListCategoricalColumn):
        table = {"type": "vocabulary_list", "key": column.key, "vocabulary_list": list(column.vocabulary_list)}
        if column.default_value != -1:
            table["default_value"] = column.default_value
        if column.num_oov_buckets:
            table["num_oov_buckets"] = column.num_oov_buckets
        return table
    if isinstance(column, VocabularyFileCategoricalColumn):
        path = column.vocabulary_file
        if root is not None and os.path.isabs(path):
            path = Path(os.path.relpath(path, root)).as_posix()
        table = {"type": "vocabulary_file", "key": column.key, "vocabulary_file": path}
        if column.dtype != "string":
            table["dtype"] = column.dtype
        if column.default_value != -1:
            table["default_value"] = column.default_value
        if column.num_oov_buckets:
            table["num_oov_buckets"] = column.num_oov_buckets
        return table
    if isinstance(column, IdentityCategoricalColumn):
        table = {"type": "identity", "key": column.key, "num_buckets": column.num_buckets}
        if column.default_value is not None:
            table["default_value"] = column.default_value
        return table
    if isinstance(column, WeightedCategoricalColumn):
        table = {"type": "weighted", "categorical": column_table(column.categorical_column, root),
                 "weight_feature_key": column.weight_feature_key}
        if column.dtype != "float32":
            table["dtype"] = column.dtype
        return table
    if isinstance(column, CrossedColumn):
        table = {"type": "crossed",
                 "keys": [k if isinstance(k, str) else column_table(k, root, named) for k in column.keys_],
                 "hash_bucket_size": column.hash_bucket_size}
        if column.hash_key is not None:
            table["hash_key"] = column.hash_key
        return table
    raise ConfigError(f"cannot write {column!r} to a spec: not a streamlin feature column.")


def optimizer_table(optimizer: Any) -> dict:
    """A spec ``[optimizer]`` table (every hyper-parameter written out)."""
    if optimizer is None:
        return {"type": "Ftrl", "learning_rate": DEFAULT_LEARNING_RATE}
    config = optimizer.to_config()
    table: dict[str, Any] = {"type": config.pop("class")}
    for key, value in config.items():
        if key.endswith("_unsaved"):
            continue
        if isinstance(value, dict):
            value = {"type": value.get("class"), **{k: v for k, v in value.items() if k != "class"}}
        if value is None:
            raise ConfigError(
                f"the optimizer's {key} is a plain callable ({config.get(key + '_unsaved')}); a spec can hold only"
                " numbers or an ExponentialDecay schedule.")
        table[key] = value
    return table


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_value(value: Any) -> str:
    """One TOML value: strings, ints, floats (inf/nan too), booleans, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items() if v is not None) + " }" \
            if value else "{}"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to TOML.")


def _wrap_array(key: str, value: list, width: int = 100) -> str:
    line = f"{_toml_key(key)} = {toml_value(value)}"
    if len(line) <= width or not value:
        return line
    lines, current = [f"{_toml_key(key)} = ["], "   "
    for item in value:
        text = toml_value(item) + ","
        if len(current) + len(text) + 1 > width and current.strip():
            lines.append(current)
            current = "   "
        current += " " + text
    if current.strip():
        lines.append(current)
    lines.append("]")
    return "\n".join(lines)


def _table_lines(table: Mapping) -> list[str]:
    lines = []
    comment = table.get("#")
    if comment:
        lines.extend(f"# {line}".rstrip() for line in str(comment).splitlines())
    for key, value in table.items():
        if key == "#" or value is None:
            continue
        if isinstance(value, (list, tuple)):
            lines.append(_wrap_array(key, list(value)))
        else:
            lines.append(f"{_toml_key(key)} = {toml_value(value)}")
    return lines


def dumps(doc: Mapping, header: str | None = None) -> str:
    """TOML text for ``doc``: scalars and arrays first, then ``[tables]``, then ``[[arrays of tables]]``.

    A ``"#"`` entry in a table is written as a comment above it; ``None`` values are left out.
    """
    lines: list[str] = []
    if header:
        lines.extend(f"# {line}".rstrip() for line in header.splitlines())
    scalars = {k: v for k, v in doc.items() if not (isinstance(v, Mapping) and k != "#")
               and not (isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v))}
    lines.extend(_table_lines(scalars))
    for key, value in doc.items():
        if isinstance(value, Mapping) and key != "#":
            lines.append("")
            lines.append(f"[{_toml_key(key)}]")
            lines.extend(_table_lines(value))
    for key, value in doc.items():
        if isinstance(value, list) and value and all(isinstance(x, Mapping) for x in value):
            for item in value:
                lines.append("")
                comment = item.get("#")
                if comment:
                    lines.extend(f"# {line}".rstrip() for line in str(comment).splitlines())
                lines.append(f"[[{_toml_key(key)}]]")
                lines.extend(_table_lines({k: v for k, v in item.items() if k != "#"}))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# a starter spec from data (`streamlin init`)
# ------------------------------------------------------------------------------------------------
VOCABULARY_LIST_MAX = 50           # distinct strings up to this: a vocabulary list, else a hash bucket
HASH_BUCKETS_MAX = 2**22
LABEL_CLASSES_MAX = 1000


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 1).bit_length()


def hash_bucket_size_for(distinct: int) -> int:
    """A starter hash_bucket_size: the power of two >= 4 x distinct values, at most 2**22."""
    return min(max(_next_pow2(4 * max(distinct, 1)), 16), HASH_BUCKETS_MAX)


def _quantile_boundaries(values, count: int = 10) -> list:
    import numpy as np

    qs = list(np.quantile(values, np.linspace(0, 1, count + 1)[1:-1], method="higher"))
    uniques, counts = np.unique(values, return_counts=True)
    mode = uniques[np.argmax(counts)]
    if len(set(qs)) < 3 and len(uniques) > 3:  # one value dominates (zeros): split the others at their deciles
        rest = values[values != mode]
        qs = sorted(set(qs) | set(np.quantile(rest, np.linspace(0, 1, count + 1)[1:-1], method="higher").tolist())
                    | {float(np.min(values[values > mode])) if np.any(values > mode) else float(mode)})
    out: list = []
    for q in qs:
        value = float(q)
        if np.issubdtype(values.dtype, np.integer) or value.is_integer():
            value = int(round(value)) if abs(value) < 2**53 else value
        else:
            value = float(f"{value:.4g}")
        if value not in out and value > float(values.min()):
            out.append(value)
    return out


def _sample(paths: Any, options: InputOptions, rows: int) -> tuple[pa.RecordBatch, list[str], int | None]:
    """Up to ``rows`` rows of ``paths`` (all columns), the files, and the total row count if known."""
    probe = Spec(None, (), batch_size=rows, input=options)
    fn = probe.input_fn(paths, for_training=False, batch_size=rows, label_key=None)
    kind, files = probe.files(paths)
    total = None
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        except (pa.ArrowInvalid, OSError):
            total = None
    for chunk in fn.chunks(columns=None, chunk_rows=rows):
        batch = chunk.features
        if kind == "csv":
            batch = _keep_leading_zeros(batch, paths, options, rows)
        return batch, files, total
    raise ConfigError(f"{files[0]}: the data has no rows; init needs a sample to infer column kinds.")


def _keep_leading_zeros(batch: pa.RecordBatch, paths: Any, options: InputOptions, rows: int) -> pa.RecordBatch:
    """CSV columns read as numbers whose text has leading zeros ("00123": zip codes, ids) as strings."""
    import pyarrow.compute as pc

    numeric = [n for n in batch.schema.names if pa.types.is_integer(batch.schema.field(n).type)]
    if not numeric:
        return batch
    types = {**dict(options.column_types), **{n: "string" for n in numeric if n not in options.column_types}}
    probe = Spec(None, (), batch_size=rows, input=dataclasses.replace(options, column_types=types))
    text = next(iter(probe.input_fn(paths, for_training=False, batch_size=rows, label_key=None)
                     .chunks(columns=numeric, chunk_rows=rows))).features
    for name in numeric:
        if name in options.column_types:
            continue
        raw = text.column(name)
        if pc.any(pc.match_substring_regex(raw, r"^[+-]?0[0-9]")).as_py():
            index = batch.schema.get_field_index(name)
            batch = batch.set_column(index, pa.field(name, pa.string()), raw.slice(0, batch.num_rows))
    return batch


def infer(paths: Any, label_key: str, weight_column: str | None = None, *, sample_rows: int = 100_000,
          options: InputOptions | None = None, source: str | None = None) -> str:
    """A starter spec (TOML text) inferred from the schema and a sample of the data at ``paths``.

    Strings with at most 50 distinct values become vocabulary lists (with one OOV bucket), others
    hash buckets of a power of two >= 4 x the distinct count (at most 2**22). Integers with at most
    50 distinct values become identity columns when they are small codes, else vocabulary lists;
    other numbers become numeric columns, bucketized at the sample's deciles when their range is
    wide (a raw large number makes a linear model ill-conditioned). Empty numbers get a
    ``default_value``. A string label gets a ``label_vocabulary``. Columns that are unique per row
    (identifiers), constant, or a copy of the label are left out, with the reason in a comment.

    Raises
    ------
    ConfigError
        The label or weight column is missing or unusable.
    InputError
        The data cannot be read.
    """
    import numpy as np
    import pyarrow.compute as pc

    options = options or InputOptions()
    batch, files, total = _sample(paths, options, sample_rows)
    names = batch.schema.names
    for role, name in (("--label-key", label_key), ("--weight-column", weight_column)):
        if name is not None and name not in names:
            raise ConfigError(f"{files[0]}: {role} column {name!r} is missing; the data has {', '.join(map(repr, names))}.")
    n = batch.num_rows
    doc: dict[str, Any] = {"label_key": label_key}
    label = _decoded(batch.column(label_key))
    label_comment, label_fields, label_codes = _infer_label(label, label_key, files[0])
    if weight_column is not None:
        weights = batch.column(weight_column)
        if not (pa.types.is_integer(weights.type) or pa.types.is_floating(weights.type)):
            raise ConfigError(f"{files[0]}: --weight-column {weight_column!r} must hold numbers; found {weights.type}.")
        doc["weight_column"] = weight_column
    doc.update(label_fields)
    doc["batch_size"] = 256
    doc["num_epochs"] = 1
    doc["loss_reduction"] = "sum_over_batch_size"
    doc["sparse_combiner"] = "sum"
    kind, _ = Spec(None, (), input=options).files(files[:1])
    columns: list[dict] = []
    left_out: list[str] = []
    string_columns: list[str] = []
    for name in names:
        if name in (label_key, weight_column):
            continue
        array = _decoded(batch.column(name))
        t = array.type
        valid = array.drop_null() if array.null_count else array
        if is_flat_string_type(t):
            string_columns.append(name)
            present = valid.filter(pc.not_equal(valid, "")) if len(valid) else valid
            counts = pc.value_counts(present) if len(present) else None
            distinct = len(counts) if counts is not None else 0
            empty = n - len(present)
            if distinct == 0:
                left_out.append(f"{name}: empty in the sample")
                continue
            if distinct == 1 and empty == 0:
                left_out.append(f"{name}: one value ({counts[0]['values'].as_py()!r}) in every sampled row")
                continue
            if n >= 1000 and distinct >= 0.9 * len(present):
                left_out.append(f"{name}: {distinct:,} distinct values in {len(present):,} rows, an identifier?"
                                " (add a hash_bucket column if it is a real feature)")
                continue
            if distinct <= VOCABULARY_LIST_MAX and _copies_label(present, label_codes, valid_mask=_present_mask(array)):
                left_out.append(f"{name}: determines the label exactly in the sample (a copy of it?)")
                continue
            if distinct <= VOCABULARY_LIST_MAX:
                order = sorted((-c["counts"].as_py(), c["values"].as_py()) for c in counts)
                columns.append({"#": f"{distinct} distinct values in the sample, most frequent first",
                                "type": "vocabulary_list", "key": name, "vocabulary_list": [v for _, v in order],
                                "num_oov_buckets": 1})
            else:
                size = hash_bucket_size_for(distinct)
                note = f"{distinct:,} distinct values in the sample; 2^{size.bit_length() - 1} buckets"
                if total and total > n:
                    note += " (more may appear beyond the sample: raise the size if so)"
                columns.append({"#": note, "type": "hash_bucket", "key": name, "hash_bucket_size": size})
            continue
        if pa.types.is_boolean(t):
            columns.append({"#": "true/false", "type": "numeric", "key": name,
                            **({"default_value": 0.0} if array.null_count else {})})
            continue
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            values = pc.cast(valid, pa.float64()).to_numpy(zero_copy_only=False) if not pa.types.is_integer(t) \
                else valid.to_numpy(zero_copy_only=False)
            if pa.types.is_floating(t):
                values = values[np.isfinite(values)]
            empty = n - len(values)
            if len(values) == 0:
                left_out.append(f"{name}: empty in the sample")
                continue
            unique = np.unique(values)
            if len(unique) == 1:
                left_out.append(f"{name}: one value ({unique[0]!r}) in every sampled row")
                continue
            integral = pa.types.is_integer(t)
            if integral and len(unique) <= VOCABULARY_LIST_MAX and _copies_label(valid, label_codes,
                                                                                  valid_mask=_present_mask(array)):
                left_out.append(f"{name}: determines the label exactly in the sample (a copy of it?)")
                continue
            if integral and n >= 1000 and len(unique) >= 0.9 * len(values) and np.all(np.diff(np.sort(values)) >= 1) \
                    and (unique[-1] - unique[0]) < 1.5 * len(values):
                left_out.append(f"{name}: unique consecutive integers per row, a row id?")
                continue
            default = {"default_value": 0.0} if empty else {}
            empty_note = f"; {empty:,} empty values in the sample read as default_value" if empty else ""
            if integral and len(unique) <= VOCABULARY_LIST_MAX and set(unique.tolist()) != {0, 1}:
                low, high = int(unique[0]), int(unique[-1])
                if low >= 0 and high < max(2 * len(unique), 16) and not empty:
                    columns.append({"#": f"integer codes {low}..{high} ({len(unique)} distinct); ids outside"
                                         f" [0, {high + 1}) raise: set default_value to map them",
                                    "type": "identity", "key": name, "num_buckets": high + 1})
                else:
                    columns.append({"#": f"{len(unique)} distinct integers in the sample{empty_note}",
                                    "type": "vocabulary_list", "key": name,
                                    "vocabulary_list": [int(v) for v in unique], "num_oov_buckets": 1})
                continue
            wide = float(np.max(np.abs(values))) > 10.0 and len(unique) > 2
            if wide:
                boundaries = _quantile_boundaries(values)
                if boundaries:
                    columns.append({"#": f"{len(unique):,} distinct values from {_num(unique[0])} to {_num(unique[-1])};"
                                         f" boundaries at the sample's deciles{empty_note}",
                                    "type": "bucketized", "key": name, **default, "boundaries": boundaries})
                    continue
            columns.append({"#": f"values from {_num(unique[0])} to {_num(unique[-1])}{empty_note}",
                            "type": "numeric", "key": name, **default})
            continue
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            inner = t.value_type
            flat = pc.list_flatten(valid) if len(valid) else pa.array([], inner)
            if is_flat_string_type(inner) or pa.types.is_integer(inner):
                distinct = len(pc.unique(flat)) if len(flat) else 0
                size = hash_bucket_size_for(distinct)
                columns.append({"#": f"a list of values per row ({distinct:,} distinct in the sample)",
                                "type": "hash_bucket", "key": name, "hash_bucket_size": size,
                                **({} if is_flat_string_type(inner) else {"dtype": "int64"})})
                continue
        if pa.types.is_fixed_size_list(t) and (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
            columns.append({"#": f"{t.list_size} numbers per row", "type": "numeric", "key": name,
                            "shape": [t.list_size]})
            continue
        left_out.append(f"{name}: type {t} is not a feature type (convert it to a number or a string)")
    if not columns:
        raise ConfigError(f"{files[0]}: no column besides the label could become a feature; the data has"
                          f" {', '.join(map(repr, names))}.")
    if kind == "csv":
        input_table: dict[str, Any] = {"#": "string columns stay strings even where a file holds only digits"}
        if options.delimiter:
            input_table["delimiter"] = options.delimiter
        if string_columns:
            input_table["column_types"] = {c: "string" for c in string_columns}
        if label_fields.get("label_vocabulary"):
            input_table.setdefault("column_types", {})[label_key] = "string"
        doc["input"] = input_table
    doc["optimizer"] = {"#": "FTRL as TF's LinearClassifier; l1 > 0 keeps unused buckets at exactly zero",
                        "type": "Ftrl", "learning_rate": 0.1, "l1_regularization_strength": 0.001,
                        "l2_regularization_strength": 0.0}
    doc["checkpoints"] = {"#": "a snapshot every 10 minutes (TF's default) and at the end of each train",
                          "save_checkpoints_secs": 600, "keep_checkpoint_max": 5, "log_step_count_steps": 100}
    doc["columns"] = columns
    sampled = f"{n:,} rows" + (f" of {total:,}" if total and total > n else "")
    where = source or (files[0] if len(files) == 1 else f"{len(files)} files such as {files[0]}")
    header = [f"streamlin model spec, written by `streamlin init` from {where} ({sampled} sampled).",
              "Edit it, then train:  streamlin train DATA --spec THIS_FILE --model-dir runs/model",
              f"label {label_key!r}: {label_comment}"]
    if left_out:
        header.append("left out:")
        header.extend(f"  {line}" for line in left_out)
    text = dumps(doc, "\n".join(header))
    text += _EXAMPLES
    loads(text, root=Path(files[0]).parent, source="the inferred spec")  # what init writes must load
    return text


_EXAMPLES = """
# More column kinds (see streamlin/spec.py):
# [[columns]]
# type = "crossed"                       # TF's crossed_column: raw keys and/or columns above
# keys = [{ column = "age_bucketized" }, "education"]
# hash_bucket_size = 10000
#
# [[columns]]
# type = "vocabulary_file"               # one entry per line, relative to this file's folder
# key = "country"
# vocabulary_file = "vocab/country.txt"
# num_oov_buckets = 1
#
# [[columns]]
# type = "weighted"                      # ids weighted by another feature
# categorical = { type = "identity", key = "item", num_buckets = 1000 }
# weight_feature_key = "item_weight"
"""


def _num(value: Any) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _decoded(array: Any) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def _present_mask(array: pa.Array):
    import numpy as np

    if not array.null_count:
        return None
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _copies_label(values: pa.Array, label_codes, valid_mask=None) -> bool:
    """True when each value maps to one label and each label to one value (a relabelled label)."""
    if label_codes is None:
        return False
    codes = label_codes if valid_mask is None else label_codes[valid_mask]
    if len(values) != len(codes) or len(values) < 20:
        return False
    pairs = set(zip(values.to_pylist(), codes.tolist()))
    firsts = {a for a, _ in pairs}
    seconds = {b for _, b in pairs}
    return len(pairs) == len(firsts) == len(seconds) and len(firsts) > 1


def _infer_label(label: pa.Array, label_key: str, source: str) -> tuple[str, dict, Any]:
    """(comment, spec fields, per-row codes or None) for the label column."""
    import numpy as np
    import pyarrow.compute as pc

    if label.null_count:
        raise ConfigError(f"{source}: label column {label_key!r} has {label.null_count:,} empty values in the sample;"
                          " drop or fill those rows first.")
    t = label.type
    if is_flat_string_type(t):
        values = sorted(v for v in pc.unique(label).to_pylist())
        if len(values) < 2:
            raise ConfigError(f"{source}: label {label_key!r} has a single value {values!r} in the sample; a"
                              " classifier needs two classes or more.")
        if len(values) > LABEL_CLASSES_MAX:
            raise ConfigError(f"{source}: label {label_key!r} has {len(values):,} distinct strings; is it the right"
                              " column?")
        codes = np.asarray(pc.index_in(label, value_set=pa.array(values, type=label.type)).to_numpy(zero_copy_only=False))
        comment = (f"strings; class 1 (positive) is {values[1]!r}" if len(values) == 2
                   else f"{len(values)} classes (strings)")
        return comment, {"n_classes": len(values), "label_vocabulary": values}, codes
    if pa.types.is_boolean(t):
        return "true/false", {"n_classes": 2}, np.asarray(label.to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = pc.cast(label, pa.float64()).to_numpy(zero_copy_only=False)
        if not np.all(np.isfinite(values)):
            raise ConfigError(f"{source}: label {label_key!r} holds NaN or infinite values.")
        if np.all(values == np.floor(values)):
            low, high = values.min(), values.max()
            if low < 0 or high >= LABEL_CLASSES_MAX:
                raise ConfigError(f"{source}: label {label_key!r} holds integers from {low:g} to {high:g}; labels must be"
                                  " class ids 0..n-1 (or strings with a label_vocabulary). Map them first.")
            n_classes = max(int(high) + 1, 2)
            comment = "0/1" if n_classes == 2 else f"class ids 0..{n_classes - 1}"
            return comment, {"n_classes": n_classes}, values.astype(np.int64)
        if values.min() >= 0 and values.max() <= 1:
            return "probabilities in [0, 1] (soft binary labels)", {"n_classes": 2}, None
        raise ConfigError(f"{source}: label {label_key!r} holds real numbers outside [0, 1]; a classifier needs class"
                          " ids or strings. (Regression is not supported.)")
    raise ConfigError(f"{source}: label {label_key!r} has type {t}; use integers, booleans or strings.")


__all__ = ["Spec", "InputOptions", "load", "loads", "from_model_dir", "from_snapshot", "column_table",
           "optimizer_table", "dumps", "toml_value", "check_size", "infer", "hash_bucket_size_for", "SPEC_FILE"]

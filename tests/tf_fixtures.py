"""The real TensorFlow model_dirs in ``shared/tfref/checkpoints`` as streamlin models and data.

Each case's ``expected.json`` (written by ``shared/tfref/make_tf_checkpoints.py``) holds the column
specs the TF columns were built from, the head and optimizer, the data TF was fed and every variable
it saved. This module rebuilds the same model with streamlin and feeds the same data the way
``make_tf_checkpoints.py`` did: ``tf.data.Dataset.from_tensor_slices`` over numpy arrays, i.e.
*dense* TF input everywhere (1-D arrays, and 2-D arrays padded with ``''`` / ``0.0`` for the
multi-valued ``item`` / ``item_w`` features, which TF turns into sparse ids dropping ``''``).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np

import streamlin as sl
from streamlin import feature_column as fc
from tests._shared import SHARED

FIXTURES = SHARED / "tfref" / "checkpoints"
CASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.json").is_file()) if FIXTURES.is_dir() else []


@functools.cache
def expected(case: str) -> dict:
    return json.loads((FIXTURES / case / "expected.json").read_text(encoding="utf-8"))


def model_dir(case: str) -> Path:
    return FIXTURES / case / "model_dir"


def latest_prefix(case: str) -> Path:
    return model_dir(case) / expected(case)["model_dir"]["latest_checkpoint"]


def step_of(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[1])


# -------------------------------------------------------------------------------------------------
# columns, optimizer, estimator
# -------------------------------------------------------------------------------------------------
def build_column(spec: dict, case_dir: Path | None = None):
    """A streamlin column from a column spec of expected.json (make_tf_checkpoints.build_column).

    ``case_dir``: where a vocabulary_file spec's file was written (next to expected.json).
    """
    kind = spec["kind"]
    if kind == "numeric":
        return fc.numeric_column(spec["key"], shape=tuple(spec.get("shape", [1])), dtype=spec.get("dtype", "float32"))
    if kind == "bucketized":
        return fc.bucketized_column(build_column(spec["source"], case_dir), boundaries=spec["boundaries"])
    if kind == "hash_bucket":
        return fc.categorical_column_with_hash_bucket(spec["key"], spec["hash_bucket_size"],
                                                      dtype=spec.get("dtype", "string"))
    if kind == "vocabulary_list":
        return fc.categorical_column_with_vocabulary_list(
            spec["key"], spec["vocabulary_list"], dtype=spec.get("dtype", "string"),
            default_value=spec.get("default_value", -1), num_oov_buckets=spec.get("num_oov_buckets", 0))
    if kind == "vocabulary_file":
        path = Path(case_dir or ".") / spec["vocabulary_file"]  # make_tf_checkpoints.py wrote it there
        return fc.categorical_column_with_vocabulary_file(
            spec["key"], str(path), vocabulary_size=spec.get("vocabulary_size"), dtype=spec.get("dtype", "string"),
            default_value=spec.get("default_value"), num_oov_buckets=spec.get("num_oov_buckets", 0))
    if kind == "identity":
        return fc.categorical_column_with_identity(spec["key"], spec["num_buckets"],
                                                   default_value=spec.get("default_value"))
    if kind == "weighted":
        return fc.weighted_categorical_column(build_column(spec["categorical"], case_dir), spec["weight_feature_key"])
    if kind == "crossed":
        keys = [build_column(k, case_dir) if isinstance(k, dict) else k for k in spec["keys"]]
        return fc.crossed_column(keys, spec["hash_bucket_size"], hash_key=spec.get("hash_key"))
    raise ValueError(f"column kind {kind!r} has no streamlin equivalent here")


def columns(case: str) -> list:
    return [build_column(spec, FIXTURES / case) for spec in expected(case)["feature_columns"]]


# TF optimizer -> (streamlin optimizer, fixed arguments). TF 1.x's AdagradOptimizer (ApplyAdagrad:
# var -= lr * g / sqrt(acc)) has no epsilon; Keras' legacy Adagrad adds epsilon to sqrt(acc).
_OPTIMIZERS = {
    "tf.keras.optimizers.legacy.Ftrl": (sl.optimizers.Ftrl, {}),
    "tf.compat.v1.train.FtrlOptimizer": (sl.optimizers.Ftrl, {}),
    "tf.keras.optimizers.legacy.Adagrad": (sl.optimizers.Adagrad, {}),
    "tf.compat.v1.train.AdagradOptimizer": (sl.optimizers.Adagrad, {"epsilon": 0.0}),
}


def optimizer(case: str, **overrides):
    """streamlin's optimizer with the recorded hyper-parameters (``overrides`` replace some)."""
    spec = expected(case)["estimator"]["optimizer"]
    cls, fixed = _OPTIMIZERS[spec["class"]]
    return cls(**{**fixed, **spec["params"], **overrides})


def loss_reduction(case: str) -> str:
    text = expected(case)["estimator"]["loss_reduction"]
    if text.startswith("SUM_OVER_BATCH_SIZE"):
        return "sum_over_batch_size"
    assert text.startswith("SUM "), text
    return "sum"


def estimator(case: str, directory, *, columns_=None, optimizer_=None, **kwargs) -> sl.LinearClassifier:
    """The streamlin twin of the case's TF estimator, with its own ``model_dir``."""
    est = expected(case)["estimator"]
    kwargs.setdefault("config", sl.RunConfig(save_checkpoints_steps=1000))
    return sl.LinearClassifier(
        columns(case) if columns_ is None else columns_, model_dir=str(directory), n_classes=est["n_classes"],
        weight_column=est["weight_column"], label_vocabulary=est["label_vocabulary"],
        optimizer=optimizer(case) if optimizer_ is None else optimizer_, loss_reduction=loss_reduction(case),
        sparse_combiner=est["sparse_combiner"], **kwargs)


# -------------------------------------------------------------------------------------------------
# data
# -------------------------------------------------------------------------------------------------
def _array(values: list) -> np.ndarray:
    """A JSON column as the numpy array TF was fed (float32 / int64 / str; 2-D where it was 2-D)."""
    flat = values
    while flat and isinstance(flat[0], list):
        flat = [v for row in flat for v in row]
    if all(isinstance(v, str) for v in flat):
        return np.asarray(values, dtype=object)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=np.float32)


def features(data: dict) -> dict[str, np.ndarray]:
    return {name: _array(values) for name, values in data["features"].items()}


def labels(data: dict) -> np.ndarray:
    return _array(data["labels"])


def input_fn(data: dict, batch_size: int, with_labels: bool = True):
    return sl.inputs.numpy_input_fn(features(data), labels(data) if with_labels else None, batch_size=batch_size,
                                    shuffle=False)


def eval_input_fn(case: str, with_labels: bool = True):
    evaluation = expected(case)["evaluation"]
    return input_fn(evaluation["data"], evaluation["batch_size"], with_labels)


def continue_input_fn(case: str):
    return input_fn(expected(case)["continue"]["batch"], expected(case)["training"]["batch_size"])


# -------------------------------------------------------------------------------------------------
# recorded variables, under streamlin's names
# -------------------------------------------------------------------------------------------------
_V1_SLOT = re.compile(r"^(?P<var>.+)/part_(?P<part>\d+)/(?P<slot>Ftrl|Ftrl_1|Adagrad)$")
_V1_SLOT_NAMES = {"Ftrl": ("Ftrl", "accumulator"), "Ftrl_1": ("Ftrl", "linear"), "Adagrad": ("Adagrad", "accumulator")}
_HYPERPARAMETER = re.compile(r"^training/[^/]+/[^/]+$")


def _value(entry: dict) -> np.ndarray:
    """The tensor of one recorded entry: its value, or the union of its saved slices (mask = absent)."""
    dtype = np.int64 if entry["dtype"] == "int64" else np.float32
    if entry["value"] is not None:
        return np.asarray(entry["value"], dtype=dtype).reshape(entry["shape"])
    full = np.ma.masked_all(tuple(entry["shape"]), dtype=dtype)
    for piece in entry["saved_slices"]:
        index = tuple(slice(o, o + n) for o, n in zip(piece["offset"], piece["shape"]))
        full[index] = np.asarray(piece["value"], dtype=dtype).reshape(piece["shape"])
    return full


def recorded_variables(entries: list[dict]) -> tuple[dict[str, np.ndarray], int, dict[str, float]]:
    """(streamlin name -> value, global step, TF 2.x hyper-parameters) of a recorded checkpoint.

    TF 1.x slots ``<var>/part_<i>/Ftrl`` (``Ftrl_1``) become ``training/Ftrl/<var>/accumulator``
    (``linear``); the parts of a partitioned slot are merged, each supplying the rows it holds.
    """
    out: dict[str, np.ndarray] = {}
    step, hyper = None, {}
    for entry in entries:
        name, value = entry["name"], _value(entry)
        if name == "global_step":
            step = int(value)
            continue
        if _HYPERPARAMETER.match(name) and value.ndim == 0:
            hyper[name] = float(value)
            continue
        match = _V1_SLOT.match(name)
        if match:
            opt, slot = _V1_SLOT_NAMES[match["slot"]]
            name = f"training/{opt}/{match['var']}/{slot}"
            if name in out:
                merged = out[name]
                assert isinstance(merged, np.ma.MaskedArray)
                taken = ~np.ma.getmaskarray(value)
                assert not (taken & ~np.ma.getmaskarray(merged)).any(), f"{name}: parts overlap"
                merged[taken] = value[taken]
                continue
        out[name] = value
    for name, value in out.items():
        if isinstance(value, np.ma.MaskedArray):
            assert not np.ma.getmaskarray(value).any(), f"{name}: parts leave rows uncovered"
            out[name] = np.ma.getdata(value).copy()
    assert step is not None
    return out, step, hyper


def latest_variables(case: str):
    return recorded_variables(expected(case)["variables"])


def continue_variables(case: str):
    return recorded_variables(expected(case)["continue"]["variables"])


def older_variables(case: str) -> dict[str, tuple]:
    return {prefix: recorded_variables(entries)
            for prefix, entries in expected(case)["variables_older_checkpoints"].items()}


class LossRecorder:
    """A hook that keeps every step's training loss."""

    def __init__(self):
        self.losses: list[float] = []

    def after_step(self, step, loss):
        self.losses.append(loss)

"""TensorFlow 2.15's recorded LinearClassifier runs (tfref/golden/ftrl_training.json), replayed.

Every case: per-step losses, every variable and FTRL slot after every step, evaluate() of the final
and the step-0 checkpoint, and predict() on the first 8 rows, within 1e-5 (float32).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import streamlin as sl
from streamlin import feature_column as fc
from tests._shared import SHARED, requires_shared

GOLDEN = SHARED / "tfref" / "golden" / "ftrl_training.json"
TOLERANCE = 1e-5

pytestmark = requires_shared


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


def _columns():
    return [
        fc.numeric_column("x1"), fc.numeric_column("x2"),
        fc.categorical_column_with_hash_bucket("c1", 10),
        fc.categorical_column_with_hash_bucket("c2", 7, dtype="int64"),
        fc.categorical_column_with_hash_bucket("tags", 8),
        fc.crossed_column(["c1", "c2"], 16),
    ]


def _features(dataset) -> dict:
    raw = dataset["features"]
    out = {
        "x1": np.asarray(raw["x1"], dtype=np.float32),
        "x2": np.asarray(raw["x2"], dtype=np.float32),
        "c1": np.asarray(raw["c1"], dtype=object),
        "c2": np.asarray(raw["c2"], dtype=np.int64),
        "tags": np.asarray(raw["tags"], dtype=object),  # [64, 3] dense with '' padding
    }
    if "w" in raw:
        out["w"] = np.asarray(raw["w"], dtype=np.float32)
    return out


def _labels(case, dataset):
    return np.asarray(case["labels_fed"], dtype=object if isinstance(case["labels_fed"][0], str) else None)


def _estimator(case, model_dir, warm_from=None):
    config = case["config"]
    params = config["opt_params"]
    if config["optimizer"] == "default":
        optimizer = "Ftrl"
    elif config["optimizer"] is None:
        optimizer = None
    else:
        optimizer = sl.optimizers.Ftrl(**params)
    warm = sl.WarmStartSettings(str(warm_from), vars_to_warm_start=".*") if warm_from else None
    return sl.LinearClassifier(
        _columns(), model_dir=str(model_dir), n_classes=config["n_classes"], weight_column=config["weight_column"],
        label_vocabulary=config["label_vocabulary"], optimizer=optimizer, sparse_combiner=config["sparse_combiner"],
        warm_start_from=warm, config=sl.RunConfig(save_checkpoints_steps=1000))


class _LossRecorder:
    """A hook that keeps every step's training loss."""

    def __init__(self):
        self.losses = []

    def after_step(self, step, loss):
        self.losses.append(loss)


def _check_variables(expected: dict, actual_fn, step_label: str):
    for name, value in expected.items():
        got = actual_fn(name)
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(value, dtype=np.float64),
                                   atol=TOLERANCE, rtol=0, err_msg=f"{name} at {step_label}")


def _train(case, dataset, model_dir, warm_from=None):
    features = _features(dataset)
    labels = _labels(case, dataset)
    est = _estimator(case, model_dir, warm_from)
    recorder = _LossRecorder()
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=8, num_epochs=1), hooks=[recorder])
    return est, recorder.losses


CASES = ["binary_ftrl", "multiclass3_ftrl", "binary_weighted_vocab_ftrl", "binary_default_optimizer",
         "binary_optimizer_none", "binary_ftrl_mean_combiner", "binary_ftrl_sqrtn_combiner"]


def _case(golden, name):
    return next(c for c in golden["cases"] if c["name"] == name)


@pytest.mark.parametrize("name", CASES + ["binary_ftrl_warm_started"])
def test_training_matches_tensorflow(golden, name, tmp_path):
    case = _case(golden, name)
    warm_from = None
    if name == "binary_ftrl_warm_started":
        base = _case(golden, "binary_ftrl")
        warm_from = tmp_path / "base"
        _train(base, golden["dataset"], warm_from)
    est, losses = _train(case, golden["dataset"], tmp_path / "model", warm_from)

    np.testing.assert_allclose(losses, case["loss_per_step"], atol=TOLERANCE, rtol=0)
    assert est.get_variable_value("global_step") == 8
    expected = {k: v for k, v in case["variables_final"].items() if k != "global_step"}
    _check_variables(expected, est.get_variable_value, "the end")
    assert set(expected) <= set(est.get_variable_names())

    features = _features(golden["dataset"])
    labels = _labels(case, golden["dataset"])
    result = est.evaluate(sl.inputs.numpy_input_fn(features, labels, batch_size=8))
    for key, value in case["evaluate"].items():
        assert result[key] == pytest.approx(value, abs=TOLERANCE), key
    assert set(result) == set(case["evaluate"])

    first = est.evaluate(sl.inputs.numpy_input_fn(features, labels, batch_size=8), checkpoint_path=0)
    for key, value in case["evaluate_checkpoint_path_model_ckpt_0"].items():
        assert first[key] == pytest.approx(value, abs=TOLERANCE), key

    head = {k: v[:8] for k, v in features.items()}
    predictions = list(est.predict(sl.inputs.numpy_input_fn(head, batch_size=8)))
    assert len(predictions) == 8
    for got, want in zip(predictions, case["predict_first_8"]):
        assert set(got) == set(want)
        for key in ("logits", "probabilities", "logistic"):
            if key in want:
                np.testing.assert_allclose(got[key], want[key], atol=TOLERANCE)
        assert list(got["class_ids"]) == want["class_ids"]
        assert list(got["classes"]) == want["classes"]
        assert list(got["all_classes"]) == want["all_classes"]


@pytest.mark.parametrize("name", ["binary_ftrl", "multiclass3_ftrl", "binary_ftrl_sqrtn_combiner"])
def test_every_step_matches_tensorflow(golden, name, tmp_path):
    """Variables and slots after each of the 8 steps, via 1-step train() calls that resume."""
    case = _case(golden, name)
    features = _features(golden["dataset"])
    labels = _labels(case, golden["dataset"])
    est = _estimator(case, tmp_path)
    for step, expected in enumerate(case["variables_after_each_step"]):
        batch = {k: v[step * 8:(step + 1) * 8] for k, v in features.items()}
        est.train(sl.inputs.numpy_input_fn(batch, labels[step * 8:(step + 1) * 8], batch_size=8))
        assert est.get_variable_value("global_step") == expected["global_step"]
        _check_variables({k: v for k, v in expected.items() if k != "global_step"}, est.get_variable_value,
                         f"step {step + 1}")


def test_default_learning_rates(golden, tmp_path):
    probe = golden["default_learning_rate_probe"]
    columns = [fc.numeric_column(f"x{i}") for i in range(30)]
    default = sl.LinearClassifier(columns, model_dir=str(tmp_path / "a"))
    none = sl.LinearClassifier(columns, model_dir=str(tmp_path / "b"), optimizer=None)
    assert default.params["optimizer"]["learning_rate"] == pytest.approx(
        probe["default ('Ftrl' string)"]["training/Ftrl/learning_rate"], rel=1e-6)
    assert none.params["optimizer"]["learning_rate"] == pytest.approx(
        probe["optimizer=None"]["training/Ftrl/learning_rate"], rel=1e-6)

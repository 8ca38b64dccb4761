"""Cases beyond the golden files: random hyper-parameters, class counts, combiners, columns and data,
each replayed by tfref/ref_impl.py (the numpy executable spec of TF's semantics) and by streamlin."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamlin as sl
from streamlin import feature_column as fc
from tests._shared import SHARED, requires_shared

pytest.importorskip("farmhash")
pytestmark = requires_shared


def _ref_impl():
    spec = importlib.util.spec_from_file_location("tfref_ref_impl", SHARED / "tfref" / "ref_impl.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("tfref_ref_impl", module)
    spec.loader.exec_module(module)
    return module


@st.composite
def cases(draw):
    n_classes = draw(st.sampled_from([2, 3, 4]))
    batch = draw(st.integers(1, 9))
    n = batch * draw(st.integers(1, 4)) + draw(st.integers(0, batch - 1))
    seed = draw(st.integers(0, 2**31))
    opt = {
        "lr": draw(st.sampled_from([0.05, 0.1, 0.5])),
        "l1": draw(st.sampled_from([0.0, 0.001, 0.05])),
        "l2": draw(st.sampled_from([0.0, 0.01, 0.1])),
        "lr_power": draw(st.sampled_from([-0.5, -0.3, 0.0])),
        "init_acc": draw(st.sampled_from([0.1, 0.5, 0.0])),
        "l2_shrinkage": draw(st.sampled_from([0.0, 0.02])),
        "beta": draw(st.sampled_from([0.0, 0.3])),
    }
    if opt["init_acc"] == 0.0 and opt["lr_power"] != 0.0:
        opt["init_acc"] = 0.1  # n**(-p) at n = 0 divides by zero in both implementations
    combiner = draw(st.sampled_from(["sum", "mean", "sqrtn"]))
    buckets = draw(st.sampled_from([3, 7, 50]))
    return n_classes, batch, n, seed, opt, combiner, buckets


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_training_matches_the_numpy_spec(case, tmp_path_factory):
    ref = _ref_impl()
    n_classes, batch, n, seed, opt, combiner, buckets = case
    rng = np.random.default_rng(seed)
    words = np.array(["", "a", "b", "c", "日本", "zz", "q"], dtype=object)
    features = {
        "x": rng.normal(size=n).astype(np.float32),
        "s": words[rng.integers(0, len(words), size=n)],
        "k": rng.integers(-1, 5, size=n).astype(np.int64),
        "m": words[rng.integers(0, len(words), size=(n, 3))],
    }
    labels = rng.integers(0, n_classes, size=n)

    ref_columns = [ref.Numeric("x"), ref.HashBucket("s", buckets), ref.HashBucket("k", buckets, dtype="int64"),
                   ref.HashBucket("m", buckets), ref.Crossed(["s", "k"], 2 * buckets)]
    model = ref.LinearModel(ref_columns, 1 if n_classes == 2 else n_classes, opt, combiner)
    ref_losses = ref.replay_training(model, features, labels, None, batch, n_classes)

    columns = [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("s", buckets),
               fc.categorical_column_with_hash_bucket("k", buckets, dtype="int64"),
               fc.categorical_column_with_hash_bucket("m", buckets), fc.crossed_column(["s", "k"], 2 * buckets)]
    optimizer = sl.optimizers.Ftrl(learning_rate=opt["lr"], learning_rate_power=opt["lr_power"],
                                   initial_accumulator_value=opt["init_acc"], l1_regularization_strength=opt["l1"],
                                   l2_regularization_strength=opt["l2"],
                                   l2_shrinkage_regularization_strength=opt["l2_shrinkage"], beta=opt["beta"])
    est = sl.LinearClassifier(columns, model_dir=str(tmp_path_factory.mktemp("m")), n_classes=n_classes,
                              optimizer=optimizer, sparse_combiner=combiner)

    class Losses:
        values: list = []

        def after_step(self, step, loss):
            self.values.append(loss)

    hook = Losses()
    hook.values = []
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=batch), hooks=[hook])
    np.testing.assert_allclose(hook.values, ref_losses, atol=2e-5, rtol=1e-5)
    for column in model.columns:
        state = model.state[column.name]
        prefix = f"linear/linear_model/{column.name}/weights"
        np.testing.assert_allclose(est.get_variable_value(prefix), state.w, atol=2e-5, rtol=1e-4, err_msg=prefix)
        np.testing.assert_allclose(est.get_variable_value(f"training/Ftrl/{prefix}/accumulator"), state.n,
                                   atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(est.get_variable_value(f"training/Ftrl/{prefix}/linear"), state.z,
                                   atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(est.get_variable_value("linear/linear_model/bias_weights"), model.bias.w,
                               atol=2e-5, rtol=1e-4)


def test_evaluate_matches_the_numpy_spec(tmp_path):
    ref = _ref_impl()
    rng = np.random.default_rng(7)
    n = 300
    features = {"x": rng.normal(size=n).astype(np.float32), "s": rng.choice(["a", "b", "c", "d"], size=n)}
    labels = (rng.random(n) < 0.4).astype(np.int64)
    weights = rng.uniform(0.1, 3, size=n).astype(np.float32)
    est = sl.LinearClassifier([fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("s", 5)],
                              model_dir=str(tmp_path), weight_column="w",
                              optimizer=sl.optimizers.Ftrl(learning_rate=0.3))
    data = {**features, "w": weights}
    est.train(sl.inputs.numpy_input_fn(data, labels, batch_size=32))
    result = est.evaluate(sl.inputs.numpy_input_fn(data, labels, batch_size=64))
    logits = np.concatenate([p["logits"] for p in est.predict(sl.inputs.numpy_input_fn(data, batch_size=64),
                                                               yield_single_examples=False)]).astype(np.float64)
    expected = ref.binary_eval(logits, labels.astype(np.float64), weights.astype(np.float64), 64)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-6), key


def test_learning_rate_schedule_is_read_at_the_pre_update_step(tmp_path):
    ref = _ref_impl()
    rng = np.random.default_rng(3)
    n, batch = 40, 8
    features = {"x": rng.normal(size=n).astype(np.float32), "s": rng.choice(["a", "b", "c"], size=n)}
    labels = rng.integers(0, 2, size=n)
    schedule = sl.optimizers.schedules.ExponentialDecay(0.5, decay_steps=2, decay_rate=0.5, staircase=True)
    est = sl.LinearClassifier([fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("s", 4)],
                              model_dir=str(tmp_path), optimizer=sl.optimizers.Ftrl(learning_rate=schedule))
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=batch))
    opt = {"lr": 0.5, "l1": 0.0, "l2": 0.0, "lr_power": -0.5, "init_acc": 0.1}
    model = ref.LinearModel([ref.Numeric("x"), ref.HashBucket("s", 4)], 1, opt)
    for step in range(n // batch):
        model.opt["lr"] = schedule(step)  # 0.5, 0.5, 0.25, 0.25, 0.125
        sl_slice = slice(step * batch, (step + 1) * batch)
        ref.replay_training(model, {k: v[sl_slice] for k, v in features.items()}, labels[sl_slice], None, batch, 2)
    np.testing.assert_allclose(est.get_variable_value("linear/linear_model/s/weights"), model.state["s"].w, atol=1e-6)
    np.testing.assert_allclose(est.get_variable_value("linear/linear_model/x/weights"), model.state["x"].w, atol=1e-6)

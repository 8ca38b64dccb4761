"""TensorFlow LinearClassifier model_dirs used end to end, without TensorFlow.

For every real TF 2.15 model_dir in ``shared/tfref/checkpoints`` (V2 and V1 estimators, FTRL and
Adagrad, binary and multi-class, partitioned), the streamlin twin of the TF estimator (same columns,
head and optimizer, rebuilt from ``expected.json`` by ``tests.tf_fixtures``):

* evaluates and predicts from the TF checkpoint (``checkpoint_path`` = model_dir, prefix or
  ``.index`` file) as TF recorded, also from older kept checkpoints, and exports it;
* converts it (``streamlin.checkpoints.convert_tf``) into ``model_dir/model.ckpt-<TF's step>`` and
  then takes one training step on the recorded batch exactly as TF did (every weight and slot, the
  loss and the step);
* warm-starts from it (weights and slots), or weights only with ``WarmStartSettings``;
* accepts a TF prefix that holds no optimizer slots, or no step in its name;
* refuses a model that does not match the checkpoint, naming the variable.

Tolerance: 1e-5, relative for values above 1 (FTRL accumulators reach ~8e3, where one float32 ulp
is 5e-4).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import streamlin as sl
from streamlin.checkpoint import store
from streamlin.errors import CheckpointError, ConfigError
from tests import tf_fixtures as F
from tests._shared import requires_shared

TOLERANCE = 1e-5

pytestmark = requires_shared

CASES = F.CASES
V1_CASES = [c for c in CASES if F.expected(c)["estimator"]["api"] == "v1"]
V2_CASES = [c for c in CASES if F.expected(c)["estimator"]["api"] == "v2"]
BINARY_CASES = [c for c in CASES if F.expected(c)["estimator"]["n_classes"] == 2]
OLDER = [(c, p) for c in CASES for p in F.expected(c)["variables_older_checkpoints"]]


def test_fixtures_are_present():
    assert set(CASES) >= {"v2_ftrl_binary", "v2_adagrad_multiclass", "v1_ftrl_binary", "v1_ftrl_binary_partitioned"}


# -------------------------------------------------------------------------------------------------
# comparisons
# -------------------------------------------------------------------------------------------------
def assert_close(got, want, what: str) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64),
                               rtol=TOLERANCE, atol=TOLERANCE, err_msg=what)


def assert_variables(est: sl.LinearClassifier, want: dict[str, np.ndarray], step: int, what: str) -> None:
    """Every recorded weight and slot, and the step, equal the estimator's latest snapshot."""
    names = set(est.get_variable_names())
    missing = sorted(set(want) - names)
    assert not missing, f"{what}: the snapshot lacks {missing}"
    for name, value in want.items():
        got = est.get_variable_value(name)
        assert np.shape(got) == value.shape, f"{what}: {name} has shape {np.shape(got)}, TF {value.shape}"
        assert_close(got, value, f"{what}: {name}")
    assert int(est.get_variable_value("global_step")) == step


def snapshot_arrays(path: str) -> dict[str, np.ndarray]:
    arrays, _ = store.load_snapshot(path)
    return arrays


def assert_metrics(got: dict, want: dict, what: str, skip=()) -> None:
    assert set(got) == set(want), f"{what}: keys {sorted(got)} vs TF {sorted(want)}"
    for key, value in want.items():
        if key in skip:
            continue
        if key == "global_step":
            assert int(got[key]) == int(value), f"{what}: global_step"
        else:
            assert_close(got[key], value, f"{what}: {key}")


def assert_predictions(rows: list[dict], want: dict[str, list], what: str) -> None:
    assert len(rows) == len(next(iter(want.values())))
    assert set(rows[0]) == set(want) | {"all_class_ids", "all_classes"}
    for key, values in want.items():
        got = [row[key] for row in rows]
        if key == "classes":
            assert [[str(c) for c in np.atleast_1d(g)] for g in got] == values, f"{what}: classes"
        elif key == "class_ids":
            assert np.array_equal(np.asarray(got).reshape(len(got), -1), np.asarray(values)), f"{what}: class_ids"
        else:
            assert_close(np.asarray(got).reshape(len(got), -1), values, f"{what}: {key}")


def pr_auc(labels, predictions, weights, summation: str, num_thresholds: int = 200) -> float:
    """200-threshold PR AUC from recorded predictions: TF 2.x Keras ``interpolation`` (Davis-Goadrich)
    or ``tf.compat.v1.metrics.auc``'s default ``trapezoidal`` rule (the V1 head's)."""
    eps = 1e-7
    thresholds = np.array([-eps] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1 + eps],
                          dtype=np.float32)
    y = np.asarray(labels, dtype=bool)
    w = np.asarray(weights, dtype=np.float64)
    positive = np.asarray(predictions, dtype=np.float32)[None, :] > thresholds[:, None]
    tp = (positive & y).astype(np.float64) @ w
    fp = (positive & ~y).astype(np.float64) @ w
    fn = (~positive & y).astype(np.float64) @ w
    if summation == "trapezoidal":
        tp, fp, fn = (a.astype(np.float32) for a in (tp, fp, fn))
        recall = (tp + np.float32(eps)) / (tp + fn + np.float32(eps))
        precision = (tp + np.float32(eps)) / (tp + fp + np.float32(eps))
        return float(np.sum((recall[:-1] - recall[1:]) * (precision[:-1] + precision[1:]) / 2))

    def div(a, b):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)

    dtp = tp[:-1] - tp[1:]
    pp = tp + fp
    dp = pp[:-1] - pp[1:]
    slope = div(dtp, np.maximum(dp, 0))
    intercept = tp[1:] - slope * pp[1:]
    ratio = np.where((pp[:-1] > 0) & (pp[1:] > 0), div(pp[:-1], np.maximum(pp[1:], 0)), 1.0)
    return float(np.sum(div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))))


def checkpoint_paths(case: str) -> dict[str, str]:
    prefix = F.latest_prefix(case)
    return {"model_dir": str(F.model_dir(case)), "prefix": str(prefix), "index_file": f"{prefix}.index"}


# -------------------------------------------------------------------------------------------------
# 1. evaluate / predict / export straight from the TF checkpoint
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["model_dir", "prefix", "index_file"])
@pytest.mark.parametrize("case", CASES)
def test_evaluate_tf_checkpoint_equals_tensorflow(case, kind, tmp_path):
    est = F.estimator(case, tmp_path / "md")
    got = est.evaluate(F.eval_input_fn(case), checkpoint_path=checkpoint_paths(case)[kind])
    # V1 heads compute auc_precision_recall differently: test_v1_pr_auc_is_the_documented_difference
    skip = ("auc_precision_recall",) if case in V1_CASES else ()
    assert_metrics(got, F.expected(case)["evaluation"]["evaluate"], case, skip=skip)
    assert not list(Path(est.model_dir).glob("model.ckpt-*")), "evaluate must not write a snapshot"


@pytest.mark.parametrize("case", BINARY_CASES)
def test_pr_auc_follows_the_documented_rule(case, tmp_path):
    """API.md: auc_precision_recall is Keras' interpolated PR AUC (TF 2.x heads). For V2 that is TF's
    value; the V1 head (``tf.compat.v1.metrics.auc``, summation_method='trapezoidal') recorded
    another number, reproduced here from TF's own predictions to pin down the cause."""
    est = F.estimator(case, tmp_path / "md")
    got = est.evaluate(F.eval_input_fn(case), checkpoint_path=str(F.model_dir(case)))["auc_precision_recall"]
    evaluation = F.expected(case)["evaluation"]
    vocabulary = F.expected(case)["estimator"]["label_vocabulary"]
    labels = [vocabulary.index(y) if vocabulary else y for y in evaluation["data"]["labels"]]
    weight_column = F.expected(case)["estimator"]["weight_column"]
    weights = evaluation["data"]["features"][weight_column] if weight_column else np.ones(len(labels))
    logistic = [row[0] for row in evaluation["predict"]["logistic"]]
    recorded = evaluation["evaluate"]["auc_precision_recall"]
    interpolated = pr_auc(labels, logistic, weights, "interpolation")
    assert_close(got, interpolated, "streamlin vs Keras interpolation")
    if case in V1_CASES:
        assert_close(pr_auc(labels, logistic, weights, "trapezoidal"), recorded, "V1 TF vs trapezoidal rule")
    else:
        assert_close(got, recorded, "V2 TF")


@pytest.mark.parametrize("kind", ["model_dir", "prefix"])
@pytest.mark.parametrize("case", CASES)
def test_predict_tf_checkpoint_equals_tensorflow(case, kind, tmp_path):
    est = F.estimator(case, tmp_path / "md")
    rows = list(est.predict(F.eval_input_fn(case, with_labels=False), checkpoint_path=checkpoint_paths(case)[kind]))
    assert_predictions(rows, F.expected(case)["evaluation"]["predict"], case)


@pytest.mark.parametrize("case", CASES)
def test_predict_batches_from_tf_checkpoint(case, tmp_path):
    est = F.estimator(case, tmp_path / "md")
    batches = list(est.predict(F.eval_input_fn(case, with_labels=False), checkpoint_path=str(F.model_dir(case)),
                               yield_single_examples=False))
    logits = np.concatenate([b["logits"] for b in batches])
    assert_close(logits, F.expected(case)["evaluation"]["predict"]["logits"], case)


@pytest.mark.parametrize("case", CASES)
def test_export_from_tf_checkpoint(case, tmp_path):
    est = F.estimator(case, tmp_path / "md")
    path = est.export_saved_model(tmp_path / "export", checkpoint_path=str(F.model_dir(case)))
    predictor = sl.load_exported(path)
    out = predictor.predict(F.features(F.expected(case)["evaluation"]["data"]))
    want = F.expected(case)["evaluation"]["predict"]
    for key in ("logits", "probabilities") + (("logistic",) if "logistic" in want else ()):
        assert_close(np.asarray(out[key]).reshape(len(want[key]), -1), want[key], f"{case}: export {key}")
    assert [[str(c) for c in np.atleast_1d(row)] for row in out["classes"]] == want["classes"]


@pytest.mark.parametrize("case,prefix", OLDER, ids=[f"{c}-{p}" for c, p in OLDER])
def test_older_kept_checkpoints(case, prefix, tmp_path):
    """An older kept prefix evaluates at its own step with its own weights (TF recorded its variables)."""
    tf_prefix = str(F.model_dir(case) / prefix)
    want, step, _ = F.older_variables(case)[prefix]
    assert step == F.step_of(prefix)

    est = F.estimator(case, tmp_path / "md")
    result = est.evaluate(F.eval_input_fn(case), checkpoint_path=tf_prefix)
    assert int(result["global_step"]) == step

    converted = sl.checkpoints.convert_tf(tf_prefix, est)
    assert converted == os.path.join(est.model_dir, prefix)
    assert_variables(est, want, step, f"{case} {prefix}")
    again = est.evaluate(F.eval_input_fn(case), checkpoint_path=converted)
    assert_metrics(again, result, f"{case} {prefix}: converted vs TF prefix")

    rows = list(est.predict(F.eval_input_fn(case, with_labels=False), checkpoint_path=tf_prefix,
                            predict_keys="logits"))
    logits = np.asarray([r["logits"] for r in rows])
    if not any(np.any(v) for n, v in want.items() if n.startswith("linear/")):  # model.ckpt-0: all zero
        assert not logits.any()


# -------------------------------------------------------------------------------------------------
# 2. convert, then keep training exactly where TF stopped
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["model_dir", "prefix"])
@pytest.mark.parametrize("case", CASES)
def test_convert_then_one_step_equals_tensorflow(case, source, tmp_path):
    est = F.estimator(case, tmp_path / "md")
    latest, step, _ = F.latest_variables(case)
    path = sl.checkpoints.convert_tf(checkpoint_paths(case)[source], est)
    assert path == os.path.join(est.model_dir, f"model.ckpt-{step}")
    assert [s.step for s in sl.checkpoints.list(est.model_dir)] == [step]
    assert_variables(est, latest, step, f"{case}: converted")

    # the converted snapshot serves evaluate / predict as TF did
    skip = ("auc_precision_recall",) if case in V1_CASES else ()
    assert_metrics(est.evaluate(F.eval_input_fn(case)), F.expected(case)["evaluation"]["evaluate"], case, skip)
    assert_predictions(list(est.predict(F.eval_input_fn(case, with_labels=False))),
                       F.expected(case)["evaluation"]["predict"], case)

    losses = F.LossRecorder()
    est.train(F.continue_input_fn(case), steps=1, hooks=[losses])
    after, after_step, _ = F.continue_variables(case)
    assert after_step == step + 1
    assert F.expected(case)["continue"]["checkpoint_after"] == f"model.ckpt-{after_step}"
    assert_close(losses.losses, [F.expected(case)["continue"]["loss"]], f"{case}: loss of the continued step")
    assert_variables(est, after, after_step, f"{case}: after one more step")
    assert Path(est.latest_checkpoint()).name == f"model.ckpt-{after_step}"


@pytest.mark.parametrize("case", CASES)
def test_converted_snapshot_rebuilds_without_the_code(case, tmp_path):
    """The converted snapshot carries the model description like any streamlin snapshot."""
    est = F.estimator(case, tmp_path / "md")
    path = sl.checkpoints.convert_tf(str(F.model_dir(case)), est)
    _, attrs = store.load_snapshot(path, names=[])
    assert attrs["step"] == F.latest_variables(case)[1]
    assert len(attrs["feature_columns"]) == len(F.expected(case)["feature_columns"])
    assert attrs["optimizer"]["class"] == type(F.optimizer(case)).__name__


# -------------------------------------------------------------------------------------------------
# 3. warm start from a TF model_dir
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["model_dir", "prefix"])
@pytest.mark.parametrize("case", CASES)
def test_warm_start_weights_and_slots_then_one_step(case, source, tmp_path):
    est = F.estimator(case, tmp_path / "md", warm_start_from=checkpoint_paths(case)[source])
    losses = F.LossRecorder()
    est.train(F.continue_input_fn(case), steps=1, hooks=[losses])
    after, _, _ = F.continue_variables(case)
    assert_close(losses.losses, [F.expected(case)["continue"]["loss"]], f"{case}: loss")
    assert_variables(est, after, 1, f"{case}: warm start + one step")  # a warm start does not carry the step

    start = snapshot_arrays(str(Path(est.model_dir) / "model.ckpt-0"))
    for name, value in F.latest_variables(case)[0].items():
        assert_close(start[name], value, f"{case}: warm-started {name}")


@pytest.mark.parametrize("case", CASES)
def test_warm_start_settings_copies_weights_only(case, tmp_path):
    tf_dir = str(F.model_dir(case))
    est = F.estimator(case, tmp_path / "md", warm_start_from=sl.WarmStartSettings(tf_dir, vars_to_warm_start=".*"))
    est.train(F.continue_input_fn(case), steps=1)
    start = snapshot_arrays(str(Path(est.model_dir) / "model.ckpt-0"))
    latest, _, _ = F.latest_variables(case)
    opt = F.optimizer(case)
    slots = 0
    for name, value in latest.items():
        if name.startswith("training/"):
            slot = name.rsplit("/", 1)[1]
            initial = np.full(value.shape, opt.slot_initial_value(slot), dtype=np.float32)
            assert_close(start[name], initial, f"{case}: {name} keeps its initial value")
            slots += 1
        else:
            assert_close(start[name], value, f"{case}: warm-started {name}")
    assert slots > 0
    assert int(start["global_step"]) == 0
    # the step then runs from TF's weights with fresh slots: not TF's continued step
    after, _, _ = F.continue_variables(case)
    acc = next(n for n in after if n.endswith("/accumulator"))
    assert not np.allclose(est.get_variable_value(acc), after[acc], rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("case", CASES[:1])
def test_warm_start_settings_pattern_selects_tf_variables(case, tmp_path):
    latest, _, _ = F.latest_variables(case)
    weights = sorted(n for n in latest if n.startswith("linear/") and n.endswith("/weights"))
    chosen = weights[0]
    settings = sl.WarmStartSettings(str(F.model_dir(case)), vars_to_warm_start=chosen)
    est = F.estimator(case, tmp_path / "md", warm_start_from=settings)
    est.train(F.continue_input_fn(case), steps=1)
    start = snapshot_arrays(str(Path(est.model_dir) / "model.ckpt-0"))
    assert_close(start[chosen], latest[chosen], chosen)
    for other in weights[1:]:
        assert not start[other].any(), f"{other} was not selected but was warm-started"


# -------------------------------------------------------------------------------------------------
# 4. a TF checkpoint without optimizer slots, or without a step in its name
# -------------------------------------------------------------------------------------------------
def write_weights_only(case: str, prefix: Path, *, with_step: bool = True) -> int:
    """A TF bundle holding only the latest checkpoint's weights (sliced as TF saved them) and,
    optionally, global_step: what a plain ``Saver`` over the model variables writes."""
    from tests.checkpoint.test_tf_reader import write_bundle

    plain, sliced, step = {}, {}, 0
    for entry in F.expected(case)["variables"]:
        name = entry["name"]
        if name == "global_step":
            step = int(entry["value"])
            if with_step:
                plain[name] = np.int64(step)
            continue
        if not name.startswith("linear/") or "/part_" in name:
            continue
        if entry["saved_slices"]:
            sliced[name] = (entry["shape"], [
                ([(o, n) for o, n in zip(piece["offset"], piece["shape"])],
                 np.asarray(piece["value"], dtype=np.float32).reshape(piece["shape"]))
                for piece in entry["saved_slices"]])
        else:
            plain[name] = np.asarray(entry["value"], dtype=np.float32).reshape(entry["shape"])
    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_bundle(prefix, plain, sliced=sliced)
    return step


@pytest.mark.parametrize("case", CASES)
def test_prefix_without_slots_evaluates_and_converts(case, tmp_path):
    prefix = tmp_path / "tf" / "model.ckpt"  # a plain Saver's name: no -<step>
    step = write_weights_only(case, prefix)
    est = F.estimator(case, tmp_path / "md")
    skip = ("auc_precision_recall",) if case in V1_CASES else ()
    assert_metrics(est.evaluate(F.eval_input_fn(case), checkpoint_path=str(prefix)),
                   F.expected(case)["evaluation"]["evaluate"], case, skip)

    path = sl.checkpoints.convert_tf(str(prefix), est)
    assert path == os.path.join(est.model_dir, f"model.ckpt-{step}")
    arrays = snapshot_arrays(path)
    opt = F.optimizer(case)
    latest, _, _ = F.latest_variables(case)
    for name, value in latest.items():
        if name.startswith("training/"):
            slot = name.rsplit("/", 1)[1]
            assert np.all(arrays[name] == np.float32(opt.slot_initial_value(slot))), f"{name}: initial value"
        else:
            assert_close(arrays[name], value, name)
    est.train(F.continue_input_fn(case), steps=1)
    assert int(est.get_variable_value("global_step")) == step + 1


@pytest.mark.parametrize("case", CASES[:1] + V1_CASES[-1:])
def test_prefix_without_step_variable_starts_at_zero(case, tmp_path):
    prefix = tmp_path / "tf" / "model.ckpt"
    write_weights_only(case, prefix, with_step=False)
    (prefix.parent / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')
    est = F.estimator(case, tmp_path / "md")
    result = est.evaluate(F.eval_input_fn(case), checkpoint_path=str(prefix.parent))
    assert int(result["global_step"]) == 0
    assert_close(result["average_loss"], F.expected(case)["evaluation"]["evaluate"]["average_loss"], case)
    assert sl.checkpoints.convert_tf(str(prefix.parent), est) == os.path.join(est.model_dir, "model.ckpt-0")


@pytest.mark.parametrize("case", CASES[:1])
def test_warm_start_from_prefix_without_slots(case, tmp_path):
    """API.md: a TF checkpoint without slots is accepted; missing slots take their initial values."""
    prefix = tmp_path / "tf" / "model.ckpt"
    write_weights_only(case, prefix)
    est = F.estimator(case, tmp_path / "md", warm_start_from=str(prefix))
    est.train(F.continue_input_fn(case), steps=1)
    start = snapshot_arrays(str(Path(est.model_dir) / "model.ckpt-0"))
    opt = F.optimizer(case)
    for name, value in F.latest_variables(case)[0].items():
        if name.startswith("training/"):
            assert np.all(start[name] == np.float32(opt.slot_initial_value(name.rsplit("/", 1)[1]))), name
        else:
            assert_close(start[name], value, name)


# -------------------------------------------------------------------------------------------------
# 5. a model that does not match the checkpoint is refused, naming the variable
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_convert_refuses_a_mis_shaped_column(case, tmp_path):
    specs = [dict(s) for s in F.expected(case)["feature_columns"]]
    i = next(i for i, s in enumerate(specs) if s["kind"] in ("hash_bucket", "identity"))
    field = "hash_bucket_size" if specs[i]["kind"] == "hash_bucket" else "num_buckets"
    old = specs[i][field]
    specs[i][field] = old + 3
    est = F.estimator(case, tmp_path / "md", columns_=[F.build_column(s, F.FIXTURES / case) for s in specs])
    name = f"linear/linear_model/{specs[i]['tf_column_name']}/weights"
    with pytest.raises(CheckpointError) as err:
        sl.checkpoints.convert_tf(str(F.model_dir(case)), est)
    message = str(err.value)
    units = 1 if F.expected(case)["estimator"]["n_classes"] == 2 else F.expected(case)["estimator"]["n_classes"]
    assert name in message and f"[{old}, {units}]" in message and f"[{old + 3}, {units}]" in message, message
    assert not list(Path(est.model_dir).glob("model.ckpt-*"))


@pytest.mark.parametrize("case", CASES)
def test_convert_refuses_a_column_the_checkpoint_lacks(case, tmp_path):
    extra = sl.feature_column.categorical_column_with_hash_bucket("not_in_tf", 7)
    est = F.estimator(case, tmp_path / "md", columns_=F.columns(case) + [extra])
    with pytest.raises(CheckpointError, match="linear/linear_model/not_in_tf/weights"):
        sl.checkpoints.convert_tf(str(F.model_dir(case)), est)


@pytest.mark.parametrize("case", CASES)
def test_convert_refuses_a_checkpoint_variable_the_model_lacks(case, tmp_path):
    """issue 10: every TF variable must match a column; an extra one is an error naming it."""
    specs = F.expected(case)["feature_columns"]
    dropped = specs[-1]
    est = F.estimator(case, tmp_path / "md", columns_=[F.build_column(s, F.FIXTURES / case) for s in specs[:-1]])
    with pytest.raises((CheckpointError, ConfigError), match=f"linear/linear_model/{dropped['tf_column_name']}/weights"):
        sl.checkpoints.convert_tf(str(F.model_dir(case)), est)
    assert not list(Path(est.model_dir).glob("model.ckpt-*"))


@pytest.mark.parametrize("case", CASES)
def test_convert_refuses_another_optimizer(case, tmp_path):
    """FTRL slots converted into an Adagrad model (or the reverse) would silently be dropped."""
    other = sl.optimizers.Adagrad(learning_rate=0.1) if "ftrl" in case else sl.optimizers.Ftrl(learning_rate=0.2)
    est = F.estimator(case, tmp_path / "md", optimizer_=other)
    with pytest.raises((CheckpointError, ConfigError), match="Ftrl|Adagrad"):
        sl.checkpoints.convert_tf(str(F.model_dir(case)), est)


@pytest.mark.parametrize("case", V2_CASES)
def test_convert_refuses_other_hyperparameters(case, tmp_path):
    """issue 10: TF 2.x records the optimizer's hyper-parameters; a mismatch is a ConfigError naming both."""
    recorded = F.expected(case)["estimator"]["optimizer"]["params"]["learning_rate"]
    est = F.estimator(case, tmp_path / "md", optimizer_=F.optimizer(case, learning_rate=0.05))
    with pytest.raises(ConfigError) as err:
        sl.checkpoints.convert_tf(str(F.model_dir(case)), est)
    message = str(err.value)
    assert "learning_rate" in message and "0.05" in message and str(recorded) in message, message


@pytest.mark.parametrize("case", CASES[:1])
def test_convert_refuses_a_path_that_is_not_a_tf_checkpoint(case, tmp_path):
    est = F.estimator(case, tmp_path / "md")
    with pytest.raises(CheckpointError, match="nowhere"):
        sl.checkpoints.convert_tf(str(tmp_path / "nowhere"), est)


@pytest.mark.parametrize("case", CASES[:1])
def test_copied_model_dir_with_a_missing_latest_prefix(case, tmp_path):
    copy = tmp_path / "tf"
    shutil.copytree(F.model_dir(case), copy)
    latest = F.expected(case)["model_dir"]["latest_checkpoint"]
    for f in copy.glob(latest + ".*"):
        f.unlink()
    est = F.estimator(case, tmp_path / "md")
    with pytest.raises(CheckpointError, match=latest):
        est.evaluate(F.eval_input_fn(case), checkpoint_path=str(copy))

"""streamlin's own snapshots: atomic publish, retention, exact resume, warm start, any-checkpoint eval."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
import zarr

import streamlin as sl
from streamlin import feature_column as fc
from streamlin.checkpoint import store
from streamlin.errors import CheckpointError, ConfigError


def _data(n=256, seed=0, n_classes=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    city = rng.choice(["a", "b", "c", "d", "e", "f"], size=n)
    tags = [list(rng.choice(["t1", "t2", "t3", "t4"], size=rng.integers(0, 3))) for _ in range(n)]
    logit = 1.5 * x + (city == "a") - (city == "b")
    if n_classes == 2:
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    else:
        y = np.clip(np.round(logit + rng.normal(size=n)), 0, n_classes - 1).astype(np.int64) % n_classes
    return {"x": x, "city": city, "tags": tags}, y


def _columns():
    return [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("city", 64),
            fc.categorical_column_with_hash_bucket("tags", 16), fc.crossed_column(["city", "tags"], 32)]


def _estimator(model_dir, optimizer, n_classes=2, **config):
    return sl.LinearClassifier(_columns(), model_dir=str(model_dir), n_classes=n_classes, optimizer=optimizer,
                               config=sl.RunConfig(**{"save_checkpoints_steps": 1000, **config}))


def _variables(est):
    return {name: est.get_variable_value(name) for name in est.get_variable_names()}


OPTIMIZERS = {
    "ftrl": lambda: sl.optimizers.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01,
                                       l2_shrinkage_regularization_strength=0.01),
    "adagrad": lambda: sl.optimizers.Adagrad(learning_rate=0.1),
    "sgd": lambda: sl.optimizers.SGD(learning_rate=0.05),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("n_classes", [2, 3])
def test_resume_is_bit_identical(tmp_path, optimizer, n_classes):
    features, labels = _data(n_classes=n_classes)
    make_input = lambda: sl.inputs.numpy_input_fn(features, labels, batch_size=16)  # noqa: E731
    whole = _estimator(tmp_path / "whole", OPTIMIZERS[optimizer](), n_classes, resume_input=True)
    whole.train(make_input(), steps=8)
    split = _estimator(tmp_path / "split", OPTIMIZERS[optimizer](), n_classes, resume_input=True)
    split.train(make_input(), steps=4)
    split = _estimator(tmp_path / "split", OPTIMIZERS[optimizer](), n_classes, resume_input=True)  # a new process
    split.train(make_input(), steps=4)
    a, b = _variables(whole), _variables(split)
    assert a.keys() == b.keys()
    assert a["global_step"] == b["global_step"] == 8
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_without_resume_input_train_rereads_from_the_start(tmp_path):
    features, labels = _data()
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"]())
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=2)
    first = _variables(est)
    other = _estimator(tmp_path / "b", OPTIMIZERS["ftrl"]())
    batch = {k: (v[:32] if not isinstance(v, list) else v[:32]) for k, v in features.items()}
    other.train(sl.inputs.numpy_input_fn(batch, labels[:32], batch_size=16))
    assert np.array_equal(first["linear/linear_model/x/weights"], _variables(other)["linear/linear_model/x/weights"])


def test_max_steps_is_respected_across_calls(tmp_path):
    features, labels = _data()
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"]())
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), max_steps=5)
    assert est.get_variable_value("global_step") == 5
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), max_steps=5)
    assert est.get_variable_value("global_step") == 5
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), max_steps=7)
    assert est.get_variable_value("global_step") == 7


def test_snapshots_at_start_end_and_every_n_steps_with_retention(tmp_path):
    features, labels = _data()
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"](), save_checkpoints_steps=3, keep_checkpoint_max=3)
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16))  # 16 steps
    steps = [s.step for s in sl.checkpoints.list(tmp_path)]
    assert steps == [12, 15, 16]  # 0, 3, ... 15 and the final 16; the 3 newest kept
    assert est.latest_checkpoint() == str(tmp_path / "model.ckpt-16")
    index = json.loads((tmp_path / "checkpoints.json").read_text())
    assert [e["step"] for e in index["snapshots"]] == [12, 15, 16]
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


def test_keep_best_keeps_the_best_evaluated_snapshot(tmp_path):
    features, labels = _data()
    keep = sl.checkpoints.KeepBest(metric="average_loss", n=1, mode="min")
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"](), save_checkpoints_steps=2, keep_checkpoint_max=1, keep_best=keep)
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=4)
    est.evaluate(sl.inputs.numpy_input_fn(features, labels, batch_size=64))  # records step 4's metrics
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=4)
    assert [s.step for s in sl.checkpoints.list(tmp_path)] == [4, 8]
    listed = sl.checkpoints.list(tmp_path)[0]
    assert "average_loss" in listed.metrics and listed.bytes > 0 and listed.time > 0


def test_evaluate_any_checkpoint_by_path_step_or_model_dir(tmp_path):
    features, labels = _data()
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"](), save_checkpoints_steps=4)
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=8)
    make = lambda: sl.inputs.numpy_input_fn(features, labels, batch_size=64)  # noqa: E731
    assert est.evaluate(make(), checkpoint_path=4)["global_step"] == 4
    assert est.evaluate(make(), checkpoint_path=str(tmp_path / "model.ckpt-0"))["global_step"] == 0
    assert est.evaluate(make(), checkpoint_path=str(tmp_path))["global_step"] == 8
    assert est.evaluate(make())["average_loss"] < est.evaluate(make(), checkpoint_path=0)["average_loss"]
    with pytest.raises(CheckpointError, match=r"no checkpoint at step 5; it keeps 0, 4, 8"):
        est.evaluate(make(), checkpoint_path=5)
    with pytest.raises(CheckpointError, match="keeps 0, 4, 8"):
        est.evaluate(make(), checkpoint_path=str(tmp_path / "model.ckpt-6"))
    lines = (tmp_path / "eval" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["global_step"] for line in lines][:3] == [4, 0, 8]


def test_evaluate_without_checkpoint_raises(tmp_path):
    features, labels = _data()
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"]())
    with pytest.raises(CheckpointError, match="Could not find trained model"):
        est.evaluate(sl.inputs.numpy_input_fn(features, labels))


def test_snapshot_reads_with_plain_zarr_by_tf_names(tmp_path):
    features, labels = _data()
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"]())
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=3)
    group = zarr.open_group(str(tmp_path / "model.ckpt-3"), mode="r")
    weights = group["linear/linear_model/city/weights"][...]
    assert weights.shape == (64, 1) and weights.dtype == np.float32
    assert np.array_equal(weights, est.get_variable_value("linear/linear_model/city/weights"))
    assert group["global_step"][...] == 3
    accumulator = group["training/Ftrl/linear/linear_model/city/weights/accumulator"][...]
    assert (accumulator >= 0.1).all()
    attrs = dict(group.attrs)
    assert attrs["step"] == 3 and attrs["head"]["n_classes"] == 2
    assert [c["type"] for c in attrs["feature_columns"]][0] == "categorical_column_with_hash_bucket"


def test_untouched_chunks_are_not_stored(tmp_path):
    rng = np.random.default_rng(1)
    n = 1000
    features = {f"c{i}": np.char.add("v", rng.integers(0, 50, size=n).astype(str)) for i in range(3)}
    labels = rng.integers(0, 2, size=n)
    columns = [fc.categorical_column_with_hash_bucket(f"c{i}", 2**22) for i in range(3)]
    est = sl.LinearClassifier(columns, model_dir=str(tmp_path), config=sl.RunConfig(save_checkpoints_steps=10**6))
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=100))
    snapshot = sl.checkpoints.list(tmp_path)[-1]
    dense_bytes = 3 * (2**22) * 4 * 3  # weights + accumulator + linear, float32
    assert snapshot.bytes < 0.05 * dense_bytes


def test_warm_start_from_a_path_keeps_ftrl_slots(tmp_path):
    """Unlike TF's warm start, the FTRL state comes along, so one more step does not forget the weights."""
    features, labels = _data()
    base = _estimator(tmp_path / "base", OPTIMIZERS["ftrl"]())
    base.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16))
    learned = base.get_variable_value("linear/linear_model/x/weights")

    def one_more_step(warm_start_from, model_dir):
        est = sl.LinearClassifier(_columns(), model_dir=str(model_dir), optimizer=OPTIMIZERS["ftrl"](),
                                  warm_start_from=warm_start_from, config=sl.RunConfig(save_checkpoints_steps=1000))
        est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=1)
        return est

    kept = one_more_step(str(tmp_path / "base"), tmp_path / "kept")
    weights_only = one_more_step(sl.WarmStartSettings(str(tmp_path / "base"), vars_to_warm_start=".*"), tmp_path / "tf")
    assert kept.get_variable_value("global_step") == 1
    kept_x = kept.get_variable_value("linear/linear_model/x/weights")
    tf_x = weights_only.get_variable_value("linear/linear_model/x/weights")
    assert abs(kept_x[0, 0] - learned[0, 0]) < 0.05 * abs(learned[0, 0])
    assert abs(tf_x[0, 0] - learned[0, 0]) > 0.3 * abs(learned[0, 0])  # TF's weights-only mode forgets
    assert np.array_equal(weights_only.get_variable_value("training/Ftrl/linear/linear_model/x/weights/accumulator")
                          >= 0.1, np.array([[True]]))


def test_warm_start_shape_mismatch_names_variable_and_shapes(tmp_path):
    features, labels = _data()
    base = _estimator(tmp_path / "base", OPTIMIZERS["ftrl"]())
    base.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=2)
    columns = [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("city", 128),
               fc.categorical_column_with_hash_bucket("tags", 16), fc.crossed_column(["city", "tags"], 32)]
    est = sl.LinearClassifier(columns, model_dir=str(tmp_path / "new"), warm_start_from=str(tmp_path / "base"))
    with pytest.raises(CheckpointError, match=r"linear/linear_model/city/weights.*\[64, 1\].*\[128, 1\]"):
        est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=1)


def test_warm_start_vocabulary_remap(tmp_path):
    rng = np.random.default_rng(3)
    n = 200
    features = {"color": rng.choice(["red", "green", "blue"], size=n)}
    labels = (features["color"] == "red").astype(np.int64)
    old = sl.LinearClassifier([fc.categorical_column_with_vocabulary_list("color", ["red", "green", "blue"])],
                              model_dir=str(tmp_path / "old"), optimizer=sl.optimizers.Ftrl(learning_rate=0.5))
    old.train(sl.inputs.numpy_input_fn(features, labels, batch_size=20))
    old_w = old.get_variable_value("linear/linear_model/color/weights")
    name = "linear/linear_model/color/weights"
    info = sl.VocabInfo(new_vocab=["blue", "purple", "red"], new_vocab_size=3, num_oov_buckets=0,
                        old_vocab=["red", "green", "blue"], backup_initializer=0.25)
    settings = sl.WarmStartSettings(str(tmp_path / "old"), vars_to_warm_start=".*", var_name_to_vocab_info={name: info})
    new = sl.LinearClassifier([fc.categorical_column_with_vocabulary_list("color", ["blue", "purple", "red"])],
                              model_dir=str(tmp_path / "new"), warm_start_from=settings,
                              optimizer=sl.optimizers.SGD(learning_rate=0.0))
    new.train(sl.inputs.numpy_input_fn(features, labels, batch_size=20), steps=1)
    new_w = new.get_variable_value(name)
    assert new_w[0, 0] == old_w[2, 0] and new_w[2, 0] == old_w[0, 0] and new_w[1, 0] == pytest.approx(0.25)


def test_failed_save_leaves_previous_snapshot_intact(tmp_path, monkeypatch):
    features, labels = _data()
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"]())
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=2)
    before = _variables(est)
    real_fsync = os.fsync

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is intact"):
        est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=2)
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    assert [s.step for s in sl.checkpoints.list(tmp_path)] == [0, 2]
    after = _variables(est)
    for name in before:
        assert np.array_equal(before[name], after[name])
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=2)
    assert est.get_variable_value("global_step") == 4


def test_export_predicts_like_predict_and_holds_no_slots(tmp_path):
    features, labels = _data()
    est = _estimator(tmp_path / "m", OPTIMIZERS["ftrl"](), n_classes=3)
    labels = labels % 3
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16))
    path = est.export_saved_model(str(tmp_path / "export"))
    exported = sl.load_exported(path)
    batch = list(est.predict(sl.inputs.numpy_input_fn(features, batch_size=64), yield_single_examples=False))
    direct = exported.predict(features)
    np.testing.assert_array_equal(np.concatenate([b["probabilities"] for b in batch]), direct["probabilities"])
    np.testing.assert_array_equal(np.concatenate([b["classes"] for b in batch]), direct["classes"])
    group = zarr.open_group(os.path.join(path, "model.zarr"), mode="r")
    names = [k for k, _ in group.arrays()] + [k for k, _ in group.groups()]
    assert "training" not in names
    assert set(exported.signature["inputs"]) == {"x", "city", "tags"}


def test_export_refuses_a_lambda_normalizer(tmp_path):
    features, labels = _data()
    columns = [fc.numeric_column("x", normalizer_fn=lambda a: a * 2)]
    est = sl.LinearClassifier(columns, model_dir=str(tmp_path))
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=64))
    with pytest.raises(ConfigError, match="normalizer_fn without an import name"):
        est.export_saved_model(str(tmp_path / "export"))


def test_leftover_temporary_snapshot_is_removed_and_never_listed(tmp_path):
    features, labels = _data()
    est = _estimator(tmp_path, OPTIMIZERS["ftrl"]())
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=1)
    leftover = tmp_path / ".tmp-model.ckpt-9-123-abcdef"
    leftover.mkdir()
    (leftover / "zarr.json").write_text("{")
    assert [s.step for s in sl.checkpoints.list(tmp_path)] == [0, 1]
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=1)
    assert not leftover.exists()


def test_interrupted_train_saves_the_steps_it_finished(tmp_path):
    """Ctrl-C (KeyboardInterrupt) between steps: the steps done so far are saved, then it re-raises."""
    features, labels = _data()

    class Interrupt:
        def after_step(self, step, loss):
            if step == 3:
                raise KeyboardInterrupt

    est = _estimator(tmp_path, OPTIMIZERS["ftrl"]())
    with pytest.raises(KeyboardInterrupt):
        est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), hooks=[Interrupt()])
    assert [s.step for s in sl.checkpoints.list(tmp_path)] == [0, 3]
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=16), steps=1)
    assert est.get_variable_value("global_step") == 4

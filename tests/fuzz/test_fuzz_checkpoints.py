"""Damaged model files fed to the loaders: zarr snapshots and ``checkpoints.json``, exports, and
TensorFlow checkpoints.

Property (API.md, Checkpoints): a damaged snapshot raises CheckpointError naming it, and streamlin
never falls back to an older snapshot silently. So each load of a damaged copy either raises a
CheckpointError naming the snapshot (or the damaged index), or gives exactly the undamaged result;
an export likewise (a StreamlinError naming the export); ``read_tf`` a CheckpointError or the
undamaged tensors.
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamlin as sl
from streamlin import feature_column as fc
from streamlin.errors import CheckpointError, StreamlinError
from tests._shared import SHARED
from tests.fuzz import mutations as M
from tests.fuzz.harness import Crashed, Raised, expect, fuzz_settings, run_case

WORK = Path(tempfile.mkdtemp(prefix="streamlin-fuzz-ckpt-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
RNG = np.random.default_rng(0)
X = {"x": RNG.normal(size=48), "k": RNG.choice(["a", "b", "c", "d"], 48), "i": RNG.integers(0, 5, 48)}
Y = RNG.integers(0, 2, 48)
SNAPSHOT = "model.ckpt-6"


def _columns():
    return [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("k", 8),
            fc.categorical_column_with_identity("i", 5)]


def _input_fn():
    return sl.inputs.numpy_input_fn(X, Y, batch_size=8)


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("streamlin").setLevel(logging.ERROR)
    yield
    logging.getLogger("streamlin").setLevel(logging.NOTSET)


class _Fixture(dict):
    """A dict with a short repr (Hypothesis prints fixture values with a failing example)."""

    def __repr__(self) -> str:
        return f"<{', '.join(self)}>"


@pytest.fixture(scope="module")
def trained():
    """A model_dir with snapshots 0, 3 and 6, and what an undamaged copy gives."""
    logging.getLogger("streamlin").setLevel(logging.ERROR)
    model_dir = WORK / "clean"
    est = sl.LinearClassifier(_columns(), model_dir=str(model_dir), config=sl.RunConfig(save_checkpoints_steps=3))
    est.train(_input_fn())
    assert [s.step for s in sl.checkpoints.list(model_dir)] == [0, 3, 6]
    metrics = est.evaluate(_input_fn())
    shutil.rmtree(model_dir / "eval")
    copy = WORK / "continued"
    shutil.copytree(model_dir, copy)
    continued = sl.LinearClassifier(_columns(), model_dir=str(copy))
    continued.train(_input_fn(), steps=1)
    after = {n: continued.get_variable_value(n) for n in continued.get_variable_names()}
    files = [f"{SNAPSHOT}/{f}" for f in M.files_under(model_dir / SNAPSHOT)]
    # Biased towards what matters: weight chunks and metadata, the root attributes and the index.
    weights = [f for f in files if "/weights/" in f or "/bias_weights/" in f]
    manifests = [f for f in files if f.endswith("manifest.json")]
    targets = (files + weights * 4 + manifests * 4 + [f"{SNAPSHOT}/zarr.json", "checkpoints.json"] * 6
               + [SNAPSHOT, f"{SNAPSHOT}/linear/linear_model/k/weights"])
    return _Fixture(dir=model_dir, metrics=metrics, after=after, targets=targets)


def _damaged_copy(trained, data) -> tuple[Path, str]:
    copy = M.linked_copy(trained["dir"], WORK / uuid.uuid4().hex)
    done = M.damage(data, copy, trained["targets"])
    return copy, "; ".join(map(str, done))


def _index_latest(copy: Path) -> int | None:
    """The newest step the (maybe edited) index lists with its folder present, if it still parses."""
    try:
        entries = json.loads((copy / "checkpoints.json").read_text())["snapshots"]
        return max(e["step"] for e in entries if (copy / e["path"]).is_dir())
    except Exception:  # noqa: BLE001 - a damaged index: no claim
        return None


def _names(error: StreamlinError, *paths: Path) -> bool:
    return any(str(p) in str(error) for p in paths)


def _check_load(result, clean, copy: Path, mutation, what: str, target: str) -> None:
    snapshot, index = copy / SNAPSHOT, copy / "checkpoints.json"
    if isinstance(result, Crashed):
        return
    if isinstance(result, Raised):
        expect(isinstance(result.error, CheckpointError) and _names(result.error, snapshot, index), target,
               "error of the wrong kind or not naming the snapshot",
               lambda: f"{what} after `{mutation}` raised {result}; expected a CheckpointError naming {snapshot}")
        return
    expect(result == clean, target, "silent wrong result",
           lambda: f"{what} after `{mutation}` silently gave {result}\n  undamaged: {clean}")


@fuzz_settings(40, shrink=False)
@given(st.data())
def test_damaged_snapshot_evaluate_by_path_and_latest(trained, data):
    copy, mutation = _damaged_copy(trained, data)
    try:
        est = sl.LinearClassifier(_columns(), model_dir=str(copy))
        reproducer = f"damage: {mutation}; est.evaluate(input_fn, checkpoint_path=...)"
        by_path = run_case("evaluate(damaged snapshot path)",
                           lambda: est.evaluate(_input_fn(), checkpoint_path=str(copy / SNAPSHOT)), reproducer)
        if "checkpoints.json" not in mutation:
            _check_load(by_path, trained["metrics"], copy, mutation, "evaluate(checkpoint_path=snapshot)",
                        "evaluate(damaged snapshot path)")
        latest = run_case("evaluate(damaged model_dir)", lambda: est.evaluate(_input_fn()), reproducer)
        if not isinstance(latest, Raised) and latest["global_step"] == _index_latest(copy) != 6:
            return  # the (still valid) index no longer lists step 6: as after a crash before the index write
        _check_load(latest, trained["metrics"], copy, mutation, "evaluate() of the latest", "evaluate(damaged model_dir)")
    finally:
        shutil.rmtree(copy, ignore_errors=True)


@fuzz_settings(25, shrink=False)
@given(st.data())
def test_hand_edited_snapshot_never_crashes(trained, data):
    """A snapshot edited and then resealed (a consistent manifest): its attributes and arrays are
    parsed as data, so loading raises a StreamlinError or works; nothing else."""
    copy = M.linked_copy(trained["dir"], WORK / uuid.uuid4().hex)
    try:
        targets = [t for t in trained["targets"] if t.startswith(SNAPSHOT) and "manifest" not in t]
        targets += [f"{SNAPSHOT}/zarr.json"] * 20
        mutation = "; ".join(map(str, M.damage(data, copy, targets, json_weight=6)))
        M.reseal(copy / SNAPSHOT)
        est = sl.LinearClassifier(_columns(), model_dir=str(copy))
        # (Weights edited to NaN give NaN metrics: a consistent file with such numbers is not "damaged".)
        run_case("evaluate(hand-edited snapshot)", lambda: est.evaluate(_input_fn(), checkpoint_path=6),
                 f"edit: {mutation}; reseal the manifest; est.evaluate(input_fn, checkpoint_path=6)")
    finally:
        shutil.rmtree(copy, ignore_errors=True)


@fuzz_settings(15, shrink=False)
@given(st.data())
def test_damaged_snapshot_train_resumes_from_it_or_raises(trained, data):
    copy, mutation = _damaged_copy(trained, data)
    try:
        est = sl.LinearClassifier(_columns(), model_dir=str(copy))
        result = run_case("train(damaged model_dir)", lambda: est.train(_input_fn(), steps=1),
                          f"damage: {mutation}; LinearClassifier(...).train(input_fn, steps=1)")
        if isinstance(result, Raised):
            _check_load(result, None, copy, mutation, "train()", "train(damaged model_dir)")
            return
        after = {n: est.get_variable_value(n) for n in est.get_variable_names()}
        same = after.keys() == trained["after"].keys() and all(
            np.array_equal(after[n], trained["after"][n]) for n in after)
        expect(same, "train(damaged model_dir)", "silent fallback or wrong resume",
               lambda: f"train() after `{mutation}` resumed from something else: global_step"
                       f" {after.get('global_step')} (undamaged: {trained['after']['global_step']})")
    finally:
        shutil.rmtree(copy, ignore_errors=True)


# -- exports ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(trained):
    est = sl.LinearClassifier(_columns(), model_dir=str(trained["dir"]))
    path = Path(est.export_saved_model(WORK / "exports"))
    clean = sl.load_exported(path).predict(X)
    files = M.files_under(path)
    return _Fixture(path=path, clean=clean,
                    targets=files + [f for f in files if "manifest" in f or "/c/" in f] * 3 + ["model.zarr"])


@fuzz_settings(40, shrink=False)
@given(st.data())
def test_damaged_export(exported, data):
    copy = M.linked_copy(exported["path"], WORK / f"export-{uuid.uuid4().hex}")
    mutation = "; ".join(map(str, M.damage(data, copy, exported["targets"], json_weight=6)))
    try:
        result = run_case("load_exported(damaged).predict", lambda: sl.load_exported(copy).predict(X),
                          f"damage: {mutation}; sl.load_exported(path).predict(X)")
        target = "load_exported(damaged).predict"
        if isinstance(result, Raised):
            expect(isinstance(result, Crashed) or str(copy) in str(result.error), target, "error not naming the export",
                   lambda: f"load_exported after `{mutation}` raised {result}, not naming {copy}")
            return
        clean = exported["clean"]
        same = result.keys() == clean.keys() and all(np.array_equal(result[k], clean[k]) for k in clean)
        expect(same, target, "silent wrong result", lambda: f"load_exported after `{mutation}` silently predicted"
                                                            " differently")
    finally:
        shutil.rmtree(copy, ignore_errors=True)


@fuzz_settings(60, shrink=False)
@given(st.data())
def test_hand_edited_export_never_crashes(exported, data):
    """An export edited and resealed: the description is validated data; never another exception."""
    copy = M.linked_copy(exported["path"], WORK / f"export-{uuid.uuid4().hex}")
    try:
        targets = [t for t in exported["targets"] if "manifest" not in t] + ["model.zarr/zarr.json"] * 30
        mutation = "; ".join(map(str, M.damage(data, copy, targets, json_weight=8)))
        M.reseal(copy)
        target = "load_exported(hand-edited).predict"
        result = run_case(target, lambda: sl.load_exported(copy).predict(X),
                          f"edit: {mutation}; reseal the manifest; sl.load_exported(path).predict(X)")
        if not isinstance(result, Raised):
            n = len(X["x"])
            ok = (result["probabilities"].shape[0] == n and np.isfinite(result["probabilities"]).all()
                  and not np.isnan(result["logits"]).any())
            expect(ok, target, "bad predictions", lambda: f"after `{mutation}`: {result}")
    finally:
        shutil.rmtree(copy, ignore_errors=True)


# -- TensorFlow checkpoints ------------------------------------------------------------------------------
TF_CASES = sorted(p.name for p in (SHARED / "tfref" / "checkpoints").iterdir() if (p / "model_dir").is_dir()) \
    if (SHARED / "tfref" / "checkpoints").is_dir() else []


@pytest.fixture(scope="module")
def tf_clean():
    return _Fixture({case: sl.checkpoints.read_tf(SHARED / "tfref" / "checkpoints" / case / "model_dir")
                     for case in TF_CASES})


@pytest.mark.skipif(not TF_CASES, reason="the TF checkpoint fixtures (shared/tfref/checkpoints) are absent")
@fuzz_settings(80, shrink=False)
@given(st.data())
def test_damaged_tf_checkpoint(tf_clean, data):
    case = data.draw(st.sampled_from(TF_CASES))
    copy = WORK / f"tf-{uuid.uuid4().hex}"
    shutil.copytree(SHARED / "tfref" / "checkpoints" / case / "model_dir", copy)  # a real copy: never link the fixtures
    mutation = "; ".join(map(str, M.damage(data, copy, M.files_under(copy), json_weight=0)))
    try:
        result = run_case("read_tf(damaged)", lambda: sl.checkpoints.read_tf(copy),
                          f"copy tfref/checkpoints/{case}/model_dir; damage: {mutation}; sl.checkpoints.read_tf(copy)")
        target = "read_tf(damaged)"
        if isinstance(result, Raised):
            expect(isinstance(result, Crashed) or isinstance(result.error, CheckpointError), target,
                   "error of the wrong kind", lambda: f"{result} after `{mutation}` of {case}")
            return
        clean = tf_clean[case]
        same = result.keys() == clean.keys() and all(
            np.array_equal(np.asarray(result[n]), np.asarray(clean[n])) for n in clean)
        expect(same, target, "silent wrong result", lambda: f"read_tf of {case} after `{mutation}` gave other tensors")
    finally:
        shutil.rmtree(copy, ignore_errors=True)

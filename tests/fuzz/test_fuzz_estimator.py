"""Fuzz ``LinearClassifier.train/evaluate/predict`` and the heads with random batches and labels.

Property: each call returns or raises a StreamlinError; when it returns, the model is finite, the
step count is right, metrics are finite and predictions are shaped as TF's keys promise.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamlin as sl
from streamlin.heads import Head
from tests.fuzz import strategies as S
from tests.fuzz.harness import Raised, expect, fuzz_settings, run_case

ROOT = Path(tempfile.mkdtemp(prefix="streamlin-fuzz-estimator-"))
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("streamlin").setLevel(logging.ERROR)
    yield
    logging.getLogger("streamlin").setLevel(logging.NOTSET)


@st.composite
def heads(draw):
    n_classes = draw(st.sampled_from([2, 2, 3]))
    vocabulary = None
    if draw(st.integers(0, 3)) == 3:
        vocabulary = tuple(draw(st.lists(S.text, min_size=n_classes, max_size=n_classes, unique=True)))
    return n_classes, vocabulary


@fuzz_settings(200)
@given(st.data())
def test_encode_labels_of_random_types(data):
    n_classes, vocabulary = data.draw(heads())
    head = Head(n_classes, vocabulary)
    n = data.draw(st.integers(0, 6))
    labels, recipe = data.draw(S.labels(n, n_classes, vocabulary))
    result = run_case("Head.encode_labels", lambda: head.encode_labels(labels, lambda r: f"row {r}"),
                      lambda: f"Head({n_classes}, {vocabulary!r}).encode_labels({recipe}, str)")
    if isinstance(result, Raised):
        return
    if n_classes == 2 and vocabulary is None:
        valid = (result >= 0) & (result <= 1)
    else:
        valid = (result >= 0) & (result < n_classes) & (result == np.floor(result))
    expect(result.dtype == np.float64 and result.shape == (len(labels),) and valid.all(), "Head.encode_labels",
           "bad encoded labels", lambda: f"{result!r} from Head({n_classes}, {vocabulary!r}).encode_labels({recipe})")


def _piece_rows(n: int, pieces: int) -> int:
    return max(1, -(-n // pieces))


def _input_fn(kind: str, batch: pa.RecordBatch, labels, pieces: int):
    """An input_fn of the given kind over ``batch``: one pair, a generator of slices, or dict inputs."""
    if kind == "pair":
        return lambda: (batch, labels)
    if kind == "dict":
        features = S.as_python_dict(batch, "numpy")
        return lambda: (features, labels)
    if kind == "table":
        return lambda: (pa.Table.from_batches([batch]), labels)
    step = _piece_rows(batch.num_rows, pieces)

    def stream():
        for start in range(0, max(batch.num_rows, 1), step):
            yield batch.slice(start, step), None if labels is None else labels[start:start + step]

    return stream


def _check_trained(est: sl.LinearClassifier, n_steps: int, target: str, reproducer: str) -> None:
    step = est.get_variable_value("global_step")
    expect(step == n_steps, target, "wrong global_step", lambda: f"global_step {step}, expected {n_steps}: {reproducer}")
    for name in est.get_variable_names():
        value = est.get_variable_value(name)
        expect(np.isfinite(value).all(), target, "non-finite variable",
               lambda name=name, value=value: f"variable {name} is {value} after training: {reproducer}")


def _check_predictions(predictions: list, n_rows: int, n_classes: int, reproducer: str) -> None:
    target = "LinearClassifier.predict"
    expect(len(predictions) == n_rows, target, "wrong number of predictions",
           lambda: f"{len(predictions)} predictions for {n_rows} rows: {reproducer}")
    for p in predictions:
        ok = (p["probabilities"].shape == (n_classes,) and np.isfinite(p["probabilities"]).all()
              and abs(float(p["probabilities"].sum()) - 1) < 1e-3 and not np.isnan(p["logits"]).any()
              and 0 <= int(p["class_ids"][0]) < n_classes)
        expect(ok, target, "bad prediction", lambda p=p: f"{p}: {reproducer}")


@fuzz_settings(25, shrink=False)
@given(st.data())
def test_train_evaluate_predict_random_batches(data):
    columns = data.draw(S.feature_columns())
    n_classes, vocabulary = data.draw(heads())
    n = data.draw(st.integers(0, 6))
    sample = data.draw(S.record_batches(columns, n=n))
    labels, label_recipe = data.draw(S.labels(n, n_classes, vocabulary))
    weight_column = data.draw(st.sampled_from([None, None, S.WEIGHT_KEY]))
    if weight_column and S.WEIGHT_KEY not in sample.batch.schema.names:
        weight = data.draw(S.array_for("weight", n))
        sample = S.BatchSample(sample.batch.append_column(S.WEIGHT_KEY, weight.array),
                               f"{sample.recipe}.append_column({S.WEIGHT_KEY!r}, {weight.recipe})")
    kind = data.draw(st.sampled_from(["pair", "dict", "table", "stream"]))
    pieces = data.draw(st.integers(1, 3))
    optimizer = data.draw(st.sampled_from(["Ftrl", "Adagrad"]))
    combiner = data.draw(st.sampled_from(["sum", "mean", "sqrtn"]))
    model_dir = ROOT / uuid.uuid4().hex
    reproducer = (f"est = sl.LinearClassifier({columns!r}, model_dir=TMP, n_classes={n_classes},"
                  f" label_vocabulary={vocabulary!r}, weight_column={weight_column!r}, optimizer={optimizer!r},"
                  f" sparse_combiner={combiner!r})\nbatch = {sample.recipe}\nlabels = {label_recipe}\n"
                  f"input_fn kind {kind!r} ({pieces} pieces)")
    try:
        est = sl.LinearClassifier(columns, model_dir=str(model_dir), n_classes=n_classes, label_vocabulary=vocabulary,
                                  weight_column=weight_column, optimizer=optimizer, sparse_combiner=combiner)
        input_fn = _input_fn(kind, sample.batch, labels, pieces)
        trained = run_case("LinearClassifier.train", lambda: est.train(input_fn), reproducer)
        if not isinstance(trained, Raised):
            n_steps = 0 if n == 0 else -(-n // _piece_rows(n, pieces)) if kind == "stream" else 1
            _check_trained(est, n_steps, "LinearClassifier.train", reproducer)
        elif not est.latest_checkpoint():
            return  # nothing saved: there is no model to evaluate
        metrics = run_case("LinearClassifier.evaluate", lambda: est.evaluate(input_fn), reproducer)
        if not isinstance(metrics, Raised) and n:
            bad = {k: v for k, v in metrics.items() if not np.isfinite(v)}
            expect(not bad, "LinearClassifier.evaluate", "non-finite metric", lambda: f"{bad}: {reproducer}")
        predict_fn = _input_fn(kind, sample.batch, None, pieces)
        predictions = run_case("LinearClassifier.predict", lambda: list(est.predict(predict_fn)), reproducer)
        if not isinstance(predictions, Raised):
            _check_predictions(predictions, n, n_classes, reproducer)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


@fuzz_settings(15, shrink=False)
@given(st.data())
def test_numpy_input_fn_with_random_dicts(data):
    """numpy_input_fn(x, y) over dicts of numpy arrays or lists, random batch sizes and epochs."""
    columns = data.draw(S.feature_columns(max_columns=2))
    n = data.draw(st.integers(0, 9))
    sample = data.draw(S.record_batches(columns, n=n, extra_columns=False))
    features = S.as_python_dict(sample.batch, data.draw(st.sampled_from(["numpy", "pylist"])))
    labels, label_recipe = data.draw(S.labels(n, 2, None))
    batch_size = data.draw(st.integers(1, 4))
    shuffle = data.draw(st.booleans())
    model_dir = ROOT / uuid.uuid4().hex
    reproducer = (f"sl.LinearClassifier({columns!r}, model_dir=TMP).train(sl.inputs.numpy_input_fn({features!r},"
                  f" {label_recipe}, batch_size={batch_size}, shuffle={shuffle}, seed=0))")
    try:
        def case():
            est = sl.LinearClassifier(columns, model_dir=str(model_dir))
            est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=batch_size, shuffle=shuffle, seed=0))
            return est

        est = run_case("numpy_input_fn+train", case, reproducer)
        if not isinstance(est, Raised):
            _check_trained(est, -(-n // batch_size), "numpy_input_fn+train", reproducer)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


INPUT_FN_RESULTS = {
    "None": lambda: None,
    "int": lambda: 5,
    "string": lambda: "features",
    "empty list": lambda: [],
    "list of ints": lambda: [1, 2],
    "triple": lambda: [({"a": [1]}, [0], "extra")],
    "pair of None": lambda: (None, None),
    "labels dict": lambda: ({"a": ["x"]}, {"y": [0]}),
    "features list": lambda: ([["x"]], [0]),
    "empty dict": lambda: ({}, []),
    "generator of dicts": lambda: ({"a": ["x"]} for _ in range(2)),
}


@pytest.mark.parametrize("name", sorted(INPUT_FN_RESULTS))
def test_input_fn_returning_odd_things(name, tmp_path):
    est = sl.LinearClassifier([sl.feature_column.categorical_column_with_hash_bucket("a", 4)], model_dir=str(tmp_path))
    run_case("train(odd input_fn)", lambda: est.train(INPUT_FN_RESULTS[name]), f"est.train(lambda: {name})")

"""Distributed ``evaluate`` equals one process on the same snapshot; ``predict_to_parquet`` writes one
file per input file, rows in input order, with the values ``predict`` yields."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import streamlin as sl
from streamlin import feature_column as fc
from streamlin.distribute import Dask, InProcess, predict_to_parquet
from tests.distribute import _common

EXACT = ("auc", "auc_precision_recall", "accuracy", "precision", "recall", "global_step")


def _assert_same_metrics(distributed: dict, one: dict) -> None:
    assert distributed.keys() == one.keys()
    assert distributed["loss"] == pytest.approx(one["loss"], rel=1e-9)
    assert distributed["average_loss"] == pytest.approx(one["average_loss"], rel=1e-9)
    for key in EXACT:
        if key in one:
            assert distributed[key] == one[key], key
    for key, value in one.items():
        assert distributed[key] == pytest.approx(value, rel=1e-12), key


def _test_csv(synthetic, tmp_path) -> list[str]:
    """The test rows as 3 CSV files (CSV units are whole files, of unknown length)."""
    table = pq.read_table(synthetic.test, columns=["label", "I2", "I5", "I7"] + [f"C{i}" for i in range(1, 11)])
    paths = []
    for i, (a, b) in enumerate([(0, 7001), (7001, 7500), (7500, table.num_rows)]):
        path = str(tmp_path / f"test-{i}.csv")
        pacsv.write_csv(table.slice(a, b - a), path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("kind, batch_size, steps", [("parquet", 1024, None), ("parquet", 1500, 7),
                                                     ("csv", 1024, None), ("csv", 999, 12)])
def test_distributed_evaluate_equals_one_process(synthetic, reference, tmp_path, kind, batch_size, steps):
    if kind == "parquet":
        fn = sl.inputs.parquet_input_fn(synthetic.test, "label", batch_size=batch_size)
    else:
        types = {f"C{i}": "string" for i in range(1, 11)}
        fn = sl.inputs.csv_input_fn(_test_csv(synthetic, tmp_path), "label", batch_size=batch_size, column_types=types)
    snapshot = reference.est.latest_checkpoint()
    one = _common.estimator(reference.est.model_dir).evaluate(fn, steps=steps, checkpoint_path=snapshot, name="one")
    distributed = _common.estimator(reference.est.model_dir, InProcess(3, _common.ROUND_ROWS))
    _assert_same_metrics(distributed.evaluate(fn, steps=steps, checkpoint_path=snapshot, name="k3"), one)


@_common.requires_dask
def test_evaluate_on_a_local_cluster_and_multiclass(tmp_path):
    rng = np.random.default_rng(5)
    paths = []
    for i in range(2):
        x = rng.normal(size=9000).astype(np.float32)
        label = np.clip(np.round(x + rng.normal(size=9000)), -1, 1).astype(np.int64) + 1
        pq.write_table(pa.table({"x": x, "label": label, "w": rng.integers(0, 4, 9000).astype(np.float32)}),
                       tmp_path / f"p{i}.parquet", row_group_size=2500)
        paths.append(str(tmp_path / f"p{i}.parquet"))
    columns = [fc.bucketized_column(fc.numeric_column("x"), [-1, 0, 1])]
    est = sl.LinearClassifier(columns, model_dir=str(tmp_path / "m"), n_classes=3, weight_column="w",
                              optimizer=sl.optimizers.Ftrl(0.1))
    fn = sl.inputs.parquet_input_fn(paths, "label", batch_size=700, num_epochs=2)
    est.train(sl.inputs.parquet_input_fn(paths, "label", batch_size=256))
    one = est.evaluate(fn)
    with Dask(n_workers=2, sync_every_rows=_common.ROUND_ROWS) as engine:
        distributed = sl.LinearClassifier(columns, model_dir=str(tmp_path / "m"), n_classes=3, weight_column="w",
                                          optimizer=sl.optimizers.Ftrl(0.1),
                                          config=sl.RunConfig(eval_distribute=engine))
        _assert_same_metrics(distributed.evaluate(fn), one)


@pytest.mark.parametrize("distribute", [None, InProcess(2, _common.ROUND_ROWS)])
def test_predict_to_parquet_writes_one_file_per_input_in_order(synthetic, reference, tmp_path, distribute):
    inputs = synthetic.train[:2]
    fn = sl.inputs.parquet_input_fn(inputs, "label", batch_size=512)
    written = predict_to_parquet(reference.est, fn, tmp_path / "out", passthrough=["label", "C1"],
                                 distribute=distribute)
    assert [p.rsplit("/", 1)[1] for p in written] == ["part-00000.parquet", "part-00001.parquet"]
    expected = np.concatenate([b["logistic"][:, 0] for b in reference.est.predict(
        sl.inputs.parquet_input_fn(inputs, "label", batch_size=8192), predict_keys=["logistic"],
        yield_single_examples=False)])
    tables = [pq.read_table(p) for p in written]
    assert tables[0].column_names == ["label", "C1", "logistic", "class_ids", "classes"]
    for source, table in zip(inputs, tables):
        original = pq.read_table(source, columns=["label", "C1"])
        assert table.select(["label", "C1"]).equals(original)
    logistic = np.concatenate([t.column("logistic").to_numpy() for t in tables])
    np.testing.assert_array_equal(logistic, expected.astype(np.float32))
    classes = np.concatenate([t.column("classes").to_numpy(zero_copy_only=False) for t in tables])
    np.testing.assert_array_equal(classes, np.where(logistic > 0.5, "1", "0"))


def test_predict_to_parquet_checks_its_input(reference, tmp_path):
    with pytest.raises(ValueError, match="only the built-in file makers"):
        predict_to_parquet(reference.est, lambda: {"C1": ["a"]}, tmp_path)

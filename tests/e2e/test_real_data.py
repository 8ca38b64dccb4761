"""End to end on real public data: UCI Adult (bundled), and the Criteo and Avazu samples of
../shared/datasets (never copied into the project; these tests skip when they are absent)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import streamlin as sl
from streamlin import demo
from streamlin import feature_column as fc
from tests._shared import SHARED

CRITEO = SHARED / "datasets" / "criteo_dac_head8k"
AVAZU = SHARED / "datasets" / "avazu_head9k"


def test_adult_census_tutorial_reaches_tensorflows_accuracy(tmp_path):
    """TF 2.15 on these columns, 2 epochs of batch 40: accuracy 0.8366, AUC 0.8842 (tf_reference_results.json)."""
    metrics = demo.run(model_dir=str(tmp_path), epochs=2, out=lambda *_: None)
    assert metrics["global_step"] == 2 * math.ceil(32561 / 40)
    assert metrics["accuracy"] >= 0.83
    assert metrics["auc"] >= 0.875
    assert 0.33 < metrics["average_loss"] < 0.37


def test_adult_from_the_raw_uci_csv(tmp_path):
    """The raw file (', '-separated, no header, '?' as a category) through csv_input_fn."""
    raw = SHARED / "datasets" / "adult" / "adult.data"
    if not raw.exists():
        pytest.skip(f"{raw} is absent")
    names = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
             "relationship", "race", "gender", "capital_gain", "capital_loss", "hours_per_week", "native_country",
             "income_bracket"]
    cleaned = tmp_path / "adult.csv"
    lines = [line.strip().replace(", ", ",") for line in raw.read_text().splitlines()]
    cleaned.write_text("\n".join(line for line in lines if "," in line) + "\n")
    est = sl.LinearClassifier(demo.census_columns(), model_dir=str(tmp_path / "m"), label_vocabulary=["<=50K", ">50K"],
                              loss_reduction="sum")
    make = lambda: sl.inputs.csv_input_fn(str(cleaned), label_key="income_bracket", batch_size=40, column_names=names,  # noqa: E731
                                          header=False)
    est.train(make())
    metrics = est.evaluate(make())
    assert metrics["accuracy"] > 0.82 and metrics["auc"] > 0.87


CRITEO_NAMES = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]


def _criteo_columns():
    numeric = [fc.bucketized_column(fc.numeric_column(f"I{i}", default_value=-1.0),
                                    [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096]) for i in range(1, 14)]
    categorical = [fc.categorical_column_with_hash_bucket(f"C{i}", 2**16) for i in range(1, 27)]
    return numeric + categorical + [fc.crossed_column(["C1", "C2"], 2**16)]


@pytest.mark.skipif(not CRITEO.is_dir(), reason="shared Criteo sample absent")
def test_criteo_tsv_trains_and_beats_the_constant_predictor(tmp_path):
    types = {name: "string" for name in CRITEO_NAMES if name.startswith("C")}
    make = lambda path, epochs=1: sl.inputs.csv_input_fn(str(path), label_key="label", batch_size=64,  # noqa: E731
                                                         num_epochs=epochs, column_names=CRITEO_NAMES,
                                                         column_types=types, delimiter="\t", header=False)
    est = sl.LinearClassifier(_criteo_columns(), model_dir=str(tmp_path),
                              optimizer=sl.optimizers.Ftrl(learning_rate=0.05, l1_regularization_strength=0.5))
    est.train(make(CRITEO / "train.tsv", epochs=2))
    metrics = est.evaluate(make(CRITEO / "test.tsv"))
    base_rate = metrics["label/mean"]
    constant = -(base_rate * math.log(base_rate) + (1 - base_rate) * math.log(1 - base_rate))
    assert metrics["average_loss"] < constant - 0.02
    assert metrics["auc"] > 0.68
    parquet = sl.LinearClassifier(_criteo_columns(), model_dir=str(tmp_path / "p"),
                                  optimizer=sl.optimizers.Ftrl(learning_rate=0.05, l1_regularization_strength=0.5))
    parquet.train(sl.inputs.parquet_input_fn(str(CRITEO / "train.parquet"), "label", batch_size=64, num_epochs=2))
    same = parquet.evaluate(sl.inputs.parquet_input_fn(str(CRITEO / "test.parquet"), "label", batch_size=64))
    assert same["average_loss"] == pytest.approx(metrics["average_loss"], abs=1e-6)


@pytest.mark.skipif(not AVAZU.is_dir(), reason="shared Avazu sample absent")
def test_avazu_csv_with_uint64_ids_and_int_categoricals(tmp_path):
    path = AVAZU / "avazu_train_head8999.csv"
    categorical = ["C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain",
                   "app_category", "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
                   "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21"]
    columns = [fc.categorical_column_with_hash_bucket(name, 2**15) for name in categorical]
    columns.append(fc.crossed_column(["site_id", "app_id"], 2**15))
    est = sl.LinearClassifier(columns, model_dir=str(tmp_path), optimizer=sl.optimizers.Ftrl(learning_rate=0.1))
    types = {"id": "string"}
    est.train(sl.inputs.csv_input_fn(str(path), label_key="click", batch_size=128, num_epochs=2, column_types=types))
    metrics = est.evaluate(sl.inputs.csv_input_fn(str(path), label_key="click", batch_size=1024, column_types=types))
    assert metrics["auc"] > 0.70 and metrics["average_loss"] < 0.45
    ids = fc.transform(fc.categorical_column_with_hash_bucket("C1", 2**15),
                       {"C1": np.array([1005, 1005], dtype=np.int64)})
    assert ids.to_pylist()[0] == ids.to_pylist()[1]

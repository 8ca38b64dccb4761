"""The training pipeline: how rows are cut into chunks, laid out for the kernels and handed between
threads changes no number. Chunks reuse entry buffers (a pool shared by the read-ahead thread and
the learner), steps under 32 rows get row-major entries and larger ones column-major."""

from __future__ import annotations

import numpy as np
import pytest

import streamlin as sl
from streamlin import feature_column as fc
from streamlin.estimator import ROW_MAJOR_BELOW_ROWS_PER_STEP


def _data(n=1500, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    city = rng.choice(["a", "b", "c", "d", "e", "f", ""], size=n)
    tags = [list(rng.choice(["t1", "t2", "t3", "t4"], size=rng.integers(0, 4))) for _ in range(n)]
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * x + (city == "a") - (city == "b"))))).astype(np.int64)
    return {"x": x, "city": city, "tags": tags}, y


def _train(tmp_path, name, batch_size, chunk_rows):
    columns = [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("city", 64),
               fc.categorical_column_with_hash_bucket("tags", 16), fc.crossed_column(["city", "tags"], 32)]
    est = sl.LinearClassifier(columns, model_dir=str(tmp_path / name),
                              optimizer=sl.optimizers.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01),
                              config=sl.RunConfig(chunk_rows=chunk_rows, save_checkpoints_steps=10 ** 9))
    features, labels = _data()
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=batch_size, shuffle=False))
    return {name: est.get_variable_value(name) for name in est.get_variable_names()}


@pytest.mark.parametrize("batch_size", [1, ROW_MAJOR_BELOW_ROWS_PER_STEP - 1, ROW_MAJOR_BELOW_ROWS_PER_STEP, 100])
def test_chunk_size_and_entry_layout_change_no_number(tmp_path, batch_size):
    # One chunk for the whole input, against many chunks (the learner lags the read-ahead thread,
    # so buffers cycle through the pool while others are in flight).
    whole = _train(tmp_path, "whole", batch_size, chunk_rows=1 << 20)
    chunked = _train(tmp_path, "chunked", batch_size, chunk_rows=batch_size * 3)
    assert whole.keys() == chunked.keys()
    for name in whole:
        np.testing.assert_array_equal(whole[name], chunked[name], err_msg=name)
    assert whole["global_step"] == -(-1500 // batch_size)


def test_row_major_and_column_major_batches_train_identically(tmp_path, monkeypatch):
    import streamlin.estimator as estimator_module

    column_major = _train(tmp_path, "cm", 64, chunk_rows=640)
    monkeypatch.setattr(estimator_module, "ROW_MAJOR_BELOW_ROWS_PER_STEP", 10 ** 9)
    row_major = _train(tmp_path, "rm", 64, chunk_rows=640)
    for name in column_major:
        np.testing.assert_array_equal(column_major[name], row_major[name], err_msg=name)


def test_dictionary_encoded_parquet_trains_like_plain_parquet(tmp_path):
    """Parquet dictionary pages are read as DictionaryArrays (flat string features only; never the
    label); hash, vocabulary and crossed columns over them give the numbers of the same file
    written without dictionaries."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streamlin.inputs import iter_chunks

    features, labels = _data()
    site = np.where(np.arange(len(labels)) % 7 == 0, None, features["city"])
    table = pa.table({"x": features["x"], "city": pa.array(list(features["city"])), "site": pa.array(list(site)),
                      "tags": pa.array(features["tags"], type=pa.list_(pa.string())),
                      "label": pa.array([str(v) for v in labels])})
    pq.write_table(table, tmp_path / "dict.parquet", use_dictionary=True, row_group_size=500)
    pq.write_table(table, tmp_path / "plain.parquet", use_dictionary=False, row_group_size=500)
    fn = sl.inputs.parquet_input_fn(str(tmp_path / "dict.parquet"), "label", batch_size=50)
    chunk = next(iter(iter_chunks(fn, ["x", "city", "site", "tags"], 1000)))
    assert pa.types.is_dictionary(chunk.features.column("city").type)
    assert pa.types.is_dictionary(chunk.features.column("site").type)
    assert pa.types.is_list(chunk.features.column("tags").type) and pa.types.is_string(chunk.labels.type)

    def train(name):
        columns = [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("city", 64),
                   fc.categorical_column_with_vocabulary_list("site", ["a", "b", "c"], num_oov_buckets=2),
                   fc.categorical_column_with_hash_bucket("tags", 16), fc.crossed_column(["city", "tags"], 32),
                   fc.crossed_column(["site", "city"], 32)]
        est = sl.LinearClassifier(columns, model_dir=str(tmp_path / name), label_vocabulary=["0", "1"],
                                  config=sl.RunConfig(chunk_rows=300))
        est.train(sl.inputs.parquet_input_fn(str(tmp_path / f"{name}.parquet"), "label", batch_size=50))
        return {n: est.get_variable_value(n) for n in est.get_variable_names()}

    plain, dictionary = train("plain"), train("dict")
    for name in plain:
        np.testing.assert_array_equal(plain[name], dictionary[name], err_msg=name)


def test_evaluate_and_predict_over_reused_buffers_match_one_chunk(tmp_path):
    """evaluate and predict hand each chunk's buffers back as soon as its logits are computed."""
    features, labels = _data()
    columns = [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("city", 64),
               fc.categorical_column_with_hash_bucket("tags", 16), fc.crossed_column(["city", "tags"], 32)]
    trained = sl.LinearClassifier(columns, model_dir=str(tmp_path / "m"))
    trained.train(sl.inputs.numpy_input_fn(features, labels, batch_size=64, shuffle=False))
    results = []
    for chunk_rows in (1 << 20, 96):
        est = sl.LinearClassifier(columns, model_dir=str(tmp_path / "m"), config=sl.RunConfig(chunk_rows=chunk_rows))
        metrics = est.evaluate(sl.inputs.numpy_input_fn(features, labels, batch_size=32, shuffle=False))
        batches = est.predict(sl.inputs.numpy_input_fn(features, batch_size=32, shuffle=False),
                              predict_keys="logits", yield_single_examples=False)
        results.append((metrics, np.concatenate([b["logits"] for b in batches])))
    (m1, p1), (m2, p2) = results
    np.testing.assert_array_equal(p1, p2)
    assert m1.keys() == m2.keys()
    for key in m1:  # metrics sum chunk by chunk: the last bit may depend on where chunks end
        assert m1[key] == pytest.approx(m2[key], rel=1e-12, abs=1e-15), key

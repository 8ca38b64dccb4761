"""TensorFlow's ``tf.estimator.LinearClassifier`` (optional: runs where ``tensorflow`` and
``tensorflow_estimator`` import, e.g. TF 2.15 in another virtualenv given by ``--tf-python``).

Same columns as streamlin (``numeric_column(normalizer_fn=log1p)``, ``categorical_column_with_hash_bucket``,
``crossed_column``), ``tf.keras.optimizers.legacy.Ftrl`` with the same hyper-parameters and loss
reduction, input from the Parquet file through pyarrow batches and ``Dataset.from_generator`` (the
fastest input in ``shared/tfref/README.md``'s timing anchor). Nulls: numerics -> 0 (their
``default_value``), strings -> ``''`` (missing for a hash column, crossed as ``''``, as streamlin).
The timed ``train()`` includes graph building and TF's start and end checkpoints.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from perf import common


def _generator(paths, batch_size):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def gen():
        for path in paths:
            for b in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
                feats = {}
                for k in common.NUMERIC:
                    feats[k] = pc.fill_null(b.column(k), pa.scalar(0.0, pa.float32())).to_numpy()
                for k in common.CATEGORICAL:
                    feats[k] = np.asarray(pc.fill_null(b.column(k), "").to_numpy(
                        zero_copy_only=False), dtype=object).astype(bytes)
                yield feats, b.column("label").to_numpy().astype(np.int64)
    return gen


def run(spec):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    hp = spec["hparams"]
    bs = int(spec.get("batch_size") or hp["batch_size"])
    n = 2 ** int(hp["bucket_bits"])

    def log1p(x):
        return tf.math.log1p(tf.maximum(x, 0.0))

    cols = [tf.feature_column.numeric_column(k, default_value=0.0, normalizer_fn=log1p)
            for k in common.NUMERIC]
    cols += [tf.feature_column.categorical_column_with_hash_bucket(k, n)
             for k in common.CATEGORICAL]
    cols += [tf.feature_column.crossed_column([a, b], n) for a, b in common.CROSSES]
    sig = ({**{k: tf.TensorSpec([None], tf.float32) for k in common.NUMERIC},
            **{k: tf.TensorSpec([None], tf.string) for k in common.CATEGORICAL}},
           tf.TensorSpec([None], tf.int64))

    def input_fn(paths, batch):
        return lambda: tf.data.Dataset.from_generator(_generator(paths, batch),
                                                      output_signature=sig).prefetch(2)

    reduction = (tf.keras.losses.Reduction.SUM if hp.get("loss_reduction") == "sum"
                 else tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE)
    tmp = tempfile.mkdtemp(prefix="perf_tf_", dir=spec.get("tmp_dir"))
    try:
        est = tf.estimator.LinearClassifier(
            cols, model_dir=os.path.join(tmp, "model"), loss_reduction=reduction,
            optimizer=lambda: tf.keras.optimizers.legacy.Ftrl(
                learning_rate=float(hp["learning_rate"]),
                initial_accumulator_value=float(hp["initial_accumulator_value"]),
                l1_regularization_strength=float(hp["l1"]),
                l2_regularization_strength=float(hp["l2"]), beta=float(hp["beta"])),
            config=tf.estimator.RunConfig(save_checkpoints_steps=10 ** 12,
                                          log_step_count_steps=10 ** 9))
        rows = int(spec["rows"])
        steps = None
        if spec.get("max_rows") and spec["max_rows"] < rows:
            rows = int(spec["max_rows"])
            steps = -(-rows // bs)
        with common.Timer() as t:
            est.train(input_fn(spec["data"]["train"]["parquet"], bs), steps=steps)
        ps = [np.asarray(b["logistic"], dtype=np.float64).reshape(-1) for b in
              est.predict(input_fn(spec["data"]["test"]["parquet"], 8192),
                          predict_keys=["logistic"], yield_single_examples=False)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    notes = [f"legacy.Ftrl(learning_rate={hp['learning_rate']}, l1={hp['l1']}, l2={hp['l2']}); "
             f"batch_size={bs}; loss_reduction={hp.get('loss_reduction')}; from_generator input; "
             f"includes graph build and the start and end checkpoints"]
    res = common.result(f"TensorFlow {tf.__version__} LinearClassifier", rows=rows,
                        train_s=t.wall, train_cpu_s=t.cpu, y=common.read_test_labels(spec),
                        p=np.concatenate(ps), input="Parquet (pyarrow) -> from_generator",
                        version=tf.__version__, batch_size=bs, notes=notes)
    if steps is not None:
        res["subset"] = True
        notes.append(f"SUBSET: first {rows:,} of {spec['rows']:,} rows (steps={steps})")
    return res


if __name__ == "__main__":
    common.peer_main(run)

"""streamlin, through its public API (``API.md``); the feature-stage limit alone calls the estimator's
internal feature stage, since that is the stage the pipeline runs.

Modes (``spec["mode"]``):

* ``parquet`` / ``csv``: end to end. Warm up (compile the JIT kernels: a few steps of train,
  evaluate and predict on the test file, in a throw-away model_dir; reported as ``compile_s``), then
  one timed ``train()`` pass over the training file(s) from disk, then the test metrics.
* ``stages``: the stage limits, each timed apart over the same training Parquet file:
  ``read`` (pyarrow alone, Parquet and CSV), ``read+transform`` (the library's Parquet chunks through
  the estimator's own feature stage, ``LinearClassifier._prepare``, alone on one thread; also
  ``transform_public``: the public ``feature_column.transform`` column by column, informative), and
  ``learn`` (``train()`` over the pre-hashed ids held in memory: ``numpy_input_fn`` into
  ``categorical_column_with_identity`` columns of the same sizes and pre-transformed numerics, so
  no reading and no hashing).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from perf import common

CHUNK = 65536


def feature_columns(hp):
    from streamlin import feature_column as fc
    n = 2 ** int(hp["bucket_bits"])
    cols = [fc.numeric_column(k, default_value=0.0, normalizer_fn=common.log1p_nonneg)
            for k in common.NUMERIC]
    cols += [fc.categorical_column_with_hash_bucket(k, n) for k in common.CATEGORICAL]
    cols += [fc.crossed_column([a, b], n) for a, b in common.CROSSES]
    return cols


def identity_columns(hp):
    """The learn-only model: the same weights, fed pre-hashed ids (``h_<name>``) and pre-transformed
    numerics (``n_<key>``)."""
    from streamlin import feature_column as fc
    n = 2 ** int(hp["bucket_bits"])
    cols = [fc.numeric_column("n_" + k, default_value=0.0) for k in common.NUMERIC]
    cols += [fc.categorical_column_with_identity("h_" + name, n) for name in _hashed_names()]
    return cols


def _hashed_names():
    return list(common.CATEGORICAL) + [f"{a}_X_{b}" for a, b in common.CROSSES]


def optimizer(hp):
    import streamlin as sl
    return sl.optimizers.Ftrl(
        learning_rate=float(hp["learning_rate"]),
        initial_accumulator_value=float(hp["initial_accumulator_value"]),
        l1_regularization_strength=float(hp["l1"]),
        l2_regularization_strength=float(hp["l2"]),
        beta=float(hp["beta"]))


def estimator(columns, hp, model_dir):
    import streamlin as sl
    return sl.LinearClassifier(
        columns, model_dir=model_dir, optimizer=optimizer(hp),
        loss_reduction=hp.get("loss_reduction", "sum_over_batch_size"),
        config=sl.RunConfig(save_checkpoints_steps=10 ** 12))


def input_fn(kind, paths, batch_size):
    import streamlin as sl
    if kind == "parquet":
        return sl.inputs.parquet_input_fn(paths, label_key="label", batch_size=batch_size)
    types = {k: "string" for k in common.CATEGORICAL}
    types.update({k: "float32" for k in common.NUMERIC})
    types["label"] = "int8"
    return sl.inputs.csv_input_fn(paths, label_key="label", batch_size=batch_size,
                                  column_types=types)


def _predict(est, fn):
    out = []
    for b in est.predict(fn, predict_keys=["logistic"], yield_single_examples=False):
        out.append(np.asarray(b["logistic"], dtype=np.float64).reshape(-1))
    return np.concatenate(out)


def run_end_to_end(spec, tmp):
    import streamlin as sl
    kind = spec["mode"]
    hp = spec["hparams"]
    bs = int(spec.get("batch_size") or hp["batch_size"])
    train_paths = spec["data"]["train"][kind]
    test_paths = spec["data"]["test"][kind]
    rows = int(spec["rows"])
    steps = None
    if spec.get("max_rows") and spec["max_rows"] < rows:
        rows = int(spec["max_rows"])
        steps = -(-rows // bs)
    # 1. warm-up: compile train, evaluate and predict kernels on a few test batches
    with common.Timer() as t_compile:
        est = estimator(feature_columns(hp), hp, os.path.join(tmp, "warmup"))
        est.train(input_fn(kind, test_paths, bs), steps=3)
        est.evaluate(input_fn(kind, test_paths, 1024), steps=2)
        next(iter(est.predict(input_fn(kind, test_paths, 1024), yield_single_examples=False)))
        del est
    shutil.rmtree(os.path.join(tmp, "warmup"), ignore_errors=True)
    # 2. the timed pass
    rss0 = common.rss_now_mb()
    est = estimator(feature_columns(hp), hp, os.path.join(tmp, "model"))
    with common.Timer() as t:
        est.train(input_fn(kind, train_paths, bs), steps=steps)
    # 3. quality
    with common.Timer() as t_eval:
        metrics = est.evaluate(input_fn(kind, test_paths, 8192))
    p = _predict(est, input_fn("parquet", spec["data"]["test"]["parquet"], 8192))
    y = common.read_test_labels(spec)
    label = f"streamlin ({'Parquet' if kind == 'parquet' else 'CSV'}"
    label += f", batch {bs})" if bs != int(hp["batch_size"]) or spec.get("show_batch") else ")"
    notes = [f"Ftrl(learning_rate={hp['learning_rate']}, l1={hp['l1']}, l2={hp['l2']}, "
             f"initial_accumulator_value={hp['initial_accumulator_value']}); 29 columns x "
             f"2^{hp['bucket_bits']} buckets; batch_size={bs}; loss_reduction="
             f"{hp.get('loss_reduction', 'sum_over_batch_size')}; includes the start and end "
             f"checkpoints"]
    if steps is not None:
        notes.append(f"SUBSET: first {rows:,} of {spec['rows']:,} rows (steps={steps})")
    return common.result(
        label, rows=rows, train_s=t.wall, train_cpu_s=t.cpu, compile_s=t_compile.wall, y=y, p=p,
        input=kind, version=getattr(sl, "__version__", "?"), batch_size=bs,
        rss_before_train_mb=rss0, eval_s=t_eval.wall,
        evaluate_metrics={k: (float(v) if np.ndim(v) == 0 else v) for k, v in metrics.items()},
        subset=steps is not None, notes=notes)


# ---------------------------------------------------------------------------------------------
# Stage limits
# ---------------------------------------------------------------------------------------------
def _parquet_batches(paths, chunk=CHUNK):
    import pyarrow.parquet as pq
    for path in paths:
        yield from pq.ParquetFile(path).iter_batches(batch_size=chunk)


def _dense_ids(ids, n):
    """A ListArray of 0 or 1 id per row -> int64[n] with -1 where the row has none."""
    lens = np.diff(np.asarray(ids.offsets.to_numpy(), dtype=np.int64))
    vals = np.asarray(ids.flatten().to_numpy(), dtype=np.int64)
    if (lens > 1).any():
        raise ValueError("expected at most one id per row")
    out = np.full(n, -1, dtype=np.int64)
    out[lens == 1] = vals
    return out


def run_stages(spec, tmp):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    import streamlin as sl
    from streamlin import feature_column as fc

    hp = spec["hparams"]
    bs = int(spec.get("batch_size") or hp["batch_size"])
    rows = int(spec["rows"])
    stages = {}

    # read only: Parquet
    with common.Timer() as t:
        n = sum(b.num_rows for b in _parquet_batches(spec["data"]["train"]["parquet"]))
    stages["read_parquet"] = {"rows": n, "s": t.wall, "cpu_s": t.cpu, "rows_per_s": n / t.wall,
                              "what": "pyarrow ParquetFile.iter_batches(65,536), all columns"}
    # read only: CSV
    if spec["data"]["train"].get("csv"):
        types = {k: pa.string() for k in common.CATEGORICAL}
        types.update({k: pa.float32() for k in common.NUMERIC})
        types["label"] = pa.int8()
        with common.Timer() as t:
            n = 0
            for path in spec["data"]["train"]["csv"]:
                r = pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(
                    column_types=types, strings_can_be_null=True))
                for b in r:
                    n += b.num_rows
        stages["read_csv"] = {"rows": n, "s": t.wall, "cpu_s": t.cpu, "rows_per_s": n / t.wall,
                              "what": "pyarrow.csv.open_csv streaming, typed columns"}

    # read + feature stage, as train() runs it in its read-ahead thread (here on the calling thread):
    # the library's Parquet chunks through LinearClassifier's feature stage (hashing from Arrow
    # buffers, crosses, normalizer, the kernels' column-major entries, labels and weights)
    from streamlin.feature_column.layout import EntryBuffers
    from streamlin.inputs import iter_chunks
    probe = estimator(feature_columns(hp), hp, os.path.join(tmp, "feature_stage"))
    columns = probe._needed_columns()
    for chunk in iter_chunks(input_fn("parquet", spec["data"]["test"]["parquet"], bs), columns, 4096):
        probe._prepare(chunk, True)  # compile
        break
    buffers = EntryBuffers()  # reused chunk after chunk, as train()'s buffer pool does
    with common.Timer() as t:
        n = 0
        for chunk in iter_chunks(input_fn("parquet", spec["data"]["train"]["parquet"], bs), columns,
                                 probe.config.chunk_rows):
            probe._prepare(chunk, True, buffers=buffers)
            n += chunk.n_rows
    stages["read_transform"] = {
        "rows": n, "s": t.wall, "cpu_s": t.cpu, "rows_per_s": n / t.wall,
        "what": f"the feature stage train() runs ahead of the learner, alone on one thread: "
                f"parquet_input_fn chunks of {probe.config.chunk_rows:,} rows -> hashing, crosses, "
                "normalizer, column-major entries, labels (LinearClassifier._prepare)"}
    del probe

    # read + transform through the public feature_column.transform, column by column (also keeps
    # the ids the learn-only stage trains on)
    cols = feature_columns(hp)
    numeric = cols[:len(common.NUMERIC)]
    hashed = cols[len(common.NUMERIC):]
    keep = int(spec.get("stage_rows") or rows)
    kept = {"h_" + c.name: [] for c in hashed}
    kept.update({"n_" + k: [] for k in common.NUMERIC})
    labels = []
    first = next(_parquet_batches(spec["data"]["test"]["parquet"], 4096))
    with common.Timer() as t_warm:  # compile the hashing kernels
        for c in hashed:
            fc.transform(c, first)
    with common.Timer() as t:
        n = 0
        for b in _parquet_batches(spec["data"]["train"]["parquet"]):
            ids = [fc.transform(c, b) for c in hashed]
            nums = [common.log1p_nonneg(pc.fill_null(b.column(k), 0.0).to_numpy())
                    for k in common.NUMERIC]
            if n < keep:
                m = min(b.num_rows, keep - n)
                for c, a in zip(hashed, ids):
                    kept["h_" + c.name].append(_dense_ids(a, b.num_rows)[:m])
                for k, v in zip(common.NUMERIC, nums):
                    kept["n_" + k].append(np.asarray(v, dtype=np.float32)[:m])
                labels.append(b.column("label").to_numpy()[:m])
            n += b.num_rows
    del numeric
    stages["transform_public"] = {
        "rows": n, "s": t.wall, "cpu_s": t.cpu, "rows_per_s": n / t.wall,
        "compile_s": t_warm.wall,
        "what": "Parquet batches of 65,536 + feature_column.transform of the 29 hashed/crossed "
                "columns + log1p numerics (public API, per column; includes keeping the ids for "
                "'learn'; informative, not the pipeline's path)"}

    # learn only: pre-hashed ids in memory
    x = {k: np.concatenate(v) for k, v in kept.items()}
    y = np.concatenate(labels).astype(np.int64)
    del kept, labels
    m = len(y)
    icols = identity_columns(hp)
    with common.Timer() as t_warm:
        w = estimator(icols, hp, os.path.join(tmp, "warm_learn"))
        w.train(sl.inputs.numpy_input_fn({k: v[:4 * bs] for k, v in x.items()}, y[:4 * bs],
                                         batch_size=bs), steps=3)
        del w
    shutil.rmtree(os.path.join(tmp, "warm_learn"), ignore_errors=True)
    # the fixed cost of one train() call: model allocation, the start and end checkpoints, 1 step
    est = estimator(icols, hp, os.path.join(tmp, "fixed"))
    with common.Timer() as t_fixed:
        est.train(sl.inputs.numpy_input_fn({k: v[:bs] for k, v in x.items()}, y[:bs],
                                           batch_size=bs))
    del est
    shutil.rmtree(os.path.join(tmp, "fixed"), ignore_errors=True)
    stages["train_fixed_cost"] = {
        "rows": min(bs, m), "s": t_fixed.wall, "cpu_s": t_fixed.cpu,
        "rows_per_s": min(bs, m) / t_fixed.wall,
        "what": "one train() call of a single step on pre-hashed ids: model allocation + start "
                "and end checkpoints (part of every end-to-end figure)"}
    est = estimator(icols, hp, os.path.join(tmp, "learn"))
    fn = sl.inputs.numpy_input_fn(x, y, batch_size=bs, num_epochs=1, shuffle=False)
    with common.Timer() as t:
        est.train(fn)
    stages["learn"] = {
        "rows": m, "s": t.wall, "cpu_s": t.cpu, "rows_per_s": m / t.wall,
        "compile_s": t_warm.wall, "batch_size": bs,
        "what": f"train() over pre-hashed ids in memory: numpy_input_fn(batch_size={bs}) into "
                "29 categorical_column_with_identity + 13 numeric columns (no reading, no hashing; "
                "includes the start and end checkpoints)"}
    net = t.wall - t_fixed.wall
    stages["learn"]["rows_per_s_net_of_fixed_cost"] = m / net if net > 0 else None
    return {"peer": "streamlin stages", "input": "parquet", "train_rows": rows,
            "stages": stages, "version": getattr(sl, "__version__", "?"), "notes": []}


def run(spec):
    tmp = tempfile.mkdtemp(prefix="perf_streamlin_", dir=spec.get("tmp_dir"))
    try:
        if spec["mode"] == "stages":
            return run_stages(spec, tmp)
        return run_end_to_end(spec, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    common.peer_main(run)

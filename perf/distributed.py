"""Distributed training side by side: one process against K workers, per merge rule.

    python -m perf.distributed --rows 1000000 --files 8                 # from the repository root
    python -m perf.distributed --rows 1000000 --files 8 --dask 1 2 --emulate 2 4 8 --record

Same data, features and FTRL settings as ``perf.compare`` (Criteo-shaped synthetic rows from
``datasets/make_synthetic.py``, 13 log1p numerics, 26 hashed categoricals, 3 crosses; FTRL lr 0.1,
l1 0.01, l2 0.001, initial accumulator 0.1, batch 1024, loss_reduction "sum"), one table of
``2^bucket_bits`` buckets per column. Runs, one after the other:

* one process (``LinearClassifier.train``);
* ``Dask(n_workers=K)`` on an embedded threaded ``LocalCluster`` for each ``--dask`` K, merge
  ``guarded`` (the rows/s a single machine gets; on 2 cores K = 2 cannot beat one process: the
  workers share the cores with the driver and the Parquet decoder);
* ``InProcess(K)`` for each ``--emulate`` K and each ``--rules`` rule: the same rounds with the
  workers' tasks run one after the other, for the accuracy of K workers the cores are not there for.

Prints one Markdown table (test logloss and AUC from ``evaluate`` on the held-out rows, rows/s,
rounds, per-round overhead = round time minus the slowest task, bytes moved per round) and writes
it with every figure to ``perf/results/distributed-<time>.{md,json}``; ``--record`` also writes
``perf/DISTRIBUTED-RESULTS.md`` (tracked, quoted by the README).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from perf import common
from perf._datasets import DATA_DIR, ROOT, load_generator

RESULTS_DIR = os.path.join(ROOT, "perf", "results")
RECORD = os.path.join(ROOT, "perf", "DISTRIBUTED-RESULTS.md")


def data(rows: int, test_rows: int, files: int, seed: int = 0) -> dict:
    """Generate (or reuse) ``rows`` training rows in ``files`` Parquet files and ``test_rows`` test rows."""
    out = os.path.join(DATA_DIR, f"synth-s{seed}-r{rows}-t{test_rows}-f{files}")
    meta_path = os.path.join(out, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if all(os.path.exists(p) for split in ("train", "test") for p in meta["paths"][split]["parquet"]):
            return meta
    shutil.rmtree(out, ignore_errors=True)
    return load_generator().generate(out, rows, seed=seed, formats=("parquet",), files=files, test_rows=test_rows)


def columns(bucket_bits: int) -> list:
    from streamlin import feature_column as fc

    n = 2 ** bucket_bits
    cols = [fc.numeric_column(k, default_value=0.0, normalizer_fn=common.log1p_nonneg) for k in common.NUMERIC]
    cols += [fc.categorical_column_with_hash_bucket(k, n) for k in common.CATEGORICAL]
    cols += [fc.crossed_column([a, b], n) for a, b in common.CROSSES]
    return cols


def estimator(model_dir: str, bucket_bits: int, engine=None):
    import streamlin as sl

    hp = common.DEFAULT_HPARAMS
    optimizer = sl.optimizers.Ftrl(learning_rate=hp["learning_rate"], l1_regularization_strength=hp["l1"],
                                   l2_regularization_strength=hp["l2"],
                                   initial_accumulator_value=hp["initial_accumulator_value"])
    return sl.LinearClassifier(columns(bucket_bits), model_dir=model_dir, optimizer=optimizer, loss_reduction="sum",
                               config=sl.RunConfig(save_checkpoints_steps=10 ** 12, train_distribute=engine))


def run_one(label: str, meta: dict, bucket_bits: int, engine, tmp: str, kind: str, k: int, rule: str) -> dict:
    import streamlin as sl

    model_dir = tempfile.mkdtemp(dir=tmp)
    est = estimator(model_dir, bucket_bits, engine)
    train = sl.inputs.parquet_input_fn(meta["paths"]["train"]["parquet"], "label", batch_size=1024)
    with common.Timer() as t:
        est.train(train)
    test = sl.inputs.parquet_input_fn(meta["paths"]["test"]["parquet"], "label", batch_size=8192)
    metrics = sl.LinearClassifier(columns(bucket_bits), model_dir=model_dir).evaluate(test)
    history = list(getattr(engine, "history", []) or [])
    rounds = len(history)
    # the driver's share of a round: all but the slowest task (Dask) or all tasks (emulated, one after the other)
    busy = sum if kind == "emulated" else max
    overhead = [h["seconds"] - busy(h["task_seconds"]) for h in history]
    row = {"run": label, "kind": kind, "workers": k, "rule": rule, "rows": meta["rows"], "train_s": t.wall,
           "rows_per_s": meta["rows"] / t.wall, "test_logloss": float(metrics["average_loss"]),
           "test_auc": float(metrics["auc"]), "global_step": int(metrics["global_step"]), "rounds": rounds,
           "round_overhead_s": float(np.median(overhead)) if overhead else None,
           "merge_s": float(np.median([h["merge_seconds"] for h in history])) if history else None,
           "state_mb": history[0]["bytes_to_workers"] / 2 ** 20 if history else None,
           "returned_mb_per_round": float(np.mean([h["bytes_from_workers"] for h in history])) / 2 ** 20
           if history else None,
           "rules_won": [h["rule"] for h in history]}
    shutil.rmtree(model_dir, ignore_errors=True)
    return row


def table(rows: list[dict], one: float) -> str:
    lines = ["| run | K | merge | test logloss | Δ vs one process | AUC | rows/s | rounds | per-round overhead s |"
             " state MB (sent per round) | returned MB per round | rule per round |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        def f(v, fmt):
            return "–" if v is None else format(v, fmt)
        rate = f(r["rows_per_s"], ",.0f") if r["kind"] != "emulated" else "(emulated)"
        lines.append(f"| {r['run']} | {r['workers']} | {r['rule']} | {r['test_logloss']:.4f} |"
                     f" {r['test_logloss'] - one:+.4f} | {r['test_auc']:.4f} | {rate} | {r['rounds']} |"
                     f" {f(r['round_overhead_s'], '.3f')} | {f(r['state_mb'], '.1f')} |"
                     f" {f(r['returned_mb_per_round'], '.1f')} | {' '.join(x[0] for x in r['rules_won']) or '–'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--test-rows", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--bucket-bits", type=int, default=18, help="2^bits buckets per hashed column")
    parser.add_argument("--sync-every-rows", type=int, default=125_000)
    parser.add_argument("--dask", type=int, nargs="*", default=[1, 2], help="K of the threaded LocalCluster runs")
    parser.add_argument("--emulate", type=int, nargs="*", default=[2, 4], help="K of the in-process runs")
    parser.add_argument("--rules", nargs="*", default=["guarded", "contract", "average"])
    parser.add_argument("--record", action="store_true", help=f"also write {os.path.relpath(RECORD, ROOT)}")
    args = parser.parse_args(argv)
    logging.getLogger("distributed").setLevel(logging.ERROR)

    import streamlin as sl
    from streamlin.distribute import Dask, InProcess

    meta = data(args.rows, args.test_rows, args.files)
    tmp = tempfile.mkdtemp(prefix="perf_distributed_")
    try:
        with common.Timer() as warm:  # compile the kernels (train, merge, evaluate) on a few test rows
            small = sl.inputs.parquet_input_fn(meta["paths"]["test"]["parquet"], "label", batch_size=1024)
            estimator(tempfile.mkdtemp(dir=tmp), 8).train(small, steps=3)
            engine = InProcess(2, 50_000)
            estimator(tempfile.mkdtemp(dir=tmp), 8, engine).train(small, steps=120)
        print(f"JIT warm-up {warm.wall:.1f} s; data {meta['rows']:,} rows in {args.files} files")
        rows = [run_one("one process", meta, args.bucket_bits, None, tmp, "one", 1, "–")]
        print(rows[-1])
        for k in args.dask:
            with Dask(n_workers=k, sync_every_rows=args.sync_every_rows) as engine:
                _ = engine.client  # start the cluster outside the timed region
                rows.append(run_one("Dask threads", meta, args.bucket_bits, engine, tmp, "dask", k, "guarded"))
            print(rows[-1])
        for k in args.emulate:
            for rule in args.rules:
                engine = InProcess(k, args.sync_every_rows, rule)
                rows.append(run_one("in-process emulation", meta, args.bucket_bits, engine, tmp, "emulated", k, rule))
                print(rows[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    one = rows[0]["test_logloss"]
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    header = [f"# perf.distributed: {stamp}", "",
              f"Command: `python -m perf.distributed --rows {args.rows} --files {args.files} --bucket-bits"
              f" {args.bucket_bits} --sync-every-rows {args.sync_every_rows}`  ",
              f"Machine: {os.cpu_count()} cores; {meta['rows']:,} train rows in {args.files} Parquet files,"
              f" {meta['test_rows']:,} test rows (Bayes logloss {meta['bayes_logloss_test']:.4f}); rows per worker"
              f" per round: {args.sync_every_rows:,} (rounded down to whole batches of 1,024); FTRL lr 0.1, l1 0.01,"
              f" l2 0.001, initial accumulator 0.1, batch 1024, loss_reduction 'sum'; 2^{args.bucket_bits} buckets"
              " per column. Rule per round: c = contract, a = average (guarded picks by the probe).", ""]
    text = "\n".join(header) + "\n" + table(rows, one) + "\n"
    print(text)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    for path in (os.path.join(RESULTS_DIR, f"distributed-{stamp}.md"), os.path.join(RESULTS_DIR, "distributed-latest.md")):
        with open(path, "w") as f:
            f.write(text)
    with open(os.path.join(RESULTS_DIR, f"distributed-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    if args.record:
        with open(RECORD, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

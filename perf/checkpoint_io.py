"""Checkpoint save / load times and on-disk size against dense size.

    .venv/bin/python -m perf.checkpoint_io [--rows 100000] [--bits 20] [--repeat 3] [--dir DIR]

Three models, each saved ``--repeat`` times into a fresh ``model_dir`` and loaded back as many
times (the best and the median time are printed):

* ``trained``: 26 hashed categorical columns (``C1..C26``, 2^bits buckets each) and the 13 numeric
  ``I`` columns of ``datasets/make_synthetic.py``'s Criteo-shaped data, FTRL (weights, accumulator,
  linear), trained on ``--rows`` rows (batch 1024) -- issue 4's "26-column, 2^20-bucket model
  trained on 100k rows".
* ``fresh``: the same model before any step (every variable at its initial value): what
  ``train()`` writes at step 0.
* ``wide``: one 2^22-bucket hashed column touched by 1,000 rows (API.md's "well under 5%").

"save" is ``streamlin.state.save`` (variables -> zarr snapshot in a hidden temp dir, made durable,
renamed, index rewritten); "load" is ``streamlin.state.restore`` (snapshot -> a new model state).
Loads read files just written, so they come from the page cache: they measure decoding, not the
disk. Dense size is the variables' in-memory bytes.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from perf import _datasets, common


def _trained_model(rows: int, bits: int, workdir: str):
    import streamlin as sl
    from streamlin import feature_column as fc

    hp = dict(common.DEFAULT_HPARAMS, bucket_bits=bits)
    meta = _datasets.ensure_data(rows, 1000, seed=0, formats=("parquet",), reuse=True)
    columns = [fc.numeric_column(k, default_value=0.0, normalizer_fn=common.log1p_nonneg) for k in common.NUMERIC]
    columns += [fc.categorical_column_with_hash_bucket(k, 2**bits) for k in common.CATEGORICAL]
    optimizer = sl.optimizers.Ftrl(
        learning_rate=hp["learning_rate"], initial_accumulator_value=hp["initial_accumulator_value"],
        l1_regularization_strength=hp["l1"], l2_regularization_strength=hp["l2"])
    est = sl.LinearClassifier(columns, model_dir=os.path.join(workdir, "train"), optimizer=optimizer,
                              loss_reduction=hp["loss_reduction"],
                              config=sl.RunConfig(save_checkpoints_steps=10**12))
    batch = int(hp["batch_size"])
    est.train(sl.inputs.parquet_input_fn(meta["paths"]["train"]["parquet"], label_key="label", batch_size=batch),
              steps=math.ceil(rows / batch))
    return est


def _wide_model(workdir: str, bits: int = 22, rows: int = 1000):
    import streamlin as sl
    from streamlin import feature_column as fc

    rng = np.random.default_rng(0)
    features = {"id": rng.integers(0, 2**40, size=rows)}
    labels = rng.integers(0, 2, size=rows)
    columns = [fc.categorical_column_with_hash_bucket("id", 2**bits, dtype="int64")]
    est = sl.LinearClassifier(columns, model_dir=os.path.join(workdir, "wide"), optimizer=sl.optimizers.Ftrl(),
                              config=sl.RunConfig(save_checkpoints_steps=10**12))
    est.train(sl.inputs.numpy_input_fn(features, labels, batch_size=100))
    return est


def _parts(est):
    return est._layout, est._head, est._optimizer, est._spec()  # a benchmark may look inside


def _measure(name: str, est, state, repeat: int, workdir: str) -> dict:
    from streamlin import state as model_state
    from streamlin.checkpoint import store

    layout, head, optimizer, spec = _parts(est)
    arrays = model_state.named_arrays(layout, optimizer, state)
    dense = sum(np.asarray(a).nbytes for a, _ in arrays.values())
    saves, loads, path = [], [], None
    for i in range(repeat):
        model_dir = os.path.join(workdir, f"{name}-{i}")
        t0 = time.perf_counter()
        path = model_state.save(model_dir, layout, head, optimizer, state, spec)
        saves.append(time.perf_counter() - t0)
    for _ in range(repeat):
        t0 = time.perf_counter()
        back = model_state.restore(path, layout, head, optimizer)
        loads.append(time.perf_counter() - t0)
    same = np.array_equal(back.weights, state.weights) and all(
        np.array_equal(back.slots[k], state.slots[k]) for k in state.slots) and back.global_step == state.global_step
    files = sum(len(f) for _, _, f in os.walk(path))
    row = {"model": name, "variables": len(arrays), "dense_mb": dense / 2**20,
           "disk_mb": store._dir_bytes(Path(path)) / 2**20, "files": files,
           "save_s": min(saves), "save_median_s": statistics.median(saves),
           "load_s": min(loads), "load_median_s": statistics.median(loads), "round_trip_exact": bool(same)}
    row["disk_pct"] = 100 * row["disk_mb"] / row["dense_mb"]
    for i in range(repeat):
        shutil.rmtree(os.path.join(workdir, f"{name}-{i}"), ignore_errors=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="training rows of the 'trained' model")
    parser.add_argument("--bits", type=int, default=20, help="log2 buckets per column of 'trained'/'fresh'")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir under perf/data)")
    parser.add_argument("--only", nargs="*", default=["trained", "fresh", "wide"])
    args = parser.parse_args(argv)

    import zarr

    import streamlin as sl
    from streamlin import state as model_state
    from streamlin.checkpoint import store

    os.makedirs(_datasets.DATA_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="ckpt-io-", dir=args.dir or _datasets.DATA_DIR)
    rows = []
    try:
        t0 = time.perf_counter()
        est = _trained_model(args.rows, args.bits, workdir) if {"trained", "fresh"} & set(args.only) else None
        setup_s = time.perf_counter() - t0
        if "trained" in args.only:
            state = model_state.restore(est.latest_checkpoint(), *_parts(est)[:3])
            rows.append(_measure("trained", est, state, args.repeat, workdir))
        if "fresh" in args.only:
            layout, head, optimizer, _ = _parts(est)
            rows.append(_measure("fresh", est, model_state.ModelState.zeros(layout, head, optimizer), args.repeat,
                                 workdir))
        if "wide" in args.only:
            wide = _wide_model(workdir)
            state = model_state.restore(wide.latest_checkpoint(), *_parts(wide)[:3])
            rows.append(_measure("wide", wide, state, args.repeat, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"streamlin {sl.__version__}, zarr {zarr.__version__}, numpy {np.__version__}, Python "
          f"{platform.python_version()}; {platform.machine()} {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs")
    where = args.dir or _datasets.DATA_DIR
    fs = store._filesystem_type(Path(where)) if hasattr(store, "_filesystem_type") else "?"
    sync = "syncfs" if getattr(store, "_SYNCFS", None) and fs in store._SYNCFS_FILESYSTEMS else "fsync per file"
    print(f"written to {where} ({fs}; durability: {sync})")
    print(f"trained = 26 hashed x 2^{args.bits} + 13 numeric, FTRL, {args.rows:,} rows (setup {setup_s:.1f} s);"
          f" fresh = same, untrained; wide = 1 hashed x 2^22, 1,000 rows. Best (median) of {args.repeat}.")
    header = f"{'model':8} {'vars':>5} {'dense MB':>9} {'disk MB':>8} {'disk %':>7} {'files':>6} " \
             f"{'save s':>15} {'load s':>15}  exact"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:8} {r['variables']:5d} {r['dense_mb']:9.1f} {r['disk_mb']:8.2f} {r['disk_pct']:6.2f}% "
              f"{r['files']:6d} {r['save_s']:7.3f} ({r['save_median_s']:5.3f}) "
              f"{r['load_s']:7.3f} ({r['load_median_s']:5.3f})  {r['round_trip_exact']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every peer of the benchmark shares: the feature set, the hyper-parameters, the metrics and
the result protocol.

A peer is a module ``perf.peer_<name>`` run as its own process::

    python -m perf.peer_<name> SPEC.json RESULT.json

``SPEC.json`` is written by :mod:`perf.compare` (data paths, rows, hyper-parameters, options);
the peer writes ``RESULT.json`` (a dict; see :func:`result`). Peak RSS and CPU time of the process
are measured by the parent from the child's rusage, so a peer never measures itself.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

NUMERIC = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
CROSSES = [("C1", "C2"), ("C3", "C4"), ("C5", "C6")]
#: VW namespace letter of each categorical column (as ``datasets/make_synthetic.py`` writes them).
VW_NAMESPACES = dict(zip(CATEGORICAL, "abcdefghijklmnopqrstuvwxyz"))

#: Default hyper-parameters. FTRL in TensorFlow's (= streamlin's) form; the peers map them to their
#: own parameterisation (see ``ftrl_mcmahan``).
DEFAULT_HPARAMS = {
    "bucket_bits": 20,             # each hashed / crossed column: 2**bucket_bits buckets
    "learning_rate": 0.1,          # FTRL alpha
    "l1": 0.01,                    # TF l1_regularization_strength
    "l2": 0.001,                   # TF l2_regularization_strength
    "initial_accumulator_value": 0.1,
    "beta": 0.0,
    "batch_size": 1024,            # streamlin's optimizer step (TF's batch); VW and river are online
    # "sum": a step's gradient is the sum of its examples' gradients, so alpha/l1/l2 mean what they
    # mean in per-example FTRL (VW, river). TF's default "sum_over_batch_size" divides it by the
    # batch size: the same alpha then learns ~batch_size times slower per example (one pass over
    # 200k rows: logloss 0.486 against 0.435 with "sum"). --hparam loss_reduction=... to change.
    "loss_reduction": "sum",
    # scikit-learn has no FTRL: SGDClassifier's own settings, picked by a small sweep at 200k and
    # 1M rows. Its 'optimal' schedule with alpha 1e-3 was the most stable (logloss 0.453 / 0.459);
    # alpha <= 1e-4 diverges on the unscaled log1p numerics, and a constant eta0 that is best at
    # 200k rows (0.01: 0.452) is poor at 1M (0.603).
    "sgd_alpha": 1e-3,
    "sgd_learning_rate": "optimal",
    "sgd_eta0": 0.01,              # (unused by the "optimal" schedule)
}


def log1p_nonneg(x):
    """The numeric transform every peer applies: ``log1p(max(x, 0))`` (a batch in, a batch out).
    Module-level so that streamlin records it by import name."""
    return np.log1p(np.maximum(np.asarray(x, dtype=np.float32), np.float32(0)))


def n_hashed_columns() -> int:
    return len(CATEGORICAL) + len(CROSSES)


def total_bits(hp) -> int:
    """Bits of one shared hash table with at least as many slots as streamlin's per-column tables
    together (VW, scikit-learn): ``bucket_bits + ceil(log2(29))``."""
    return int(hp["bucket_bits"] + math.ceil(math.log2(n_hashed_columns())))


def ftrl_mcmahan(hp) -> dict:
    """TF's FTRL hyper-parameters in McMahan et al.'s form (VW ``--ftrl``, river ``FTRLProximal``):
    ``w = -(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2)``. TF's denominator has ``2 * l2`` and
    starts its accumulator ``n`` at ``initial_accumulator_value``; the nearest McMahan setting is
    ``l2 -> 2 * l2`` and ``beta -> beta + sqrt(initial_accumulator_value)``."""
    return {
        "alpha": float(hp["learning_rate"]),
        "beta": float(hp["beta"]) + math.sqrt(float(hp["initial_accumulator_value"])),
        "l1": float(hp["l1"]),
        "l2": 2.0 * float(hp["l2"]),
    }


# --------------------------------------------------------------------------------------------
# Metrics (computed identically for every peer, from predicted probabilities)
# --------------------------------------------------------------------------------------------
def logloss(y, p) -> float:
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-15, 1 - 1e-15)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log1p(-p))))


def auc(y, p) -> float:
    """Exact ROC AUC (Mann-Whitney, ties counted half)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ps = p[order]
    ranks = np.empty(len(p), dtype=np.float64)
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(ps)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(ps)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def quality(y, p) -> dict:
    return {"test_logloss": logloss(y, p), "test_auc": auc(y, p), "test_rows": int(len(y)),
            "test_mean_prediction": float(np.mean(p))}


def read_test_labels(spec) -> np.ndarray:
    import pyarrow.parquet as pq
    return np.concatenate([pq.read_table(p, columns=["label"])["label"].to_numpy()
                           for p in spec["data"]["test"]["parquet"]]).astype(np.int8)


# --------------------------------------------------------------------------------------------
# Timing and the result protocol
# --------------------------------------------------------------------------------------------
class Timer:
    """Wall and process CPU seconds of a ``with`` block."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0
        return False


def rss_now_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def peak_rss_mb_self() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def result(name, *, rows, train_s, train_cpu_s=None, compile_s=None, y=None, p=None, input=None,
           notes=None, **extra) -> dict:
    r = {"peer": name, "input": input, "train_rows": int(rows), "train_s": float(train_s),
         "rows_per_s": rows / train_s if train_s > 0 else float("nan"),
         "train_cpu_s": None if train_cpu_s is None else float(train_cpu_s),
         "compile_s": None if compile_s is None else float(compile_s),
         "notes": list(notes or [])}
    if y is not None and p is not None:
        r.update(quality(y, p))
    r.update(extra)
    return r


def peer_main(run):
    """Entry point of a peer module: ``run(spec) -> dict`` with ``sys.argv = [_, SPEC, RESULT]``."""
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    res = run(spec)
    res.setdefault("peak_rss_mb_self", peak_rss_mb_self())
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1, default=_json_default)
        f.write("\n")


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))

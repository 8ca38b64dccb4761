#!/usr/bin/env python3
"""Criteo-shaped synthetic click logs with a known true model.

    python datasets/make_synthetic.py --rows 1000000 --out /tmp/synth --seed 0 \
        --format parquet csv vw --files 4 --test-rows 100000

Each row has the Criteo Display Advertising Challenge layout:

* ``label``: int8, 0 or 1.
* ``I1..I13``: float32 counts (integer-valued, heavy-tailed, non-negative), with Criteo's per-column
  null rates and rough quantiles.
* ``C1..C26``: strings of 8 lowercase hex characters, Zipf-distributed over per-column vocabularies of
  10 to 1,000,000 tokens (the cardinalities of ``shared/tfref``'s timing set), with Criteo's null rates.

Labels are Bernoulli draws from a KNOWN logistic model::

    logit = b0 + sum_i beta_i * log1p(I_i) + sum_c w_c[token_c] + sum_(a,b) v_ab[token_a, token_b]

with per-token weights ``w_c``, pairwise interaction tables ``v_ab`` for (C1, C2), (C3, C4) and (C5, C6)
(so crossed columns help), and an intercept ``b0`` calibrated to a click rate of about 22%. A null
numeric or categorical value contributes nothing, which is exactly what a learner sees with
``default_value=0`` numerics (``log1p(0) == 0``) and hashed categoricals that drop missing values.
Because the model is known, :func:`generate` also returns the Bayes-optimal logloss of the test set
and :func:`expected_bayes_logloss` the model's expected logloss (mean binary entropy of the true
click probability).

Determinism: for a given seed the output is the same bytes, whatever the block size used to stream
it (rows are drawn in fixed chunks of ``GEN_CHUNK`` rows, each from its own seeded stream). Memory is
bounded by the block and Parquet row-group sizes, never by ``rows``.

This directory is not a package; import the file by path, e.g. ``perf._datasets.load_generator()``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "generate", "expected_bayes_logloss", "true_model", "true_probability", "schema",
    "NUMERIC", "CATEGORICAL", "CROSSES", "CARDINALITIES", "FORMATS",
]

FORMAT_VERSION = 1

NUMERIC = [f"I{i}" for i in range(1, 14)]
CATEGORICAL = [f"C{i}" for i in range(1, 27)]
#: The pairs whose interaction the true model contains (a learner's crossed columns).
CROSSES = [("C1", "C2"), ("C3", "C4"), ("C5", "C6")]
#: Vocabulary size of each categorical column (``shared/tfref/golden/timing.json``'s caps).
CARDINALITIES = [10, 15, 25, 39, 63, 100, 158, 251, 398, 630, 1000, 1584, 2511, 3981, 6309, 10000,
                 15848, 25118, 39810, 63095, 100000, 158489, 251188, 398107, 630957, 1000000]
#: Null rate of each categorical column (as measured on the first 8,000 rows of real Criteo data).
CAT_NULL_RATES = [0.0, 0.0, 0.03, 0.03, 0.0, 0.13, 0.0, 0.0, 0.0, 0.0, 0.0, 0.03, 0.0, 0.0, 0.0,
                  0.03, 0.0, 0.0, 0.45, 0.45, 0.03, 0.82, 0.0, 0.03, 0.45, 0.45]
#: (null rate, median, 99th percentile) of each numeric column, after real Criteo data.
NUM_SHAPE = [(0.45, 1, 42), (0.0, 3, 2194), (0.20, 7, 310), (0.20, 4, 45), (0.05, 2779, 301678),
             (0.25, 41, 1755), (0.05, 3, 178), (0.0, 7, 49), (0.05, 42, 1231), (0.45, 0, 2.5),
             (0.05, 1, 22), (0.77, 0, 15), (0.20, 5, 72)]
ZIPF_S = 1.2             # token rank frequency ~ (rank + 1) ** -ZIPF_S
T_DF = 4                 # log-counts are Student-t(4) distributed: heavy tails ...
T_CLIP = 8.0             # ... clipped at 8 (the max is median * (q99 / median) ** 2.1)
SIGMA_CAT = 0.25         # std of the per-token weights
SIGMA_PAIR = 0.5         # std of the pairwise interaction weights
SIGMA_NUM = 0.15         # std of the numeric coefficients (per unit of log1p(count))
TARGET_CTR = 0.22        # the intercept is calibrated to this mean click probability
GEN_CHUNK = 8192         # rows per independently seeded generation chunk (part of the data definition)
ROW_GROUP = 65536        # Parquet row-group size
BLOCK_ROWS = 65536       # default rows per streamed block
TOKEN_MULT = 2654435761  # odd, so rank -> token is a bijection modulo 2**32
FORMATS = ("parquet", "csv", "vw")
EXT = {"parquet": "parquet", "csv": "csv", "vw": "vw"}
#: VW namespace of each categorical column (C1 -> 'a', ..., C26 -> 'z'); numerics go to 'I'.
VW_NAMESPACES = "abcdefghijklmnopqrstuvwxyz"

_SPLIT_IDS = {"model": 0, "train": 1, "test": 2, "calibrate": 3, "expected": 4}
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SHIFTS = np.arange(28, -1, -4, dtype=np.uint64)


def schema() -> pa.Schema:
    """The Arrow schema of every generated table."""
    return pa.schema([("label", pa.int8())] + [(k, pa.float32()) for k in NUMERIC]
                     + [(k, pa.string()) for k in CATEGORICAL])


def _rng(seed: int, split: str, chunk: int = 0) -> np.random.Generator:
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(_SPLIT_IDS[split], int(chunk)))
    return np.random.Generator(np.random.PCG64(ss))


class TrueModel:
    """The generating model of one seed: token vocabularies, weights, interactions, intercept."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        rng = _rng(seed, "model")
        self.cat_weights = [rng.normal(0.0, SIGMA_CAT, cd) for cd in CARDINALITIES]
        self.token_offsets = rng.integers(0, 2 ** 32, size=len(CATEGORICAL), dtype=np.uint64)
        self.num_beta = rng.normal(0.0, SIGMA_NUM, len(NUMERIC))
        idx = {k: i for i, k in enumerate(CATEGORICAL)}
        self.cross_index = [(idx[a], idx[b]) for a, b in CROSSES]
        self.cross_weights = [rng.normal(0.0, SIGMA_PAIR, (CARDINALITIES[i], CARDINALITIES[j]))
                              for i, j in self.cross_index]
        self.cdfs = []
        for cd in CARDINALITIES:
            p = np.arange(1, cd + 1, dtype=np.float64) ** -ZIPF_S
            c = np.cumsum(p)
            c /= c[-1]
            c[-1] = 1.0
            self.cdfs.append(c)
        self.num_scale = []
        tq = _t_quantile_99(T_DF)
        for _null, med, q99 in NUM_SHAPE:
            m = med + 0.5
            self.num_scale.append((m, math.log((q99 + 0.5) / m) / tq))
        self.intercept = 0.0
        self.intercept = self._calibrate()

    # -- drawing -------------------------------------------------------------------------------
    def draw_chunk(self, split: str, chunk: int) -> dict:
        """Rows ``[chunk * GEN_CHUNK, (chunk + 1) * GEN_CHUNK)`` of ``split`` as numpy arrays."""
        rng = _rng(self.seed, split, chunk)
        n = GEN_CHUNK
        num, num_null = [], []
        for (null_rate, _med, _q), (m, s) in zip(NUM_SHAPE, self.num_scale):
            z = np.clip(rng.standard_t(T_DF, n), -T_CLIP, T_CLIP)
            num.append(np.floor(m * np.exp(s * z)).astype(np.float32))
            num_null.append(rng.random(n) < null_rate)
        ranks, cat_null = [], []
        for cdf, null_rate in zip(self.cdfs, CAT_NULL_RATES):
            r = np.searchsorted(cdf, rng.random(n), side="right")
            ranks.append(np.minimum(r, len(cdf) - 1).astype(np.int64))
            cat_null.append(rng.random(n) < null_rate)
        logit = self.logit(num, num_null, ranks, cat_null)
        p = _sigmoid(logit)
        y = (rng.random(n) < p).astype(np.int8)
        return {"num": num, "num_null": num_null, "ranks": ranks, "cat_null": cat_null,
                "logit": logit, "p": p, "label": y}

    def logit(self, num, num_null, ranks, cat_null) -> np.ndarray:
        """The true logit of rows given their numeric values, token ranks and null masks."""
        n = len(ranks[0])
        z = np.full(n, self.intercept, dtype=np.float64)
        for x, isnull, b in zip(num, num_null, self.num_beta):
            z += np.where(isnull, 0.0, b * np.log1p(x.astype(np.float64)))
        for w, r, isnull in zip(self.cat_weights, ranks, cat_null):
            z += np.where(isnull, 0.0, w[r])
        for (i, j), v in zip(self.cross_index, self.cross_weights):
            z += np.where(cat_null[i] | cat_null[j], 0.0, v[ranks[i], ranks[j]])
        return z

    def _calibrate(self) -> float:
        s = np.concatenate([self.draw_chunk("calibrate", k)["logit"] for k in range(8)])
        lo, hi = -20.0, 20.0
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if _sigmoid(s + mid).mean() < TARGET_CTR:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    # -- tokens ----------------------------------------------------------------------------------
    def token_values(self, col: int, ranks: np.ndarray) -> np.ndarray:
        """uint64 token values (< 2**32) of ``ranks`` in categorical column ``col``."""
        t = ranks.astype(np.uint64) * np.uint64(TOKEN_MULT) + self.token_offsets[col]
        return t & np.uint64(0xFFFFFFFF)

    def ranks_of_tokens(self, col: int, tokens) -> np.ndarray:
        """Inverse of :meth:`token_values` for hex token strings (-1 for a token outside the vocab)."""
        t = np.array([int(s, 16) for s in tokens], dtype=np.uint64)
        inv = np.uint64(pow(TOKEN_MULT, -1, 2 ** 32))
        r = ((t - self.token_offsets[col]) & np.uint64(0xFFFFFFFF)) * inv & np.uint64(0xFFFFFFFF)
        r = r.astype(np.int64)
        r[r >= CARDINALITIES[col]] = -1
        return r


def _t_quantile_99(df: int) -> float:
    # 99th percentile of Student's t (scipy-free): fixed table for the df we use.
    return {4: 3.746947387}[df]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _logloss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


_MODELS: dict = {}


def true_model(seed: int = 0) -> TrueModel:
    """The (cached) generating model of ``seed``."""
    if seed not in _MODELS:
        _MODELS[seed] = TrueModel(seed)
    return _MODELS[seed]


def expected_bayes_logloss(seed: int = 0, rows: int = 32 * GEN_CHUNK) -> float:
    """The true model's expected logloss ``E[H(p)]``: the mean binary entropy of the true click
    probability over ``rows`` fresh rows (a fixed, seeded sample, so the value is deterministic)."""
    m = true_model(seed)
    tot, n = 0.0, 0
    for k in range(math.ceil(rows / GEN_CHUNK)):
        p = m.draw_chunk("expected", k)["p"][: rows - n]
        tot += float(_logloss(p, p).sum())
        n += len(p)
    return tot / n


def true_probability(table, seed: int = 0) -> np.ndarray:
    """The true click probability of each row of a generated table (pyarrow Table/RecordBatch or a
    mapping of column name to array) under the model of ``seed``. For tests; not fast."""
    m = true_model(seed)
    get = (lambda k: table.column(k)) if hasattr(table, "column") else (lambda k: table[k])
    num, num_null = [], []
    for k in NUMERIC:
        a = pa.array(get(k)) if not isinstance(get(k), (pa.Array, pa.ChunkedArray)) else get(k)
        isnull = np.asarray(a.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        num.append(np.nan_to_num(a.to_numpy(zero_copy_only=False).astype(np.float32)))
        num_null.append(isnull)
    ranks, cat_null = [], []
    for c, k in enumerate(CATEGORICAL):
        vals = list(get(k).to_pylist()) if hasattr(get(k), "to_pylist") else list(get(k))
        isnull = np.array([v is None or v == "" for v in vals], dtype=bool)
        r = m.ranks_of_tokens(c, [v if v else "0" for v in vals])
        isnull |= r < 0
        ranks.append(np.where(isnull, 0, r))
        cat_null.append(isnull)
    return _sigmoid(m.logit(num, num_null, ranks, cat_null))


# ---------------------------------------------------------------------------------------------
# Streaming rows out of chunks
# ---------------------------------------------------------------------------------------------
class _RowSource:
    """Rows ``[a, b)`` of a split, assembled from fixed generation chunks (one cached)."""

    def __init__(self, model: TrueModel, split: str):
        self.model, self.split = model, split
        self._k, self._chunk = None, None

    def _get(self, k):
        if self._k != k:
            self._k, self._chunk = k, self.model.draw_chunk(self.split, k)
        return self._chunk

    def rows(self, a: int, b: int) -> dict:
        parts = []
        k = a // GEN_CHUNK
        while a < b:
            ch = self._get(k)
            lo = a - k * GEN_CHUNK
            hi = min(b - k * GEN_CHUNK, GEN_CHUNK)
            parts.append(_slice(ch, lo, hi))
            a = k * GEN_CHUNK + hi
            k += 1
        return parts[0] if len(parts) == 1 else _concat(parts)


def _slice(ch, lo, hi):
    out = {}
    for key, v in ch.items():
        out[key] = [x[lo:hi] for x in v] if isinstance(v, list) else v[lo:hi]
    return out


def _concat(parts):
    out = {}
    for key, v in parts[0].items():
        if isinstance(v, list):
            out[key] = [np.concatenate([p[key][i] for p in parts]) for i in range(len(v))]
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


def _string_array(model: TrueModel, col: int, ranks: np.ndarray, isnull: np.ndarray) -> pa.Array:
    n = len(ranks)
    valid = ~isnull
    t = model.token_values(col, ranks[valid])
    data = _HEX[((t[:, None] >> _SHIFTS[None, :]) & np.uint64(0xF)).astype(np.intp)]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(valid.astype(np.int32) * 8, out=offsets[1:])
    null_count = int(isnull.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if null_count else None
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()),
                                       bitmap, null_count)


def _to_table(model: TrueModel, rows: dict) -> pa.Table:
    arrays = [pa.array(rows["label"], type=pa.int8())]
    for x, isnull in zip(rows["num"], rows["num_null"]):
        arrays.append(pa.array(x, type=pa.float32(), mask=isnull))
    for c, (r, isnull) in enumerate(zip(rows["ranks"], rows["cat_null"])):
        arrays.append(_string_array(model, c, r, isnull))
    return pa.Table.from_arrays(arrays, schema=schema())


# ---------------------------------------------------------------------------------------------
# Sinks
# ---------------------------------------------------------------------------------------------
class _ParquetSink:
    def __init__(self, path):
        self.path = path
        self.writer = pq.ParquetWriter(path, schema(), compression="snappy", use_dictionary=True,
                                       write_statistics=True)
        self.buf, self.nbuf = [], 0

    def write(self, table: pa.Table, rows: dict):
        self.buf.append(table)
        self.nbuf += table.num_rows
        while self.nbuf >= ROW_GROUP:
            self._flush(ROW_GROUP)

    def _flush(self, n):
        t = pa.concat_tables(self.buf)
        self.writer.write_table(t.slice(0, n), row_group_size=n)
        rest = t.slice(n)
        self.buf, self.nbuf = ([rest], rest.num_rows) if rest.num_rows else ([], 0)

    def close(self):
        if self.nbuf:
            self._flush(self.nbuf)
        self.writer.close()


class _CsvSink:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "wb")
        self.f.write((",".join(schema().names) + "\n").encode())
        self.opts = pacsv.WriteOptions(include_header=False, quoting_style="none")

    def write(self, table: pa.Table, rows: dict):
        pacsv.write_csv(table, self.f, self.opts)

    def close(self):
        self.f.close()


class _VwSink:
    """VW text: ``1 |I I1:0.693 ... |a 0f3a9c21 |b ...`` with numerics already log1p-transformed
    (null numerics and zero values omitted), one namespace per categorical (C1 -> a, ...; a null
    leaves its namespace empty), label -1/1."""

    def __init__(self, path):
        import pyarrow.compute as pc
        self.pc = pc
        self.path = path
        self.f = open(path, "wb")

    def write(self, table: pa.Table, rows: dict):
        pc = self.pc
        n = table.num_rows
        parts = [pc.if_else(pc.equal(table.column("label"), 1), "1 |I", "-1 |I")]
        for k, x, isnull in zip(NUMERIC, rows["num"], rows["num_null"]):
            v = np.log1p(x.astype(np.float32)).astype(np.float32)
            s = pc.cast(pa.array(v), pa.string())
            feat = pc.binary_join_element_wise(f" {k}:", s, "")
            parts.append(pc.if_else(pa.array(isnull | (x == 0)), "", feat))
        for k, ns in zip(CATEGORICAL, VW_NAMESPACES):
            col = pc.fill_null(table.column(k).combine_chunks(), "")
            parts.append(pc.binary_join_element_wise(f" |{ns} ", col, ""))
        parts.append(pa.array(["\n"] * n, type=pa.string()))
        line = pc.binary_join_element_wise(*parts, "")
        if isinstance(line, pa.ChunkedArray):
            line = line.combine_chunks()
        buf = line.buffers()[2]
        offs = np.frombuffer(line.buffers()[1], dtype=np.int32, count=n + 1, offset=line.offset * 4)
        self.f.write(memoryview(buf)[offs[0]:offs[-1]])

    def close(self):
        self.f.close()


_SINKS = {"parquet": _ParquetSink, "csv": _CsvSink, "vw": _VwSink}


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def _file_ranges(rows: int, files: int):
    files = max(1, min(int(files), max(rows, 1)))
    bounds = [rows * i // files for i in range(files + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _write_split(model, out_dir, split, rows, formats, files, block_rows, progress):
    source = _RowSource(model, split)
    paths = {f: [] for f in formats}
    n_pos, loss = 0, 0.0
    for i, (a, b) in enumerate(_file_ranges(rows, files) if rows else []):
        sinks = []
        for f in formats:
            d = os.path.join(out_dir, f, split)
            os.makedirs(d, exist_ok=True)
            p = os.path.join(d, f"part-{i:05d}.{EXT[f]}")
            paths[f].append(p)
            sinks.append(_SINKS[f](p))
        pos = a
        while pos < b:
            n = min(block_rows, b - pos)
            r = source.rows(pos, pos + n)
            t = _to_table(model, r)
            for s in sinks:
                s.write(t, r)
            n_pos += int(r["label"].sum())
            loss += float(_logloss(r["label"], r["p"]).sum())
            pos += n
            if progress:
                print(f"  {split}: {pos:,}/{rows:,} rows", file=sys.stderr, end="\r", flush=True)
        for s in sinks:
            s.close()
    if progress and rows:
        print(file=sys.stderr)
    return paths, (n_pos / rows if rows else float("nan")), (loss / rows if rows else float("nan"))


def generate(out_dir, rows, seed=0, formats=("parquet",), files=1, test_rows=0,
             block_rows=BLOCK_ROWS, progress=False) -> dict:
    """Write ``rows`` training rows (and ``test_rows`` held-out rows) under ``out_dir``.

    Layout: ``out_dir/<format>/<split>/part-NNNNN.<ext>`` for each format in ``formats``
    (``parquet``, ``csv``, ``vw``) and split (``train``, ``test``); training rows are split into
    ``files`` contiguous files. Also writes ``out_dir/meta.json`` (the returned dict).

    Returns a dict with ``paths`` (``{"train": {fmt: [paths]}, "test": {...}}``),
    ``bayes_logloss_test`` (the true model's logloss on the generated test rows),
    ``bayes_logloss_train``, ``expected_bayes_logloss``, ``constant_logloss_test`` (the logloss of
    predicting the test set's own click rate), ``ctr_train``/``ctr_test`` and the generation settings.
    """
    formats = tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown format(s) {bad}; choose from {FORMATS}")
    if rows < 0 or test_rows < 0 or block_rows <= 0:
        raise ValueError("rows and test_rows must be >= 0 and block_rows > 0")
    t0 = time.time()
    model = true_model(seed)
    os.makedirs(out_dir, exist_ok=True)
    train_paths, ctr_train, ll_train = _write_split(model, out_dir, "train", rows, formats, files,
                                                    block_rows, progress)
    test_paths, ctr_test, ll_test = _write_split(model, out_dir, "test", test_rows, formats, 1,
                                                 block_rows, progress)
    if test_rows:
        c = min(max(ctr_test, 1e-15), 1 - 1e-15)
        const = -(c * math.log(c) + (1 - c) * math.log(1 - c))
    else:
        const = float("nan")
    meta = {
        "generator": "datasets/make_synthetic.py", "format_version": FORMAT_VERSION,
        "seed": int(seed), "rows": int(rows), "test_rows": int(test_rows), "files": int(files),
        "formats": list(formats),
        "paths": {"train": train_paths, "test": test_paths},
        "ctr_train": ctr_train, "ctr_test": ctr_test,
        "bayes_logloss_train": ll_train, "bayes_logloss_test": ll_test,
        "constant_logloss_test": const,
        "expected_bayes_logloss": expected_bayes_logloss(seed),
        "intercept": model.intercept,
        "crosses": [list(c) for c in CROSSES], "cardinalities": CARDINALITIES,
        "seconds": round(time.time() - t0, 3),
    }
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, required=True, help="training rows")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", nargs="+", default=["parquet"], choices=FORMATS)
    ap.add_argument("--files", type=int, default=1, help="split the training rows into K files")
    ap.add_argument("--test-rows", type=int, default=0, help="held-out rows (same model)")
    ap.add_argument("--block-rows", type=int, default=BLOCK_ROWS, help="rows per streamed block")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    meta = generate(a.out, a.rows, seed=a.seed, formats=a.format, files=a.files,
                    test_rows=a.test_rows, block_rows=a.block_rows, progress=not a.quiet)
    keys = ("rows", "test_rows", "ctr_train", "ctr_test", "bayes_logloss_test",
            "constant_logloss_test", "expected_bayes_logloss", "seconds")
    print(json.dumps({k: meta[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()

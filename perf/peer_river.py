"""river ``linear_model.LogisticRegression`` with ``optim.FTRLProximal``, one ``learn_one`` per row.

river is pure Python, so by default it trains on the first ``river_rows`` training rows only; its
rows/s is measured on that subset (the full-pass time is extrapolated and labelled as such) and its
test metrics are those of the subset-trained model on the full test set. Features per row: a dict
``{"I1": log1p(x), ..., "C1=<token>": 1, ..., "C1xC2=<a>_<b>": 1, ...}`` (nulls dropped, crossed
as ``''``); river's weights are a dict, so there is no hashing (no collisions: slightly in its
favour).
"""

from __future__ import annotations

import numpy as np

from perf import common


def _rows(batch):
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for k in common.NUMERIC:
        v = common.log1p_nonneg(pc.fill_null(batch.column(k), pa.scalar(0.0, pa.float32()))
                                .to_numpy()).tolist()
        cols.append([(k, x) for x in v])
    for k in common.CATEGORICAL:
        cols.append([(t, 1.0) if t is not None else None for t in
                     pc.binary_join_element_wise(k + "=", batch.column(k), "").to_pylist()])
    for a, b in common.CROSSES:
        ca = pc.fill_null(batch.column(a), "")
        cb = pc.fill_null(batch.column(b), "")
        cols.append([(t, 1.0) for t in
                     pc.binary_join_element_wise(f"{a}x{b}=", ca, "_", cb, "").to_pylist()])
    labels = batch.column("label").to_numpy().tolist()
    for i, r in enumerate(zip(*cols)):
        yield {kv[0]: kv[1] for kv in r if kv is not None and kv[1] != 0.0}, labels[i]


def _batches(paths, limit, chunk=8192):
    import pyarrow.parquet as pq
    n = 0
    for path in paths:
        for b in pq.ParquetFile(path).iter_batches(batch_size=chunk):
            if limit is not None and n + b.num_rows > limit:
                b = b.slice(0, limit - n)
            if b.num_rows == 0:
                return
            n += b.num_rows
            yield b
            if limit is not None and n >= limit:
                return


def run(spec):
    from importlib.metadata import version

    from river import linear_model, optim

    hp = spec["hparams"]
    m = common.ftrl_mcmahan(hp)
    limit = spec.get("river_rows")
    if limit is not None and limit >= spec["rows"]:
        limit = None
    model = linear_model.LogisticRegression(
        optimizer=optim.FTRLProximal(alpha=m["alpha"], beta=m["beta"], l1=m["l1"], l2=m["l2"]))
    n = 0
    with common.Timer() as t:
        for batch in _batches(spec["data"]["train"]["parquet"], limit):
            for x, y in _rows(batch):
                model.learn_one(x, y)
            n += batch.num_rows
    ps, ys = [], []
    for batch in _batches(spec["data"]["test"]["parquet"], None):
        for x, y in _rows(batch):
            ps.append(model.predict_proba_one(x).get(True, 0.0))
            ys.append(y)
    notes = [f"FTRLProximal(alpha={m['alpha']}, beta={m['beta']:.4g}, l1={m['l1']}, "
             f"l2={m['l2']}); dict features, no hashing"]
    res = common.result("river FTRL", rows=n, train_s=t.wall, train_cpu_s=t.cpu,
                        y=np.array(ys), p=np.array(ps), input="Parquet (pyarrow) -> dict per row",
                        version=version("river"), notes=notes)
    if n < spec["rows"]:
        res["subset"] = True
        res["extrapolated_full_pass_s"] = spec["rows"] / res["rows_per_s"]
        notes.append(f"SUBSET: trained on the first {n:,} of {spec['rows']:,} rows; full-pass time "
                     f"extrapolated ({res['extrapolated_full_pass_s']:.0f} s); test metrics of the "
                     f"subset-trained model")
    return res


if __name__ == "__main__":
    common.peer_main(run)

"""scikit-learn ``SGDClassifier(loss='log_loss').partial_fit`` over ``FeatureHasher`` features,
streaming the Parquet file in chunks.

Features per row: ``C<k>=<token>`` for each non-null categorical, ``C1xC2=<a>_<b>`` etc. for the
crosses (a null crossed as ``''``, as streamlin's dense crosses do), hashed by ``FeatureHasher``
(``alternate_sign=False``) into one table of ``2**total_bits`` slots, plus the 13 ``log1p``
numerics as 13 extra dense columns. scikit-learn has no FTRL: plain SGD with the
``sgd_learning_rate`` / ``sgd_eta0`` / ``sgd_alpha`` settings of ``perf.common.DEFAULT_HPARAMS``.
"""

from __future__ import annotations

import numpy as np

from perf import common


def _features(batch, hasher):
    import pyarrow as pa
    import pyarrow.compute as pc
    import scipy.sparse as sp

    lists = []
    for k in common.CATEGORICAL:
        lists.append(pc.binary_join_element_wise(k + "=", batch.column(k), "").to_pylist())
    for a, b in common.CROSSES:
        ca = pc.fill_null(batch.column(a), "")
        cb = pc.fill_null(batch.column(b), "")
        lists.append(pc.binary_join_element_wise(f"{a}x{b}=", ca, "_", cb, "").to_pylist())
    rows = [[t for t in r if t is not None] for r in zip(*lists)]
    xh = hasher.transform(rows)
    num = np.empty((batch.num_rows, len(common.NUMERIC)), dtype=np.float64)
    for j, k in enumerate(common.NUMERIC):
        col = pc.fill_null(batch.column(k), pa.scalar(0.0, pa.float32()))
        num[:, j] = common.log1p_nonneg(col.to_numpy())
    return sp.hstack([xh, sp.csr_matrix(num)], format="csr")


def _batches(paths, chunk_rows):
    import pyarrow.parquet as pq
    for path in paths:
        f = pq.ParquetFile(path)
        yield from f.iter_batches(batch_size=chunk_rows)


def run(spec):
    import sklearn
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import SGDClassifier

    hp = spec["hparams"]
    bits = common.total_bits(hp)
    chunk = int(spec.get("chunk_rows", 65536))
    hasher = FeatureHasher(n_features=2 ** bits, input_type="string", alternate_sign=False)
    clf = SGDClassifier(loss="log_loss", penalty="l2", alpha=float(hp["sgd_alpha"]),
                        learning_rate=hp["sgd_learning_rate"], eta0=float(hp["sgd_eta0"]),
                        random_state=0)
    classes = np.array([0, 1])
    n = 0
    with common.Timer() as t:
        for batch in _batches(spec["data"]["train"]["parquet"], chunk):
            x = _features(batch, hasher)
            y = batch.column("label").to_numpy()
            clf.partial_fit(x, y, classes=classes)
            n += batch.num_rows
    ps, ys = [], []
    for batch in _batches(spec["data"]["test"]["parquet"], chunk):
        ps.append(clf.predict_proba(_features(batch, hasher))[:, 1])
        ys.append(batch.column("label").to_numpy())
    return common.result(
        "scikit-learn SGD + FeatureHasher", rows=n, train_s=t.wall, train_cpu_s=t.cpu,
        y=np.concatenate(ys), p=np.concatenate(ps), input="Parquet (pyarrow, chunks)",
        version=sklearn.__version__,
        notes=[f"SGDClassifier(loss='log_loss', penalty='l2', alpha={hp['sgd_alpha']}, "
               f"learning_rate={hp['sgd_learning_rate']!r}, eta0={hp['sgd_eta0']}); "
               f"FeatureHasher 2^{bits}; partial_fit per {chunk:,} rows"])


if __name__ == "__main__":
    common.peer_main(run)

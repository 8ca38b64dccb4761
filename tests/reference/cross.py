"""Plain-Python twins of ``streamlin.kernels.cross``: TF's ``SparseCrossOp<hashed>`` (tfref §2).

Rows are crossed with ``itertools.product`` (the *last* input varies fastest, as TF's
ProductIterator), a row with any empty input gives no cross, and each combination is the
FingerprintCat64 chain from ``hash_key`` (used as given: the ``hash_key or default`` rule belongs to
the column, not the kernel), reduced mod ``num_buckets`` in uint64 arithmetic.
"""

from __future__ import annotations

import itertools

import numpy as np

from tests.reference.hashing import MASK64, fingerprint_cat64


def row_values(indptrs, values, row: int) -> list[list[int]]:
    """Per input, the uint64 values (as Python ints) of ``row``."""
    indptrs = np.asarray(indptrs, dtype=np.int64)
    return [[int(v) for v in values[indptrs[j, row]:indptrs[j, row + 1]]] for j in range(indptrs.shape[0])]


def cross_counts(indptrs) -> np.ndarray:
    """int64 (n_rows,): product over inputs of each row's value count."""
    indptrs = np.asarray(indptrs, dtype=np.int64)
    counts = np.diff(indptrs, axis=1)
    return np.prod(counts, axis=0).astype(np.int64)


def cross_row(per_input: list[list[int]], hash_key: int, num_buckets: int) -> list[int]:
    """All crossed ids of one row, in TF's order."""
    out = []
    for combo in itertools.product(*per_input):
        h = hash_key & MASK64
        for v in combo:
            h = fingerprint_cat64(h, v)
        out.append(h % num_buckets)
    return out


def cross_hashed(indptrs, values, hash_key: int, num_buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """(out_indptr int64 (n_rows + 1,), ids int64): every row's crosses."""
    indptrs = np.asarray(indptrs, dtype=np.int64)
    n_rows = indptrs.shape[1] - 1
    rows = [cross_row(row_values(indptrs, values, r), int(hash_key), int(num_buckets)) for r in range(n_rows)]
    out_indptr = np.zeros(n_rows + 1, dtype=np.int64)
    out_indptr[1:] = np.cumsum([len(r) for r in rows])
    ids = np.array([i for r in rows for i in r], dtype=np.int64)
    return out_indptr, ids

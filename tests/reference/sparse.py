"""Plain-numpy twins of ``streamlin.kernels.sparse``, written from TF's semantics (tfref README §3).

Each twin returns fresh arrays instead of writing into caller buffers: the tests compare them with
what the kernel wrote. Row offsets are relative to the column's first entry (the kernel's
``out_start`` is subtracted by the caller before comparing).
"""

from __future__ import annotations

import numpy as np

SUM, MEAN, SQRTN = "sum", "mean", "sqrtn"
_CODES = {0: SUM, 1: MEAN, 2: SQRTN}


def combiner_scale(row_weights: np.ndarray, combiner) -> float:
    """TF's ``embedding_lookup_sparse`` normaliser for one non-empty row (``div_no_nan``).

    sum: 1; mean: 1 / sum(w); sqrtn: 1 / sqrt(sum(w**2)); w = 1 per id without weights.
    """
    combiner = _CODES.get(combiner, combiner)
    w = np.asarray(row_weights, dtype=np.float64)
    if combiner == SUM:
        return 1.0
    with np.errstate(all="ignore"):
        total = w.sum() if combiner == MEAN else np.square(w).sum()
        if total == 0.0:
            return 0.0
        return float(1.0 / total) if combiner == MEAN else float(1.0 / np.sqrt(total))


def place_column(indptr, ids, weights, combiner, slot_offset, fill_empty):
    """One categorical column as (row_indptr int64 (n+1,), slots int64, values float32).

    Row r's entries are ``slot_offset + ids[k]`` with value ``weight_k * scale(row)``; an empty
    row gets ``(slot_offset, 0.0)`` when ``fill_empty`` (TF's ``sparse_fill_empty_rows``).
    ``weights`` is None for unweighted columns.
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    n_rows = len(indptr) - 1
    w_all = np.ones(len(ids)) if weights is None else np.asarray(weights, dtype=np.float64)
    row_slots, row_values = [], []
    for r in range(n_rows):
        lo, hi = indptr[r], indptr[r + 1]
        if lo == hi:
            if fill_empty:
                row_slots.append(np.array([slot_offset], dtype=np.int64))
                row_values.append(np.zeros(1))
            else:
                row_slots.append(np.empty(0, dtype=np.int64))
                row_values.append(np.empty(0))
            continue
        w = w_all[lo:hi]
        row_slots.append(slot_offset + ids[lo:hi])
        with np.errstate(all="ignore"):  # NaN / inf weights propagate, as in the kernel
            row_values.append(w * combiner_scale(w, combiner))
    counts = np.array([len(s) for s in row_slots], dtype=np.int64)
    out_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    slots = np.concatenate(row_slots) if row_slots else np.empty(0, dtype=np.int64)
    values = np.concatenate(row_values) if row_values else np.empty(0)
    return out_indptr, slots.astype(np.int64), values.astype(np.float32)


def place_dense(values, slot_offset):
    """A numeric column (n, dim) as (row_indptr, slots, values): row i has slots offset + 0..dim-1."""
    values = np.asarray(values, dtype=np.float32)
    n, dim = values.shape
    out_indptr = np.arange(n + 1, dtype=np.int64) * dim
    slots = np.tile(np.arange(dim, dtype=np.int64) + slot_offset, n)
    return out_indptr, slots, values.reshape(-1).copy()


def add_logits(col_indptr, slots, values, weights, bias_slot, row_begin, row_end):
    """float64 (row_end - row_begin, units): bias + sum over every column's entries of v * w[slot]."""
    col_indptr = np.asarray(col_indptr, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    n = row_end - row_begin
    out = np.repeat(weights[bias_slot][None, :], n, axis=0)
    for c in range(col_indptr.shape[0]):
        counts = np.diff(col_indptr[c, row_begin:row_end + 1])
        rows = np.repeat(np.arange(n), counts)
        entries = np.concatenate([np.arange(col_indptr[c, r], col_indptr[c, r + 1])
                                  for r in range(row_begin, row_end)] or [np.empty(0, np.int64)])
        entries = entries.astype(np.int64)
        with np.errstate(all="ignore"):  # NaN / inf propagate
            np.add.at(out, rows, values[entries][:, None] * weights[slots[entries]])
    return out


def place_hashed_strings(values, num_buckets, slot_offset):
    """A hash-bucket column over a flat (dense) string feature, as (row_indptr, slots, values).

    ``values``: bytes or None per row. TF drops a dense '' (and streamlin reads a null as '');
    the then-empty row gets the empty-row entry (slot_offset, 0.0). Others get
    (slot_offset + Fingerprint64 % num_buckets, 1.0), Fingerprint64 from pyfarmhash.
    """
    import farmhash

    slots, out = [], []
    for v in values:
        if v is None or len(v) == 0:
            slots.append(slot_offset)
            out.append(0.0)
        else:
            slots.append(slot_offset + farmhash.fingerprint64(v) % num_buckets)
            out.append(1.0)
    n = len(values)
    return np.arange(n + 1, dtype=np.int64), np.array(slots, dtype=np.int64), np.array(out, dtype=np.float32)

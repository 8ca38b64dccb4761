"""Sparse rows of the flat weight table: placing column ids, logits."""

import numpy as np

from streamlin.kernels._jit import kernel
from streamlin.kernels.hashing import bucket_of, fingerprint64_long, fingerprint64_short

COMBINER_SUM = 0
COMBINER_MEAN = 1
COMBINER_SQRTN = 2


@kernel()
def place_column(indptr, ids, weights, has_weights, combiner, slot_offset, fill_empty,
                 out_row_indptr, out_slots, out_values, out_start):
    """Write one column's entries into the flat buffers, scaled by the combiner.

    indptr int64 (n_rows + 1,); ids int64 (nnz,), column-local, >= 0; weights float32 (nnz,)
    (read only if has_weights); combiner: COMBINER_*; slot_offset int64: the column's first slot;
    fill_empty: give an empty row one entry (slot_offset, 0.0) -- TF's sparse_fill_empty_rows,
    which makes row 0 of the column take a zero gradient; out_row_indptr int64 (n_rows + 1,)
    absolute offsets, written; out_slots int64, out_values float32 written from out_start.
    Returns the end offset.
    """
    pos = out_start
    n_rows = indptr.shape[0] - 1
    for row in range(n_rows):
        out_row_indptr[row] = pos
        begin, end = indptr[row], indptr[row + 1]
        if begin == end:
            if fill_empty:
                out_slots[pos] = slot_offset
                out_values[pos] = 0.0
                pos += 1
            continue
        scale = 1.0
        if combiner != COMBINER_SUM:
            total = 0.0
            for k in range(begin, end):
                w = weights[k] if has_weights else 1.0
                total += w if combiner == COMBINER_MEAN else w * w
            if combiner == COMBINER_MEAN:
                scale = 1.0 / total if total != 0.0 else 0.0
            else:
                scale = 1.0 / np.sqrt(total) if total != 0.0 else 0.0
        for k in range(begin, end):
            w = weights[k] if has_weights else 1.0
            out_slots[pos] = slot_offset + ids[k]
            out_values[pos] = w * scale
            pos += 1
    out_row_indptr[n_rows] = pos
    return pos


@kernel()
def place_dense(values, slot_offset, out_row_indptr, out_slots, out_values, out_start):
    """Write a numeric column's values: row i gets slots slot_offset + j with values[i, j].

    values float32 (n_rows, dim); out_row_indptr int64 (n_rows + 1,). Returns the end offset.
    """
    pos = out_start
    n_rows, dim = values.shape
    for row in range(n_rows):
        out_row_indptr[row] = pos
        for j in range(dim):
            out_slots[pos] = slot_offset + j
            out_values[pos] = values[row, j]
            pos += 1
    out_row_indptr[n_rows] = pos
    return pos


@kernel()
def add_logits(col_indptr, slots, values, table, bias_slot, row_begin, row_end, out):
    """out[r - row_begin] = bias + sum of values * weights[slots] over row r's entries.

    col_indptr int64 (n_groups, n_rows + 1) (a group per column, or one row-major group);
    slots int64 (nnz,); values float32 (nnz,); table float32 (n_slots, n_parts, units), weights
    at [:, 0]; out float64 (>= row_end - row_begin, units), overwritten. Walks group by group (one
    stream per column); each row still sums its entries in group order.
    """
    units = table.shape[2]
    for row in range(row_begin, row_end):
        for u in range(units):
            out[row - row_begin, u] = table[bias_slot, 0, u]
    for g in range(col_indptr.shape[0]):
        for row in range(row_begin, row_end):
            r = row - row_begin
            for k in range(col_indptr[g, row], col_indptr[g, row + 1]):
                s = slots[k]
                v = values[k]
                for u in range(units):
                    out[r, u] += v * table[s, 0, u]


@kernel()
def place_hashed_strings(data, offsets, valid, has_valid, num_buckets, slot_offset, out_row_indptr, out_slots,
                         out_values, out_start):
    """Hash-bucket a flat (dense) string column straight into the flat buffers: one entry per row.

    data uint8 (nbytes,); offsets int64 (n_rows + 1,); valid bool (n_rows,) (read if has_valid);
    a null or '' is TF's dense missing value: the row gets the empty-row entry (slot_offset, 0.0),
    else (slot_offset + Fingerprint64 % num_buckets, 1.0). Returns the end offset.
    """
    buckets = np.uint64(num_buckets)
    n_rows = offsets.shape[0] - 1
    pos = out_start
    for row in range(n_rows):
        out_row_indptr[row] = pos
        begin = offsets[row]
        length = offsets[row + 1] - begin
        if length == 0 or (has_valid and not valid[row]):
            out_slots[pos] = slot_offset
            out_values[pos] = 0.0
        else:
            # Short strings hashed inline in the loop: 2x faster than through fingerprint64_at.
            if length <= 16:
                fp = fingerprint64_short(data, begin, length)
            else:
                fp = fingerprint64_long(data, begin, length)
            out_slots[pos] = slot_offset + np.int64(bucket_of(fp, buckets))
            out_values[pos] = 1.0
        pos += 1
    out_row_indptr[n_rows] = pos
    return pos


@kernel()
def place_dictionary_buckets(indices, valid, has_valid, dictionary_buckets, slot_offset, out_row_indptr, out_slots,
                             out_values, out_start):
    """Place a flat dictionary-encoded column whose dictionary is already bucketed: one entry per row.

    indices int32 or int64 (n_rows,); valid bool (n_rows,) (read if has_valid);
    dictionary_buckets int64 (n_dictionary,): each entry's bucket, -1 for a missing value ('' or
    null). A null row or a missing value gets the empty-row entry (slot_offset, 0.0), else
    (slot_offset + bucket, 1.0). Returns (end offset, rows whose index lies outside the
    dictionary: placed as missing, for the caller to report).
    """
    n_rows = indices.shape[0]
    n_dictionary = dictionary_buckets.shape[0]
    pos = out_start
    bad = 0
    for row in range(n_rows):
        out_row_indptr[row] = pos
        bucket = -1
        if not has_valid or valid[row]:
            index = np.int64(indices[row])
            if 0 <= index < n_dictionary:
                bucket = dictionary_buckets[index]
            else:
                bad += 1
        if bucket < 0:
            out_slots[pos] = slot_offset
            out_values[pos] = 0.0
        else:
            out_slots[pos] = slot_offset + bucket
            out_values[pos] = 1.0
        pos += 1
    out_row_indptr[n_rows] = pos
    return pos, bad


@kernel()
def interleave_rows(col_indptr, slots, values, one_per_row, out_indptr, out_slots, out_values):
    """Reorder column-major entries row-major: row r's entries of every column, contiguous.

    col_indptr int64 (n_columns, n_rows + 1); slots int64, values float32 (nnz,); one_per_row
    bool (n_columns,): column c has exactly one entry in every row; out_indptr int64
    (n_rows + 1,); out_slots int64, out_values float32 (nnz,), written. For steps of a few rows,
    where the learn kernel's per-column walk costs more than this pass. When every column has one
    entry per row, no bounds are read (~20% faster; the pass is bound by memory bandwidth).
    """
    n_columns = col_indptr.shape[0]
    n_rows = col_indptr.shape[1] - 1
    if n_columns > 0 and one_per_row.all():
        firsts = col_indptr[:, 0].copy()
        pos = 0
        for row in range(n_rows):
            out_indptr[row] = pos
            for c in range(n_columns):
                out_slots[pos] = slots[firsts[c] + row]
                out_values[pos] = values[firsts[c] + row]
                pos += 1
        out_indptr[n_rows] = pos
        return
    pos = 0
    for row in range(n_rows):
        out_indptr[row] = pos
        for c in range(n_columns):
            for k in range(col_indptr[c, row], col_indptr[c, row + 1]):
                out_slots[pos] = slots[k]
                out_values[pos] = values[k]
                pos += 1
    out_indptr[n_rows] = pos

"""TF's ``SparseCrossOp<hashed>``: cartesian products of per-row values, FingerprintCat64-chained."""

import numpy as np

from streamlin.kernels._jit import kernel
from streamlin.kernels.hashing import bucket_of, fingerprint_cat64


@kernel()
def cross_counts(indptrs, out_counts):
    """Number of crosses per row: the product of each input's value count.

    indptrs int64 (n_inputs, n_rows + 1), absolute offsets into the values array;
    out_counts int64 (n_rows,), in place.
    """
    n_inputs = indptrs.shape[0]
    for row in range(out_counts.shape[0]):
        count = 1
        for j in range(n_inputs):
            count *= indptrs[j, row + 1] - indptrs[j, row]
        out_counts[row] = count


@kernel()
def cross_hashed(indptrs, values, hash_key, num_buckets, out_indptr, out_ids):
    """Write each row's crossed ids, the last input varying fastest (TF's ProductIterator).

    indptrs int64 (n_inputs, n_rows + 1); values uint64 (total,), each input's 64-bit values;
    hash_key uint64; num_buckets int64; out_indptr int64 (n_rows + 1,) from cross_counts;
    out_ids int64 (out_indptr[-1],), in place.
    """
    n_inputs = indptrs.shape[0]
    n_rows = out_indptr.shape[0] - 1
    position = np.zeros(n_inputs, dtype=np.int64)
    buckets = np.uint64(num_buckets)
    for row in range(n_rows):
        out = out_indptr[row]
        end = out_indptr[row + 1]
        if out == end:
            continue
        for j in range(n_inputs):
            position[j] = indptrs[j, row]
        while out < end:
            h = hash_key
            for j in range(n_inputs):
                h = fingerprint_cat64(h, values[position[j]])
            out_ids[out] = np.int64(bucket_of(h, buckets))
            out += 1
            j = n_inputs - 1
            while j >= 0:
                position[j] += 1
                if position[j] < indptrs[j, row + 1]:
                    break
                position[j] = indptrs[j, row]
                j -= 1

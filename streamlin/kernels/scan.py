"""Finding the chunks of a variable that differ from its fill value (for sparse snapshots)."""


from streamlin.kernels._jit import kernel


@kernel()
def chunks_with_data(bits, fill, rows_per_chunk, out):
    """out[c] = True when rows ``[c * rows_per_chunk, (c + 1) * rows_per_chunk)`` hold a value
    whose bits differ from ``fill``; stops reading a chunk at its first difference.

    bits uint32 (n_rows, units), any strides (a float32 view); fill uint32; out bool (n_chunks,).
    """
    n_rows, units = bits.shape
    for c in range(out.shape[0]):
        found = False
        end = min(n_rows, (c + 1) * rows_per_chunk)
        for row in range(c * rows_per_chunk, end):
            for u in range(units):
                if bits[row, u] != fill:
                    found = True
                    break
            if found:
                break
        out[c] = found

"""The training step: logits, loss and gradient, duplicate ids summed, per-coordinate update.

One call runs many steps over one chunk of rows, so the optimizer's unit (a step of
``step_bounds[s]:step_bounds[s+1]`` rows) is independent of the I/O chunk size and
``batch_size=1`` costs no Python call per example.
"""

import numpy as np

from streamlin.kernels._jit import kernel

OPTIMIZER_FTRL = 0
OPTIMIZER_ADAGRAD = 1
OPTIMIZER_SGD = 2

LOSS_SIGMOID = 0
LOSS_SOFTMAX = 1

# hparams layout (float64): FTRL [l1, l2, lr_power, l2_shrinkage, beta]; Adagrad [epsilon]
HP_L1, HP_L2, HP_LR_POWER, HP_L2_SHRINKAGE, HP_BETA = 0, 1, 2, 3, 4
HP_EPSILON = 0


@kernel(inline=True)
def ftrl_update(w, n, z, g, lr, l1, l2, lr_power, l2_shrinkage):
    """TF's ApplyFtrlV2 on one coordinate (float64 in, (w, n, z) out); ``beta`` already in ``l2``."""
    g_shrunk = g + 2.0 * l2_shrinkage * w if l2_shrinkage > 0.0 else g
    n_new = n + g * g
    if lr_power == -0.5:
        root_new = np.sqrt(n_new)
        sigma = (root_new - np.sqrt(n)) / lr
        quadratic = root_new / lr + 2.0 * l2
    else:
        power_new = n_new ** (-lr_power)
        sigma = (power_new - n ** (-lr_power)) / lr
        quadratic = power_new / lr + 2.0 * l2
    z_new = z + g_shrunk - sigma * w
    if abs(z_new) > l1:
        sign = 1.0 if z_new > 0.0 else -1.0
        w_new = (sign * l1 - z_new) / quadratic
    else:
        w_new = 0.0
    return w_new, n_new, z_new


@kernel(inline=True)
def apply_update(optimizer, hparams, lr, slot, grad, row, table):
    """Update row ``slot`` of the table (weights at [:, 0], slots after) with ``grad[row]`` (float64)."""
    for u in range(table.shape[2]):
        g = grad[row, u]
        if optimizer == OPTIMIZER_FTRL:
            l2 = hparams[HP_L2] + hparams[HP_BETA] / (2.0 * lr)
            w, n, z = ftrl_update(np.float64(table[slot, 0, u]), np.float64(table[slot, 1, u]),
                                  np.float64(table[slot, 2, u]), g, lr, hparams[HP_L1], l2,
                                  hparams[HP_LR_POWER], hparams[HP_L2_SHRINKAGE])
            table[slot, 0, u] = w
            table[slot, 1, u] = n
            table[slot, 2, u] = z
        elif optimizer == OPTIMIZER_ADAGRAD:
            acc = np.float64(table[slot, 1, u]) + g * g
            table[slot, 1, u] = acc
            table[slot, 0, u] = np.float64(table[slot, 0, u]) - lr * g / (np.sqrt(acc) + hparams[HP_EPSILON])
        else:
            table[slot, 0, u] = np.float64(table[slot, 0, u]) - lr * g


@kernel()
def loss_and_gradient(logits, r, label, loss_kind, scale, dz):
    """Example ``r``'s loss from ``logits[r]``; writes d loss / d logits * scale into dz float64 (units,)."""
    units = logits.shape[1]
    if loss_kind == LOSS_SIGMOID:
        x = logits[r, 0]
        loss = max(x, 0.0) - x * label + np.log1p(np.exp(-abs(x)))
        if x >= 0.0:
            p = 1.0 / (1.0 + np.exp(-x))
        else:
            e = np.exp(x)
            p = e / (1.0 + e)
        dz[0] = (p - label) * scale
        return loss
    target = int(label)
    top = logits[r, 0]
    for u in range(1, units):
        top = max(top, logits[r, u])
    total = 0.0
    for u in range(units):
        total += np.exp(logits[r, u] - top)
    log_normalizer = top + np.log(total)
    for u in range(units):
        dz[u] = (np.exp(logits[r, u] - log_normalizer) - (1.0 if u == target else 0.0)) * scale
    return log_normalizer - logits[r, target]


_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@kernel()
def _touch(slot, hash_slots, hash_index, touched, touched_bucket, n_touched, units, grad):
    """Index of ``slot`` in this step's touched list, adding it (gradient zeroed) if new.

    hash_slots int64 (2**k,) open addressing, -1 = empty; hash_index int64 (2**k,).
    Returns (index, new n_touched).
    """
    mask = hash_slots.shape[0] - 1
    bucket = np.int64((np.uint64(slot) * _HASH_MULTIPLIER) >> np.uint64(40)) & mask
    while True:
        key = hash_slots[bucket]
        if key == slot:
            return hash_index[bucket], n_touched
        if key == -1:
            hash_slots[bucket] = slot
            hash_index[bucket] = n_touched
            touched[n_touched] = slot
            touched_bucket[n_touched] = bucket
            for u in range(units):
                grad[n_touched, u] = 0.0
            return n_touched, n_touched + 1
        bucket = (bucket + 1) & mask


@kernel(inline=True)
def _distinct_ascending(col_indptr, slots, row, bias_slot):
    """True when row ``row``'s slots, in group order, strictly increase and stay below the bias
    slot: then no two entries (nor the bias) share a slot."""
    last = -1
    for g in range(col_indptr.shape[0]):
        for k in range(col_indptr[g, row], col_indptr[g, row + 1]):
            if slots[k] <= last:
                return False
            last = slots[k]
    return last < bias_slot


@kernel()
def train_steps(col_indptr, slots, values, one_per_row, labels, example_weights, step_bounds, step_begin, step_end,
                bias_slot, table, optimizer, hparams, learning_rates, loss_kind, reduce_sum,
                hash_slots, hash_index, touched, touched_bucket, grad, logits, dz, step_losses):
    """Run steps ``[step_begin, step_end)`` of a chunk; each step's loss uses pre-update weights.

    col_indptr int64 (n_groups, n_rows + 1): group g of row r owns entries
    ``col_indptr[g, r]:col_indptr[g, r + 1]`` (a group per column, or one row-major group);
    slots int64, values float32 (nnz,); one_per_row bool (n_groups,): group g has exactly one
    entry in every row (a single-valued column; walked without reading per-row bounds);
    labels float64 (n_rows,) (0..1 for sigmoid, class id for
    softmax); example_weights float32 (n_rows,); step_bounds int64 (n_steps + 1,) row offsets;
    table float32 (n_slots, n_parts, units): weights at [:, 0], optimizer slots at [:, 1:] (one
    cache line per coordinate); hparams float64; learning_rates float64 (n_steps,); hash_slots
    int64 (2**k,), all -1 on entry and exit, 2**k >= 2 * capacity; hash_index int64 (2**k,);
    touched, touched_bucket int64 (capacity,) and grad float64 (capacity, units), capacity >=
    entries of a step + 1; logits float64 (max step rows, units), scratch; dz float64 (units,);
    step_losses float64 (n_steps,), written.

    A step walks group by group, each over the step's rows: a column's entries are read as one
    stream, so column-major rows need no reordering. Every row sums its logit in group order and
    every slot its gradient in row order, whatever the grouping, so results do not depend on it.
    """
    units = table.shape[2]
    n_groups = col_indptr.shape[0]
    for step in range(step_begin, step_end):
        row_begin, row_end = step_bounds[step], step_bounds[step + 1]
        n_rows = row_end - row_begin
        for r in range(n_rows):
            for u in range(units):
                logits[r, u] = table[bias_slot, 0, u]
        for g in range(n_groups):
            first = col_indptr[g, row_begin]
            if one_per_row[g]:
                for r in range(n_rows):
                    s = slots[first + r]
                    for u in range(units):
                        logits[r, u] += values[first + r] * table[s, 0, u]
                continue
            for r in range(n_rows):
                for k in range(col_indptr[g, row_begin + r], col_indptr[g, row_begin + r + 1]):
                    s = slots[k]
                    for u in range(units):
                        logits[r, u] += values[k] * table[s, 0, u]
        if n_rows == 1 and _distinct_ascending(col_indptr, slots, row_begin, bias_slot):
            # One row whose slots are all distinct (one entry per column, the usual case of
            # batch_size=1): each entry's gradient is its own, no duplicates to sum.
            w = np.float64(example_weights[row_begin])
            loss = loss_and_gradient(logits, 0, labels[row_begin], loss_kind, w, dz)
            step_losses[step] = w * loss
            lr = learning_rates[step]
            for u in range(units):
                grad[0, u] = dz[u]
            apply_update(optimizer, hparams, lr, bias_slot, grad, 0, table)
            for g in range(n_groups):
                for k in range(col_indptr[g, row_begin], col_indptr[g, row_end]):
                    v = np.float64(values[k])
                    for u in range(units):
                        grad[0, u] = v * dz[u]
                    apply_update(optimizer, hparams, lr, slots[k], grad, 0, table)
            continue
        bias, n_touched = _touch(bias_slot, hash_slots, hash_index, touched, touched_bucket, 0, units, grad)
        total_loss = 0.0
        for r in range(n_rows):  # logits[r] becomes d loss / d logits[r], scaled
            row = row_begin + r
            w = np.float64(example_weights[row])
            scale = w if reduce_sum else w / n_rows
            loss = loss_and_gradient(logits, r, labels[row], loss_kind, scale, dz)
            total_loss += w * loss
            for u in range(units):
                grad[bias, u] += dz[u]
                logits[r, u] = dz[u]
        for g in range(n_groups):
            first = col_indptr[g, row_begin]
            if one_per_row[g]:
                for r in range(n_rows):
                    p, n_touched = _touch(slots[first + r], hash_slots, hash_index, touched, touched_bucket,
                                          n_touched, units, grad)
                    v = np.float64(values[first + r])
                    for u in range(units):
                        grad[p, u] += v * logits[r, u]
                continue
            for r in range(n_rows):
                for k in range(col_indptr[g, row_begin + r], col_indptr[g, row_begin + r + 1]):
                    p, n_touched = _touch(slots[k], hash_slots, hash_index, touched, touched_bucket, n_touched,
                                          units, grad)
                    v = np.float64(values[k])
                    for u in range(units):
                        grad[p, u] += v * logits[r, u]
        step_losses[step] = total_loss if reduce_sum else total_loss / n_rows
        lr = learning_rates[step]
        for p in range(n_touched):
            apply_update(optimizer, hparams, lr, touched[p], grad, p, table)
            hash_slots[touched_bucket[p]] = -1


@kernel()
def step_capacity(col_indptr, step_bounds):
    """Most entries any step of the chunk touches, plus one for the bias (int64)."""
    best = 0
    for step in range(step_bounds.shape[0] - 1):
        total = 0
        for c in range(col_indptr.shape[0]):
            total += col_indptr[c, step_bounds[step + 1]] - col_indptr[c, step_bounds[step]]
        best = max(best, total)
    return best + 1

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


@kernel()
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


@kernel()
def apply_update(optimizer, hparams, lr, slot, grad_row, weights, slot_a, slot_b):
    """Update row ``slot`` of weights and slots with gradient ``grad_row`` float64 (units,)."""
    for u in range(weights.shape[1]):
        g = grad_row[u]
        if optimizer == OPTIMIZER_FTRL:
            l2 = hparams[HP_L2] + hparams[HP_BETA] / (2.0 * lr)
            w, n, z = ftrl_update(np.float64(weights[slot, u]), np.float64(slot_a[slot, u]),
                                  np.float64(slot_b[slot, u]), g, lr, hparams[HP_L1], l2,
                                  hparams[HP_LR_POWER], hparams[HP_L2_SHRINKAGE])
            weights[slot, u] = w
            slot_a[slot, u] = n
            slot_b[slot, u] = z
        elif optimizer == OPTIMIZER_ADAGRAD:
            acc = np.float64(slot_a[slot, u]) + g * g
            slot_a[slot, u] = acc
            weights[slot, u] = np.float64(weights[slot, u]) - lr * g / (np.sqrt(acc) + hparams[HP_EPSILON])
        else:
            weights[slot, u] = np.float64(weights[slot, u]) - lr * g


@kernel()
def loss_and_gradient(logits, label, loss_kind, scale, dz):
    """Per-example loss; writes d loss / d logits * scale into dz float64 (units,)."""
    units = logits.shape[0]
    if loss_kind == LOSS_SIGMOID:
        x = logits[0]
        loss = max(x, 0.0) - x * label + np.log1p(np.exp(-abs(x)))
        if x >= 0.0:
            p = 1.0 / (1.0 + np.exp(-x))
        else:
            e = np.exp(x)
            p = e / (1.0 + e)
        dz[0] = (p - label) * scale
        return loss
    target = int(label)
    top = logits[0]
    for u in range(1, units):
        top = max(top, logits[u])
    total = 0.0
    for u in range(units):
        total += np.exp(logits[u] - top)
    log_normalizer = top + np.log(total)
    for u in range(units):
        dz[u] = (np.exp(logits[u] - log_normalizer) - (1.0 if u == target else 0.0)) * scale
    return log_normalizer - logits[target]


@kernel()
def train_steps(col_indptr, slots, values, labels, example_weights, step_bounds, step_begin, step_end,
                bias_slot, weights, slot_a, slot_b, optimizer, hparams, learning_rates, loss_kind,
                reduce_sum, position, touched, grad, logits, dz, step_losses):
    """Run steps ``[step_begin, step_end)`` of a chunk; each step's loss uses pre-update weights.

    col_indptr int64 (n_columns, n_rows + 1); slots int64, values float32 (nnz,);
    labels float64 (n_rows,) (0..1 for sigmoid, class id for softmax); example_weights float32
    (n_rows,); step_bounds int64 (n_steps + 1,) row offsets; weights, slot_a, slot_b float32
    (n_slots, units), in place (slots unused by an optimizer may be empty); hparams float64;
    learning_rates float64 (n_steps,); position int64 (n_slots,), all -1 on entry and exit;
    touched int64 (capacity,) and grad float64 (capacity, units) with capacity >= entries of a
    step + 1; logits float64 (max step rows, units); dz float64 (units,);
    step_losses float64 (n_steps,), written for the steps run.
    """
    units = weights.shape[1]
    n_columns = col_indptr.shape[0]
    for step in range(step_begin, step_end):
        row_begin, row_end = step_bounds[step], step_bounds[step + 1]
        n_rows = row_end - row_begin
        for row in range(row_begin, row_end):
            r = row - row_begin
            for u in range(units):
                logits[r, u] = weights[bias_slot, u]
            for c in range(n_columns):
                for k in range(col_indptr[c, row], col_indptr[c, row + 1]):
                    s = slots[k]
                    for u in range(units):
                        logits[r, u] += values[k] * weights[s, u]
        n_touched = 1
        touched[0] = bias_slot
        position[bias_slot] = 0
        for u in range(units):
            grad[0, u] = 0.0
        total_loss = 0.0
        for row in range(row_begin, row_end):
            r = row - row_begin
            w = np.float64(example_weights[row])
            scale = w if reduce_sum else w / n_rows
            loss = loss_and_gradient(logits[r], labels[row], loss_kind, scale, dz)
            total_loss += w * loss
            for u in range(units):
                grad[0, u] += dz[u]
            for c in range(n_columns):
                for k in range(col_indptr[c, row], col_indptr[c, row + 1]):
                    s = slots[k]
                    p = position[s]
                    if p < 0:
                        p = n_touched
                        position[s] = p
                        touched[p] = s
                        n_touched += 1
                        for u in range(units):
                            grad[p, u] = 0.0
                    v = np.float64(values[k])
                    for u in range(units):
                        grad[p, u] += v * dz[u]
        step_losses[step] = total_loss if reduce_sum else total_loss / n_rows
        lr = learning_rates[step]
        for p in range(n_touched):
            s = touched[p]
            apply_update(optimizer, hparams, lr, s, grad[p], weights, slot_a, slot_b)
            position[s] = -1


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

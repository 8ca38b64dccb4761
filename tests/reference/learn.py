"""Plain-numpy twins of ``streamlin.kernels.learn``, written from tfref README §3-§5 and
``ref_impl.py`` (TF 2.15's legacy Keras optimizers, heads and loss reductions).

A training step, as TF runs it:

1. logits of every row of the step from the weights *before* the step (bias + sum of v * w[slot]);
2. per-example loss l_i and d l_i / d logits; example i's gradient is scaled by w_i (``sum``) or
   w_i / B (``sum_over_batch_size``, B = rows in the step, not the sum of weights);
3. the gradient of a slot is the sum over all its entries in the step (Keras sums duplicate indices
   of IndexedSlices before the sparse apply), the bias gets the sum of every row's gradient;
4. every slot present in the step, and the bias, is updated once (a zero gradient still updates);
   the state is kept in float32 between steps and computed in float64.
"""

from __future__ import annotations

import numpy as np

FTRL, ADAGRAD, SGD = "ftrl", "adagrad", "sgd"
SIGMOID, SOFTMAX = "sigmoid", "softmax"
_OPTIMIZERS = {0: FTRL, 1: ADAGRAD, 2: SGD}
_LOSSES = {0: SIGMOID, 1: SOFTMAX}


def ftrl_update(w, n, z, g, lr, l1, l2, lr_power, l2_shrinkage=0.0):
    """TF ApplyFtrlV2 (README §5), float64, vectorised; returns (w_new, n_new, z_new).

    n_new = n + g²  (raw gradient);  σ = (n_new^-p − n^-p) / lr;  z_new = z + g + 2·s·w − σ·w;
    w_new = (sign(z_new)·l1 − z_new) / (n_new^-p / lr + 2·l2) if |z_new| > l1 else 0.
    """
    w, n, z, g = (np.asarray(a, dtype=np.float64) for a in (w, n, z, g))
    n_new = n + g * g
    power = -float(lr_power)
    step_new = np.sqrt(n_new) if power == 0.5 else np.power(n_new, power)
    step_old = np.sqrt(n) if power == 0.5 else np.power(n, power)
    sigma = (step_new - step_old) / lr
    z_new = z + (g + 2.0 * l2_shrinkage * w) - sigma * w
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        w_new = np.where(np.abs(z_new) > l1, (np.sign(z_new) * l1 - z_new) / (step_new / lr + 2.0 * l2), 0.0)
    return w_new, n_new, z_new


def adagrad_update(w, acc, g, lr, epsilon):
    """Keras legacy Adagrad (ApplyAdagradV2): acc += g²; w -= lr·g / (√acc + ε)."""
    w, acc, g = (np.asarray(a, dtype=np.float64) for a in (w, acc, g))
    acc_new = acc + g * g
    return w - lr * g / (np.sqrt(acc_new) + epsilon), acc_new


def sgd_update(w, g, lr):
    return np.asarray(w, dtype=np.float64) - lr * np.asarray(g, dtype=np.float64)


def sigmoid_loss(logits, labels):
    """Per-example sigmoid cross-entropy and its derivative; logits float64 (n, 1)."""
    x = np.asarray(logits, dtype=np.float64)[:, 0]
    y = np.asarray(labels, dtype=np.float64)
    loss = np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))
    grad = (1.0 / (1.0 + np.exp(-x)) - y)[:, None]
    return loss, grad


def softmax_loss(logits, labels):
    """Per-example sparse softmax cross-entropy and its derivative; logits float64 (n, k)."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    shifted = x - x.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_norm
    rows = np.arange(len(x))
    grad = np.exp(log_p)
    grad[rows, y] -= 1.0
    return -log_p[rows, y], grad


def step_logits(col_indptr, slots, values, weights, bias_slot, row_begin, row_end):
    """float64 (rows, units): bias + sum over every column's entries of value * weight.

    Each product is of two float32 numbers, rounded to float32 as TF's float32 model computes it;
    the sum is float64, one entry at a time in entry order.
    """
    col_indptr = np.asarray(col_indptr, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float32)
    v = np.asarray(values, dtype=np.float32)
    n = row_end - row_begin
    out = np.tile(w[bias_slot].astype(np.float64), (n, 1))
    for r in range(row_begin, row_end):
        for c in range(col_indptr.shape[0]):
            for k in range(col_indptr[c, r], col_indptr[c, r + 1]):
                out[r - row_begin] += (v[k] * w[slots[k]]).astype(np.float64)
    return out


def step_entries(col_indptr, row_begin, row_end):
    """(entry index, step-local row) of every entry of rows [row_begin, row_end), all columns."""
    col_indptr = np.asarray(col_indptr, dtype=np.int64)
    ks, rs = [], []
    for r in range(row_begin, row_end):
        for c in range(col_indptr.shape[0]):
            k = np.arange(col_indptr[c, r], col_indptr[c, r + 1])
            ks.append(k)
            rs.append(np.full(len(k), r - row_begin))
    if not ks:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(ks).astype(np.int64), np.concatenate(rs).astype(np.int64)


def apply(optimizer, hparams, lr, slots, grads, weights, slot_a, slot_b):
    """Update rows ``slots`` (unique) with float64 gradients (len(slots), units), in place."""
    optimizer = _OPTIMIZERS.get(optimizer, optimizer)
    w = weights[slots].astype(np.float64)
    if optimizer == FTRL:
        l1, l2, lr_power, shrink, beta = (float(h) for h in hparams[:5])
        w, n, z = ftrl_update(w, slot_a[slots], slot_b[slots], grads, lr, l1, l2 + beta / (2.0 * lr),
                              lr_power, shrink)
        slot_a[slots] = n
        slot_b[slots] = z
    elif optimizer == ADAGRAD:
        w, acc = adagrad_update(w, slot_a[slots], grads, lr, float(hparams[0]))
        slot_a[slots] = acc
    elif optimizer == SGD:
        w = sgd_update(w, grads, lr)
    else:
        raise ValueError(optimizer)
    weights[slots] = w


def train_steps(col_indptr, slots, values, labels, example_weights, step_bounds, step_begin, step_end,
                bias_slot, weights, slot_a, slot_b, optimizer, hparams, learning_rates, loss_kind,
                reduce_sum):
    """Run steps [step_begin, step_end); returns (weights, slot_a, slot_b, losses), new float32 arrays.

    losses float64 (step_end - step_begin,): each step's training loss from pre-update weights.
    """
    weights, slot_a, slot_b = (np.array(a, dtype=np.float32, copy=True) for a in (weights, slot_a, slot_b))
    slots = np.asarray(slots, dtype=np.int64)
    values = np.asarray(values, dtype=np.float32)
    loss_fn = sigmoid_loss if _LOSSES.get(loss_kind, loss_kind) == SIGMOID else softmax_loss
    losses = []
    for step in range(step_begin, step_end):
        lo, hi = int(step_bounds[step]), int(step_bounds[step + 1])
        n_rows = hi - lo
        logits = step_logits(col_indptr, slots, values, weights, bias_slot, lo, hi)
        per_example, dlogits = loss_fn(logits, np.asarray(labels)[lo:hi])
        ex_w = np.asarray(example_weights, dtype=np.float32)[lo:hi].astype(np.float64)
        scale = ex_w if reduce_sum else ex_w / n_rows
        losses.append(float((ex_w * per_example).sum() / (1 if reduce_sum else n_rows)))
        dz = dlogits * scale[:, None]
        k, r = step_entries(col_indptr, lo, hi)
        touched = np.unique(np.concatenate([slots[k], [bias_slot]]))
        grad = np.zeros((len(touched), weights.shape[1]))
        np.add.at(grad, np.searchsorted(touched, slots[k]), values[k].astype(np.float64)[:, None] * dz[r])
        bias_row = np.searchsorted(touched, bias_slot)
        for i in range(n_rows):  # sequentially: a pairwise sum would round differently
            grad[bias_row] += dz[i]
        apply(optimizer, hparams, float(learning_rates[step]), touched, grad, weights, slot_a, slot_b)
    return weights, slot_a, slot_b, np.array(losses)


def step_capacity(col_indptr, step_bounds) -> int:
    """Largest number of entries in any step (all columns), plus one for the bias."""
    col_indptr = np.asarray(col_indptr, dtype=np.int64)
    b = np.asarray(step_bounds, dtype=np.int64)
    per_step = (col_indptr[:, b[1:]] - col_indptr[:, b[:-1]]).sum(axis=0)
    return int(per_step.max(initial=0)) + 1

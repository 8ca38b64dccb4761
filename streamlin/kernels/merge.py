"""Merging K workers' round results into the global state (``streamlin.distribute``).

Each worker starts a round from the same global table, trains on its own rows and returns the
rows of the table it changed. :func:`merge_workers` combines them per coordinate (slot, unit):

- a coordinate no worker changed keeps the global value; one that a single worker changed takes
  that worker's values exactly (weight and slots), so one worker returns its own state;
- accumulators add: ``n = n0 + sum_k (n_k - n0)``;
- FTRL coordinates whose weight is 0 at the start and on every worker (still under the L1
  threshold) add their linear term exactly, ``z = z0 + sum_k (z_k - z0)``, and take the weight
  FTRL gives ``(z, n)``;
- any other coordinate takes the ``contract`` weight, the ``average`` weight, or both (the caller
  picks with a probe), and the linear term that gives that weight at the merged accumulator:

  ``contract``: rho_k = dn_k / q(n0 + dn_k / 2) is the progress worker k made on the coordinate
  (q(n) the optimizer's inverse step size at accumulator n), rho their mean over the m workers,
  f = (1 - e^(-m rho)) / (1 - e^(-rho)) in [1, m]; w = w0 + f * mean_k(w_k - w0). Small
  independent steps add (f -> m), converged ones average (f -> 1).

  ``average``: w = sum_k dn_k w_k / sum_k dn_k (Vowpal Wabbit's weighted average).

SGD has no accumulator to measure progress by: its coordinates changed by several workers take
the plain mean of the workers' weights under every rule (model averaging).
"""

import numpy as np

from streamlin.kernels._jit import kernel
from streamlin.kernels.learn import HP_BETA, HP_EPSILON, HP_L1, HP_L2, HP_LR_POWER, OPTIMIZER_ADAGRAD, OPTIMIZER_FTRL

MERGE_CONTRACT = 0
MERGE_AVERAGE = 1
MERGE_BOTH = 2

_NO_SLOT = np.iinfo(np.int64).max


@kernel()
def differs(a, b):
    """True when float32 ``a`` and ``b`` are not the same value (-0.0 differs from 0.0; NaN equals NaN)."""
    if a != a:
        return b == b
    if a != b:
        return True
    return a == 0.0 and np.signbit(a) != np.signbit(b)


@kernel()
def changed_slots(base, table, out):
    """Write the slots whose rows differ between ``base`` and ``table`` to ``out``, ascending.

    base, table float32 (n_slots, n_parts, units); out int64 (n_slots,). Returns the count.
    """
    count = 0
    for s in range(base.shape[0]):
        changed = False
        for p in range(base.shape[1]):
            for u in range(base.shape[2]):
                if differs(base[s, p, u], table[s, p, u]):
                    changed = True
        if changed:
            out[count] = s
            count += 1
    return count


@kernel()
def ftrl_quadratic(n, lr, l2, lr_power):
    """FTRL's inverse step size at accumulator ``n``: n^(-lr_power) / lr + 2 l2 (float64; beta in l2)."""
    power = np.sqrt(n) if lr_power == -0.5 else n ** (-lr_power)
    return power / lr + 2.0 * l2


@kernel()
def ftrl_weight(z, n, lr, l1, l2, lr_power):
    """The weight FTRL gives linear term ``z`` at accumulator ``n`` (float64; beta in l2)."""
    if abs(z) <= l1:
        return 0.0
    quadratic = ftrl_quadratic(n, lr, l2, lr_power)
    if quadratic <= 0.0:
        return 0.0
    sign = 1.0 if z > 0.0 else -1.0
    return (sign * l1 - z) / quadratic


@kernel()
def ftrl_linear(w, n, lr, l1, l2, lr_power, fallback):
    """The linear term that gives weight ``w`` at accumulator ``n``; ``fallback`` clipped to [-l1, l1] for w = 0."""
    quadratic = ftrl_quadratic(n, lr, l2, lr_power)
    if w == 0.0 or quadratic <= 0.0:
        return min(max(fallback, -l1), l1)
    sign = 1.0 if w > 0.0 else -1.0
    return -sign * l1 - w * quadratic


@kernel()
def step_factor(rho, m):
    """(1 - e^(-m rho)) / (1 - e^(-rho)): m as rho -> 0, 1 as rho -> inf (float64)."""
    if rho <= 0.0:
        return float(m)
    if rho == np.inf:
        return 1.0
    return np.expm1(-m * rho) / np.expm1(-rho)


@kernel()
def _merge_coordinate(base, s, u, values, rows, n_rows, optimizer, hparams, lr, mode, out_first, out_second, o):
    """Merge unit ``u`` of slot ``s`` from the ``n_rows`` worker rows ``values[rows[:n_rows]]`` into row ``o``."""
    n_parts = base.shape[1]
    m = 0
    last = -1
    for i in range(n_rows):
        r = rows[i]
        for p in range(n_parts):
            if differs(base[s, p, u], values[r, p, u]):
                m += 1
                last = r
                break
    if m <= 1:
        for p in range(n_parts):
            value = base[s, p, u] if m == 0 else values[last, p, u]
            out_first[o, p, u] = value
            if mode == MERGE_BOTH:
                out_second[o, p, u] = value
        return
    w0 = np.float64(base[s, 0, u])
    if optimizer != OPTIMIZER_FTRL and optimizer != OPTIMIZER_ADAGRAD:  # SGD: the mean of the weights
        total = 0.0
        for i in range(n_rows):
            r = rows[i]
            if differs(base[s, 0, u], values[r, 0, u]):
                total += np.float64(values[r, 0, u])
        out_first[o, 0, u] = total / m
        if mode == MERGE_BOTH:
            out_second[o, 0, u] = total / m
        return
    n0 = np.float64(base[s, 1, u])
    ftrl = optimizer == OPTIMIZER_FTRL
    l1 = hparams[HP_L1] if ftrl else 0.0
    l2 = hparams[HP_L2] + hparams[HP_BETA] / (2.0 * lr) if ftrl else 0.0
    lr_power = hparams[HP_LR_POWER] if ftrl else -0.5
    epsilon = 0.0 if ftrl else hparams[HP_EPSILON]
    z0 = np.float64(base[s, 2, u]) if ftrl else 0.0
    sum_dn = 0.0
    sum_dz = 0.0
    sum_dw = 0.0
    sum_w = 0.0
    sum_dn_w = 0.0
    sum_rho = 0.0
    dormant = w0 == 0.0
    for i in range(n_rows):
        r = rows[i]
        changed = False
        for p in range(n_parts):
            if differs(base[s, p, u], values[r, p, u]):
                changed = True
        if not changed:
            continue
        w = np.float64(values[r, 0, u])
        dn = np.float64(values[r, 1, u]) - n0
        if ftrl:
            sum_dz += np.float64(values[r, 2, u]) - z0
        sum_dn += dn
        sum_dw += w - w0
        sum_w += w
        sum_dn_w += dn * w
        if w != 0.0:
            dormant = False
        if dn > 0.0:
            middle = n0 + 0.5 * dn
            if ftrl:
                quadratic = ftrl_quadratic(middle, lr, l2, lr_power)
            else:
                quadratic = (np.sqrt(middle) + epsilon) / lr
            sum_rho += dn / quadratic if quadratic > 0.0 else np.inf
    n_new = n0 + sum_dn
    if ftrl and dormant:
        z_new = z0 + sum_dz
        w_new = ftrl_weight(z_new, n_new, lr, l1, l2, lr_power)
        for k in range(2 if mode == MERGE_BOTH else 1):
            out = out_first if k == 0 else out_second
            out[o, 0, u] = w_new
            out[o, 1, u] = n_new
            out[o, 2, u] = z_new
        return
    fallback = z0 + sum_dz
    for k in range(2 if mode == MERGE_BOTH else 1):
        rule = mode if mode != MERGE_BOTH else (MERGE_CONTRACT if k == 0 else MERGE_AVERAGE)
        if rule == MERGE_CONTRACT:
            w_new = w0 + step_factor(sum_rho / m, m) * (sum_dw / m)
        elif sum_dn > 0.0:
            w_new = sum_dn_w / sum_dn
        else:
            w_new = sum_w / m
        out = out_first if k == 0 else out_second
        out[o, 0, u] = w_new
        out[o, 1, u] = n_new
        if ftrl:
            out[o, 2, u] = ftrl_linear(np.float64(np.float32(w_new)), n_new, lr, l1, l2, lr_power, fallback)


@kernel()
def merge_workers(base, idx, offsets, values, optimizer, hparams, lr, mode, out_idx, out_first, out_second):
    """Merge K workers' changed rows into new values for the union of their slots.

    base float32 (n_slots, n_parts, units): the round's starting table (weights at [:, 0], then the
    optimizer's slots: FTRL accumulator, linear; Adagrad accumulator); idx int64 (total,): worker
    k's changed slots, ascending, at ``offsets[k]:offsets[k + 1]`` (offsets int64 (K + 1,), merge
    order = worker order); values float32 (total, n_parts, units): those rows of the workers'
    tables; optimizer: OPTIMIZER_*; hparams float64 as ``kernels.learn``; lr float64: the learning
    rate of the round's last step; mode: MERGE_CONTRACT, MERGE_AVERAGE or MERGE_BOTH.
    out_idx int64 (total,): the union, ascending; out_first float32 (total, n_parts, units): the
    merged rows (contract under MERGE_BOTH); out_second: the average rows under MERGE_BOTH (else
    unused, may be empty). Returns the size of the union.
    """
    n_workers = offsets.shape[0] - 1
    cursor = np.empty(n_workers, dtype=np.int64)
    rows = np.empty(n_workers, dtype=np.int64)
    for k in range(n_workers):
        cursor[k] = offsets[k]
    n_out = 0
    while True:
        s = _NO_SLOT
        for k in range(n_workers):
            if cursor[k] < offsets[k + 1] and idx[cursor[k]] < s:
                s = idx[cursor[k]]
        if s == _NO_SLOT:
            break
        n_rows = 0
        for k in range(n_workers):
            if cursor[k] < offsets[k + 1] and idx[cursor[k]] == s:
                rows[n_rows] = cursor[k]
                n_rows += 1
                cursor[k] += 1
        out_idx[n_out] = s
        for u in range(base.shape[2]):
            _merge_coordinate(base, s, u, values, rows, n_rows, optimizer, hparams, lr, mode, out_first, out_second,
                              n_out)
        n_out += 1
    return n_out

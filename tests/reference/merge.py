"""Plain-numpy twin of ``streamlin.kernels.merge``, written from DISTRIBUTED.md's merge rules.

Vectorised over the union of the workers' slots (the kernel walks it slot by slot); worker sums are
taken in worker order, as the kernel does, so the results agree except in the last bits of the
transcendental functions.
"""

from __future__ import annotations

import numpy as np

FTRL, ADAGRAD, SGD = 0, 1, 2
CONTRACT, AVERAGE, BOTH = 0, 1, 2


def differs(a, b):
    """Elementwise: a and b are different float32 values (-0.0 != 0.0, NaN == NaN)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    both_nan = np.isnan(a) & np.isnan(b)
    return ~both_nan & ((a != b) | ((a == 0) & (np.signbit(a) != np.signbit(b))))


def changed_slots(base, table):
    """Slots whose rows differ, ascending (int64)."""
    return np.flatnonzero(differs(base, table).reshape(base.shape[0], -1).any(axis=1)).astype(np.int64)


def ftrl_quadratic(n, lr, l2, lr_power):
    n = np.asarray(n, dtype=np.float64)
    power = np.sqrt(n) if lr_power == -0.5 else n ** (-lr_power)
    return power / lr + 2.0 * l2


def ftrl_weight(z, n, lr, l1, l2, lr_power):
    q = ftrl_quadratic(n, lr, l2, lr_power)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (np.sign(z) * l1 - z) / q
    return np.where((np.abs(z) <= l1) | (q <= 0), 0.0, w)


def ftrl_linear(w, n, lr, l1, l2, lr_power, fallback):
    q = ftrl_quadratic(n, lr, l2, lr_power)
    z = -np.sign(w) * l1 - w * q
    return np.where((w == 0) | (q <= 0), np.clip(fallback, -l1, l1), z)


def step_factor(rho, m):
    rho = np.asarray(rho, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.expm1(-m * rho) / np.expm1(-rho)
    return np.where(rho <= 0, m, np.where(np.isinf(rho), 1.0, f))


def merge_workers(base, idx, offsets, values, optimizer, hparams, lr, mode):
    """(union int64 (U,), first float32 (U, parts, units), second or None) as the kernel computes them."""
    base = np.asarray(base, dtype=np.float32)
    idx = np.asarray(idx, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    values = np.asarray(values, dtype=np.float32)
    union = np.unique(idx)
    n_workers = len(offsets) - 1
    start = base[union]                                           # (U, parts, units)
    n_parts, units = base.shape[1], base.shape[2]
    tables, changed = [], []
    for k in range(n_workers):
        rows = slice(offsets[k], offsets[k + 1])
        table = start.copy()
        present = np.zeros(len(union), dtype=bool)
        position = np.searchsorted(union, idx[rows])
        table[position] = values[rows]
        present[position] = True
        tables.append(table)
        changed.append(present[:, None] & differs(start, table).any(axis=1))   # (U, units)
    m = np.zeros((len(union), units), dtype=np.int64)
    last = np.zeros((len(union), n_parts, units), dtype=np.float32)
    for k in range(n_workers):
        m += changed[k]
        last = np.where(changed[k][:, None, :], tables[k], last)
    w0 = start[:, 0].astype(np.float64)
    results = []
    rules = [CONTRACT, AVERAGE] if mode == BOTH else [mode]
    if optimizer == SGD:
        total = np.zeros_like(w0)
        for k in range(n_workers):
            total = np.where(changed[k], total + tables[k][:, 0].astype(np.float64), total)
        with np.errstate(divide="ignore", invalid="ignore"):
            merged = (total / m)[:, None, :]
        for _ in rules:
            results.append(merged)
    else:
        ftrl = optimizer == FTRL
        l1 = hparams[0] if ftrl else 0.0
        l2 = hparams[1] + hparams[4] / (2.0 * lr) if ftrl else 0.0
        lr_power = hparams[2] if ftrl else -0.5
        epsilon = 0.0 if ftrl else hparams[0]
        n0 = start[:, 1].astype(np.float64)
        z0 = start[:, 2].astype(np.float64) if ftrl else np.zeros_like(w0)
        sum_dn = np.zeros_like(w0)
        sum_dz = np.zeros_like(w0)
        sum_dw = np.zeros_like(w0)
        sum_w = np.zeros_like(w0)
        sum_dn_w = np.zeros_like(w0)
        sum_rho = np.zeros_like(w0)
        dormant = w0 == 0
        for k in range(n_workers):
            c = changed[k]
            w = tables[k][:, 0].astype(np.float64)
            dn = tables[k][:, 1].astype(np.float64) - n0
            if ftrl:
                sum_dz = np.where(c, sum_dz + (tables[k][:, 2].astype(np.float64) - z0), sum_dz)
            sum_dn = np.where(c, sum_dn + dn, sum_dn)
            sum_dw = np.where(c, sum_dw + (w - w0), sum_dw)
            sum_w = np.where(c, sum_w + w, sum_w)
            sum_dn_w = np.where(c, sum_dn_w + dn * w, sum_dn_w)
            dormant &= ~(c & (w != 0))
            middle = n0 + 0.5 * dn
            if ftrl:
                q = ftrl_quadratic(middle, lr, l2, lr_power)
            else:
                q = (np.sqrt(middle) + epsilon) / lr
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = np.where(q > 0, dn / q, np.inf)
            sum_rho = np.where(c & (dn > 0), sum_rho + rho, sum_rho)
        n_new = n0 + sum_dn
        fallback = z0 + sum_dz
        dormant &= ftrl
        z_dormant = z0 + sum_dz
        w_dormant = ftrl_weight(z_dormant, n_new, lr, l1, l2, lr_power) if ftrl else w0
        for rule in rules:
            with np.errstate(divide="ignore", invalid="ignore"):
                if rule == CONTRACT:
                    w_new = w0 + step_factor(sum_rho / m, m) * (sum_dw / m)
                else:
                    w_new = np.where(sum_dn > 0, sum_dn_w / sum_dn, sum_w / m)
            parts = [np.where(dormant, w_dormant, w_new), n_new]
            if ftrl:
                z_new = ftrl_linear(w_new.astype(np.float32).astype(np.float64), n_new, lr, l1, l2, lr_power, fallback)
                parts.append(np.where(dormant, z_dormant, z_new))
            results.append(np.stack(parts, axis=1))
    out = []
    for merged in results:
        merged = merged.astype(np.float32)
        merged = np.where((m >= 2)[:, None, :], merged, np.where((m == 1)[:, None, :], last, start))
        out.append(merged.astype(np.float32))
    return union, out[0], (out[1] if mode == BOTH else None)

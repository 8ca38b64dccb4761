"""``streamlin.kernels.merge`` against its numpy twin (tests/reference/merge.py), and the merge rules'
properties from DISTRIBUTED.md: one worker returns its own state; untouched coordinates stay; n and
dormant z add exactly; ``contract`` sums small steps and averages converged ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlin.kernels import merge as k
from streamlin.kernels.learn import OPTIMIZER_ADAGRAD, OPTIMIZER_FTRL, OPTIMIZER_SGD
from tests.reference import learn as ref_learn
from tests.reference import merge as ref

PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PARTS = {OPTIMIZER_FTRL: 3, OPTIMIZER_ADAGRAD: 2, OPTIMIZER_SGD: 1}


def _step(optimizer, hparams, lr, table, g):
    """One optimizer update of every coordinate of ``table`` (float32 (n, parts, units)) with gradient g."""
    w = table[:, 0].astype(np.float64)
    if optimizer == OPTIMIZER_FTRL:
        l2 = hparams[1] + hparams[4] / (2 * lr)
        w, n, z = ref_learn.ftrl_update(w, table[:, 1], table[:, 2], g, lr, hparams[0], l2, hparams[2], hparams[3])
        return np.stack([w, n, z], axis=1).astype(np.float32)
    if optimizer == OPTIMIZER_ADAGRAD:
        w, acc = ref_learn.adagrad_update(w, table[:, 1], g, lr, hparams[0])
        return np.stack([w, acc], axis=1).astype(np.float32)
    return ref_learn.sgd_update(w, g, lr)[:, None].astype(np.float32)


def _initial(optimizer, n_slots, units, accumulator=0.1):
    table = np.zeros((n_slots, PARTS[optimizer], units), dtype=np.float32)
    if optimizer != OPTIMIZER_SGD:
        table[:, 1] = accumulator
    return table


@st.composite
def rounds(draw):
    """A global state and K workers' changed rows, each made of real optimizer steps from that state."""
    optimizer = draw(st.sampled_from([OPTIMIZER_FTRL, OPTIMIZER_ADAGRAD, OPTIMIZER_SGD]))
    n_slots, units, n_workers = draw(st.integers(1, 10)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    lr = draw(st.sampled_from([0.05, 0.5, 2.0]))
    if optimizer == OPTIMIZER_FTRL:
        hparams = np.array([draw(st.sampled_from([0.0, 0.01, 0.3])), draw(st.sampled_from([0.0, 0.001, 0.5])),
                            draw(st.sampled_from([-0.5, -0.3])), draw(st.sampled_from([0.0, 0.0, 0.1])),
                            draw(st.sampled_from([0.0, 1.0]))])
    else:
        hparams = np.array([1e-7, 0, 0, 0, 0.0])
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    scale = draw(st.sampled_from([1e-4, 0.1, 1.0, 30.0]))
    base = _initial(optimizer, n_slots, units, draw(st.sampled_from([0.0, 0.1, 1.0])) if optimizer == OPTIMIZER_FTRL
                    else 0.1)
    for _ in range(draw(st.integers(0, 3))):
        base = _step(optimizer, hparams, lr, base, rng.normal(0, scale, (n_slots, units)) * (rng.random((n_slots, 1)) < 0.6))
    idx, values, offsets = [], [], [0]
    for _ in range(n_workers):
        table = base.copy()
        touched = rng.random(n_slots) < 0.6
        for _ in range(int(rng.integers(1, 4))):
            g = rng.normal(0, scale, (n_slots, units)) * touched[:, None] * (rng.random((n_slots, units)) < 0.8)
            table = np.where(touched[:, None, None], _step(optimizer, hparams, lr, table, g), table)
        changed = ref.changed_slots(base, table)
        idx.append(changed)
        values.append(table[changed])
        offsets.append(offsets[-1] + len(changed))
    return dict(base=base, idx=np.concatenate(idx).astype(np.int64), offsets=np.array(offsets, dtype=np.int64),
                values=np.concatenate(values).astype(np.float32), optimizer=optimizer, hparams=hparams, lr=lr,
                mode=draw(st.sampled_from([k.MERGE_CONTRACT, k.MERGE_AVERAGE, k.MERGE_BOTH])))


def _kernel(r):
    total = len(r["idx"])
    shape = (total,) + r["base"].shape[1:]
    out_idx, first = np.empty(total, dtype=np.int64), np.empty(shape, dtype=np.float32)
    second = np.empty(shape if r["mode"] == k.MERGE_BOTH else (0,) + shape[1:], dtype=np.float32)
    n = k.merge_workers(r["base"], r["idx"], r["offsets"], r["values"], r["optimizer"], r["hparams"], r["lr"],
                        r["mode"], out_idx, first, second)
    return out_idx[:n], first[:n], (second[:n] if r["mode"] == k.MERGE_BOTH else None)


def _worker_rows(r, worker):
    rows = slice(r["offsets"][worker], r["offsets"][worker + 1])
    return r["idx"][rows], r["values"][rows]


@PROPERTY
@given(rounds())
def test_merge_kernel_matches_numpy_twin(r):
    union, first, second = _kernel(r)
    t_union, t_first, t_second = ref.merge_workers(r["base"], r["idx"], r["offsets"], r["values"], r["optimizer"],
                                                   r["hparams"], r["lr"], r["mode"])
    np.testing.assert_array_equal(union, t_union)
    np.testing.assert_allclose(first, t_first, rtol=1e-6, atol=1e-30)
    if second is not None:
        np.testing.assert_allclose(second, t_second, rtol=1e-6, atol=1e-30)


@PROPERTY
@given(rounds())
def test_one_worker_returns_its_own_state(r):
    idx, values = _worker_rows(r, 0)
    r = dict(r, idx=idx, values=values, offsets=np.array([0, len(idx)], dtype=np.int64))
    union, first, second = _kernel(r)
    np.testing.assert_array_equal(union, idx)
    assert first.tobytes() == values.tobytes()
    if second is not None:
        assert second.tobytes() == values.tobytes()


@PROPERTY
@given(rounds())
def test_untouched_coordinates_stay_and_single_changes_are_taken(r):
    union, first, _ = _kernel(r)
    base = r["base"]
    assert set(union) == set(r["idx"])
    changed_by = np.zeros((len(union), base.shape[2]), dtype=np.int64)
    single = np.zeros((len(union),) + base.shape[1:], dtype=np.float32)
    for worker in range(len(r["offsets"]) - 1):
        idx, values = _worker_rows(r, worker)
        position = np.searchsorted(union, idx)
        differs = ref.differs(base[idx], values).any(axis=1)      # (rows, units)
        changed_by[position] += differs
        single[position] = np.where(differs[:, None, :], values, single[position])
    untouched = changed_by == 0
    np.testing.assert_array_equal(np.where(untouched[:, None, :], first, 0), np.where(untouched[:, None, :], base[union], 0))
    once = changed_by == 1
    np.testing.assert_array_equal(np.where(once[:, None, :], first, 0), np.where(once[:, None, :], single, 0))


@PROPERTY
@given(rounds())
def test_accumulators_and_dormant_linear_terms_add_exactly(r):
    if r["optimizer"] == OPTIMIZER_SGD:
        return
    union, first, second = _kernel(r)
    base = r["base"][union].astype(np.float64)
    sum_dn, sum_dz = np.zeros_like(base[:, 0]), np.zeros_like(base[:, 0])
    m = np.zeros(base[:, 0].shape, dtype=np.int64)
    dormant = base[:, 0] == 0
    for worker in range(len(r["offsets"]) - 1):
        idx, values = _worker_rows(r, worker)
        table = r["base"][union].copy()
        position = np.searchsorted(union, idx)
        table[position] = values
        changed = np.zeros(m.shape, dtype=bool)
        changed[position] = ref.differs(r["base"][idx], values).any(axis=1)
        m += changed
        sum_dn = np.where(changed, sum_dn + (table[:, 1].astype(np.float64) - base[:, 1]), sum_dn)
        if r["optimizer"] == OPTIMIZER_FTRL:
            sum_dz = np.where(changed, sum_dz + (table[:, 2].astype(np.float64) - base[:, 2]), sum_dz)
        dormant &= ~(changed & (table[:, 0] != 0))
    several = m >= 2
    for out in (first, second) if second is not None else (first,):
        expected_n = (base[:, 1] + sum_dn).astype(np.float32)
        np.testing.assert_array_equal(out[:, 1][several], expected_n[several])
        if r["optimizer"] == OPTIMIZER_FTRL:
            rows = several & dormant
            expected_z = (base[:, 2] + sum_dz).astype(np.float32)
            np.testing.assert_array_equal(out[:, 2][rows], expected_z[rows])
            l2 = r["hparams"][1] + r["hparams"][4] / (2 * r["lr"])
            w = ref.ftrl_weight(out[:, 2].astype(np.float64), out[:, 1].astype(np.float64), r["lr"], r["hparams"][0],
                                l2, r["hparams"][2])
            np.testing.assert_allclose(out[:, 0][rows], w[rows], rtol=1e-5, atol=1e-12)


def _two_worker_round(dn, delta, w0=0.5, n0=1.0, lr=0.5, n_workers=3):
    """K workers that each moved the weight of one FTRL coordinate by ``delta[k]`` with ``dn`` more accumulator."""
    base = np.array([[[w0], [n0], [0.0]]], dtype=np.float32)
    values = np.array([[[w0 + d], [n0 + dn], [1.0]] for d in delta[:n_workers]], dtype=np.float32)
    return dict(base=base, idx=np.zeros(n_workers, dtype=np.int64), offsets=np.arange(n_workers + 1, dtype=np.int64),
                values=values, optimizer=OPTIMIZER_FTRL, hparams=np.zeros(5), lr=lr, mode=k.MERGE_BOTH)


def test_contract_sums_small_steps_and_averages_converged_ones():
    delta = [0.01, 0.02, 0.03]
    # progress -> 0 (a rare feature: tiny accumulator growth): the steps add up
    _, first, second = _kernel(_two_worker_round(dn=1e-9, delta=delta))
    assert first[0, 0, 0] == pytest.approx(0.5 + sum(delta), rel=1e-6)
    # progress large (a frequent feature): the workers' weights are averaged
    _, first, _ = _kernel(_two_worker_round(dn=1e6, delta=delta))
    assert first[0, 0, 0] == pytest.approx(0.5 + np.mean(delta), rel=1e-6)
    # in between, between the two; and the average rule weights by accumulator growth (equal here)
    _, first, second = _kernel(_two_worker_round(dn=1.0, delta=delta))
    assert 0.5 + np.mean(delta) < first[0, 0, 0] < 0.5 + sum(delta)
    assert second[0, 0, 0] == pytest.approx(0.5 + np.mean(delta), rel=1e-6)


def test_step_factor_goes_from_m_to_one():
    rho = np.array([0.0, 1e-12, 1e-3, 0.5, 3.0, 50.0, np.inf])
    factors = [k.step_factor(x, 4) for x in rho]
    assert factors[0] == 4.0 and factors[1] == pytest.approx(4.0) and factors[-1] == 1.0
    assert factors[-2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors, factors[1:]))
    np.testing.assert_allclose(factors, ref.step_factor(rho, 4), rtol=1e-12)


@PROPERTY
@given(st.floats(-5, 5), st.floats(0.01, 100), st.sampled_from([0.0, 0.01, 0.5]), st.sampled_from([0.0, 0.3]),
       st.sampled_from([-0.5, -0.25]))
def test_linear_term_inverts_the_weight(w, n, l1, l2, lr_power):
    z = k.ftrl_linear(w, n, 0.1, l1, l2, lr_power, 0.0)
    assert k.ftrl_weight(z, n, 0.1, l1, l2, lr_power) == pytest.approx(w, rel=1e-9, abs=1e-12)


@PROPERTY
@given(rounds())
def test_changed_slots_matches_numpy_twin(r):
    base = r["base"]
    table = base.copy()
    idx, values = _worker_rows(r, 0)
    table[idx] = values
    table[0, 0, 0] = -0.0 if base[0, 0, 0] == 0 else base[0, 0, 0]  # -0.0 counts as a change
    out = np.empty(len(base), dtype=np.int64)
    count = k.changed_slots(base, table, out)
    np.testing.assert_array_equal(out[:count], ref.changed_slots(base, table))


def test_dormant_coordinates_add_their_gradients_across_the_l1_threshold():
    # Two workers each pushed z to 0.6 l1 with the weight still 0: together they cross l1, as one process would.
    l1, lr = 0.5, 0.1
    base = np.array([[[0.0], [0.1], [0.0]]], dtype=np.float32)
    values = np.array([[[0.0], [0.3], [0.3]], [[0.0], [0.2], [0.3]]], dtype=np.float32)
    r = dict(base=base, idx=np.zeros(2, dtype=np.int64), offsets=np.array([0, 1, 2]), values=values,
             optimizer=OPTIMIZER_FTRL, hparams=np.array([l1, 0.0, -0.5, 0.0, 0.0]), lr=lr, mode=k.MERGE_BOTH)
    _, first, second = _kernel(r)
    n = np.float32(np.float64(np.float32(0.1)) + (np.float64(np.float32(0.3)) - np.float64(np.float32(0.1)))
                   + (np.float64(np.float32(0.2)) - np.float64(np.float32(0.1))))
    for out in (first, second):
        assert out[0, 2, 0] == np.float32(0.6) and out[0, 1, 0] == n
        # w = (sign(z) l1 - z) / (sqrt(n) / lr): (0.5 - 0.6) / (sqrt(0.4) / 0.1)
        assert out[0, 0, 0] == pytest.approx((l1 - 0.6) / (np.sqrt(0.4) / lr), rel=1e-6)

"""``streamlin.kernels.learn`` against the numpy twins in tests/reference/learn.py, TF's FTRL kernel
formula (tfref ``ref_impl.ftrl_update``) and the golden raw-kernel steps in ``ftrl_ops.json``."""

from __future__ import annotations

import functools
import importlib.util
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streamlin.kernels import learn as k
from streamlin.kernels.sparse import interleave_rows
from tests._shared import SHARED, requires_shared
from tests.reference import learn as ref

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TFREF = SHARED / "tfref"


def _f32(lo, hi):
    return st.floats(lo, hi, width=32)


@functools.cache
def _ref_impl():
    spec = importlib.util.spec_from_file_location("tfref_ref_impl", TFREF / "ref_impl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _golden(name):
    path = TFREF / "golden" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text(encoding="utf-8"))


# --- ftrl_update: one coordinate ----------------------------------------------------------------

ftrl_args = st.fixed_dictionaries(dict(
    w=st.floats(-3, 3), n=st.one_of(st.just(0.0), st.floats(0, 10)), z=st.floats(-3, 3),
    g=st.one_of(st.just(0.0), st.floats(-5, 5)), lr=st.floats(1e-3, 2),
    l1=st.one_of(st.just(0.0), st.floats(0, 1)), l2=st.one_of(st.just(0.0), st.floats(0, 1)),
    lr_power=st.one_of(st.sampled_from([-0.5, -0.3, 0.0, -1.0]), st.floats(-1, 0)),
    l2_shrinkage=st.one_of(st.just(0.0), st.floats(0, 0.5))))


def _quadratic_positive(a) -> bool:
    # n_new ** -p / lr + 2 l2 == 0 only for a zero accumulator without L2 (a division by zero).
    return a["n"] + a["g"] ** 2 > 0 or a["l2"] > 0 or a["lr_power"] == 0


@PROPERTY
@given(ftrl_args)
def test_ftrl_update_matches_twin(a):
    assume(_quadratic_positive(a))
    got = k.ftrl_update(a["w"], a["n"], a["z"], a["g"], a["lr"], a["l1"], a["l2"], a["lr_power"], a["l2_shrinkage"])
    want = ref.ftrl_update(**a)
    np.testing.assert_allclose(got, [float(x) for x in want], rtol=1e-12, atol=1e-300)
    assert got[1] == a["n"] + a["g"] ** 2  # the accumulator takes the raw gradient, even with shrinkage


@requires_shared
@PROPERTY
@given(ftrl_args, st.one_of(st.just(0.0), st.floats(0, 2)))
def test_ftrl_update_matches_tfref_ref_impl(a, beta):
    assume(_quadratic_positive(dict(a, l2=a["l2"] + beta)))
    ref_impl = _ref_impl()
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # tiny quadratic -> inf, in both
        want = ref_impl.ftrl_update(np.float64(a["w"]), np.float64(a["n"]), np.float64(a["z"]), np.float64(a["g"]),
                                    a["lr"], a["l1"], a["l2"], a["lr_power"], a["l2_shrinkage"], beta)
    # streamlin's kernel takes beta already folded into l2, as Keras' legacy Ftrl does.
    got = k.ftrl_update(a["w"], a["n"], a["z"], a["g"], a["lr"], a["l1"], a["l2"] + beta / (2 * a["lr"]),
                        a["lr_power"], a["l2_shrinkage"])
    np.testing.assert_allclose(got, [float(x) for x in want], rtol=1e-12, atol=1e-300)


def test_ftrl_update_by_hand():
    # Zero initial accumulator, lr 0.1, g 0.5: n = 0.25, sigma = (0.5 - 0) / 0.1 = 5, z = 0.5,
    # w = (0 - 0.5) / (0.5 / 0.1) = -0.1.
    np.testing.assert_allclose(k.ftrl_update(0.0, 0.0, 0.0, 0.5, 0.1, 0.0, 0.0, -0.5, 0.0), (-0.1, 0.25, 0.5))
    # l1 thresholding: z_new = 0.05 is not above l1 = 0.05 -> w = 0 exactly; z_new = 0.06 is:
    # w = (0.05 - 0.06) / (sqrt(0.1036) / 1) = -0.01 / 0.321870...
    assert k.ftrl_update(0.0, 0.1, 0.0, 0.05, 1.0, 0.05, 0.0, -0.5, 0.0)[0] == 0.0
    np.testing.assert_allclose(k.ftrl_update(0.0, 0.1, 0.0, 0.06, 1.0, 0.05, 0.0, -0.5, 0.0)[0],
                               -0.01 / math.sqrt(0.1036))
    # l2_shrinkage 0.1, w 1, n 1, z 0, g 0.5, lr 1: n_new = 1.25 (raw g), sigma = sqrt(1.25) - 1,
    # z_new = 0.5 + 2 * 0.1 * 1 - sigma * 1 = 0.581966, w = -z_new / sqrt(1.25) = -0.520526.
    w, n, z = k.ftrl_update(1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 0.0, -0.5, 0.1)
    assert n == 1.25
    np.testing.assert_allclose((w, z), (-(0.7 - (math.sqrt(1.25) - 1)) / math.sqrt(1.25), 0.7 - (math.sqrt(1.25) - 1)))
    # lr_power 0: a fixed step, sigma = 0, w = -z / (1/lr + 2 l2) = -(0.3 + 0.2) / (10 + 1).
    np.testing.assert_allclose(k.ftrl_update(0.7, 4.0, 0.3, 0.2, 0.1, 0.0, 0.5, 0.0, 0.0), (-0.5 / 11, 4.04, 0.5))
    # lr_power -0.3: n_new = 1 + 1 = 2, sigma = (2**0.3 - 1) / 0.5, z = 1 - sigma * 0.5,
    # w = -z / (2**0.3 / 0.5).
    sigma = (2**0.3 - 1) / 0.5
    np.testing.assert_allclose(k.ftrl_update(0.5, 1.0, 0.0, 1.0, 0.5, 0.0, 0.0, -0.3, 0.0),
                               (-(1 - sigma * 0.5) / (2**0.3 / 0.5), 2.0, 1 - sigma * 0.5))


# --- train_steps: whole steps -------------------------------------------------------------------


def _indptr(counts):
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


@st.composite
def training_cases(draw, loss_kind=None, optimizer=None, batch_of_one=None):
    loss_kind = draw(st.sampled_from([k.LOSS_SIGMOID, k.LOSS_SOFTMAX])) if loss_kind is None else loss_kind
    units = 1 if loss_kind == k.LOSS_SIGMOID else draw(st.integers(2, 4))
    n_rows = draw(st.integers(1, 9))
    # Mostly small columns (many duplicate slots); sometimes wide ones (scattered slot ids).
    sizes = draw(st.lists(st.one_of(st.integers(1, 5), st.integers(1, 5000)), min_size=1, max_size=3))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n_slots = int(offsets[-1]) + 1
    col_indptr = np.empty((len(sizes), n_rows + 1), dtype=np.int64)
    slots, base = [], 0
    for c, size in enumerate(sizes):
        counts = draw(st.lists(st.integers(0, 3), min_size=n_rows, max_size=n_rows))
        col_indptr[c] = base + _indptr(counts)
        base += sum(counts)
        # Duplicate slots within a row and across rows are allowed.
        slots += draw(st.lists(st.integers(0, size - 1), min_size=sum(counts), max_size=sum(counts)))
        slots[len(slots) - sum(counts):] = [int(offsets[c]) + s for s in slots[len(slots) - sum(counts):]]
    values = np.array(draw(st.lists(_f32(-2, 2), min_size=base, max_size=base)), dtype=np.float32)
    if loss_kind == k.LOSS_SIGMOID:
        label = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1))
    else:
        label = st.integers(0, units - 1).map(float)
    labels = np.array(draw(st.lists(label, min_size=n_rows, max_size=n_rows)), dtype=np.float64)
    example_weights = np.array(draw(st.lists(st.one_of(st.just(1.0), _f32(0, 3)), min_size=n_rows,
                                             max_size=n_rows)), dtype=np.float32)
    one = draw(st.booleans()) if batch_of_one is None else batch_of_one
    if one:
        bounds = np.arange(n_rows + 1, dtype=np.int64)
    else:
        cuts = draw(st.sets(st.integers(1, n_rows - 1), max_size=4)) if n_rows > 1 else set()
        bounds = np.array([0, *sorted(cuts), n_rows], dtype=np.int64)
    n_steps = len(bounds) - 1
    if optimizer is None:
        optimizer = draw(st.sampled_from([k.OPTIMIZER_FTRL, k.OPTIMIZER_ADAGRAD, k.OPTIMIZER_SGD]))
    shape = (n_slots, units)

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))  # state arrays may be large

    def array(lo, hi, zeros=0.0):
        a = rng.uniform(lo, hi, size=shape).astype(np.float32)
        a[rng.random(shape) < zeros] = 0.0
        return a

    empty = np.empty((0, units), dtype=np.float32)
    hparams = np.zeros(5, dtype=np.float64)
    if optimizer == k.OPTIMIZER_FTRL:
        weights, slot_a, slot_b = array(-1, 1, zeros=0.3), array(0.0625, 2), array(-1, 1)
        l1, l2 = draw(st.one_of(st.just(0.0), st.floats(0, 0.5))), draw(st.one_of(st.just(0.0), st.floats(0, 0.5)))
        hparams[:] = [l1, l2, draw(st.sampled_from([-0.5, -0.3, 0.0])),
                      draw(st.one_of(st.just(0.0), st.floats(0, 0.3))), draw(st.one_of(st.just(0.0), st.floats(0, 1)))]
        rate = st.floats(0.01, 1)
    elif optimizer == k.OPTIMIZER_ADAGRAD:
        weights, slot_a, slot_b = array(-1, 1), array(0, 2, zeros=0.2), empty
        hparams[0] = draw(st.sampled_from([1e-7, 0.1]))
        rate = st.floats(0.01, 1)
    else:
        weights, slot_a, slot_b = array(-1, 1), empty, empty
        rate = st.floats(0, 1)
    learning_rates = np.array(draw(st.lists(rate, min_size=n_steps, max_size=n_steps)), dtype=np.float64)
    return dict(col_indptr=col_indptr, slots=np.array(slots, dtype=np.int64), values=values, labels=labels,
                example_weights=example_weights, step_bounds=bounds, bias_slot=n_slots - 1, weights=weights,
                slot_a=slot_a, slot_b=slot_b, optimizer=optimizer, hparams=hparams,
                learning_rates=learning_rates, loss_kind=loss_kind, reduce_sum=draw(st.booleans()))


def to_table(case):
    """The kernel's interleaved table (n_slots, 1 + n_optimizer_slots, units): weights, then slots."""
    parts = [case["weights"]] + [a for a in (case["slot_a"], case["slot_b"]) if len(a)]
    return np.ascontiguousarray(np.stack(parts, axis=1), dtype=np.float32)


def from_table(table):
    empty = np.empty((0, table.shape[2]), dtype=np.float32)
    parts = [table[:, i, :].copy() for i in range(table.shape[1])]
    return tuple(parts + [empty] * (3 - len(parts)))


def run_kernel(case, step_begin=0, step_end=None, one_call_per_step=False, spare_buckets=1):
    """Run train_steps on a copy of the case's state; returns (weights, slot_a, slot_b, losses).

    Buffers as the estimator sizes them: ``touched``/``grad`` of step_capacity rows and a hash map
    of the next power of two >= 2 * capacity buckets (times ``spare_buckets``); each group's
    one-entry-per-row flag as Layout sets it.
    """
    col_indptr = case["col_indptr"]
    one_per_row = (np.diff(col_indptr, axis=1) == 1).all(axis=1)
    bounds = case["step_bounds"]
    n_steps = len(bounds) - 1
    step_end = n_steps if step_end is None else step_end
    table = to_table(case)
    units = table.shape[2]
    capacity = int(k.step_capacity(case["col_indptr"], bounds))
    buckets = (1 << int(2 * capacity - 1).bit_length()) * spare_buckets
    hash_slots = np.full(buckets, -1, dtype=np.int64)
    hash_index = np.empty(buckets, dtype=np.int64)
    touched = np.empty(capacity, dtype=np.int64)
    touched_bucket = np.empty(capacity, dtype=np.int64)
    grad = np.empty((capacity, units), dtype=np.float64)
    logits = np.empty((max(int(np.diff(bounds).max()), 1), units), dtype=np.float64)
    dz = np.empty(units, dtype=np.float64)
    losses = np.full(n_steps, np.nan)
    ranges = [(s, s + 1) for s in range(step_begin, step_end)] if one_call_per_step else [(step_begin, step_end)]
    for begin, end in ranges:
        k.train_steps(col_indptr, case["slots"], case["values"], one_per_row, case["labels"], case["example_weights"],
                      bounds, begin, end, case["bias_slot"], table, case["optimizer"], case["hparams"],
                      case["learning_rates"], case["loss_kind"], case["reduce_sum"], hash_slots, hash_index,
                      touched, touched_bucket, grad, logits, dz, losses)
    assert (hash_slots == -1).all()  # the hash map is left empty for the next call
    return (*from_table(table), losses[step_begin:step_end])


def run_twin(case, step_begin=0, step_end=None):
    step_end = len(case["step_bounds"]) - 1 if step_end is None else step_end
    return ref.train_steps(case["col_indptr"], case["slots"], case["values"], case["labels"],
                           case["example_weights"], case["step_bounds"], step_begin, step_end, case["bias_slot"],
                           case["weights"], case["slot_a"], case["slot_b"], case["optimizer"], case["hparams"],
                           case["learning_rates"], case["loss_kind"], case["reduce_sum"])


def assert_state_close(got, want):
    for g, w, name in zip(got[:3], want[:3], ("weights", "slot_a", "slot_b")):
        assert g.shape == w.shape and g.dtype == np.float32, name
        # float32 state: an entry near zero (FTRL's z after cancellation) may carry the rounding
        # of the largest values it was computed from, so the absolute slack scales with the array.
        scale = float(np.abs(w).max(initial=0.0))
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6 * max(1.0, scale), err_msg=name)
    # The first step's loss comes from the same float32 weights (up to float32 products in the
    # logits); later ones from weights that may differ by float32 roundings.
    np.testing.assert_allclose(got[3][:1], want[3][:1], rtol=1e-6, atol=1e-7, err_msg="first loss")
    np.testing.assert_allclose(got[3], want[3], rtol=2e-5, atol=2e-6, err_msg="losses")


@PROPERTY
@given(training_cases(loss_kind=k.LOSS_SIGMOID), st.sampled_from([1, 1, 4]))
def test_train_steps_sigmoid_matches_twin(case, spare_buckets):
    assert_state_close(run_kernel(case, spare_buckets=spare_buckets), run_twin(case))


@PROPERTY
@given(training_cases(loss_kind=k.LOSS_SOFTMAX), st.sampled_from([1, 1, 4]))
def test_train_steps_softmax_matches_twin(case, spare_buckets):
    assert_state_close(run_kernel(case, spare_buckets=spare_buckets), run_twin(case))


@settings(PROPERTY, max_examples=60)
@given(training_cases(batch_of_one=True))
def test_train_steps_batch_of_one_matches_twin(case):
    assert_state_close(run_kernel(case), run_twin(case))


@settings(PROPERTY, max_examples=100)
@given(training_cases(), st.data())
def test_many_steps_per_call_equal_one_step_per_call(case, data):
    n_steps = len(case["step_bounds"]) - 1
    together = run_kernel(case)
    alone = run_kernel(case, one_call_per_step=True)
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)
    # A sub-range of steps, too: steps [s, e) only read step_bounds[s:e + 1].
    s = data.draw(st.integers(0, n_steps - 1))
    e = data.draw(st.integers(s + 1, n_steps))
    assert_state_close(run_kernel(case, s, e), run_twin(case, s, e))


@settings(PROPERTY, max_examples=100)
@given(training_cases())
def test_row_major_and_column_major_entries_train_identically(case):
    """The estimator hands the kernel a group per column, or (small steps) one row-major group;
    columns own disjoint slots, so both give the same bits."""
    n_rows = case["col_indptr"].shape[1] - 1
    indptr = np.empty(n_rows + 1, dtype=np.int64)
    slots = np.empty_like(case["slots"])
    values = np.empty_like(case["values"])
    one_per_row = (np.diff(case["col_indptr"], axis=1) == 1).all(axis=1)
    interleave_rows(case["col_indptr"], case["slots"], case["values"], one_per_row, indptr, slots, values)
    row_major = dict(case, col_indptr=indptr[None, :], slots=slots, values=values)
    for a, b in zip(run_kernel(case), run_kernel(row_major)):
        np.testing.assert_array_equal(a, b)


def _one_row_case(slots, values, *, n_slots, label=0.0, example_weight=2.0, optimizer=k.OPTIMIZER_FTRL,
                  hparams=(0.0, 0.0, -0.5, 0.0, 0.0), lr=0.1, init_acc=0.1, weights=None, units=1,
                  reduce_sum=True):
    """One step of one row whose entries are (slots, values); bias slot n_slots - 1."""
    nnz = len(slots)
    w = np.zeros((n_slots, units), dtype=np.float32) if weights is None else \
        np.asarray(weights, np.float32).reshape(n_slots, units)
    return dict(col_indptr=np.array([[0, nnz]], dtype=np.int64), slots=np.asarray(slots, dtype=np.int64),
                values=np.asarray(values, dtype=np.float32), labels=np.array([label]),
                example_weights=np.array([example_weight], dtype=np.float32),
                step_bounds=np.array([0, 1], dtype=np.int64), bias_slot=n_slots - 1, weights=w,
                slot_a=np.full((n_slots, units), init_acc, dtype=np.float32),
                slot_b=np.zeros((n_slots, units), dtype=np.float32), optimizer=optimizer,
                hparams=np.array(hparams, dtype=np.float64), learning_rates=np.array([lr]),
                loss_kind=k.LOSS_SIGMOID, reduce_sum=reduce_sum)


def test_duplicate_slots_within_a_step_are_summed_before_the_update():
    # Zero weights give logit 0, so with label 0, weight 2 and reduction 'sum' the logit gradient
    # is (sigmoid(0) - 0) * 2 = 1 and each entry's gradient is its value. Slot 1 appears twice in
    # the row (0.5 and 0.25) and once more in a second row of the same step (0.125).
    case = _one_row_case([1, 1, 3], [0.5, 0.25, -1.0], n_slots=5)
    case.update(col_indptr=np.array([[0, 3, 4]], dtype=np.int64), slots=np.array([1, 1, 3, 1], dtype=np.int64),
                values=np.array([0.5, 0.25, -1.0, 0.125], dtype=np.float32), labels=np.array([0.0, 0.0]),
                example_weights=np.array([2.0, 2.0], dtype=np.float32), step_bounds=np.array([0, 2], dtype=np.int64))
    weights, accum, linear, _ = run_kernel(case)
    init = float(np.float32(0.1))
    summed = k.ftrl_update(0.0, init, 0.0, 0.875, 0.1, 0.0, 0.0, -0.5, 0.0)
    np.testing.assert_allclose((weights[1, 0], accum[1, 0], linear[1, 0]), summed, rtol=1e-6)
    sequential = (0.0, init, 0.0)
    for g in (0.5, 0.25, 0.125):
        sequential = k.ftrl_update(*sequential, g, 0.1, 0.0, 0.0, -0.5, 0.0)
    assert abs(weights[1, 0] - sequential[0]) > 1e-3  # not applied one entry at a time
    # Slots no row touched keep their state; the bias gets sum of the rows' gradients (2).
    assert weights[0, 0] == 0 and accum[0, 0] == np.float32(0.1) and weights[2, 0] == 0
    np.testing.assert_allclose(accum[4, 0], 0.1 + 2.0**2, rtol=1e-6)


def test_a_zero_valued_entry_still_updates_its_slot():
    # TF's empty-row fill gives row 0 of an empty column a zero gradient, and the sparse FTRL
    # update still runs on it: under l2_shrinkage, z moves by 2 * s * w and w is recomputed.
    # Slot 0 gets (value 0.0); slot 1 is in no row and must not change.
    hp = (0.01, 0.0, -0.5, 0.2, 0.0)
    weights = np.array([[0.5], [0.5], [0.0]], dtype=np.float32)
    case = _one_row_case([0], [0.0], n_slots=3, hparams=hp, lr=0.1, weights=weights)
    case["slot_b"] = np.array([[-0.3], [-0.3], [0.0]], dtype=np.float32)
    got_w, got_n, got_z, _ = run_kernel(case)
    want = k.ftrl_update(0.5, float(np.float32(0.1)), float(np.float32(-0.3)), 0.0, 0.1, 0.01, 0.0, -0.5, 0.2)
    np.testing.assert_allclose((got_w[0, 0], got_n[0, 0], got_z[0, 0]), want, rtol=1e-6)
    assert got_z[0, 0] != np.float32(-0.3)  # z moved by 2 * 0.2 * 0.5
    assert (got_w[1, 0], got_n[1, 0], got_z[1, 0]) == (np.float32(0.5), np.float32(0.1), np.float32(-0.3))


def test_step_loss_uses_pre_update_weights():
    # Step 0 starts from zero weights: each example's loss is ln 2 whatever its label. Weighted
    # mean over the batch of 2 ('sum_over_batch_size'): (1.5 + 0.5) * ln 2 / 2 = ln 2.
    case = _one_row_case([0, 1], [1.0, 1.0], n_slots=3, reduce_sum=False, lr=0.5)
    case.update(col_indptr=np.array([[0, 1, 2, 3, 4]], dtype=np.int64), slots=np.array([0, 1, 0, 1], dtype=np.int64),
                values=np.ones(4, dtype=np.float32), labels=np.array([1.0, 0.0, 1.0, 0.0]),
                example_weights=np.array([1.5, 0.5, 1.5, 0.5], dtype=np.float32),
                step_bounds=np.array([0, 2, 4], dtype=np.int64), learning_rates=np.array([0.5, 0.5]))
    weights, _, _, losses = run_kernel(case)
    np.testing.assert_allclose(losses[0], math.log(2), rtol=1e-12)
    # Step 1 sees the same rows with the weights step 0 wrote, so its loss differs from ln 2
    # and equals the loss of those weights.
    after_one = run_kernel(case, 0, 1)[0]
    logits = np.array([after_one[2, 0] + after_one[0, 0], after_one[2, 0] + after_one[1, 0]], dtype=np.float64)
    per, _ = ref.sigmoid_loss(logits[:, None], [1.0, 0.0])
    np.testing.assert_allclose(losses[1], (1.5 * per[0] + 0.5 * per[1]) / 2, rtol=1e-6)
    assert losses[1] < losses[0] and not np.array_equal(weights, case["weights"])


def test_reductions_sum_and_sum_over_batch_size():
    # Three rows in one step, SGD from zero weights: 'sum' gives B = 3 times the loss and the
    # gradient of 'sum_over_batch_size' (divided by the number of rows, not by the sum of weights).
    base = _one_row_case([0], [1.0], n_slots=3, optimizer=k.OPTIMIZER_SGD, hparams=(0, 0, 0, 0, 0), lr=0.3)
    base.update(col_indptr=np.array([[0, 1, 2, 3]], dtype=np.int64), slots=np.array([0, 1, 0], dtype=np.int64),
                values=np.array([1.0, -2.0, 0.5], dtype=np.float32), labels=np.array([1.0, 0.0, 0.25]),
                example_weights=np.array([0.5, 2.0, 1.0], dtype=np.float32),
                step_bounds=np.array([0, 3], dtype=np.int64),
                slot_a=np.empty((0, 1), np.float32), slot_b=np.empty((0, 1), np.float32))
    w_sum, _, _, loss_sum = run_kernel(dict(base, reduce_sum=True))
    w_mean, _, _, loss_mean = run_kernel(dict(base, reduce_sum=False))
    np.testing.assert_allclose(loss_sum, 3 * loss_mean, rtol=1e-12)
    np.testing.assert_allclose(loss_sum, 3.5 * math.log(2), rtol=1e-12)  # sum of weights * ln 2
    np.testing.assert_allclose(w_sum, 3 * w_mean, rtol=1e-6)
    # By hand: dz_i = w_i * (0.5 - y_i) = [-0.25, 1.0, 0.25]; g[0] = -0.25 * 1 + 0.25 * 0.5 = -0.125,
    # g[1] = 1.0 * -2 = -2, g[bias] = 1.0; w = -0.3 * g.
    np.testing.assert_allclose(w_sum[:, 0], [0.0375, 0.6, -0.3], rtol=1e-6)


def test_example_weights_zero_row_and_doubled_row():
    # With SGD and 'sum', a weight-0 row contributes nothing, and weight 2 equals the row twice.
    def case(rows, weights):
        slots = np.array([s for r in rows for s in r[0]], dtype=np.int64)
        values = np.array([v for r in rows for v in r[1]], dtype=np.float32)
        return dict(col_indptr=_indptr([len(r[0]) for r in rows])[None, :], slots=slots, values=values,
                    labels=np.array([r[2] for r in rows]), example_weights=np.array(weights, dtype=np.float32),
                    step_bounds=np.array([0, len(rows)], dtype=np.int64), bias_slot=4,
                    weights=np.array([[0.1], [-0.2], [0.3], [0.0], [0.05]], dtype=np.float32),
                    slot_a=np.empty((0, 1), np.float32), slot_b=np.empty((0, 1), np.float32),
                    optimizer=k.OPTIMIZER_SGD, hparams=np.zeros(5), learning_rates=np.array([0.7]),
                    loss_kind=k.LOSS_SIGMOID, reduce_sum=True)

    a = ([0, 2], [1.0, 2.0], 1.0)
    b = ([1, 2], [-1.0, 0.5], 0.0)
    c = ([3], [3.0], 1.0)
    ref_state = run_kernel(case([a, b], [1.0, 2.0]))
    with_zero = run_kernel(case([a, c, b], [1.0, 0.0, 2.0]))
    doubled = run_kernel(case([a, b, b], [1.0, 1.0, 1.0]))
    np.testing.assert_allclose(with_zero[0], ref_state[0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(doubled[0], ref_state[0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose([with_zero[3][0], doubled[3][0]], [ref_state[3][0]] * 2, rtol=1e-12)


# --- step_capacity -----------------------------------------------------------------------------


@PROPERTY
@given(training_cases())
def test_step_capacity_matches_twin(case):
    got = k.step_capacity(case["col_indptr"], case["step_bounds"])
    assert got == ref.step_capacity(case["col_indptr"], case["step_bounds"])


def test_step_capacity_by_hand():
    # Column 0 rows have 2, 0, 1 entries; column 1 rows 1, 1, 3. Steps [0, 2) and [2, 3):
    # (2 + 0 + 1 + 1) = 4 and (1 + 3) = 4 entries, plus the bias: 5.
    col_indptr = np.array([[0, 2, 2, 3], [3, 4, 5, 8]], dtype=np.int64)
    assert k.step_capacity(col_indptr, np.array([0, 2, 3], dtype=np.int64)) == 5
    assert k.step_capacity(col_indptr, np.array([0, 3], dtype=np.int64)) == 9
    assert k.step_capacity(col_indptr, np.array([0, 1, 2, 3], dtype=np.int64)) == 5


# --- golden: ftrl_ops.json (TF 2.15 raw FTRL kernels) --------------------------------------------

GOLDEN_ATOL, GOLDEN_RTOL = 1e-6, 1e-5  # TF computes in float32; ref_impl agrees to 4e-7


def _golden_cases():
    return _golden("ftrl_ops.json")["cases"]


def test_golden_ftrl_ops_via_ftrl_update():
    cases = _golden_cases()
    assert len(cases) == 14 and {c["kind"] for c in cases} == {"dense", "sparse"}
    assert {c["config"]["lr_power"] for c in cases} == {-0.5, -0.3, 0.0}
    for case in cases:
        cfg = case["config"]
        var = np.array(case["var0"], dtype=np.float32)
        accum = np.full_like(var, cfg["init_acc"])
        linear = np.zeros_like(var)
        index = list(range(len(var))) if case["kind"] == "dense" else case["sparse_indices"]
        for s, step in enumerate(case["steps"]):
            for i, g in zip(index, step["grad"]):
                w, n, z = k.ftrl_update(float(var[i]), float(accum[i]), float(linear[i]), float(np.float32(g)),
                                        cfg["lr"], cfg["l1"], cfg["l2"], cfg["lr_power"], cfg["l2_shrinkage"])
                var[i], accum[i], linear[i] = w, n, z
            where = f"{cfg} {case['kind']} step {s}"
            np.testing.assert_allclose(var, step["var"], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL, err_msg=where)
            np.testing.assert_allclose(accum, step["accum"], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL, err_msg=where)
            np.testing.assert_allclose(linear, step["linear"], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL, err_msg=where)


def _train_step_with_gradients(state, index, grads, cfg, beta=0.0):
    """One train_steps step whose slot gradients are ``grads`` (up to float32 rounding).

    One row holds entries (index[i], grads[i]); label 0 and reduction 'sum' make d loss / d logit
    = sigmoid(logit) * example_weight, and the example weight 1 / sigmoid(logit) makes it 1. The
    bias (last slot) starts each step at zero with a fresh accumulator.
    """
    var, accum, linear = state
    m = len(var)
    weights = np.append(var, 0).astype(np.float32)[:, None]
    logit = sum(float(np.float32(g)) * float(weights[i, 0]) for i, g in zip(index, grads))
    sigmoid = 1.0 / (1.0 + math.exp(-logit))
    case = _one_row_case(index, grads, n_slots=m + 1, example_weight=np.float32(1.0 / sigmoid),
                         hparams=(cfg["l1"], cfg["l2"], cfg["lr_power"], cfg.get("l2_shrinkage", 0.0), beta),
                         lr=cfg["lr"], weights=weights)
    case["slot_a"] = np.append(accum, cfg["init_acc"]).astype(np.float32)[:, None]
    case["slot_b"] = np.append(linear, 0).astype(np.float32)[:, None]
    w, n, z, _ = run_kernel(case)
    return w[:m, 0], n[:m, 0], z[:m, 0]


def test_golden_ftrl_ops_via_train_steps():
    for case in _golden_cases():
        cfg = case["config"]
        state = (np.array(case["var0"], dtype=np.float32), np.full(6, cfg["init_acc"], dtype=np.float32),
                 np.zeros(6, dtype=np.float32))
        index = list(range(6)) if case["kind"] == "dense" else case["sparse_indices"]
        for s, step in enumerate(case["steps"]):
            state = _train_step_with_gradients(state, index, step["grad"], cfg)
            where = f"{cfg} {case['kind']} step {s}"
            for got, name in zip(state, ("var", "accum", "linear")):
                np.testing.assert_allclose(got, step[name], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL,
                                           err_msg=f"{where} {name}")


def test_golden_keras_beta_via_train_steps():
    golden = _golden("ftrl_ops.json")["keras_legacy_ftrl_beta"]
    cfg = golden["config"]
    assert cfg["beta"] > 0
    state = (np.array(golden["var0"], dtype=np.float32), np.full(6, cfg["init_acc"], dtype=np.float32),
             np.zeros(6, dtype=np.float32))
    for grads, step in zip(golden["grads"], golden["steps"]):
        state = _train_step_with_gradients(state, list(range(6)), grads, dict(cfg, l2_shrinkage=0.0), beta=cfg["beta"])
        np.testing.assert_allclose(state[0], step["var"], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL)


def test_golden_keras_duplicate_indices_are_summed():
    golden = _golden("ftrl_ops.json")["duplicate_indices"]
    inp = golden["input"]
    # Zero weights: logit 0, label 0, example weight 2, 'sum' -> d loss / d logit = 1 exactly.
    case = _one_row_case(inp["indices"], inp["grad"], n_slots=5, lr=inp["lr"], init_acc=inp["init_acc"])
    weights, accum, linear, _ = run_kernel(case)
    keras = golden["keras_legacy_ftrl_indexed_slices"]
    np.testing.assert_allclose(weights[:4, 0], keras["var"], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL)
    np.testing.assert_allclose(accum[:4, 0], keras["accum"], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL)
    np.testing.assert_allclose(linear[:4, 0], keras["linear"], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL)
    raw = golden["raw_op_duplicates"]
    assert abs(weights[1, 0] - raw["var"][1]) > 1e-2  # not the raw op's sequential application

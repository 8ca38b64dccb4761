"""``streamlin.kernels.cross`` against the twins in tests/reference/cross.py and TF's golden crosses."""

from __future__ import annotations

import json

import farmhash
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlin.kernels import cross as k
from tests._shared import SHARED
from tests.reference import cross as ref
from tests.reference.hashing import DEFAULT_HASH_KEY, fingerprint_cat64

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
U64 = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1]))


def _run(indptrs, values, hash_key, num_buckets):
    counts = np.full(indptrs.shape[1] - 1, -1, dtype=np.int64)
    k.cross_counts(indptrs, counts)
    out_indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_indptr[1:])
    out_ids = np.full(out_indptr[-1], -1, dtype=np.int64)
    k.cross_hashed(indptrs, values, np.uint64(hash_key), np.int64(num_buckets), out_indptr, out_ids)
    return counts, out_indptr, out_ids


def _pack(per_input_rows, order=None):
    """inputs[j][row] -> (indptrs int64 (n_inputs, n_rows + 1) absolute, values uint64).

    ``order`` lays the inputs' value blocks out in another order in the values array (the kernel
    reads absolute offsets, so the layout must not matter)."""
    n_inputs = len(per_input_rows)
    n_rows = len(per_input_rows[0])
    order = list(range(n_inputs)) if order is None else order
    indptrs = np.zeros((n_inputs, n_rows + 1), dtype=np.int64)
    blocks, base = [], 0
    for j in order:
        rows = per_input_rows[j]
        counts = [len(r) for r in rows]
        indptrs[j, 1:] = np.cumsum(counts)
        indptrs[j] += base
        flat = [v for r in rows for v in r]
        blocks.extend(flat)
        base += len(flat)
    return indptrs, np.array(blocks, dtype=np.uint64)


@st.composite
def cross_inputs(draw):
    n_inputs = draw(st.integers(1, 4))
    n_rows = draw(st.integers(0, 6))
    rows = [[draw(st.lists(U64, max_size=3)) for _ in range(n_rows)] for _ in range(n_inputs)]
    order = draw(st.permutations(range(n_inputs)))
    hash_key = draw(st.one_of(U64, st.just(DEFAULT_HASH_KEY)))
    num_buckets = draw(st.one_of(st.integers(1, 2**20), st.integers(1, 2**63 - 1), st.just(2**63 - 1)))
    return rows, order, hash_key, num_buckets


@PROPERTY
@given(cross_inputs())
def test_cross_matches_twin(case):
    rows, order, hash_key, num_buckets = case
    indptrs, values = _pack(rows, order)
    counts, out_indptr, out_ids = _run(indptrs, values, hash_key, num_buckets)
    np.testing.assert_array_equal(counts, ref.cross_counts(indptrs))
    want_indptr, want_ids = ref.cross_hashed(indptrs, values, hash_key, num_buckets)
    np.testing.assert_array_equal(out_indptr, want_indptr)
    np.testing.assert_array_equal(out_ids, want_ids)
    assert ((out_ids >= 0) & (out_ids < num_buckets)).all()


def test_cartesian_product_order_last_input_fastest():
    a, b, c = [11, 12], [21, 22, 23], [31]
    indptrs, values = _pack([[a], [b], [c]])
    _, out_indptr, out_ids = _run(indptrs, values, DEFAULT_HASH_KEY, 2**63 - 1)

    def chain(*vs):
        h = DEFAULT_HASH_KEY
        for v in vs:
            h = fingerprint_cat64(h, v)
        return h % (2**63 - 1)

    want = [chain(x, y, z) for x in a for y in b for z in c]  # (11,21,31), (11,22,31), ...
    assert out_ids.tolist() == want
    assert out_indptr.tolist() == [0, 6]
    # Changing the order of the inputs changes the ids (FingerprintCat64 is not commutative).
    indptrs, values = _pack([[b], [a], [c]])
    assert set(_run(indptrs, values, DEFAULT_HASH_KEY, 2**63 - 1)[2].tolist()).isdisjoint(want)


def test_a_row_with_an_empty_input_has_no_cross():
    # Row 0: 2 x 0 values; row 1: 1 x 2; row 2: 0 x 0; row 3: 3 x 1.
    indptrs, values = _pack([[[1, 2], [3], [], [4, 5, 6]], [[], [7, 8], [], [9]]])
    counts, out_indptr, out_ids = _run(indptrs, values, 5, 1000)
    assert counts.tolist() == [0, 2, 0, 3]
    assert out_indptr.tolist() == [0, 0, 2, 2, 5]
    assert len(out_ids) == 5


def test_hash_key_is_used_as_given():
    indptrs, values = _pack([[[1], [2]], [[3], [4]]])
    by_key = {key: _run(indptrs, values, key, 2**40)[2].tolist() for key in (0, 1, 12345, DEFAULT_HASH_KEY)}
    assert len({tuple(v) for v in by_key.values()}) == 4  # the kernel does not map 0 to the default
    assert by_key[12345] == [fingerprint_cat64(fingerprint_cat64(12345, 1), 3) % 2**40,
                             fingerprint_cat64(fingerprint_cat64(12345, 2), 4) % 2**40]


def test_no_rows():
    indptrs = np.zeros((2, 1), dtype=np.int64)
    counts, out_indptr, out_ids = _run(indptrs, np.empty(0, dtype=np.uint64), DEFAULT_HASH_KEY, 10)
    assert len(counts) == 0 and out_indptr.tolist() == [0] and len(out_ids) == 0


def test_golden_multivalent_sparse_at_kernel_level():
    path = SHARED / "tfref" / "golden" / "crossed.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    case = next(c for c in json.loads(path.read_text(encoding="utf-8"))["cases"]
                if c["name"] == "multivalent_sparse")
    per_input = []
    for key in ("sa", "sb"):
        f = case["features"][key]
        rows = [[] for _ in range(f["dense_shape"][0])]
        for (r, _), v in zip(f["indices"], f["values"]):
            rows[r].append(farmhash.fingerprint64(v.encode()))
        per_input.append(rows)
    indptrs, values = _pack(per_input)
    _, out_indptr, out_ids = _run(indptrs, values, DEFAULT_HASH_KEY, case["column"]["hash_bucket_size"])
    got = [out_ids[out_indptr[r]:out_indptr[r + 1]].tolist() for r in range(len(out_indptr) - 1)]
    assert got == case["ids_per_row"]

"""FarmHash Fingerprint64 and FingerprintCat64 kernels against TF 2.15's golden outputs, pyfarmhash
and the plain-Python twins in tests/reference/hashing.py."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamlin.hashing import arrow_string_buffers
from streamlin.kernels import hashing as k
from tests._shared import SHARED
from tests.reference import hashing as ref

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _golden(name: str) -> dict:
    path = SHARED / "tfref" / "golden" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text(encoding="utf-8"))


def _readonly(a: np.ndarray) -> np.ndarray:
    # The public layer passes read-only arrays; do the same so each kernel compiles once.
    a = a.view()
    a.flags.writeable = False
    return a


def _buffers(values: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    data = np.frombuffer(b"".join(values), dtype=np.uint8)
    return _readonly(data), _readonly(offsets)


def _fp_strings(values: list[bytes]) -> np.ndarray:
    data, offsets = _buffers(values)
    out = np.empty(len(values), dtype=np.uint64)
    k.fingerprint64_strings(data, offsets, out)
    return out


def _fp_ints(values) -> np.ndarray:
    values = _readonly(np.asarray(values, dtype=np.int64))
    out = np.empty(values.shape[0], dtype=np.uint64)
    k.fingerprint64_int64(values, out)
    return out


# --- golden: hash_buckets.json -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hash_golden() -> dict:
    return _golden("hash_buckets.json")


def test_golden_fingerprint64_every_string(hash_golden):
    entries = hash_golden["strings"]
    raw = [bytes.fromhex(e["utf8_hex"]) for e in entries]
    expected = np.array([int(e["fingerprint64"]["dec"]) for e in entries], dtype=np.uint64)
    assert {len(b) for b in raw} >= {0, 1, 4, 8, 16, 17, 32, 33, 64, 65, 128, 65537}
    np.testing.assert_array_equal(_fp_strings(raw), expected)
    # The same bytes at an unaligned start inside a larger buffer.
    data, offsets = _buffers([b"\xff\x00\x01"] + raw + [b"tail"])
    for i, e in enumerate(entries):
        got = k.fingerprint64_at(data, offsets[i + 1], offsets[i + 2] - offsets[i + 1])
        assert int(got) == int(e["fingerprint64"]["dec"]), e["text"][:40]


def test_golden_to_hash_bucket_fast_every_size(hash_golden):
    entries = hash_golden["strings"]
    data, offsets = _buffers([bytes.fromhex(e["utf8_hex"]) for e in entries])
    for n in hash_golden["bucket_sizes"]:
        out = np.empty(len(entries), dtype=np.int64)
        k.hash_buckets_strings(data, offsets, np.int64(n), out)
        expected = [e["to_hash_bucket_fast"][str(n)] for e in entries]
        np.testing.assert_array_equal(out, expected, err_msg=f"num_buckets={n}")


def test_golden_integer_hash_bucket_column(hash_golden):
    cases = hash_golden["integer_hash_bucket_column"]
    for size in sorted({c["hash_bucket_size"] for c in cases}):
        group = [c for c in cases if c["hash_bucket_size"] == size]
        values = _readonly(np.array([c["value"] for c in group], dtype=np.int64))
        out = np.empty(len(group), dtype=np.int64)
        k.hash_buckets_int64(values, np.int64(size), out)
        texts = [c["as_string"].encode("ascii") for c in group]
        # The decimal text is what TF hashed: same fingerprints as the strings themselves.
        np.testing.assert_array_equal(_fp_ints(values), _fp_strings(texts))
        for case, got in zip(group, out):
            # -1 is dropped by the feature column (TF's ignore value), not by hashing.
            if case["ids"]:
                assert case["ids"] == [got], case


# --- golden: crossed.json (FingerprintCat64 chains) ----------------------------------------------

# Categorical ids feeding some crosses, read off the golden notes: bucket ids of
# bucketized(x, [0, 5, 10]) for x = [0.5, 3, 10, -1, 7.5]; vocabulary ['p', 'q', 'r']
# ('p' -> 0: vocab 'p' x 'x' = 43 = bucket 0 x 'x'; 'r' -> 2: vocab 'r' x '日本' = 683 =
# bucket 2 x '日本'), OOV -> -1, '' dropped (that row has no cross).
_BUCKETIZED_IDS = [[1], [1], [3], [0], [2]]
_VOCAB = {"p": 0, "q": 1, "r": 2}


def _dense_rows(feature: dict) -> list[list]:
    return [list(row) for row in feature["values"]]


def _sparse_rows(feature: dict) -> list[list]:
    rows: list[list] = [[] for _ in range(feature["dense_shape"][0])]
    for (r, _), v in zip(feature["indices"], feature["values"]):
        rows[r].append(v)
    return rows


def _vocab_rows(feature: dict) -> list[list]:
    return [[_VOCAB.get(v, -1) for v in row if v != ""] for row in _dense_rows(feature)]


def _op_inputs(case: dict) -> list[list[list]]:
    """Per-column (op order) per-row value lists; str values are fingerprinted, ints taken raw."""
    f = case["features"]
    name = case["name"]
    if name in ("three_way", "nested_cross"):
        return [_dense_rows(f[key]) for key in "abc"]
    if name == "multivalent_sparse":
        return [_sparse_rows(f["sa"]), _sparse_rows(f["sb"])]
    if name == "bucketized_x_str":
        return [_BUCKETIZED_IDS, _dense_rows(f["a"])]
    if name in ("str_x_vocab_list", "vocab_list_x_str", "vocab_list_with_oov_x_str"):
        return [_vocab_rows(f["v"]), _dense_rows(f["a"])]
    if name == "identity_x_str":
        return [_dense_rows(f["k"]), _dense_rows(f["b"])]
    return [_dense_rows(f[key]) for key in case["column"]["keys"]]


def _value64(v) -> int:
    if isinstance(v, str):
        return int(_fp_strings([v.encode("utf-8")])[0])
    return int(v) & ref.MASK64  # int64 ids enter as two's-complement uint64


def _kernel_cross(columns: list[list[list]], num_buckets: int, hash_key) -> list[list[int]]:
    n_rows = len(columns[0])
    ids = []
    for row in range(n_rows):
        row_ids = []
        for combo in itertools.product(*(col[row] for col in columns)):  # last column fastest
            h = np.uint64((hash_key or ref.DEFAULT_HASH_KEY) & ref.MASK64)
            for v in combo:
                h = k.fingerprint_cat64(np.uint64(h), np.uint64(_value64(v)))
            row_ids.append(int(h) % num_buckets)
        ids.append(row_ids)
    return ids


@pytest.fixture(scope="module")
def crossed_golden() -> dict:
    return _golden("crossed.json")


def test_golden_crossed_ids_every_case(crossed_golden):
    cases = crossed_golden["cases"]
    assert len(cases) == 18
    for case in cases:
        columns = _op_inputs(case)
        size = case["column"]["hash_bucket_size"]
        hash_key = case["column"].get("hash_key")
        assert _kernel_cross(columns, size, hash_key) == case["ids_per_row"], case["name"]


def test_golden_cross_of_hash_bucket_ids(crossed_golden):
    # tf.sparse.cross_hashed([hash_bucket_ids(a, 10) (sparse, '' dropped), b (dense)], 1000).
    section = crossed_golden["hash_bucket_column_in_cross"]
    manual = section["manual_sparse_cross_hashed_on_hash_bucket_ids"]
    texts = [s.encode("utf-8") for s in manual["a"]]
    data, offsets = _buffers(texts)
    bucket_ids = np.empty(len(texts), dtype=np.int64)
    k.hash_buckets_strings(data, offsets, np.int64(manual["a_hash_bucket_size"]), bucket_ids)
    a_rows = [[int(i)] if t else [] for i, t in zip(bucket_ids, texts)]
    b_rows = [[s] for s in manual["b"]]
    assert _kernel_cross([a_rows, b_rows], manual["num_buckets"], None) == manual["ids_per_row"]


def test_fingerprint_cat64_hand_computed():
    # The formula in crossed.json["fingerprint_cat64"], by hand for (1, 2):
    # r = 1 ^ kMul; r ^= ShiftMix(2 * kMul) * kMul; r *= kMul; r = ShiftMix(r) * kMul; ShiftMix(r)
    assert int(k.fingerprint_cat64(np.uint64(1), np.uint64(2))) == 0xC89A2574412AC8E4
    assert ref.fingerprint_cat64(1, 2) == 0xC89A2574412AC8E4


# --- properties ----------------------------------------------------------------------------------

uint64s = st.integers(min_value=0, max_value=ref.MASK64)


@PROPERTY
@given(uint64s, uint64s)
@example(0, 0)
@example(ref.MASK64, ref.MASK64)
def test_fingerprint_cat64_matches_twin(a, b):
    assert int(k.fingerprint_cat64(np.uint64(a), np.uint64(b))) == ref.fingerprint_cat64(a, b)


@PROPERTY
@given(st.lists(st.tuples(uint64s, uint64s), max_size=20))
def test_fingerprint_cat64_arrays_matches_twin(pairs):
    a = _readonly(np.array([p[0] for p in pairs], dtype=np.uint64))
    b = _readonly(np.array([p[1] for p in pairs], dtype=np.uint64))
    out = np.empty(len(pairs), dtype=np.uint64)
    k.fingerprint_cat64_arrays(a, b, out)
    assert [int(v) for v in out] == [ref.fingerprint_cat64(x, y) for x, y in pairs]


@pytest.fixture(scope="module")
def farmhash():
    return pytest.importorskip("farmhash")


def test_every_length_0_to_300_and_long_ones(farmhash):
    rng = np.random.default_rng(20240229)
    lengths = list(range(301)) + [511, 512, 513, 1000, 4095, 4096, 65536, 65537, 100_003]
    raw = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in lengths]
    got = _fp_strings(raw)
    assert [int(v) for v in got] == [farmhash.fingerprint64(b) for b in raw]


@PROPERTY
@given(st.lists(st.binary(max_size=300), max_size=16))
@example([b"", b"\x00", b"\x00" * 65, b"\xff" * 300])
def test_random_bytes_match_pyfarmhash(farmhash, values):
    assert [int(v) for v in _fp_strings(values)] == [farmhash.fingerprint64(b) for b in values]


@PROPERTY
@given(st.lists(st.integers(min_value=INT64_MIN, max_value=INT64_MAX), max_size=16))
@example([0, -1, 1, 9, 10, -10, INT64_MIN, INT64_MAX, INT64_MIN + 1])
def test_int64_matches_fingerprint_of_decimal_text(farmhash, values):
    expected = [farmhash.fingerprint64(ref.int64_decimal(v)) for v in values]
    assert [int(v) for v in _fp_ints(values)] == expected
    out = np.empty(len(values), dtype=np.int64)
    k.hash_buckets_int64(_readonly(np.asarray(values, dtype=np.int64)), np.int64(1000), out)
    assert out.tolist() == [ref.hash_bucket(e, 1000) for e in expected]


@PROPERTY
@given(
    st.lists(st.binary(max_size=80), max_size=12),
    st.integers(min_value=1, max_value=ref.MASK64 >> 1),
)
def test_hash_buckets_strings_matches_twin(farmhash, values, num_buckets):
    data, offsets = _buffers(values)
    out = np.empty(len(values), dtype=np.int64)
    k.hash_buckets_strings(data, offsets, np.int64(num_buckets), out)
    assert out.tolist() == [ref.hash_bucket(farmhash.fingerprint64(b), num_buckets) for b in values]


ARROW_TYPES = [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()]


@PROPERTY
@given(
    st.lists(st.text(max_size=40), min_size=3, max_size=20),
    st.sampled_from(ARROW_TYPES),
    st.data(),
)
def test_sliced_arrow_arrays(farmhash, values, type_, data):
    raw = [v.encode("utf-8") for v in values]
    is_binary = pa.types.is_binary(type_) or pa.types.is_large_binary(type_)
    array = pa.array(raw if is_binary else values, type=type_)
    start = data.draw(st.integers(min_value=0, max_value=len(values)), label="start")
    stop = data.draw(st.integers(min_value=start, max_value=len(values)), label="stop")
    pieces = ((array.slice(3), raw[3:]), (array.slice(start, stop - start), raw[start:stop]))
    for piece, expected in pieces:
        buf, offsets, valid = arrow_string_buffers(piece)
        assert valid is None and offsets.dtype == np.int64 and buf.dtype == np.uint8
        out = np.empty(len(piece), dtype=np.uint64)
        k.fingerprint64_strings(buf, offsets, out)
        assert [int(v) for v in out] == [farmhash.fingerprint64(b) for b in expected]


def test_large_string_sliced_into_tail(farmhash):
    # A large_string (int64 offsets) sliced past a long first value.
    big = "x" * 70_000
    array = pa.array([big, "tail", "é"], type=pa.large_string()).slice(1)
    data, offsets, _ = arrow_string_buffers(array)
    assert offsets.tolist() == [70_000, 70_004, 70_006]
    out = np.empty(2, dtype=np.uint64)
    k.fingerprint64_strings(data, offsets, out)
    assert [int(v) for v in out] == [farmhash.fingerprint64(b) for b in (b"tail", "é".encode())]

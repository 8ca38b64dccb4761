"""Plain-Python twins of ``streamlin.kernels.hashing``: the oracle for FingerprintCat64, the
int64-to-decimal path and bucketing. FarmHash itself is checked against pyfarmhash and the golden
files instead (an independent implementation is more trustworthy than a second port of ours).
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1
K_MUL = 0xC6A4A7935BD1E995
DEFAULT_HASH_KEY = 0xDECAFCAFFE  # tensorflow/python/ops/sparse_ops.py _DEFAULT_HASH_KEY


def _shift_mix(v: int) -> int:
    return v ^ (v >> 47)


def fingerprint_cat64(fp1: int, fp2: int) -> int:
    """tensorflow/core/platform/fingerprint.h FingerprintCat64 on Python ints, mod 2**64."""
    fp1 &= MASK64
    fp2 &= MASK64
    result = fp1 ^ K_MUL
    result ^= (_shift_mix((fp2 * K_MUL) & MASK64) * K_MUL) & MASK64
    result = (result * K_MUL) & MASK64
    result = (_shift_mix(result) * K_MUL) & MASK64
    return _shift_mix(result)


def int64_decimal(value: int) -> bytes:
    """tf.strings.as_string of an int64: decimal, '-' for negatives, no padding."""
    return str(int(value)).encode("ascii")


def hash_bucket(fingerprint: int, num_buckets: int) -> int:
    """to_hash_bucket_fast given the fingerprint: uint64 remainder."""
    return (fingerprint & MASK64) % num_buckets


def cross_hash(fingerprints, num_buckets: int, hash_key: int | None = None) -> int:
    """One crossed id from per-column 64-bit values in op order (``hash_key or default``)."""
    h = (hash_key or DEFAULT_HASH_KEY) & MASK64
    for fp in fingerprints:
        h = fingerprint_cat64(h, fp)
    return h % num_buckets

"""FarmHash ``Fingerprint64`` and TensorFlow's ``FingerprintCat64`` as numba kernels.

``Fingerprint64`` is ``farmhashna::Hash64`` from google/farmhash (what ``tf.fingerprint``,
``tf.strings.to_hash_bucket_fast`` and ``SparseCross`` use). ``FingerprintCat64`` is from
``tensorflow/core/platform/fingerprint.h``. All arithmetic is modulo 2**64 on ``uint64``: every
constant is an ``np.uint64`` because a bare Python int turns uint64 math into int64 or float64.

Strings arrive as one byte buffer plus offsets (Arrow's layout): string ``i`` is
``data[offsets[i]:offsets[i + 1]]``. Callers normalise to ``data`` uint8 and ``offsets`` int64;
the public wrappers in :mod:`streamlin.hashing` pass read-only C-contiguous views so that each
kernel compiles once.
"""

from __future__ import annotations

import numpy as np

from streamlin.kernels._jit import kernel

_K0 = np.uint64(0xC3A5C85C97CB3127)
_K1 = np.uint64(0xB492B66FBE98F273)
_K2 = np.uint64(0x9AE16A3B2F90404F)
_K_MUL = np.uint64(0xC6A4A7935BD1E995)  # FingerprintCat64

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U8 = np.uint64(8)
_U9 = np.uint64(9)
_U10 = np.uint64(10)
_U47 = np.uint64(47)
_U64 = np.uint64(64)
_U113 = np.uint64(113)
_U0XFF = np.uint64(0xFF)
_SEED = np.uint64(81)

# Longest decimal int64 is "-9223372036854775808": 20 bytes.
_INT64_TEXT_MAX = 20


@kernel()
def _rotate(val, shift):
    """Rotate uint64 ``val`` right by uint64 ``shift`` (1..63)."""
    return (val >> shift) | (val << (_U64 - shift))


@kernel()
def _shift_mix(val):
    return val ^ (val >> _U47)


@kernel()
def _fetch64(data, pos):
    """Little-endian uint64 from 8 bytes of uint8 ``data`` at int64 ``pos``."""
    r = _U0
    for k in range(8):
        r |= np.uint64(data[pos + k]) << np.uint64(8 * k)
    return r


@kernel()
def _fetch32(data, pos):
    """Little-endian uint32 (as uint64) from 4 bytes of uint8 ``data`` at int64 ``pos``."""
    r = _U0
    for k in range(4):
        r |= np.uint64(data[pos + k]) << np.uint64(8 * k)
    return r


@kernel()
def _hash_len16(u, v, mul):
    a = (u ^ v) * mul
    a ^= a >> _U47
    b = (v ^ a) * mul
    b ^= b >> _U47
    return b * mul


@kernel()
def fingerprint64_short(data, s, n):
    ln = np.uint64(n)
    if n >= 8:
        mul = _K2 + ln * _U2
        a = _fetch64(data, s) + _K2
        b = _fetch64(data, s + n - 8)
        c = _rotate(b, np.uint64(37)) * mul + a
        d = (_rotate(a, np.uint64(25)) + b) * mul
        return _hash_len16(c, d, mul)
    if n >= 4:
        mul = _K2 + ln * _U2
        a = _fetch32(data, s)
        return _hash_len16(ln + (a << _U3), _fetch32(data, s + n - 4), mul)
    if n > 0:
        a = np.uint64(data[s])
        b = np.uint64(data[s + (n >> 1)])
        c = np.uint64(data[s + n - 1])
        y = a + (b << _U8)  # fits in uint32, as in the C++
        z = ln + (c << np.uint64(2))
        return _shift_mix((y * _K2) ^ (z * _K0)) * _K2
    return _K2


@kernel()
def _hash_len_17_to_32(data, s, n):
    mul = _K2 + np.uint64(n) * _U2
    a = _fetch64(data, s) * _K1
    b = _fetch64(data, s + 8)
    c = _fetch64(data, s + n - 8) * mul
    d = _fetch64(data, s + n - 16) * _K2
    return _hash_len16(
        _rotate(a + b, np.uint64(43)) + _rotate(c, np.uint64(30)) + d,
        a + _rotate(b + _K2, np.uint64(18)) + c,
        mul,
    )


@kernel()
def _hash_len_33_to_64(data, s, n):
    mul = _K2 + np.uint64(n) * _U2
    a = _fetch64(data, s) * _K2
    b = _fetch64(data, s + 8)
    c = _fetch64(data, s + n - 8) * mul
    d = _fetch64(data, s + n - 16) * _K2
    y = _rotate(a + b, np.uint64(43)) + _rotate(c, np.uint64(30)) + d
    z = _hash_len16(y, a + _rotate(b + _K2, np.uint64(18)) + c, mul)
    e = _fetch64(data, s + 16) * mul
    f = _fetch64(data, s + 24)
    g = (y + _fetch64(data, s + n - 32)) * mul
    h = (z + _fetch64(data, s + n - 24)) * mul
    return _hash_len16(
        _rotate(e + f, np.uint64(43)) + _rotate(g, np.uint64(30)) + h,
        e + _rotate(f + a, np.uint64(18)) + g,
        mul,
    )


@kernel()
def _weak_hash_len32_with_seeds(data, s, a, b):
    """farmhashna::WeakHashLen32WithSeeds over data[s:s + 32]; returns a uint64 pair."""
    w = _fetch64(data, s)
    x = _fetch64(data, s + 8)
    y = _fetch64(data, s + 16)
    z = _fetch64(data, s + 24)
    a += w
    b = _rotate(b + a + z, np.uint64(21))
    c = a
    a += x
    a += y
    b += _rotate(a, np.uint64(44))
    return a + z, b + c


@kernel()
def _hash_len_65_plus(data, s, n):
    r37 = np.uint64(37)
    r42 = np.uint64(42)
    r33 = np.uint64(33)
    x = _SEED
    y = _SEED * _K1 + _U113
    z = _shift_mix(y * _K2 + _U113) * _K2
    v0 = _U0
    v1 = _U0
    w0 = _U0
    w1 = _U0
    x = x * _K2 + _fetch64(data, s)
    # Blocks of 64 bytes, leaving 1..64 bytes that the last 64 bytes of input cover.
    end = s + ((n - 1) // 64) * 64
    last64 = s + n - 64
    p = s
    while True:
        x = _rotate(x + y + v0 + _fetch64(data, p + 8), r37) * _K1
        y = _rotate(y + v1 + _fetch64(data, p + 48), r42) * _K1
        x ^= w1
        y += v0 + _fetch64(data, p + 40)
        z = _rotate(z + w0, r33) * _K1
        v0, v1 = _weak_hash_len32_with_seeds(data, p, v1 * _K1, x + w0)
        w0, w1 = _weak_hash_len32_with_seeds(data, p + 32, z + w1, y + _fetch64(data, p + 16))
        z, x = x, z
        p += 64
        if p == end:
            break
    mul = _K1 + ((z & _U0XFF) << _U1)
    p = last64
    w0 += np.uint64((n - 1) & 63)
    v0 += w0
    w0 += v0
    x = _rotate(x + y + v0 + _fetch64(data, p + 8), r37) * mul
    y = _rotate(y + v1 + _fetch64(data, p + 48), r42) * mul
    x ^= w1 * _U9
    y += v0 * _U9 + _fetch64(data, p + 40)
    z = _rotate(z + w0, r33) * mul
    v0, v1 = _weak_hash_len32_with_seeds(data, p, v1 * mul, x + w0)
    w0, w1 = _weak_hash_len32_with_seeds(data, p + 32, z + w1, y + _fetch64(data, p + 16))
    z, x = x, z
    return _hash_len16(
        _hash_len16(v0, w0, mul) + _shift_mix(y) * _K0 + z,
        _hash_len16(v1, w1, mul) + x,
        mul,
    )


@kernel()
def fingerprint64_long(data, start, length):
    """Fingerprint64 of a string longer than 16 bytes (see :func:`fingerprint64_at`)."""
    if length <= 32:
        return _hash_len_17_to_32(data, start, length)
    if length <= 64:
        return _hash_len_33_to_64(data, start, length)
    return _hash_len_65_plus(data, start, length)


@kernel()
def fingerprint64_at(data, start, length):
    """FarmHash Fingerprint64 of ``data[start:start + length]``.

    data uint8 (nbytes,); start, length int64 scalars. Returns uint64.
    """
    if length <= 16:
        return fingerprint64_short(data, start, length)
    return fingerprint64_long(data, start, length)


@kernel(inline=True)
def bucket_of(fp, buckets):
    """``fp % buckets`` for uint64 ``fp`` and ``buckets`` >= 1; a mask when ``buckets`` is a power of
    two (the same value, without a 64-bit division)."""
    mask = buckets - _U1
    if (buckets & mask) == 0:
        return fp & mask
    return fp % buckets


@kernel()
def fingerprint64_strings(data, offsets, out):
    """Fingerprint64 of each string ``data[offsets[i]:offsets[i + 1]]``.

    data uint8 (nbytes,); offsets int64 (n + 1,); out uint64 (n,), in place.
    """
    for i in range(out.shape[0]):
        start = offsets[i]
        length = offsets[i + 1] - start
        if length <= 16:  # inline in the loop: 2x faster on short strings than fingerprint64_at
            fp = fingerprint64_short(data, start, length)
        else:
            fp = fingerprint64_long(data, start, length)
        out[i] = fp


@kernel()
def _format_int64(value, buf):
    """Write the decimal text of int64 ``value`` right-aligned into uint8 ``buf`` (20,).

    Returns the int64 index of the first byte; the text is ``buf[start:]``.
    """
    pos = buf.shape[0]
    # Two's-complement magnitude in uint64 is exact for INT64_MIN too.
    mag = np.uint64(value)
    if value < 0:
        mag = ~mag + _U1
    while True:
        pos -= 1
        buf[pos] = np.uint8(np.uint64(48) + mag % _U10)
        mag //= _U10
        if mag == _U0:
            break
    if value < 0:
        pos -= 1
        buf[pos] = np.uint8(45)  # '-'
    return pos


@kernel()
def fingerprint64_int64(values, out):
    """Fingerprint64 of each value's decimal text (``tf.strings.as_string``: '-' sign, no padding).

    values int64 (n,); out uint64 (n,), in place.
    """
    buf = np.empty(_INT64_TEXT_MAX, dtype=np.uint8)
    for i in range(values.shape[0]):
        start = _format_int64(values[i], buf)
        out[i] = fingerprint64_at(buf, start, _INT64_TEXT_MAX - start)


@kernel()
def fingerprint_cat64(fp1, fp2):
    """TensorFlow's FingerprintCat64 of uint64 ``fp1``, ``fp2``; not commutative. Returns uint64."""
    a = np.uint64(fp1)
    b = np.uint64(fp2)
    result = a ^ _K_MUL
    result ^= _shift_mix(b * _K_MUL) * _K_MUL
    result *= _K_MUL
    result = _shift_mix(result) * _K_MUL
    return _shift_mix(result)


@kernel()
def fingerprint_cat64_arrays(a, b, out):
    """Elementwise FingerprintCat64: a, b, out uint64 (n,); out in place."""
    for i in range(out.shape[0]):
        out[i] = fingerprint_cat64(a[i], b[i])


@kernel()
def hash_buckets_strings(data, offsets, num_buckets, out):
    """Bucket ids ``Fingerprint64(string i) % num_buckets`` (``to_hash_bucket_fast``).

    data uint8 (nbytes,); offsets int64 (n + 1,); num_buckets int64 >= 1; out int64 (n,), in place.
    """
    buckets = np.uint64(num_buckets)
    for i in range(out.shape[0]):
        start = offsets[i]
        length = offsets[i + 1] - start
        if length <= 16:  # as in fingerprint64_strings
            fp = fingerprint64_short(data, start, length)
        else:
            fp = fingerprint64_long(data, start, length)
        out[i] = np.int64(bucket_of(fp, buckets))


@kernel()
def hash_buckets_int64(values, num_buckets, out):
    """Bucket ids ``Fingerprint64(decimal text of values[i]) % num_buckets``.

    values int64 (n,); num_buckets int64 >= 1; out int64 (n,), in place.
    """
    buckets = np.uint64(num_buckets)
    buf = np.empty(_INT64_TEXT_MAX, dtype=np.uint8)
    for i in range(values.shape[0]):
        start = _format_int64(values[i], buf)
        fp = fingerprint64_at(buf, start, _INT64_TEXT_MAX - start)
        out[i] = np.int64(bucket_of(fp, buckets))

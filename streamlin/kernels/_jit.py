"""The one place numba options live: every kernel is decorated with :func:`kernel`."""

from __future__ import annotations

import numba

SAFE_FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})  # no nnan/ninf/afn


def kernel(*, fastmath: bool = False, parallel: bool = False):
    """``numba.njit`` with streamlin's options: cached, GIL released, safe fastmath only.

    ``error_model="numpy"``: a division by zero gives inf/NaN as in numpy (and TF) instead of
    raising, so kernels never raise, and the compiler drops the per-division checks.
    """
    flags = set(SAFE_FASTMATH) if fastmath else False
    return numba.njit(cache=True, nogil=True, fastmath=flags, parallel=parallel, error_model="numpy")

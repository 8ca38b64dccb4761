"""The one place numba options live: every kernel is decorated with :func:`kernel`."""

from __future__ import annotations

import numba

SAFE_FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})  # no nnan/ninf/afn


def kernel(*, fastmath: bool = False, parallel: bool = False):
    """``numba.njit`` with streamlin's options: cached, GIL released, safe fastmath only."""
    flags = set(SAFE_FASTMATH) if fastmath else False
    return numba.njit(cache=True, nogil=True, fastmath=flags, parallel=parallel)

"""Fuzz harness: run one case, classify its outcome, count it, and catch hangs.

Property shared by every fuzz test: a case either returns, or raises a ``StreamlinError`` subclass.
Anything else (TypeError, IndexError, ArrowInvalid, a numba error, a hang) is a crash: it is
counted, remembered with a short reproducer, and re-raised so Hypothesis shrinks it.

Budget: ``examples(n)`` scales each test's ``max_examples``. ``STREAMLIN_FUZZ_EXAMPLES=2000`` runs
every property that many times (a local campaign; add ``STREAMLIN_FUZZ_KEEP_GOING=1`` to count every
crash instead of stopping at the first); ``STREAMLIN_FUZZ_SCALE=0.2`` trims the suite;
``STREAMLIN_FUZZ_SHRINK=0``/``1`` turns shrinking off/on for every property (default: on for the fast
feature-level properties, off for the slow ones).
The counts are printed at the end of the pytest run (see ``conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, settings

from streamlin.errors import StreamlinError

CASE_TIMEOUT_S = float(os.environ.get("STREAMLIN_FUZZ_CASE_TIMEOUT", "60"))
# Campaign mode: record crashes and property violations and carry on, so one run counts them all.
KEEP_GOING = os.environ.get("STREAMLIN_FUZZ_KEEP_GOING") == "1"
STATS: dict[str, Counter] = defaultdict(Counter)
CRASHES: dict[tuple, dict] = {}
VIOLATIONS: dict[tuple, dict] = {}


def examples(n: int) -> int:
    """max_examples for a property whose committed budget is ``n``."""
    override = os.environ.get("STREAMLIN_FUZZ_EXAMPLES")
    if override:
        return int(override)
    return max(1, round(n * float(os.environ.get("STREAMLIN_FUZZ_SCALE", "1"))))


def fuzz_settings(n: int, shrink: bool = True, **kwargs: Any) -> settings:
    """Settings for a property with a committed budget of ``n`` examples.

    ``shrink=False`` for properties whose cases are slow (training, files): a failure is reported
    unshrunk (its reproducer printed), instead of minutes of shrinking.
    """
    shrink = {"0": False, "1": True}.get(os.environ.get("STREAMLIN_FUZZ_SHRINK", ""), shrink)
    if not shrink:
        kwargs.setdefault("phases", [Phase.explicit, Phase.reuse, Phase.generate, Phase.target])
    return settings(max_examples=examples(n), deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example],
                    **kwargs)


class FuzzHang(Exception):
    """A case ran longer than CASE_TIMEOUT_S (a hang, for the purpose of the fuzz tests)."""


@contextlib.contextmanager
def watchdog(seconds: float = CASE_TIMEOUT_S):
    """Raise FuzzHang in the main thread after ``seconds`` (no-op off the main thread)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise FuzzHang(f"case still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Raised:
    """A case that ended in a StreamlinError (the allowed failure)."""

    error: StreamlinError

    def __str__(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


class Crashed(Raised):
    """A crash recorded in KEEP_GOING mode (otherwise crashes are re-raised)."""


def _origin(exc: BaseException) -> str:
    """file:line of the innermost frame inside streamlin (else the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/streamlin/" in f.filename.replace(os.sep, "/")]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "?"
    path = frame.filename.replace(os.sep, "/")
    path = path[path.rfind("/streamlin/") + 1:] if "/streamlin/" in path else os.path.basename(path)
    return f"{path}:{frame.lineno}"


def record_crash(target: str, exc: BaseException, reproducer: str = "", name: str | None = None,
                 origin: str | None = None) -> None:
    """Count a crash (``name``/``origin`` override the exception's, for crashes seen in a subprocess)."""
    STATS[target]["crash"] += 1
    key = (target, name or type(exc).__name__, origin or _origin(exc))
    entry = CRASHES.setdefault(key, {"count": 0, "message": str(exc)[:300], "reproducer": reproducer})
    entry["count"] += 1
    if reproducer and (not entry["reproducer"] or len(reproducer) < len(entry["reproducer"])):
        entry["reproducer"] = reproducer  # keep the shortest (Hypothesis shrinks towards it)


def record(target: str, outcome: str) -> None:
    STATS[target]["cases"] += 1
    STATS[target][outcome] += 1


def run_case(target: str, fn: Callable[[], Any], reproducer: Callable[[], str] | str = "") -> Any:
    """``fn()``, or ``Raised(error)`` for a StreamlinError; any other exception is a crash (re-raised)."""
    STATS[target]["cases"] += 1
    try:
        with watchdog():
            result = fn()
    except StreamlinError as exc:
        STATS[target][type(exc).__name__] += 1
        return Raised(exc)
    except Exception as exc:
        text = reproducer() if callable(reproducer) else reproducer
        record_crash(target, exc, text)
        if KEEP_GOING:
            return Crashed(exc)
        raise
    STATS[target]["ok"] += 1
    return result




def violation(target: str, kind: str, message: str) -> None:
    """A property violated without an exception (a silent wrong result, an error not saying where).

    Raises AssertionError, except in KEEP_GOING mode, where it is only counted.
    """
    STATS[target][kind] += 1
    entry = VIOLATIONS.setdefault((target, kind), {"count": 0, "message": message})
    entry["count"] += 1
    if len(message) < len(entry["message"]):
        entry["message"] = message
    if not KEEP_GOING:
        raise AssertionError(message)


def expect(condition: bool, target: str, kind: str, message) -> bool:
    """``violation`` unless ``condition``; ``message`` may be a callable (built only when needed)."""
    if not condition:
        violation(target, kind, message() if callable(message) else message)
    return bool(condition)

"""Read-ahead: run the input and feature stages in a background thread, one chunk ahead.

pyarrow decoding and the numba feature kernels release the GIL, so the next chunk is read and
hashed while the learn kernel (also ``nogil``) trains on the current one.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(source: Iterator, stage: Callable[[object], T], depth: int = 2) -> Iterator[T]:
    """Yield ``stage(item)`` for each item of ``source``, computed ``depth`` items ahead in a thread.

    An exception in the thread is re-raised here, in order. Closing the generator stops the thread.
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in source:
                if stop.is_set():
                    return
                value = stage(item)
                while not stop.is_set():
                    try:
                        results.put((True, value), timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # handed to the consumer, re-raised there
            results.put((False, exc))
            return
        results.put((True, _DONE))

    thread = threading.Thread(target=work, name="streamlin-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = results.get()
            if not ok:
                raise value
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                results.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)

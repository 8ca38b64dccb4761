"""Read-ahead: run the input and feature stages in a background thread, ahead of the learner.

pyarrow decoding and the numba feature kernels release the GIL, so the next chunks are read and
hashed while the learn kernel (also ``nogil``) trains on the current one. The thread starts as
soon as the object is made, so reading overlaps with setting up the model too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

_DONE = object()


class ReadAhead:
    """Iterate ``stage(item)`` for each item of ``source``, computed up to ``depth`` items ahead.

    Results that are None are skipped. An exception in the thread is re-raised to the consumer,
    in order. ``close()`` (or leaving a ``with`` block) stops the thread.
    """

    def __init__(self, source: Iterator, stage: Callable[[object], object], depth: int = 2):
        self._results: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(source, stage), name="streamlin-read-ahead",
                                        daemon=True)
        self._finished = False
        self._thread.start()

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, source: Iterator, stage: Callable) -> None:
        try:
            for item in source:
                if self._stop.is_set():
                    return
                value = stage(item)
                if value is not None and not self._put((True, value)):
                    return
        except BaseException as exc:  # handed to the consumer, re-raised there
            self._put((False, exc))
            return
        self._put((True, _DONE))

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        ok, value = self._results.get()
        if not ok:
            self._finished = True
            raise value
        if value is _DONE:
            self._finished = True
            raise StopIteration
        return value

    def close(self) -> None:
        self._stop.set()
        self._finished = True
        while self._thread.is_alive():
            try:
                self._results.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

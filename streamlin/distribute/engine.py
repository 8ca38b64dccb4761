"""The engine seam: three verbs between the algorithm and whatever runs its tasks.

``broadcast(value)`` makes a value available to every task (the model description once per call,
the global state once per round), ``run(task, jobs, shared)`` runs ``task(*shared, *job)`` for each
job and returns the results in job order, and ``close()`` releases what the engine started. The
round loop (``driver``) does not know which engine runs it. Tasks are pure functions of their
arguments, so an engine may run one again (a lost worker) and get the same result.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from streamlin.errors import StreamlinError

log = logging.getLogger("streamlin")

MAX_ATTEMPTS = 4


class ClusterError(StreamlinError, ConnectionError):
    """The Dask scheduler cannot be reached, or the cluster lost a round's tasks too often."""


class Handle:
    """A broadcast value; ``value`` is kept so that an engine can send it again after a loss."""

    def __init__(self, value: Any, remote: Any = None):
        self.value = value
        self.remote = remote


class Engine:
    """Runs pure tasks; see the module docstring."""

    def workers(self) -> int:
        raise NotImplementedError

    def broadcast(self, value: Any) -> Handle:
        raise NotImplementedError

    def release(self, handle: Handle) -> None:
        pass

    def run(self, task: Callable, jobs: Sequence[tuple], shared: Sequence[Handle] = ()) -> list:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalEngine(Engine):
    """Every task in this process, one after the other (the in-process emulation of K workers)."""

    def __init__(self, n_workers: int):
        self.n_workers = n_workers

    def workers(self) -> int:
        return self.n_workers

    def broadcast(self, value: Any) -> Handle:
        return Handle(value)

    def run(self, task: Callable, jobs: Sequence[tuple], shared: Sequence[Handle] = ()) -> list:
        values = [h.value for h in shared]
        return [task(*values, *job) for job in jobs]


class DaskEngine(Engine):
    """Tasks as Dask futures (``submit``/``scatter``/``wait``), on a client we were given or made.

    A task whose worker died, or whose broadcast input was lost with it, is submitted again (with the
    broadcast values scattered afresh); a task that raised re-raises its error here.
    """

    def __init__(self, client: Any, owned: tuple = ()):
        self.client = client
        self.owned = owned  # what close() shuts down: our Client and LocalCluster, never the user's

    def workers(self) -> int:
        self.client.wait_for_workers(1, timeout=60)
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def broadcast(self, value: Any) -> Handle:
        return Handle(value, self.client.scatter(value, hash=False))

    def release(self, handle: Handle) -> None:
        if handle.remote is not None:
            handle.remote.release()
            handle.remote = None

    def _rescatter(self, shared: Sequence[Handle]) -> None:
        for handle in shared:
            if handle.remote is None or handle.remote.status != "finished":
                handle.remote = self.client.scatter(handle.value, hash=False)

    def run(self, task: Callable, jobs: Sequence[tuple], shared: Sequence[Handle] = ()) -> list:
        from distributed import wait
        from distributed.client import FuturesCancelledError

        results: list = [None] * len(jobs)
        pending = list(range(len(jobs)))
        name = getattr(task, "__name__", "task")
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                log.warning("streamlin.distribute: %d %s task(s) lost with a worker; running them again (attempt %d)",
                            len(pending), name, attempt + 1)
                time.sleep(min(0.5 * attempt, 2.0))
                self._rescatter(shared)
            remotes = [h.remote for h in shared]
            futures = {i: self.client.submit(task, *remotes, *jobs[i], key=f"streamlin-{name}-{uuid.uuid4().hex}",
                                             pure=False)
                       for i in pending}
            try:
                with self.client.as_current():
                    wait(list(futures.values()))
            except FuturesCancelledError:  # a broadcast value was lost with its worker: see below
                pass
            lost = []
            for i, future in futures.items():
                if future.status == "finished":
                    results[i] = future.result()
                elif future.status == "error" and not _lost_worker(future.exception()):
                    future.result()  # re-raises the task's own error
                else:
                    lost.append(i)
            for future in futures.values():
                future.release()
            if not lost:
                return results
            pending = lost
        raise ClusterError(
            f"streamlin.distribute: {len(pending)} {name} task(s) were lost {MAX_ATTEMPTS} times (workers dying or"
            " unreachable). Check the workers' logs (memory limits, crashes) and train again: the latest"
            " checkpoint is intact and training resumes from it.")

    def close(self) -> None:
        for thing in self.owned:
            try:
                thing.close()
            except Exception:  # closing is best effort
                pass
        self.owned = ()


def _lost_worker(exc: BaseException | None) -> bool:
    """True for Dask's errors that mean 'the worker went away', not 'the task failed'."""
    return type(exc).__name__ in {"KilledWorker", "CommClosedError", "FutureCancelledError", "CancelledError"}


def connect(address: str, timeout: float):
    """A Client connected to the scheduler at ``address``.

    Raises
    ------
    ClusterError
        Nothing answers at ``address`` within ``timeout`` seconds.
    """
    from distributed import Client

    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s ({type(exc).__name__}: {exc})."
            " Start one with `dask scheduler` (and `dask worker <address>` on each machine), check the host,"
            " port and firewall, or pass client=None for a local cluster.") from None


def local_cluster(n_workers: int, processes: bool):
    """(Client, LocalCluster) with ``n_workers`` single-threaded workers, no dashboard."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=None)
    return Client(cluster, set_as_default=False), cluster

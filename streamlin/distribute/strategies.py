"""The public engines: ``Dask`` (a Dask cluster, embedded or existing) and ``InProcess`` (the same
plan and merge with every worker's task run in this process, one after the other)."""

from __future__ import annotations

import os
from typing import Any

from streamlin.distribute.driver import Distributed
from streamlin.distribute.engine import DaskEngine, Engine, LocalEngine, connect, local_cluster
from streamlin.errors import ConfigError

CONNECT_TIMEOUT = 10.0


class Dask(Distributed):
    """Train and evaluate on Dask (``dask.distributed``) in synchronous rounds.

    Parameters
    ----------
    client : distributed.Client, str or None
        A client, or a scheduler address (``"tcp://host:8786"``, connected to at once), or None for an
        embedded ``LocalCluster`` of ``n_workers`` single-threaded workers (started on first use).
    n_workers : int, optional
        K, the number of workers the plan deals the input to. Default: the machine's cores for an
        embedded cluster; for an existing one, the K of the pass being resumed, else the number of
        workers connected when ``train`` starts.
    processes : bool
        Embedded cluster only: worker processes instead of threads (the kernels release the GIL, so
        threads already use every core without copying the state).
    sync_every_rows : int
        Rows each worker trains between two synchronisations (>= 50,000; rounded down to whole
        batches).
    merge : {"guarded", "contract", "average"}
        How the workers' changes are combined (``DISTRIBUTED.md``). FTRL and Adagrad honour it; SGD
        averages under every rule (its weights carry no accumulator to measure progress with).
    connect_timeout : float
        Seconds to wait for a scheduler address to answer.

    Raises
    ------
    ConfigError
        (a ValueError) a bad argument, e.g. ``sync_every_rows`` under 50,000.
    ClusterError
        (a ConnectionError) nothing answers at the scheduler address within ``connect_timeout``.

    Notes
    -----
    A Dask scheduler has no authentication unless TLS is configured: keep it on a private network.
    Workers need streamlin installed and must see the input paths; the driver also reads them (the
    plan, the probe) and is the only writer of ``model_dir``.
    """

    def __init__(self, client: Any = None, n_workers: int | None = None, processes: bool = False,
                 sync_every_rows: int = 1_000_000, merge: str = "guarded", *,
                 connect_timeout: float = CONNECT_TIMEOUT):
        super().__init__(n_workers, sync_every_rows, merge)
        if not isinstance(processes, bool):
            raise ConfigError(f"Dask: processes must be True or False; found {processes!r}.")
        if client is not None and not isinstance(client, str) and not hasattr(client, "submit"):
            raise ConfigError(f"Dask: client must be a distributed.Client, a scheduler address or None; found {client!r}.")
        self.processes = processes
        self._client = client
        self._engine_: DaskEngine | None = None
        if isinstance(client, str):
            self._engine_ = DaskEngine(connect(client, connect_timeout), owned=())
            self._engine_.owned = (self._engine_.client,)

    @property
    def client(self):
        """The ``distributed.Client`` in use (starting the embedded cluster if need be)."""
        return self._engine().client

    def _engine(self) -> DaskEngine:
        if self._engine_ is None:
            if self._client is not None:
                self._engine_ = DaskEngine(self._client)
            else:
                client, cluster = local_cluster(self.n_workers or os.cpu_count() or 1, self.processes)
                self._engine_ = DaskEngine(client, owned=(client, cluster))
        return self._engine_

    def close(self) -> None:
        """Shut down what this object started (the embedded cluster, its own client); not a user's client."""
        if self._engine_ is not None:
            self._engine_.close()
            self._engine_ = None

    def __enter__(self) -> Dask:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "LocalCluster" if self._client is None else (self._client if isinstance(self._client, str) else "Client")
        return (f"Dask({where}, n_workers={self.n_workers}, sync_every_rows={self.sync_every_rows:,},"
                f" merge={self.merge!r})")


class InProcess(Distributed):
    """The distributed algorithm with its K workers' tasks run in this process, one after the other.

    Gives the same model as ``Dask`` with the same K, round size and merge, bit for bit: for tests,
    and to measure the merge at a K the machine's cores cannot run. Parameters as :class:`Dask`.
    """

    def __init__(self, n_workers: int = 2, sync_every_rows: int = 1_000_000, merge: str = "guarded"):
        super().__init__(n_workers, sync_every_rows, merge)
        self._local = LocalEngine(n_workers)

    def _engine(self) -> Engine:
        return self._local

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"InProcess(n_workers={self.n_workers}, sync_every_rows={self.sync_every_rows:,}, merge={self.merge!r})"

"""A real cluster: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1. The driver is
killed after a round and resumed; a worker is killed mid-round. Both end with the model of an
uninterrupted run (the in-process emulation, which equals a cluster run bit for bit)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from streamlin.checkpoint import store
from streamlin.distribute import Dask
from tests.distribute import _common

pytestmark = [_common.requires_dask,
              pytest.mark.skipif(not _common.DASK.exists(), reason="the dask command is not installed")]
TIMEOUT = 180


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = _common.Cluster(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.close()


def _assert_same_model(a, b):
    va, vb = _common.variables(a), _common.variables(b)
    assert sorted(va) == sorted(vb)
    for name in va:
        assert va[name].tobytes() == vb[name].tobytes(), name


def _driver(processes, name, cluster, synthetic, model_dir, *extra):
    argv = [sys.executable, "-m", "tests.distribute._driver", cluster.address, synthetic.directory, str(model_dir),
            *extra]
    return processes.start(name, argv)


def test_a_killed_driver_resumes_to_the_uninterrupted_model(cluster, synthetic, reference, tmp_path):
    processes = _common.Processes(tmp_path)
    model_dir = tmp_path / "model"
    marker = tmp_path / "round-1"
    try:
        driver = _driver(processes, "driver-1", cluster, synthetic, model_dir, "--pause-after-round", "1", str(marker))
        deadline = time.monotonic() + TIMEOUT
        while not marker.exists():
            assert driver.poll() is None, processes.log("driver-1")
            assert time.monotonic() < deadline, processes.log("driver-1")
            time.sleep(0.1)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
        latest = store.latest_snapshot(model_dir)
        assert latest.step == reference.history[0]["global_step"] == int(marker.read_text())
        resumed = _driver(processes, "driver-2", cluster, synthetic, model_dir)
        assert resumed.wait(timeout=TIMEOUT) == 0, processes.log("driver-2")
        assert "continuing the pass of the latest checkpoint at round 1" in processes.log("driver-2")
    finally:
        processes.close()
    _assert_same_model(_common.estimator(model_dir), reference.est)


def test_a_worker_killed_mid_round_changes_nothing(cluster, synthetic, reference, tmp_path):
    pids = cluster.worker_pids()
    killed: list = []
    stop = threading.Event()

    def kill_the_worker_holding_the_state():
        while not stop.is_set():
            busy = [key for keys in cluster.client.processing().values() for key in keys if "train_round" in str(key)]
            holders = [a for key, where in cluster.client.who_has().items() if str(key).startswith("ndarray")
                       for a in where]
            if busy and holders:
                os.kill(pids[holders[0]], signal.SIGKILL)
                killed.append((holders[0], busy))
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_worker_holding_the_state, daemon=True)
    killer.start()
    try:
        with Dask(client=cluster.address, n_workers=2, sync_every_rows=_common.ROUND_ROWS) as engine:
            est = _common.estimator(tmp_path, engine)
            est.train(_common.train_input(synthetic.train))
    finally:
        stop.set()
        killer.join(timeout=10)
    assert killed, "no worker was killed during a round"
    _assert_same_model(est, reference.est)
    cluster.client.wait_for_workers(2, timeout=TIMEOUT)  # the nanny restarts it, for the next test

"""What the distributed tests share with their driver subprocess: data, model, cluster processes."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import streamlin as sl
from streamlin import feature_column as fc

ROOT = Path(__file__).resolve().parents[2]
requires_dask = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                   reason="dask[distributed] is not installed (pip install -e '.[distributed]')")
DASK = Path(sys.executable).parent / "dask"
ROUND_ROWS = 50_000          # the minimum round size: rounds of 49,152 rows (48 batches of 1,024)
TRAIN_ROWS = 160_000         # 4 files of 40,000 rows: 2 rounds at K = 2
TEST_ROWS = 20_000


def make_synthetic():
    """``datasets/make_synthetic.py``, imported from its path (it is not a package)."""
    name = "streamlin_tests_make_synthetic"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "datasets" / "make_synthetic.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def generate(out_dir: str | os.PathLike) -> dict:
    """Criteo-shaped synthetic data: 160k training rows in 4 Parquet files, 20k test rows."""
    return make_synthetic().generate(str(out_dir), TRAIN_ROWS, seed=3, formats=("parquet",), files=4,
                                     test_rows=TEST_ROWS)


def columns() -> list:
    numeric = [fc.bucketized_column(fc.numeric_column(k, default_value=0.0), [0, 1, 2, 4, 8, 16, 64, 256, 1024])
               for k in ("I2", "I5", "I7")]
    hashed = [fc.categorical_column_with_hash_bucket(f"C{i}", 1 << 12) for i in range(1, 11)]
    return numeric + hashed + [fc.crossed_column(["C1", "C2"], 1 << 12)]


def optimizer():
    return sl.optimizers.Ftrl(learning_rate=0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.001)


def estimator(model_dir, distribute=None, **config) -> sl.LinearClassifier:
    config = {"save_checkpoints_steps": 10 ** 9, **config}
    return sl.LinearClassifier(columns(), model_dir=str(model_dir), optimizer=optimizer(), loss_reduction="sum",
                               config=sl.RunConfig(train_distribute=distribute, eval_distribute=distribute, **config))


def train_input(paths) -> sl.inputs.StreamingInputFn:
    return sl.inputs.parquet_input_fn(paths, label_key="label", batch_size=1024)


def variables(est) -> dict[str, np.ndarray]:
    """Every variable of the latest snapshot (weights, slots, global_step)."""
    return {name: est.get_variable_value(name) for name in est.get_variable_names()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Child processes in their own sessions, always killed on close."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                 start_new_session=True, **kwargs)
        log.close()
        self.children.append(child)
        return child

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.children = []


class Cluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (random free ports)."""

    def __init__(self, log_dir: Path, n_workers: int = 2, timeout: float = 60):
        from distributed import Client

        self.processes = Processes(log_dir)
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        try:
            self.processes.start("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                               "--no-dashboard"])
            for i in range(n_workers):
                self.processes.start(f"worker{i}", [str(DASK), "worker", self.address, "--host", "127.0.0.1",
                                                    "--nthreads", "1", "--no-dashboard", "--name", f"w{i}",
                                                    "--local-directory", str(log_dir / f"w{i}"),
                                                    "--death-timeout", "60", "--memory-limit", "0"])
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.client = Client(self.address, timeout=5, set_as_default=False)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            self.client.wait_for_workers(n_workers, timeout=timeout)
        except BaseException:
            self.close()
            raise

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            try:
                client.close(timeout=5)
            except Exception:
                pass
        self.processes.close()

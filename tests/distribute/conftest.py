"""Shared data and models of the distributed tests (built once per session)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

import pytest

from streamlin.distribute import InProcess
from tests.distribute import _common


@dataclass
class Trained:
    est: Any
    history: list


class Data:
    def __init__(self, directory: str):
        self.directory = directory
        self.train = sorted(glob.glob(os.path.join(directory, "parquet", "train", "*.parquet")))
        self.test = sorted(glob.glob(os.path.join(directory, "parquet", "test", "*.parquet")))


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> Data:
    directory = tmp_path_factory.mktemp("synthetic")
    _common.generate(directory)
    return Data(str(directory))


@pytest.fixture(scope="session")
def reference(synthetic, tmp_path_factory):
    """The K = 2 guarded model of the synthetic data, trained by the in-process emulation."""
    engine = InProcess(2, _common.ROUND_ROWS)
    est = _common.estimator(tmp_path_factory.mktemp("reference"), engine, save_checkpoints_steps=1)
    est.train(_common.train_input(synthetic.train))
    return Trained(est, list(engine.history))


@pytest.fixture(scope="session")
def one_process(synthetic, tmp_path_factory):
    est = _common.estimator(tmp_path_factory.mktemp("one_process"))
    return est.train(_common.train_input(synthetic.train))

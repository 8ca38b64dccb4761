"""Public checkpoint helpers: list snapshots, keep-best retention, TensorFlow checkpoints."""

from __future__ import annotations

import builtins
import os

from streamlin.checkpoint.store import KeepBest, Snapshot, list_snapshots
from streamlin.checkpoint.tf_reader import read_tf


def list(model_dir: str | os.PathLike) -> builtins.list[Snapshot]:  # noqa: A001 - API.md's name
    """Snapshots of ``model_dir`` (step, path, time, bytes, metrics), oldest first."""
    return list_snapshots(model_dir)


def convert_tf(tf_path: str | os.PathLike, estimator) -> str:
    """Write a TF LinearClassifier checkpoint into ``estimator``'s model_dir as a streamlin snapshot."""
    from streamlin.tf_import import convert_tf as _convert

    return _convert(tf_path, estimator)


__all__ = ["list", "KeepBest", "Snapshot", "read_tf", "convert_tf"]

"""Batch prediction at scale: one Parquet file of predictions per input file, rows in input order."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from streamlin.checkpoint import store
from streamlin.distribute import tasks
from streamlin.distribute.driver import worker_model
from streamlin.distribute.engine import LocalEngine
from streamlin.distribute.plan import Plan, check_input_fn
from streamlin.errors import ConfigError


def _outputs(sources: list[str], output_dir: str) -> list[str]:
    root = os.path.commonpath([os.path.dirname(os.path.abspath(s)) for s in sources])
    outputs = [os.path.join(output_dir, os.path.splitext(os.path.relpath(os.path.abspath(s), root))[0] + ".parquet")
               for s in sources]
    seen: dict[str, str] = {}
    for source, output in zip(sources, outputs):
        if output in seen:
            raise ConfigError(f"predict_to_parquet: {seen[output]} and {source} would both write {output}; rename one"
                              " of them or predict them apart.")
        seen[output] = source
    return outputs


def predict_to_parquet(estimator, input_fn, output_dir: str | os.PathLike, checkpoint_path: Any = None,
                       passthrough: Sequence[str] = (), distribute: Any = None) -> list[str]:
    """Write predictions for every input file to ``output_dir``, one Parquet file per input file.

    Each output file holds the ``passthrough`` columns, then the CLI's prediction columns: binary
    heads ``logistic`` (P(label = 1)), ``class_ids``, ``classes``; multi-class heads
    ``probabilities_<class>``, ``class_ids``, ``classes``; one row per input row, in input order.
    Outputs mirror the inputs' paths below their common folder, with the extension ``.parquet``.
    Each task (one per file) reads the snapshot straight from its path; nothing is broadcast but
    the model's description.

    Parameters
    ----------
    estimator : LinearClassifier
    input_fn : a ``parquet_input_fn``, ``csv_input_fn`` or ``arrow_input_fn`` (one epoch is read).
    output_dir : path
    checkpoint_path : snapshot path, model_dir, step, TF checkpoint, or None for the latest.
    passthrough : column names copied from the input.
    distribute : a ``streamlin.distribute`` engine (``Dask``, ``InProcess``), or None for this process.

    Returns
    -------
    list of str
        The written files, in input order.

    Raises
    ------
    ConfigError
        ``input_fn`` is not a built-in file maker, or two inputs would write the same output.
    CheckpointError
        No such snapshot.
    MissingFeatureError
        A passthrough column or a feature is missing from a file.
    """
    from streamlin.tf_import import is_tf_checkpoint

    check_input_fn(input_fn, "predict_to_parquet")
    path = str(checkpoint_path) if is_tf_checkpoint(checkpoint_path) else store.resolve(estimator.model_dir,
                                                                                          checkpoint_path)
    plan = Plan(input_fn, 1)
    sources = input_fn.sources(0)
    outputs = _outputs(sources, os.fspath(output_dir))
    engine = distribute._engine() if distribute is not None else LocalEngine(1)
    shared = [engine.broadcast(worker_model(estimator)), engine.broadcast(input_fn)]
    try:
        jobs = [(path, plan.files[source], output, tuple(passthrough)) for source, output in zip(sources, outputs)]
        results = engine.run(tasks.predict_file, jobs, shared)
    finally:
        for handle in shared:
            engine.release(handle)
    return [r["path"] for r in results]

"""TensorFlow LinearClassifier checkpoints as streamlin model state (no TensorFlow needed).

The numbers come from the TF checkpoint (``checkpoint.tf_reader``); what the model *is* comes from
the estimator built with the same columns, head and optimizer as the TF code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from streamlin.checkpoint import store
from streamlin.checkpoint.tf_reader import map_tf_names, read_tf, resolve_tf_checkpoint
from streamlin.errors import CheckpointError
from streamlin.state import GLOBAL_STEP, ModelState, state_from_arrays


def is_tf_checkpoint(path: Any) -> bool:
    """True when ``path`` is a TF checkpoint prefix, its ``.index`` file, or a TF model_dir."""
    if path is None or isinstance(path, (int, np.integer)):
        return False
    text = os.fspath(path)
    if os.path.isfile(text + ".index") or (text.endswith(".index") and os.path.isfile(text)):
        return True
    directory = Path(text)
    return (directory.is_dir() and (directory / "checkpoint").is_file()
            and not (directory / store.INDEX_FILE).exists() and not (directory / "zarr.json").exists())


def read_tf_variables(path: Any) -> tuple[dict[str, np.ndarray], int, str]:
    """(arrays by streamlin/TF variable name, global step, prefix) of a TF checkpoint."""
    prefix = resolve_tf_checkpoint(path)
    variables, _hyperparameters = map_tf_names(read_tf(prefix))
    step = variables.pop(GLOBAL_STEP, None)
    if step is None:
        tail = prefix.rsplit("-", 1)
        step = int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0
    return variables, int(np.asarray(step)), prefix


def load_tf_state(path: Any, layout, head, optimizer) -> ModelState:
    """A TF checkpoint as the state of a model with ``layout``/``head``/``optimizer``.

    Optimizer slots the checkpoint lacks keep their initial values.

    Raises
    ------
    CheckpointError
        A weights variable is missing or has another shape.
    """
    variables, step, prefix = read_tf_variables(path)
    for name in list(variables):  # TF keeps bias as [units]; streamlin too. Weights are [rows, units].
        variables[name] = np.asarray(variables[name], dtype=np.float32) if variables[name].dtype.kind == "f" else variables[name]
    return state_from_arrays(variables, step, layout, head, optimizer, prefix, missing_slots_ok=True)


def convert_tf(tf_path: Any, estimator) -> str:
    """Write ``estimator.model_dir/model.ckpt-<TF's step>`` from a TF checkpoint; returns its path.

    ``estimator.train`` then continues at TensorFlow's step with its optimizer state.
    """
    if not is_tf_checkpoint(tf_path):
        raise CheckpointError(f"{tf_path} is not a TensorFlow checkpoint prefix or model_dir (no .index / checkpoint file).")
    state = estimator._load_tf_state(tf_path)
    return estimator._save(state)

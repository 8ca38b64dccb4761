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
from streamlin.errors import CheckpointError, ConfigError
from streamlin.state import GLOBAL_STEP, ModelState, named_arrays, state_from_arrays


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


def _read(path: Any) -> tuple[dict[str, np.ndarray], int, str, dict[str, float]]:
    prefix = resolve_tf_checkpoint(path)
    variables, hyperparameters = map_tf_names(read_tf(prefix))
    step = variables.pop(GLOBAL_STEP, None)
    if step is None:
        tail = prefix.rsplit("-", 1)
        step = int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else 0
    return variables, int(np.asarray(step)), prefix, hyperparameters


def read_tf_variables(path: Any) -> tuple[dict[str, np.ndarray], int, str]:
    """(arrays by streamlin/TF variable name, global step, prefix) of a TF checkpoint."""
    variables, step, prefix, _ = _read(path)
    return variables, step, prefix


def _check_optimizer(prefix: str, hyperparameters: dict[str, float], variables: dict, optimizer, step: int) -> None:
    """The checkpoint's optimizer (its slot names; TF 2.x: its hyper-parameters) is the estimator's."""
    used = {name.split("/")[1] for name in [*hyperparameters, *variables] if name.startswith("training/")}
    if used and used != {optimizer.name}:
        raise ConfigError(
            f"{prefix} was trained with {'/'.join(sorted(used))} (its variables are training/{min(used)}/...), but the"
            f" estimator's optimizer is {optimizer.name}; build it with streamlin.optimizers.{min(used)}(...).")
    ours = optimizer.hyperparameter_variables(step)
    for name, value in sorted(hyperparameters.items()):
        if name in ours and np.float32(ours[name]) != np.float32(value):
            raise ConfigError(
                f"{prefix} records {name} = {value!r} (float32), but the estimator's optimizer has"
                f" {name.rsplit('/', 1)[1]}={ours[name]!r}; pass the checkpoint's value to"
                f" streamlin.optimizers.{optimizer.name}(...).")


def _check_no_extra(prefix: str, variables: dict, expected: dict) -> None:
    """Every TF variable is one of the model's (a column's weights, the bias or a slot)."""
    extra = sorted(name for name, value in variables.items() if name not in expected and np.ndim(value) > 0)
    if not extra:
        return
    lines = []
    for name in extra:
        shape = list(np.shape(variables[name]))
        column = name[len("linear/linear_model/"):-len("/weights")] if (
            name.startswith("linear/linear_model/") and name.endswith("/weights")) else None
        hint = (f": add a column named {column!r} with {shape[0]} buckets (or dimension {shape[0]})"
                if column else "")
        lines.append(f"{name} {shape}{hint}")
    raise CheckpointError(
        f"{prefix} holds variables this model lacks: {'; '.join(lines)}. Build the estimator with the columns"
        " the TF model had (the column name is the path between linear/linear_model/ and /weights).")


def load_tf_state(path: Any, layout, head, optimizer, strict: bool = False) -> ModelState:
    """A TF checkpoint as the state of a model with ``layout``/``head``/``optimizer``.

    Optimizer slots the checkpoint lacks keep their initial values. ``strict`` (conversion): every
    TF variable must be one of the model's, and the optimizer and its recorded hyper-parameters
    (TF 2.x) must be the estimator's.

    Raises
    ------
    CheckpointError
        A weights variable is missing or has another shape; ``strict``: the checkpoint holds a
        variable the model lacks.
    ConfigError
        ``strict``: another optimizer, or other hyper-parameters.
    """
    variables, step, prefix, hyperparameters = _read(path)
    if strict:
        _check_optimizer(prefix, hyperparameters, variables, optimizer, step)
        _check_no_extra(prefix, variables, named_arrays(layout, optimizer, ModelState.zeros(layout, head, optimizer)))
    for name in list(variables):  # TF keeps bias as [units]; streamlin too. Weights are [rows, units].
        variables[name] = np.asarray(variables[name], dtype=np.float32) if variables[name].dtype.kind == "f" else variables[name]
    return state_from_arrays(variables, step, layout, head, optimizer, prefix, missing_slots_ok=True)


def convert_tf(tf_path: Any, estimator) -> str:
    """Write ``estimator.model_dir/model.ckpt-<TF's step>`` from a TF checkpoint; returns its path.

    ``estimator.train`` then continues at TensorFlow's step with its optimizer state.
    """
    if not is_tf_checkpoint(tf_path):
        raise CheckpointError(f"{tf_path} is not a TensorFlow checkpoint prefix or model_dir (no .index / checkpoint file).")
    state = load_tf_state(tf_path, estimator._layout, estimator._head, estimator._optimizer, strict=True)
    return estimator._save(state)

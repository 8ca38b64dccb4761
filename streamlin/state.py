"""Model state: the flat weight table, the optimizer's slot tables and the global step.

Converts between the flat tables and TF-named variables, and reads/writes snapshots and warm
starts. Arrays are float32 (n_slots, units); variables are row ranges of them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamlin import __version__
from streamlin.checkpoint import store
from streamlin.errors import CheckpointError, ConfigError
from streamlin.feature_column.layout import BIAS_VARIABLE, Layout
from streamlin.feature_column.serialize import column_to_config
from streamlin.heads import Head

GLOBAL_STEP = "global_step"
PARALLEL_FILL_BYTES = 64 << 20  # tables at least this large are filled by two threads
FORMAT = "streamlin-snapshot-1"


@dataclass
class ModelState:
    """The model's numbers: one float32 table (n_slots, n_parts, units) and the global step.

    ``table[:, 0]`` holds the weights and ``table[:, 1 + i]`` the optimizer's slot ``i``, so one
    coordinate's weight and slots share a cache line in the learn kernel.
    """

    table: np.ndarray
    slot_names: tuple[str, ...]
    global_step: int = 0
    input_position: dict | None = None
    pristine: bool = False  # every value still at its initial value (set by zeros(), cleared on change)

    @classmethod
    def zeros(cls, layout: Layout, head: Head, optimizer) -> ModelState:
        """Weights 0, slots at their initial values.

        Allocated with ``np.empty`` and filled in one pass: numpy asks the kernel for huge pages
        only on that path (``np.zeros`` gets calloc'd 4 KiB pages), which makes a 30M-slot FTRL
        table ~10x faster to set up where page faults are expensive. A large table is filled by two
        threads (numpy releases the GIL; page faults run in parallel): 0.19 -> 0.12 s for 30M slots.
        """
        parts = (0.0,) + tuple(optimizer.slot_initial_value(name) for name in optimizer.slot_names)
        table = np.empty((layout.n_slots, len(parts), head.units), dtype=np.float32)
        initial = np.asarray(parts, dtype=np.float32)[None, :, None]
        half = table.shape[0] // 2
        if table.nbytes < PARALLEL_FILL_BYTES:
            table[...] = initial
        else:
            helper = threading.Thread(target=table[half:].__setitem__, args=(Ellipsis, initial),
                                      name="streamlin-fill")
            helper.start()
            table[:half] = initial
            helper.join()
        return cls(table, tuple(optimizer.slot_names), pristine=True)

    @property
    def weights(self) -> np.ndarray:
        """float32 (n_slots, units) view of the weights."""
        return self.table[:, 0, :]

    @property
    def slots(self) -> dict[str, np.ndarray]:
        """slot name -> float32 (n_slots, units) view."""
        return {name: self.table[:, 1 + i, :] for i, name in enumerate(self.slot_names)}


def variable_view(array: np.ndarray, begin: int, end: int, name: str) -> np.ndarray:
    """Rows ``begin:end`` of a flat (n_slots, units) array as TF variable ``name``: the bias is (units,)."""
    return array[begin] if name == BIAS_VARIABLE else array[begin:end]


def named_arrays(layout: Layout, optimizer, state: ModelState) -> dict[str, tuple[np.ndarray, float]]:
    """TF variable name -> (array, fill value) for every weight, slot and the global step."""
    out: dict[str, tuple[np.ndarray, float]] = {}
    for name, begin, end in layout.variables():
        out[name] = (variable_view(state.weights, begin, end, name), 0.0)
        for slot in optimizer.slot_names:
            out[optimizer.slot_variable(name, slot)] = (variable_view(state.slots[slot], begin, end, name),
                                                        optimizer.slot_initial_value(slot))
    for name, value in optimizer.hyperparameter_variables(state.global_step).items():
        out[name] = (np.asarray(value, dtype=np.float32), 0.0)
    out[GLOBAL_STEP] = (np.asarray(state.global_step, dtype=np.int64), 0)
    return out


def model_spec(layout: Layout, head: Head, optimizer, sparse_combiner: str, weight_column: str | None) -> dict:
    """JSON-ready description that rebuilds the model without the code that trained it."""
    return {"feature_columns": [column_to_config(c) for c in layout.columns], "head": head.to_config(),
            "optimizer": optimizer.to_config(), "sparse_combiner": sparse_combiner, "weight_column": weight_column}


def save(model_dir: str, layout: Layout, head: Head, optimizer, state: ModelState, spec: dict) -> str:
    arrays = named_arrays(layout, optimizer, state)
    attrs = {"format": FORMAT, "streamlin_version": __version__, "step": state.global_step, "time": time.time(),
             "variables": list(arrays), **spec, "input_position": state.input_position}
    return store.write_snapshot(model_dir, state.global_step, arrays, attrs, all_fill=state.pristine)


def state_from_arrays(arrays: Mapping[str, np.ndarray], global_step: int, layout: Layout, head: Head, optimizer,
                      source: str, missing_slots_ok: bool = False) -> ModelState:
    """A state from TF-named arrays; every variable's shape must match the model.

    ``missing_slots_ok``: optimizer slots absent from ``arrays`` keep their initial values (a TF
    checkpoint saved without them).

    Raises
    ------
    CheckpointError
        A variable is missing or has another shape (both shapes named).
    """
    state = ModelState.zeros(layout, head, optimizer)
    weight_names = {name for name, _, _ in layout.variables()}
    for name, (target, _) in named_arrays(layout, optimizer, state).items():
        if name == GLOBAL_STEP or target.ndim == 0:  # hyper-parameters come from the optimizer
            continue
        if name not in arrays:
            if missing_slots_ok and name not in weight_names:
                continue
            raise CheckpointError(
                f"{source} has no variable {name!r}; it was written by a model with other columns or another"
                " optimizer. Use warm_start_from=WarmStartSettings(...) to take what matches.")
        value = np.asarray(arrays[name])
        if value.shape != target.shape:
            raise CheckpointError(
                f"{source}: variable {name!r} has shape {list(value.shape)} in the checkpoint but"
                f" {list(target.shape)} in this model (changed hash_bucket_size, vocabulary or n_classes?).")
        target[...] = value
    state.global_step = int(global_step)
    state.pristine = False
    return state


def restore(path: str, layout: Layout, head: Head, optimizer, weights_only: bool = False) -> ModelState:
    """Load a streamlin snapshot into a new state (see :func:`state_from_arrays`).

    ``weights_only`` skips the optimizer slots (they keep their initial values): enough to
    evaluate, predict or export, at a third of the reading.
    """
    names = [name for name, _, _ in layout.variables()] if weights_only else None
    arrays, attrs = store.load_snapshot(path, names=names)
    step = attrs.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: its 'step' attribute is {step!r}, not a step number; the snapshot is damaged.")
    state = state_from_arrays(arrays, step, layout, head, optimizer, path, missing_slots_ok=weights_only)
    position = attrs.get("input_position")
    state.input_position = position if isinstance(position, dict) else None
    return state


def _vocabulary_of(source: Any) -> list:
    if isinstance(source, (str, Path)):
        text = Path(source).read_text(encoding="utf-8").split("\n")
        if text and text[-1] == "":
            text.pop()
        return text
    return list(source)


def warm_start(state: ModelState, layout: Layout, head: Head, optimizer, settings: Any) -> None:
    """Copy variables from a checkpoint into ``state`` (TF's ``warm_starting_util`` semantics).

    ``settings`` is a path (weights *and* optimizer slots, streamlin's default) or a
    ``WarmStartSettings`` (TF's selection rules). The global step is not carried over.
    """
    from streamlin.config import WarmStartSettings  # config sits below state; import kept local

    state.pristine = False
    if isinstance(settings, (str, Path)):
        settings = WarmStartSettings(str(settings), vars_to_warm_start=[".*"])
    if not isinstance(settings, WarmStartSettings):
        raise ConfigError(f"warm_start_from must be a path or WarmStartSettings; found {settings!r}.")
    from streamlin.tf_import import is_tf_checkpoint, read_tf_variables  # the TF reader sits beside state

    from_tf = is_tf_checkpoint(settings.ckpt_to_initialize_from)
    if from_tf:
        arrays, _, source = read_tf_variables(settings.ckpt_to_initialize_from)
    else:
        source = store.resolve(None, settings.ckpt_to_initialize_from)
        arrays, _ = store.load_snapshot(source)
    targets = named_arrays(layout, optimizer, state)
    trainable = [name for name, _, _ in layout.variables()]
    patterns = settings.vars_to_warm_start
    vocab_info = settings.var_name_to_vocab_info or {}
    previous = settings.var_name_to_prev_var_name or {}
    if patterns is None:
        chosen = [n for n in trainable if n in vocab_info]
    elif isinstance(patterns, str):
        chosen = [n for n in trainable if re.match(patterns, n)]
    else:
        everything = [n for n, (a, _) in targets.items() if n != GLOBAL_STEP and a.ndim > 0]
        chosen = [n for n in everything if any(re.match(p, n) for p in patterns)]
    if not chosen:
        raise ConfigError(f"warm start from {source}: no variable matches vars_to_warm_start={patterns!r}.")
    for name in chosen:
        base = name
        slot_suffix = ""
        for slot in optimizer.slot_names:
            prefix = f"training/{optimizer.name}/"
            if name.startswith(prefix) and name.endswith("/" + slot):
                base, slot_suffix = name[len(prefix):-len(slot) - 1], slot
        old_base = previous.get(base, base)
        old_name = optimizer.slot_variable(old_base, slot_suffix) if slot_suffix else old_base
        if old_name not in arrays:
            if slot_suffix and from_tf and not any(n.startswith(f"training/{optimizer.name}/") for n in arrays):
                continue  # a TF checkpoint saved without this optimizer's slots: they keep their initial values
            raise CheckpointError(
                f"warm start: {source} has no variable {old_name!r} (for {name!r}). Map names with"
                " var_name_to_prev_var_name, or narrow vars_to_warm_start.")
        target, fill = targets[name]
        old = arrays[old_name]
        if base in vocab_info:
            _remap_vocabulary(target, old, vocab_info[base], fill, name)
            continue
        if old.shape != target.shape:
            raise CheckpointError(
                f"warm start: variable {name!r} has shape {list(old.shape)} in {source} but {list(target.shape)}"
                " in this model (changed hash_bucket_size, vocabulary or n_classes?). Use VocabInfo for a"
                " changed vocabulary, or leave this variable out of vars_to_warm_start.")
        target[...] = old


def _remap_vocabulary(target: np.ndarray, old: np.ndarray, info: Any, fill: float, name: str) -> None:
    """Rows of a new vocabulary take the old rows of the same entry; others start at the backup value."""
    new_vocab = _vocabulary_of(info.new_vocab)[:info.new_vocab_size]
    old_vocab = _vocabulary_of(info.old_vocab)
    if info.old_vocab_size >= 0:
        old_vocab = old_vocab[:info.old_vocab_size]
    backup = fill if info.backup_initializer is None or fill != 0.0 else float(info.backup_initializer)
    target[...] = backup
    old_rows = {entry: i for i, entry in enumerate(old_vocab)}
    for new_row, entry in enumerate(new_vocab):
        old_row = old_rows.get(entry)
        if old_row is not None and old_row < old.shape[0] and new_row < target.shape[0]:
            target[new_row] = old[old_row]

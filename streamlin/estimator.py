"""``LinearClassifier``: TF's canned linear estimator, wired over streamlin's pipeline.

input_fn --inputs--> Chunk --feature_column--> SparseRows --kernels.learn--> state --checkpoint-->
model_dir. This module only wires: the arithmetic is in ``kernels``, the I/O in ``inputs`` and
``checkpoint``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from streamlin import state as model_state
from streamlin._arrow import to_float64
from streamlin.checkpoint import store
from streamlin.config import RunConfig, WarmStartSettings
from streamlin.errors import ConfigError, InputError, MissingFeatureError
from streamlin.feature_column.columns import NumericColumn
from streamlin.feature_column.layout import COMBINERS, EntryBuffers, Layout, SparseRows
from streamlin.feature_column.transform import get_feature
from streamlin.heads import Head
from streamlin.inputs import Chunk, StreamingInputFn, iter_chunks
from streamlin.kernels.learn import train_steps
from streamlin.kernels.sparse import add_logits
from streamlin.metrics import MetricKeys, StreamingMetrics
from streamlin.optimizers import get_optimizer
from streamlin.pipeline import ReadAhead
from streamlin.scratch import LearnScratch

log = logging.getLogger("streamlin")

# Steps of fewer rows than this (on average) get row-major entries: the learn kernel's walk over
# every column costs more per step than reordering the chunk once (measured break-even: ~32 rows).
ROW_MAJOR_BELOW_ROWS_PER_STEP = 32

PREDICTION_KEYS = ("logits", "logistic", "probabilities", "class_ids", "classes", "all_class_ids", "all_classes")


@dataclass
class _Prepared:
    """A chunk after the feature stage: what the kernels consume."""

    chunk: Chunk
    rows: SparseRows
    labels: np.ndarray | None      # float64 (n_rows,)
    weights: np.ndarray            # float32 (n_rows,)
    buffers: EntryBuffers | None = None  # what ``rows`` live in, when borrowed from a _BufferPool


class _BufferPool:
    """EntryBuffers handed from the feature stage to the learner and back (thread-safe). As many
    exist as chunks are in flight (read-ahead depth + 2), so streaming allocates no entries."""

    def __init__(self) -> None:
        self._free: queue.SimpleQueue = queue.SimpleQueue()

    def acquire(self) -> EntryBuffers:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return EntryBuffers()

    def release(self, buffers: EntryBuffers | None) -> None:
        """Hand ``buffers`` back once nothing reads the rows written into them."""
        if buffers is not None:
            self._free.put(buffers)


class LinearClassifier:
    """A linear classifier over feature columns, trained by streaming batches (TF's LinearClassifier).

    Parameters follow ``tf.estimator.LinearClassifier``; see ``API.md``. Differences from TF on
    purpose: ``warm_start_from=<path>`` also restores optimizer slots (``WarmStartSettings`` keeps
    TF's weights-only rules), and ``classes`` are ``str``, not bytes.
    """

    def __init__(self, feature_columns: Sequence, model_dir: str | os.PathLike | None = None, n_classes: int = 2,
                 weight_column: str | NumericColumn | None = None, label_vocabulary: Sequence[str] | None = None,
                 optimizer: Any = "Ftrl", config: RunConfig | None = None, warm_start_from: Any = None,
                 loss_reduction: str = "sum_over_batch_size", sparse_combiner: str = "sum"):
        if isinstance(feature_columns, (str, bytes)) or not isinstance(feature_columns, Iterable):
            raise ConfigError(f"feature_columns must be a list of columns; found {feature_columns!r}.")
        feature_columns = list(feature_columns)
        self._layout = Layout.build(feature_columns)
        self._head = Head(n_classes, tuple(label_vocabulary) if label_vocabulary is not None else None, loss_reduction)
        self._optimizer = get_optimizer(optimizer, len(feature_columns))
        if sparse_combiner not in COMBINERS:
            raise ConfigError(f"sparse_combiner must be 'sum', 'mean' or 'sqrtn'; found {sparse_combiner!r}.")
        self._sparse_combiner = sparse_combiner
        if isinstance(weight_column, NumericColumn):
            weight_column = weight_column.key
        if weight_column is not None and not isinstance(weight_column, str):
            raise ConfigError(f"weight_column must be a feature key or a numeric_column; found {weight_column!r}.")
        self._weight_column = weight_column
        config = config or RunConfig()
        if not isinstance(config, RunConfig):
            raise ConfigError(f"config must be a streamlin.RunConfig; found {type(config).__name__}.")
        if model_dir is None:
            model_dir = config.model_dir
        if model_dir is None:
            model_dir = tempfile.mkdtemp(prefix="streamlin-")
            log.warning("Using temporary folder as model directory: %s", model_dir)
        elif config.model_dir is not None and os.fspath(config.model_dir) != os.fspath(model_dir):
            raise ConfigError(
                f"model_dir={os.fspath(model_dir)!r} differs from config.model_dir={config.model_dir!r}; give one.")
        self._model_dir = os.fspath(model_dir)
        self._config = config.replace(model_dir=self._model_dir)
        if warm_start_from is not None and not isinstance(warm_start_from, (str, os.PathLike, WarmStartSettings)):
            raise ConfigError(f"warm_start_from must be a path or WarmStartSettings; found {warm_start_from!r}.")
        self._warm_start_from = os.fspath(warm_start_from) if isinstance(warm_start_from, os.PathLike) else warm_start_from

    # -- properties --------------------------------------------------------------------------
    @property
    def model_dir(self) -> str:
        return self._model_dir

    @property
    def config(self) -> RunConfig:
        return self._config

    @property
    def params(self) -> dict:
        return {"n_classes": self._head.n_classes, "label_vocabulary": self._head.label_vocabulary,
                "weight_column": self._weight_column, "optimizer": self._optimizer.to_config(),
                "loss_reduction": self._head.loss_reduction, "sparse_combiner": self._sparse_combiner,
                "feature_columns": list(self._layout.columns)}

    def __repr__(self) -> str:
        return (f"LinearClassifier({len(self._layout.columns)} columns, {self._layout.n_slots:,} slots,"
                f" n_classes={self._head.n_classes}, optimizer={type(self._optimizer).__name__},"
                f" model_dir={self._model_dir!r})")

    def eval_dir(self, name: str | None = None) -> str:
        return os.path.join(self._model_dir, "eval" if not name else f"eval_{name}")

    def latest_checkpoint(self) -> str | None:
        snapshot = store.latest_snapshot(self._model_dir)
        return snapshot.path if snapshot else None

    def get_variable_names(self) -> list[str]:
        """TF names of every variable in the latest checkpoint (weights, slots, global_step)."""
        path = store.resolve(self._model_dir, None)
        _, attrs = store.load_snapshot(path, names=[])
        return list(attrs.get("variables", []))

    def get_variable_value(self, name: str) -> np.ndarray:
        """The value of variable ``name`` in the latest checkpoint (float32 arrays; int64 global_step)."""
        path = store.resolve(self._model_dir, None)
        names = self.get_variable_names()
        if name not in names:
            raise KeyError(f"{name!r} is not a variable of {path}; variables: {', '.join(names)}")
        arrays, _ = store.load_snapshot(path, names=[name])
        value = arrays[name]
        return value if value.ndim else value[()]

    # -- state -------------------------------------------------------------------------------
    def _spec(self) -> dict:
        return model_state.model_spec(self._layout, self._head, self._optimizer, self._sparse_combiner,
                                      self._weight_column)

    def _restore(self, path: str) -> model_state.ModelState:
        return model_state.restore(path, self._layout, self._head, self._optimizer)

    def _load_tf_state(self, path: Any) -> model_state.ModelState:
        from streamlin.tf_import import load_tf_state

        return load_tf_state(path, self._layout, self._head, self._optimizer)

    def _load_checkpoint(self, checkpoint_path: Any) -> tuple[str, model_state.ModelState]:
        """(path, state with weights only) of a streamlin snapshot (path, model_dir or step) or a TF checkpoint."""
        from streamlin.tf_import import is_tf_checkpoint

        if is_tf_checkpoint(checkpoint_path):
            return str(checkpoint_path), self._load_tf_state(checkpoint_path)
        path = store.resolve(self._model_dir, checkpoint_path)
        return path, model_state.restore(path, self._layout, self._head, self._optimizer, weights_only=True)

    def _initial_state(self) -> model_state.ModelState:
        """The latest checkpoint; else a warm start; else zeros."""
        latest = store.latest_snapshot(self._model_dir)
        if latest is not None:
            return self._restore(latest.path)
        state = model_state.ModelState.zeros(self._layout, self._head, self._optimizer)
        if self._warm_start_from is not None:
            model_state.warm_start(state, self._layout, self._head, self._optimizer, self._warm_start_from)
        return state

    def _save(self, state: model_state.ModelState) -> str:
        path = model_state.save(self._model_dir, self._layout, self._head, self._optimizer, state, self._spec())
        store.apply_retention(self._model_dir, self._config.keep_checkpoint_max,
                              self._config.keep_checkpoint_every_n_hours, self._config.keep_best)
        return path

    # -- the feature stage (runs in the read-ahead thread) ---------------------------------------
    def _needed_columns(self, need_labels: bool = True) -> list[str]:
        """Feature keys to read; the weight column only where labels are (train, evaluate)."""
        keys = list(self._layout.feature_keys)
        if self._weight_column and need_labels:
            keys.append(self._weight_column)
        return keys

    def _prepare(self, chunk: Chunk, need_labels: bool, bad_rows: _BadRows | None = None,
                 buffers: EntryBuffers | None = None) -> _Prepared | None:
        """The feature stage; under a skip/log policy, rows that fail validation are dropped.
        ``buffers``: where to write the entries (else new arrays)."""
        while True:
            try:
                return self._prepare_rows(chunk, need_labels, buffers)
            except InputError as exc:
                if bad_rows is None or exc.rows is None or not len(exc.rows):
                    raise
                bad_rows.record(chunk, exc)
                chunk = chunk.drop_rows(np.asarray(exc.rows, dtype=np.int64))
                if chunk.n_rows == 0:
                    return None

    def _prepare_rows(self, chunk: Chunk, need_labels: bool, buffers: EntryBuffers | None) -> _Prepared:
        source = chunk.source_of(0)[0] or "input"
        try:
            return self._prepare_located(chunk, need_labels, buffers)
        except MissingFeatureError as exc:
            raise MissingFeatureError(f"{source}: {exc}") from None
        except InputError as exc:  # messages without a row (a column's type) still name the file
            if source in str(exc):
                raise
            raise InputError(f"{source}: {exc}", rows=exc.rows) from None

    def _prepare_located(self, chunk: Chunk, need_labels: bool, buffers: EntryBuffers | None) -> _Prepared:
        n_steps = max(1, len(chunk.step_bounds) - 1)
        row_major = chunk.n_rows < ROW_MAJOR_BELOW_ROWS_PER_STEP * n_steps
        rows = self._layout.sparse_rows(chunk.features, self._sparse_combiner, chunk.locate, row_major, buffers)
        labels = None
        if need_labels:
            if chunk.labels is None:
                raise InputError(
                    f"{chunk.locate(0)}: the input gives no labels; train and evaluate need them (label_key, or"
                    " (features, labels) pairs from input_fn).")
            labels = self._head.encode_labels(chunk.labels, chunk.locate, chunk.label_key or "label")
        weights = self._example_weights(chunk) if need_labels else np.ones(chunk.n_rows, dtype=np.float32)
        return _Prepared(chunk, rows, labels, weights, buffers)

    def _example_weights(self, chunk: Chunk) -> np.ndarray:
        n = chunk.n_rows
        if self._weight_column is None:
            return np.ones(n, dtype=np.float32)
        array = get_feature(chunk.features, self._weight_column, f"weight_column {self._weight_column!r}")
        if not (pa.types.is_floating(array.type) or pa.types.is_integer(array.type)):
            raise InputError(f"weight_column {self._weight_column!r} must hold numbers; found {array.type}.")
        values = to_float64(array)
        with np.errstate(over="ignore"):
            bad = np.flatnonzero(~(values >= 0) | ~np.isfinite(values.astype(np.float32)))
        if bad.size:
            row = int(bad[0])
            raise InputError(
                f"{chunk.locate(row)}, column {self._weight_column!r}: example weight {values[row]!r} is not a"
                " finite number >= 0. Fix or drop the row.", rows=bad)
        return values.astype(np.float32)

    def _prepared_chunks(self, input_fn: Callable, need_labels: bool, pool: _BufferPool, start: dict | None = None,
                         bad_rows: _BadRows | None = None) -> ReadAhead:
        """Prepared chunks, read and hashed in a background thread that starts now. Entries are
        written into ``pool``'s buffers; the consumer releases each chunk's back once it has read them."""
        chunks = iter_chunks(input_fn, self._needed_columns(need_labels), self._config.chunk_rows, start)

        def stage(chunk: Chunk) -> _Prepared | None:
            buffers = pool.acquire()
            prepared = self._prepare(chunk, need_labels, bad_rows, buffers)
            if prepared is None:  # every row was dropped
                pool.release(buffers)
            return prepared

        return ReadAhead(chunks, stage)

    def _resume_position(self, input_fn: Callable) -> dict | None:
        """Where a built-in maker's input resumes (RunConfig(resume_input=True)), or None: the
        position the latest snapshot recorded (read from its attributes alone)."""
        if not self._config.resume_input or not isinstance(input_fn, StreamingInputFn):
            return None
        latest = store.latest_snapshot(self._model_dir)
        position = store.load_snapshot(latest.path, names=[])[1].get("input_position") if latest else None
        if not isinstance(position, dict) or "distributed" in position:  # a distributed run's plan is its driver's business
            return None
        if position.get("identity") != _jsonable(input_fn.identity()):
            log.warning("resume_input: the input differs from the one the latest checkpoint recorded; reading from the start")
            return None
        return position

    # -- train ---------------------------------------------------------------------------------
    def train(self, input_fn: Callable, hooks: Sequence | None = None, steps: int | None = None,
              max_steps: int | None = None) -> LinearClassifier:
        """Train on ``input_fn``'s batches (one batch = one step), resuming from the latest checkpoint.

        ``steps`` more steps, or up to ``max_steps`` in total, or until the input ends.
        """
        if steps is not None and max_steps is not None:
            raise ConfigError("train: give steps or max_steps, not both.")
        for name, value in (("steps", steps), ("max_steps", max_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ConfigError(f"train: {name} must be a positive integer; found {value!r}.")
        if self._config.train_distribute is not None:
            return self._config.train_distribute.train(self, input_fn, hooks=hooks, steps=steps, max_steps=max_steps)
        store.cleanup_leftovers(self._model_dir)
        bad_rows = _BadRows.for_input(input_fn)
        pool = _BufferPool()
        # Reading and hashing start now, overlapping the model's set-up and first snapshot.
        with self._prepared_chunks(input_fn, True, pool, self._resume_position(input_fn), bad_rows) as prepared:
            state = self._initial_state()
            if max_steps is not None and state.global_step >= max_steps:
                log.info("skipping training: global_step %d already reached max_steps %d", state.global_step,
                         max_steps)
                return self
            target = state.global_step + steps if steps is not None else max_steps
            hooks = list(hooks or [])
            for hook in hooks:
                getattr(hook, "begin", lambda: None)()
            if not any(s.step == state.global_step for s in store.list_snapshots(self._model_dir)):
                self._save(state)
            identity = (_jsonable(input_fn.identity())
                        if self._config.resume_input and isinstance(input_fn, StreamingInputFn) else None)
            loop = _TrainLoop(self, state, target, hooks, identity)
            try:
                for chunk in prepared:
                    done = loop.run_chunk(chunk)
                    pool.release(chunk.buffers)
                    if done:
                        break
            finally:
                loop.close()
                if bad_rows is not None:
                    bad_rows.report(self._model_dir, state.global_step)
        for hook in hooks:
            getattr(hook, "end", lambda step: None)(state.global_step)
        return self

    # -- evaluate ------------------------------------------------------------------------------
    def _logits(self, rows: SparseRows, table: np.ndarray) -> np.ndarray:
        out = np.empty((rows.n_rows, table.shape[2]), dtype=np.float64)
        add_logits(rows.col_indptr, rows.slots, rows.values, table, self._layout.bias_slot, 0, rows.n_rows, out)
        return out

    def evaluate(self, input_fn: Callable, steps: int | None = None, hooks: Sequence | None = None,
                 checkpoint_path: Any = None, name: str | None = None) -> dict:
        """TF's evaluation metrics of a checkpoint (default: the latest) on ``input_fn``'s batches.

        Also appends them, with the snapshot's step and path, to ``eval_dir(name)/metrics.jsonl``.
        """
        if self._config.eval_distribute is not None:
            return self._config.eval_distribute.evaluate(self, input_fn, steps=steps, hooks=hooks,
                                                        checkpoint_path=checkpoint_path, name=name)
        path, state = self._load_checkpoint(checkpoint_path)
        metrics = StreamingMetrics(self._head)
        done = 0
        bad_rows = _BadRows.for_input(input_fn)
        pool = _BufferPool()
        with self._prepared_chunks(input_fn, True, pool, bad_rows=bad_rows) as chunks:
            for prepared in chunks:
                bounds = prepared.chunk.step_bounds
                n_steps = len(bounds) - 1 if steps is None else min(len(bounds) - 1, steps - done)
                end = int(bounds[n_steps])
                logits = self._logits(prepared.rows, state.table)[:end]
                pool.release(prepared.buffers)
                metrics.update(logits, prepared.labels[:end], prepared.weights[:end].astype(np.float64), bounds[:n_steps + 1])
                done += n_steps
                if steps is not None and done >= steps:
                    break
        if bad_rows is not None:
            bad_rows.report(None, state.global_step)
        result = metrics.result()
        result[MetricKeys.GLOBAL_STEP] = state.global_step
        self._record_eval(name, path, state.global_step, result)
        return result

    def _record_eval(self, name: str | None, path: str, step: int, result: dict) -> None:
        directory = Path(self.eval_dir(name))
        directory.mkdir(parents=True, exist_ok=True)
        record = {"time": time.time(), "global_step": step, "checkpoint_path": path,
                  "metrics": {k: float(v) for k, v in result.items()}}
        with open(directory / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    # -- predict -------------------------------------------------------------------------------
    def predict(self, input_fn: Callable, predict_keys: Sequence[str] | str | None = None, hooks: Sequence | None = None,
                checkpoint_path: Any = None, yield_single_examples: bool = True) -> Iterator[dict]:
        """Yield TF's prediction dicts, one per example (or one per batch of arrays)."""
        keys = _prediction_keys(predict_keys, self._head.n_classes)
        _, state = self._load_checkpoint(checkpoint_path)
        return self._predict_stream(input_fn, keys, state, yield_single_examples)

    def _predict_stream(self, input_fn, keys, state, yield_single_examples) -> Iterator[dict]:
        pool = _BufferPool()
        with self._prepared_chunks(input_fn, False, pool) as chunks:
            for prepared in chunks:
                logits = self._logits(prepared.rows, state.table)
                pool.release(prepared.buffers)
                predictions = self._head.predictions(logits)
                predictions = {k: predictions[k] for k in keys}
                bounds = prepared.chunk.step_bounds
                for a, b in zip(bounds[:-1], bounds[1:]):
                    if yield_single_examples:
                        for i in range(a, b):
                            yield {k: v[i] for k, v in predictions.items()}
                    else:
                        yield {k: v[a:b] for k, v in predictions.items()}

    # -- export --------------------------------------------------------------------------------
    def export_saved_model(self, export_dir_base: str | os.PathLike, serving_input_receiver_fn: Any = None,
                           checkpoint_path: Any = None) -> str:
        """Write a timestamped, pickle-free export (weights + model description); returns its path."""
        from streamlin.export import write_export

        _, state = self._load_checkpoint(checkpoint_path)
        return write_export(export_dir_base, self._layout, self._head, self._sparse_combiner, state, self._spec())


class _BadRows:
    """Rows dropped under ``on_bad_row="skip"|"log"``: counted, optionally logged and written to a file."""

    def __init__(self, policy: str, side_file: str | None):
        self.policy = policy
        self.side_file = side_file
        self.count = 0
        self.first: str | None = None

    @classmethod
    def for_input(cls, input_fn: Any) -> _BadRows | None:
        policy = getattr(input_fn, "on_bad_row", "raise")
        if policy == "raise" or not isinstance(input_fn, StreamingInputFn):
            return None
        return cls(policy, input_fn.bad_rows_file)

    def record(self, chunk: Chunk, error: InputError) -> None:
        rows = np.asarray(error.rows, dtype=np.int64)
        self.count += len(rows)
        reason = str(error)
        self.first = self.first or reason
        if self.policy == "log":
            for row in rows:
                log.warning("skipping bad row: %s (%s)", chunk.locate(int(row)), reason)
        if self.side_file:
            with open(self.side_file, "a", encoding="utf-8") as handle:
                for row in rows:
                    source, global_row = chunk.source_of(int(row))
                    handle.write(json.dumps({"source": source, "row": global_row, "reason": reason}) + "\n")

    def report(self, model_dir: str | None, step: int) -> None:
        if not self.count:
            return
        log.warning("skipped %d bad rows (on_bad_row=%r); the first: %s", self.count, self.policy, self.first)
        if model_dir is not None:
            Path(model_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(model_dir) / "train_log.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"event": "bad_rows", "time": time.time(), "global_step": step,
                                         "skipped_rows": self.count, "first": self.first}) + "\n")


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparisons with saved attrs."""
    return json.loads(json.dumps(value))


def _prediction_keys(predict_keys: Any, n_classes: int) -> list[str]:
    available = [k for k in PREDICTION_KEYS if not (k == "logistic" and n_classes > 2)]
    if predict_keys is None:
        return available
    keys = [predict_keys] if isinstance(predict_keys, str) else list(predict_keys)
    unknown = [k for k in keys if k not in available]
    if unknown:
        raise ConfigError(f"predict_keys {unknown} are not prediction keys of this head; choose from {available}.")
    return keys


class _TrainLoop:
    """Steps through prepared chunks with the learn kernel, saving and logging at step boundaries."""

    def __init__(self, estimator: LinearClassifier, state: model_state.ModelState, target: int | None, hooks: list,
                 input_identity: dict | None = None):
        self.estimator = estimator
        self.input_identity = input_identity
        self.state = state
        self.target = target
        self.hooks = hooks
        self.step_hooks = [h for h in hooks if hasattr(h, "before_step") or hasattr(h, "after_step")]
        config = estimator.config
        self.save_steps = config.save_checkpoints_steps
        self.save_secs = config.save_checkpoints_secs
        self.log_steps = config.log_step_count_steps
        self.last_save_time = time.monotonic()
        self.last_saved_step = state.global_step
        self.last_log_step = state.global_step
        self.last_log_time = time.monotonic()
        self.rows_since_log = 0
        self.loss_since_log = 0.0
        self.steps_since_log = 0
        self.hparams = estimator._optimizer.hparams()
        self.scratch = LearnScratch(state.table.shape[2])

    def _next_stop(self, chunk_steps_left: int) -> int:
        n = chunk_steps_left
        gs = self.state.global_step
        if self.target is not None:
            n = min(n, self.target - gs)
        if self.save_steps:
            n = min(n, self.save_steps - gs % self.save_steps)
        if self.step_hooks:
            n = min(n, 1)
        return n

    def run_chunk(self, prepared: _Prepared) -> bool:
        """Train on one chunk; True when the step target is reached."""
        est = self.estimator
        state = self.state
        optimizer = est._optimizer
        head = est._head
        rows = prepared.rows
        bounds = prepared.chunk.step_bounds
        n_steps = len(bounds) - 1
        self.scratch.fit(rows, bounds)
        learning_rates = optimizer.learning_rates(state.global_step, n_steps)
        losses = np.zeros(n_steps, dtype=np.float64)
        step = 0
        while step < n_steps:
            n = self._next_stop(n_steps - step)
            if n <= 0:
                return True
            for hook in self.step_hooks:
                getattr(hook, "before_step", lambda s: None)(state.global_step)
            train_steps(rows.col_indptr, rows.slots, rows.values, rows.one_per_row, prepared.labels, prepared.weights, bounds,
                        step, step + n, est._layout.bias_slot, state.table, optimizer.code, self.hparams,
                        learning_rates, head.loss_kind, head.reduce_sum, *self.scratch.kernel_arguments(), losses)
            state.global_step += n
            state.pristine = False
            if self.input_identity is not None:
                position = prepared.chunk.position_at(int(bounds[step + n]))
                state.input_position = None if position is None else {**position, "identity": self.input_identity}
            self._after_steps(losses[step:step + n], int(bounds[step + n] - bounds[step]))
            step += n
            if self.target is not None and state.global_step >= self.target:
                return True
        return False

    def _after_steps(self, losses: np.ndarray, rows: int) -> None:
        state = self.state
        for hook in self.step_hooks:
            getattr(hook, "after_step", lambda step, loss: None)(state.global_step, float(losses[-1]))
        self.rows_since_log += rows
        self.loss_since_log += float(losses.sum())
        self.steps_since_log += len(losses)
        gs = state.global_step
        if self.log_steps and gs - self.last_log_step >= self.log_steps:
            now = time.monotonic()
            elapsed = max(now - self.last_log_time, 1e-9)
            log.info("global_step %d: loss %.6g, %.0f rows/s, %.1f steps/s", gs,
                     self.loss_since_log / max(self.steps_since_log, 1), self.rows_since_log / elapsed,
                     self.steps_since_log / elapsed)
            self.last_log_step, self.last_log_time = gs, now
            self.rows_since_log, self.loss_since_log, self.steps_since_log = 0, 0.0, 0
        due = (self.save_steps and gs % self.save_steps == 0) or (
            self.save_secs is not None and time.monotonic() - self.last_save_time >= self.save_secs)
        if due and gs != self.last_saved_step:
            self._save()

    def _save(self) -> None:
        self.estimator._save(self.state)
        self.last_saved_step = self.state.global_step
        self.last_save_time = time.monotonic()

    def close(self) -> None:
        if self.state.global_step != self.last_saved_step:
            self._save()

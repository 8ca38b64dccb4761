"""The driver: synchronous training rounds, their merge and checkpoints; distributed evaluation.

A round: broadcast the global state; each worker trains its next ``rows_per_round`` rows from it
(``tasks.train_round``) and returns the rows of the table it changed; the driver merges them in
worker order (``kernels.merge``), advances ``global_step`` by the sum of the workers' steps, and
saves a snapshot when one is due. Under ``guarded`` the driver computes both the ``contract`` and
the ``average`` merge and keeps the one with the lower loss on a *probe*: the first rows of the
next round, which no worker has trained on yet (progressive validation). The round that has no
next round keeps the rule that won the round before (``contract`` if there was none).

The snapshot's ``input_position`` records the pass: the plan (files, units, K, round size), the
round, each worker's cursor and the last rule; a ``train`` that finds an unfinished pass there (a
driver that died) continues it, and ends with the same model as an uninterrupted run.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from streamlin.checkpoint import store
from streamlin.distribute import tasks
from streamlin.distribute.engine import Engine
from streamlin.distribute.plan import Plan, check_input_fn, learning_rate_steps
from streamlin.errors import ConfigError
from streamlin.heads import per_example_loss
from streamlin.kernels.learn import OPTIMIZER_SGD
from streamlin.kernels.merge import MERGE_AVERAGE, MERGE_BOTH, MERGE_CONTRACT, merge_workers
from streamlin.metrics import MetricKeys, StreamingMetrics

log = logging.getLogger("streamlin")

RULES = ("guarded", "contract", "average")
MIN_ROWS_PER_ROUND = 50_000
PROBE_ROWS = 32_768
POSITION_FORMAT = 1


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def worker_model(estimator) -> Any:
    """A copy of ``estimator`` that workers use: the same model, without distribution engines."""
    model = copy.copy(estimator)
    model._config = estimator._config.replace(train_distribute=None, eval_distribute=None)
    return model


def merge_results(table: np.ndarray, results: Sequence[dict], optimizer, lr: float, mode: int):
    """Merge workers' round results (in worker order) with ``kernels.merge.merge_workers``.

    Returns
    -------
    (union int64 (U,), first float32 (U, n_parts, units), second float32 or None)
        ``second`` (the average rule) only under MERGE_BOTH.
    """
    idx = np.concatenate([r["idx"] for r in results]) if results else np.empty(0, dtype=np.int64)
    values = (np.concatenate([r["values"] for r in results]) if results
              else np.empty((0,) + table.shape[1:], dtype=np.float32))
    offsets = np.zeros(len(results) + 1, dtype=np.int64)
    np.cumsum([len(r["idx"]) for r in results], out=offsets[1:])
    total = len(idx)
    out_idx = np.empty(total, dtype=np.int64)
    first = np.empty((total,) + table.shape[1:], dtype=np.float32)
    second = np.empty((total if mode == MERGE_BOTH else 0,) + table.shape[1:], dtype=np.float32)
    n = merge_workers(table, idx.astype(np.int64, copy=False), offsets, values.astype(np.float32, copy=False),
                      optimizer.code, optimizer.hparams(), float(lr), mode, out_idx, first, second)
    return out_idx[:n], first[:n], (second[:n] if mode == MERGE_BOTH else None)


def probe_loss(model, probe: list, table: np.ndarray, union: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean loss on the probe's prepared chunks with ``table``'s weights replaced at ``union``."""
    saved = table[union, 0, :].copy()
    table[union, 0, :] = weights
    try:
        loss, weight = 0.0, 0.0
        for prepared in probe:
            logits = model._logits(prepared.rows, table)
            w = prepared.weights.astype(np.float64)
            loss += float((per_example_loss(logits, prepared.labels, model._head.n_classes) * w).sum())
            weight += float(w.sum())
    finally:
        table[union, 0, :] = saved
    return loss / weight if weight > 0 else math.nan


class Distributed:
    """Base of the ``streamlin.distribute`` engines: checks, the round loop, distributed evaluate.

    Subclasses provide ``_engine()`` (an :class:`~streamlin.distribute.engine.Engine`).
    ``history`` lists, after a ``train``, one dict per round: rows, steps, seconds, the probe's
    losses, the winning rule, and the bytes moved.
    """

    def __init__(self, n_workers: int | None, sync_every_rows: int, merge: str):
        if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
            raise ConfigError(f"{type(self).__name__}: n_workers must be a positive integer or None; found {n_workers!r}.")
        if isinstance(sync_every_rows, bool) or not isinstance(sync_every_rows, int) or sync_every_rows < MIN_ROWS_PER_ROUND:
            raise ConfigError(
                f"{type(self).__name__}: sync_every_rows must be an integer >= {MIN_ROWS_PER_ROUND:,} (rows each worker"
                f" trains between two synchronisations); found {sync_every_rows!r}. Smaller rounds make the merged"
                " model worse and the overhead larger; the default is 1,000,000.")
        if merge not in RULES:
            raise ConfigError(f"{type(self).__name__}: merge must be one of {list(RULES)}; found {merge!r}.")
        self.n_workers = n_workers
        self.sync_every_rows = sync_every_rows
        self.merge = merge
        self.history: list[dict] = []

    def _engine(self) -> Engine:
        raise NotImplementedError

    def train(self, estimator, input_fn, hooks: Sequence | None = None, steps: int | None = None,
              max_steps: int | None = None):
        """``LinearClassifier.train`` in synchronous rounds on this engine; returns ``estimator``.

        One batch of one worker is one step: a round advances ``global_step`` by the sum of the
        workers' steps, and worker k's j-th step of a round sees the learning rate of global step
        ``start + j K + k`` (their round-robin interleaving). ``steps``/``max_steps`` stop exactly:
        the last round runs the first remaining steps in that interleaved order. Snapshots are
        written at round boundaries only: when ``save_checkpoints_steps``/``_secs`` fall due (rounded
        up to the next boundary) and at the end. Differences from one process: hooks'
        ``before_step``/``after_step`` run once per round (with the global step and the round's mean
        step loss); a ``train`` whose latest snapshot holds an unfinished distributed pass of the same
        input continues it (a driver that died resumes); errors locate rows as
        ``<file>, row <row in that file>``.

        Raises
        ------
        ConfigError
            ``input_fn`` is not a built-in file maker.
        """
        check_input_fn(input_fn, "train_distribute")
        if getattr(input_fn, "shuffle_files", False) and input_fn.seed is None:
            raise ConfigError(
                f"train_distribute: {input_fn!r} shuffles its files without a seed; every worker, and a resumed pass,"
                " must see the same file order. Pass seed=<an int> to the input maker.")
        return _Training(self, estimator, input_fn, list(hooks or []), steps, max_steps).run()

    def evaluate(self, estimator, input_fn, steps: int | None = None, hooks: Sequence | None = None,
                 checkpoint_path: Any = None, name: str | None = None) -> dict:
        """``LinearClassifier.evaluate`` as a map of additive counts per unit, added on the driver.

        Returns the values one process computes for the same snapshot (sums in another order: the
        loss to ~1e-15 relative; counts with integer weights, hence the AUC, exactly).

        Raises
        ------
        ConfigError
            ``input_fn`` is not a built-in file maker, or it never ends (num_epochs=None without steps).
        """
        check_input_fn(input_fn, "eval_distribute")
        return _evaluate(self, estimator, input_fn, steps, checkpoint_path, name)


class _Training:
    """One distributed ``train`` call."""

    def __init__(self, strategy: Distributed, estimator, input_fn, hooks: list, steps, max_steps):
        self.strategy, self.est, self.input_fn, self.hooks = strategy, estimator, input_fn, hooks
        self.steps, self.max_steps = steps, max_steps
        self.batch_size = input_fn.batch_size
        self.rows_per_round = max(1, strategy.sync_every_rows // self.batch_size) * self.batch_size
        self.identity = _jsonable(input_fn.identity())

    # -- the pass: where every worker stands ------------------------------------------------------
    def _recorded(self, state, plan: Plan) -> dict | None:
        position = state.input_position if isinstance(state.input_position, dict) else None
        recorded = (position or {}).get("distributed")
        if not isinstance(recorded, dict) or recorded.get("format") != POSITION_FORMAT:
            return None
        recorded_plan = recorded.get("plan", {})
        same = (recorded.get("identity") == self.identity and recorded_plan.get("units") == _jsonable(plan.signature())
                and recorded_plan.get("rows_per_round") == self.rows_per_round)
        if not same:
            if not recorded.get("finished"):
                log.warning("train_distribute: the latest checkpoint records an unfinished pass over another input or"
                            " round size; starting a new pass at the start of this input")
            return None
        if recorded.get("finished") and not self.est.config.resume_input:
            return None
        return recorded

    def _start_pass(self, plan: Plan, recorded: dict | None) -> None:
        self.round = 0
        self.epoch = 0
        self.pieces: list | None = None
        self.last_rule: str | None = None
        k = plan.n_workers
        self.cursors = [[0, 0] for _ in range(k)]
        if recorded is None:
            return
        self.round = int(recorded["round"])
        self.epoch = int(recorded["epoch"])
        self.last_rule = recorded.get("last_rule")
        self.pieces = recorded.get("pieces")
        cursors = [list(map(int, c)) for c in recorded["cursors"]]
        old_k = int(recorded["plan"]["workers"])
        if old_k == k:
            self.cursors = cursors
            return
        units = plan.units(self.input_fn, self.epoch)
        left = plan.remaining(units, plan.deal(units, self.pieces, old_k), cursors)
        log.info("train_distribute: the recorded pass used %d workers, this one %d; re-dealing its %d remaining"
                 " pieces", old_k, k, len(left))
        self.pieces = left
        streams = plan.deal(units, left)
        self.cursors = [[0, stream[0].begin if stream else 0] for stream in streams]

    def _streams(self, plan: Plan):
        units = plan.units(self.input_fn, self.epoch)
        return units, plan.deal(units, self.pieces)

    def _position(self, plan: Plan, finished: bool) -> dict:
        return {"distributed": {
            "format": POSITION_FORMAT, "identity": self.identity,
            "plan": {"deal": "fewest-rows", "workers": plan.n_workers, "rows_per_round": self.rows_per_round,
                     "batch_size": self.batch_size, "kind": plan.kind, "units": plan.signature()},
            "merge": self.strategy.merge, "epoch": self.epoch, "round": self.round,
            "cursors": [[int(a), int(b)] for a, b in self.cursors],
            "pieces": self.pieces, "last_rule": self.last_rule, "finished": finished}}

    def _epochs_left(self) -> bool:
        epochs = self.input_fn.num_epochs
        return epochs is None or self.epoch + 1 < epochs

    def _next_epoch(self, plan: Plan) -> None:
        self.epoch += 1
        self.pieces = None
        self.cursors = [[0, 0] for _ in range(plan.n_workers)]

    # -- the loop ------------------------------------------------------------------------------------
    def run(self):
        est, strategy = self.est, self.strategy
        store.cleanup_leftovers(est.model_dir)
        state = est._initial_state()
        if self.max_steps is not None and state.global_step >= self.max_steps:
            log.info("skipping training: global_step %d already reached max_steps %d", state.global_step, self.max_steps)
            return est
        target = state.global_step + self.steps if self.steps is not None else self.max_steps
        engine = strategy._engine()
        plan = Plan(self.input_fn, 1)
        recorded = self._recorded(state, plan)
        plan.n_workers = strategy.n_workers or (int(recorded["plan"]["workers"]) if recorded else engine.workers())
        self._start_pass(plan, recorded)
        if recorded is not None:
            log.info("train_distribute: continuing the pass of the latest checkpoint at round %d (global_step %d)",
                     self.round, state.global_step)
        strategy.history = []
        for hook in self.hooks:
            getattr(hook, "begin", lambda: None)()
        config = est.config
        save_steps = config.save_checkpoints_steps or None
        save_secs = config.save_checkpoints_secs
        last_save_time = time.monotonic()
        last_saved = (state.global_step, False)
        if not any(s.step == state.global_step for s in store.list_snapshots(est.model_dir)):
            state.input_position = self._position(plan, False)
            est._save(state)
            last_saved = (state.global_step, False)
        elif recorded is not None and not recorded.get("finished"):
            last_saved = (state.global_step, False)
        else:
            last_saved = (state.global_step, True)
        model = worker_model(est)
        shared = [engine.broadcast(model), engine.broadcast(self.input_fn), engine.broadcast(plan)]
        optimizer = est._optimizer
        k = plan.n_workers
        epoch_trained = recorded is not None
        try:
            while True:
                if target is not None and state.global_step >= target:
                    break
                units, streams = self._streams(plan)
                done = [self.cursors[w][0] >= len(streams[w]) for w in range(k)]
                if all(done):
                    if not (epoch_trained and self._epochs_left()):
                        break
                    self._next_epoch(plan)
                    epoch_trained = False
                    continue
                for hook in self.hooks:
                    getattr(hook, "before_step", lambda s: None)(state.global_step)
                started = time.perf_counter()
                jobs, workers = [], []
                active = [w for w in range(k) if not done[w]]
                for rank, w in enumerate(active):
                    max_rows = self.rows_per_round
                    if target is not None:  # the first (target - step) steps in round-robin order
                        cap = max(0, -(-(target - state.global_step - rank) // len(active)))
                        max_rows = min(max_rows, cap * self.batch_size)
                    if max_rows <= 0:
                        continue
                    lrs = learning_rate_steps(optimizer, state.global_step, w, k, -(-max_rows // self.batch_size))
                    jobs.append((self.epoch, w, self.cursors[w], self.pieces, max_rows, lrs))
                    workers.append(w)
                if not jobs:
                    break
                table_handle = engine.broadcast(state.table)
                try:
                    results = engine.run(tasks.train_round, jobs, shared + [table_handle])
                finally:
                    engine.release(table_handle)
                trained = time.perf_counter()
                for w, result in zip(workers, results):
                    self.cursors[w] = [int(c) for c in result["cursor"]]
                total_steps = sum(r["steps"] for r in results)
                if not total_steps:  # only empty files were left
                    continue
                epoch_trained = True
                total_rows = sum(r["rows"] for r in results)
                trained_epoch = self.epoch
                new_step = state.global_step + total_steps
                # where the next round starts: after an epoch's end, at the next epoch's start
                done = [self.cursors[w][0] >= len(streams[w]) for w in range(k)]
                if all(done) and self._epochs_left():
                    self._next_epoch(plan)
                    epoch_trained = False
                    units, streams = self._streams(plan)
                    done = [self.cursors[w][0] >= len(streams[w]) for w in range(k)]
                last = (target is not None and new_step >= target) or all(done)
                rule, losses, stats = self._merge(model, plan, state, results, optimizer, new_step, last, streams)
                state.global_step = new_step
                self.round += 1
                merged = time.perf_counter()
                mean_loss = sum(r["loss_sum"] for r in results) / total_steps
                now = time.monotonic()
                due = last or (save_steps and new_step // save_steps > last_saved[0] // save_steps) or (
                    save_secs is not None and now - last_save_time >= save_secs)
                if due:
                    state.input_position = self._position(plan, last)
                    est._save(state)
                    last_saved, last_save_time = (new_step, last), now
                record = {"round": self.round, "epoch": trained_epoch, "workers": len(results), "rows": total_rows,
                          "steps": total_steps, "global_step": new_step, "loss": mean_loss, "rule": rule,
                          "probe_contract": losses[0], "probe_average": losses[1],
                          "run_seconds": trained - started, "merge_seconds": merged - trained,
                          "seconds": time.perf_counter() - started,
                          "task_seconds": [r["seconds"] for r in results],
                          "bytes_to_workers": int(state.table.nbytes),
                          "bytes_from_workers": int(sum(r["idx"].nbytes + r["values"].nbytes for r in results)),
                          **stats}
                strategy.history.append(record)
                elapsed = max(record["seconds"], 1e-9)
                log.info("round %d: %d workers, %d rows, global_step %d, loss %.6g, %.0f rows/s, merge %s%s",
                         self.round, len(results), total_rows, new_step, mean_loss, total_rows / elapsed, rule,
                         "" if math.isnan(losses[0]) else f" (probe: contract {losses[0]:.6g}, average {losses[1]:.6g})")
                for hook in self.hooks:
                    getattr(hook, "after_step", lambda step, loss: None)(new_step, mean_loss)
        finally:
            for handle in shared:
                engine.release(handle)
        if last_saved != (state.global_step, True):
            state.input_position = self._position(plan, True)
            est._save(state)
        for hook in self.hooks:
            getattr(hook, "end", lambda step: None)(state.global_step)
        return est

    def _merge(self, model, plan: Plan, state, results: list, optimizer, new_step: int, last: bool, streams):
        """Merge the round into ``state.table``; returns (rule used, (probe contract, probe average), stats)."""
        lr = float(optimizer.learning_rates(max(new_step - 1, 0), 1)[0])
        rule = self.strategy.merge
        losses = (math.nan, math.nan)
        if optimizer.code == OPTIMIZER_SGD:
            rule, mode = "average", MERGE_CONTRACT  # SGD: the kernel averages under every rule
        elif rule == "guarded":
            mode = MERGE_BOTH if not last else (MERGE_AVERAGE if self.last_rule == "average" else MERGE_CONTRACT)
        else:
            mode = MERGE_CONTRACT if rule == "contract" else MERGE_AVERAGE
        union, first, second = merge_results(state.table, results, optimizer, lr, mode)
        chosen = first
        if mode == MERGE_BOTH:
            # the rules differ only where several workers changed a coordinate: else no probe is needed
            probe = [] if np.array_equal(first[:, 0], second[:, 0]) else self._probe(model, plan, streams)
            if probe:
                losses = (probe_loss(model, probe, state.table, union, first[:, 0, :]),
                          probe_loss(model, probe, state.table, union, second[:, 0, :]))
                self.last_rule = "average" if losses[1] < losses[0] else "contract"
            else:
                self.last_rule = self.last_rule or "contract"
            chosen = second if self.last_rule == "average" else first
            rule = self.last_rule
        elif self.strategy.merge == "guarded" and optimizer.code != OPTIMIZER_SGD:
            rule = "average" if mode == MERGE_AVERAGE else "contract"
            self.last_rule = rule
        state.table[union] = chosen
        state.pristine = False
        return rule, losses, {"merged_coordinates": int(len(union))}

    def _probe(self, model, plan: Plan, streams) -> list:
        """The next round's first rows (PROBE_ROWS over the workers that have rows left), prepared."""
        k = plan.n_workers
        share = -(-PROBE_ROWS // k)
        probe = []
        for w in range(k):
            if self.cursors[w][0] < len(streams[w]):
                probe.extend(tasks.read_probe(model, self.input_fn, plan, self.epoch, w, self.cursors[w], self.pieces,
                                              min(share, self.rows_per_round)))
        return probe


def _evaluate(strategy: Distributed, est, input_fn, steps: int | None, checkpoint_path: Any, name: str | None) -> dict:
    if input_fn.num_epochs is None and steps is None:
        raise ConfigError("evaluate: the input repeats forever (num_epochs=None); pass steps=... or num_epochs=1.")
    path, state = est._load_checkpoint(checkpoint_path)
    engine = strategy._engine()
    plan = Plan(input_fn, 1)
    batch = input_fn.batch_size
    big = np.iinfo(np.int64).max
    model = worker_model(est)
    shared = [engine.broadcast(model), engine.broadcast(input_fn)]
    try:
        counts: dict = {}
        if steps is not None:
            unknown = sorted({u for units in plan.files.values() for u in units if u.rows < 0},
                             key=lambda u: (u.source, u.part))
            if unknown:
                counts = dict(zip(unknown, engine.run(tasks.count_rows, [(u,) for u in unknown], shared[1:])))
        jobs: list[tuple] = []
        epochs: list[int] = []
        steps_left = steps
        epoch = 0
        while input_fn.num_epochs is None or epoch < input_fn.num_epochs:
            units = plan.units(input_fn, epoch)
            if steps_left is None:
                epochs.append(len(units))
                jobs.extend((u, big, epoch) for u in units)
            else:
                sizes = [counts.get(u, u.rows) for u in units]
                total = sum(sizes)
                take = min(steps_left, -(-total // batch))
                rows_left = min(total, take * batch)
                count = 0
                for u, size in zip(units, sizes):
                    if rows_left <= 0:
                        break
                    jobs.append((u, min(size, rows_left), epoch))
                    rows_left -= size
                    count += 1
                epochs.append(count)
                steps_left -= take
                if steps_left <= 0 or total == 0:
                    break
            epoch += 1
        table_handle = engine.broadcast(state.table)
        try:
            results = engine.run(tasks.evaluate_unit, jobs, shared + [table_handle])
        finally:
            engine.release(table_handle)
    finally:
        for handle in shared:
            engine.release(handle)
    metrics = StreamingMetrics(est._head)
    batch_loss_sum, n_batches = 0.0, 0
    start = 0
    for count in epochs:
        epoch_results = results[start:start + count]
        start += count
        rows = sum(r["rows"] for r in epoch_results)
        loss_sum = 0.0
        for r in epoch_results:
            tasks.add_metric_fields(metrics, r["fields"])
            loss_sum += r["fields"]["loss_sum"]
        if not rows:
            continue
        n_batches += -(-rows // batch)
        if est._head.reduce_sum:
            batch_loss_sum += loss_sum
            continue
        short = rows % batch
        tail = _tail_sum([r["tail"] for r in epoch_results], short)
        batch_loss_sum += (loss_sum - tail) / batch + (tail / short if short else 0.0)
    result = metrics.result()
    result[MetricKeys.LOSS] = batch_loss_sum / n_batches if n_batches else 0.0
    result[MetricKeys.GLOBAL_STEP] = state.global_step
    est._record_eval(name, path, state.global_step, result)
    return result


def _tail_sum(tails: list, rows: int) -> float:
    """Sum of the last ``rows`` per-example losses of an epoch, from its units' tails in order."""
    parts, need = [], rows
    for tail in reversed(tails):
        if need <= 0:
            break
        take = tail[-need:] if need < len(tail) else tail
        parts.append(take)
        need -= len(take)
    return float(np.concatenate(parts[::-1]).sum()) if parts and rows else 0.0

"""The tasks workers run. Each is a pure function of its arguments (no state kept between calls,
nothing written except ``predict_file``'s own output file), so a retry gives the same result.

``model`` is a copy of the estimator without its distribution engines (layout, head, optimizer,
combiner, weight column); ``table`` the global state, float32 (n_slots, n_parts, units), which
tasks never modify.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamlin.distribute.plan import Piece, Plan, StreamReader, Unit, chunks, read_columns
from streamlin.heads import per_example_loss
from streamlin.kernels.learn import train_steps
from streamlin.kernels.merge import changed_slots
from streamlin.metrics import StreamingMetrics
from streamlin.pipeline import ReadAhead
from streamlin.scratch import LearnScratch

CHUNK_ROWS = 16384  # rows per chunk of a task: small, so that each round's read-ahead starts training early


def train_round(model, input_fn, plan: Plan, table: np.ndarray, epoch: int, worker: int, cursor: Sequence[int],
                pieces: list | None, max_rows: int, learning_rates: np.ndarray) -> dict:
    """Train worker ``worker``'s next ``max_rows`` rows from the global ``table``; return what changed.

    Returns
    -------
    dict
        ``idx`` int64 (c,): changed slots, ascending; ``values`` float32 (c, n_parts, units): their
        rows after training; ``steps``, ``rows``, ``loss_sum`` (sum of the steps' losses);
        ``cursor`` and ``done``: where the worker's stream stands now; ``seconds``.
    """
    started = time.perf_counter()
    units = plan.units(input_fn, epoch)
    stream = plan.deal(units, pieces)[worker]
    columns = read_columns(input_fn, model._needed_columns())
    reader = StreamReader(input_fn, units, stream, cursor, max_rows, columns)
    state = table.copy()
    head, optimizer = model._head, model._optimizer
    hparams = optimizer.hparams()
    scratch = LearnScratch(state.shape[2])
    steps, rows, loss_sum = 0, 0, 0.0
    source = chunks(reader, input_fn.label_key, input_fn.batch_size, CHUNK_ROWS, epoch)
    with ReadAhead(source, lambda chunk: model._prepare(chunk, True)) as prepared_chunks:
        for prepared in prepared_chunks:
            bounds = prepared.chunk.step_bounds
            n_steps = len(bounds) - 1
            scratch.fit(prepared.rows, bounds)
            losses = np.zeros(n_steps, dtype=np.float64)
            train_steps(prepared.rows.col_indptr, prepared.rows.slots, prepared.rows.values,
                        prepared.rows.one_per_row, prepared.labels,
                        prepared.weights, bounds, 0, n_steps, model._layout.bias_slot, state, optimizer.code, hparams,
                        learning_rates[steps:steps + n_steps], head.loss_kind, head.reduce_sum,
                        *scratch.kernel_arguments(), losses)
            steps += n_steps
            rows += int(bounds[-1])
            loss_sum += float(losses.sum())
    changed = np.empty(state.shape[0], dtype=np.int64)
    count = changed_slots(table, state, changed)
    idx = changed[:count].copy()
    return {"idx": idx, "values": state[idx], "steps": steps, "rows": rows, "loss_sum": loss_sum,
            "cursor": list(reader.cursor), "done": reader.done, "seconds": time.perf_counter() - started}


def read_probe(model, input_fn, plan: Plan, epoch: int, worker: int, cursor: Sequence[int], pieces: list | None,
               max_rows: int) -> list:
    """Prepared chunks (``estimator._Prepared``) of a worker's next ``max_rows`` rows, read without training."""
    units = plan.units(input_fn, epoch)
    stream = plan.deal(units, pieces)[worker]
    columns = read_columns(input_fn, model._needed_columns())
    reader = StreamReader(input_fn, units, stream, cursor, max_rows, columns)
    return [model._prepare(chunk, True) for chunk in chunks(reader, input_fn.label_key, input_fn.batch_size,
                                                            CHUNK_ROWS, epoch)]


def metric_fields(metrics: StreamingMetrics) -> dict:
    """The additive fields of a ``StreamingMetrics`` (its batch losses are handled apart)."""
    return {"weight_sum": metrics.weight_sum, "loss_sum": metrics.loss_sum, "correct": metrics.correct,
            "true_positive": metrics.true_positive, "false_positive": metrics.false_positive,
            "false_negative": metrics.false_negative, "prediction_sum": metrics.prediction_sum,
            "label_sum": metrics.label_sum, "positive_hist": metrics.positive_hist,
            "negative_hist": metrics.negative_hist}


def add_metric_fields(metrics: StreamingMetrics, fields: dict) -> None:
    """Add another worker's :func:`metric_fields` into ``metrics``."""
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            getattr(metrics, name).__iadd__(value)
        else:
            setattr(metrics, name, getattr(metrics, name) + value)


def evaluate_unit(model, input_fn, table: np.ndarray, unit: Unit, max_rows: int, epoch: int) -> dict:
    """Additive evaluation counts of the first ``max_rows`` rows of ``unit``.

    Returns
    -------
    dict
        ``fields`` (:func:`metric_fields`), ``rows``, and ``tail`` float64 (<= batch_size - 1,): the
        weighted per-example losses of the unit's last rows, from which the driver rebuilds the loss
        of an epoch's last, shorter batch.
    """
    columns = read_columns(input_fn, model._needed_columns())
    reader = StreamReader(input_fn, [unit], [Piece(0)], (0, 0), max_rows, columns)
    metrics = StreamingMetrics(model._head)
    keep = input_fn.batch_size - 1
    tail = np.empty(0, dtype=np.float64)
    rows = 0
    source = chunks(reader, input_fn.label_key, input_fn.batch_size, CHUNK_ROWS, epoch)
    for prepared in ReadAhead(source, lambda chunk: model._prepare(chunk, True)):
        logits = model._logits(prepared.rows, table)
        weights = prepared.weights.astype(np.float64)
        n = len(weights)
        metrics.update(logits, prepared.labels, weights, np.array([0, n], dtype=np.int64))
        if keep:
            losses = per_example_loss(logits[-keep:], prepared.labels[-keep:], model._head.n_classes) * weights[-keep:]
            tail = np.concatenate([tail, losses])[-keep:]
        rows += n
    return {"fields": metric_fields(metrics), "rows": rows, "tail": tail}


def count_rows(input_fn, unit: Unit) -> int:
    """Rows of a unit whose length the metadata does not give (a CSV file, an Arrow stream)."""
    columns = [input_fn.label_key] if input_fn.label_key else None
    reader = StreamReader(input_fn, [unit], [Piece(0)], (0, 0), np.iinfo(np.int64).max, columns)
    return sum(batch.num_rows for batch, _, _ in reader.batches())


def prediction_columns(model, logits: np.ndarray) -> dict[str, np.ndarray]:
    """The CLI's prediction columns: binary ``logistic``, multi-class ``probabilities_<class>``; then
    ``class_ids`` and ``classes``."""
    predictions = model._head.predictions(logits)
    out: dict[str, Any] = {}
    if model._head.n_classes == 2:
        out["logistic"] = predictions["logistic"][:, 0]
    else:
        for i, name in enumerate(model._head.class_names):
            out[f"probabilities_{name}"] = predictions["probabilities"][:, i]
    out["class_ids"] = predictions["class_ids"][:, 0]
    out["classes"] = pa.array(list(predictions["classes"][:, 0]), type=pa.string())
    return out


def predict_file(model, input_fn, checkpoint_path: str, units: list[Unit], output: str,
                 passthrough: Sequence[str]) -> dict:
    """Write the predictions for one input file (its ``units``, in order) to the Parquet file ``output``.

    The snapshot is read here, from ``checkpoint_path``; the file appears atomically (written under
    a temporary name, then renamed). Returns ``{"path", "rows"}``.
    """
    from streamlin.errors import MissingFeatureError

    _, state = model._load_checkpoint(checkpoint_path)
    columns = read_columns(input_fn, model._needed_columns(), passthrough, label=False)
    reader = StreamReader(input_fn, units, [Piece(i) for i in range(len(units))], (0, 0),
                          np.iinfo(np.int64).max, columns)
    directory = os.path.dirname(output) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.path.basename(output)}-{uuid.uuid4().hex[:8]}")
    writer = None
    rows = 0
    try:
        source = chunks(reader, None, CHUNK_ROWS, CHUNK_ROWS)
        for prepared in ReadAhead(source, lambda chunk: model._prepare(chunk, False)):
            features = prepared.chunk.features
            out = {}
            for name in passthrough:
                if name not in features.schema.names:
                    raise MissingFeatureError(
                        f"{units[0].source}: passthrough column {name!r} is missing; the file has"
                        f" {', '.join(features.schema.names)}. Pass columns the input holds.")
                out[name] = features.column(name)
            out.update(prediction_columns(model, model._logits(prepared.rows, state.table)))
            batch = pa.RecordBatch.from_pydict(out)
            if writer is None:
                writer = pq.ParquetWriter(tmp, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # an empty input file gives an empty output file
            writer = pq.ParquetWriter(tmp, _empty_schema(model, passthrough, input_fn, units))
        writer.close()
        writer = None
        os.replace(tmp, output)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"path": output, "rows": rows}


def _empty_schema(model, passthrough, input_fn, units) -> pa.Schema:
    fields = []
    logits = np.zeros((0, model._head.units), dtype=np.float64)
    for name, values in prediction_columns(model, logits).items():
        fields.append(pa.field(name, pa.array(values).type if not isinstance(values, pa.Array) else values.type))
    return pa.schema([pa.field(name, pa.null()) for name in passthrough] + fields)

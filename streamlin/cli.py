"""The ``streamlin`` command line. Exit codes: 0 ok, 2 usage error, 1 failure.

Every command explains itself with ``streamlin <command> --help``. A failure prints one line,
``streamlin <command>: <what went wrong and what to do>``, on stderr; ``--debug`` shows the
traceback instead. Results go to stdout, progress and notes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamlin.errors import StreamlinError

log = logging.getLogger("streamlin")

_PROGRESS_MESSAGE = "global_step %d: loss"


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
class CommandError(StreamlinError):
    """A failure the command line reports in one line (exit code 1)."""


def _checkpoint_arg(value: str | None) -> Any:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _model_spec(args: argparse.Namespace):
    """The spec for a command on an existing model: --spec, else model_dir/streamlin.toml, else the snapshot."""
    from streamlin import spec as spec_module

    if getattr(args, "spec", None):
        spec = spec_module.load(args.spec)
    else:
        spec = spec_module.from_model_dir(args.model_dir)
    label_key = getattr(args, "label_key", None)
    if label_key:
        spec = dataclasses.replace(spec, label_key=label_key)
    return spec


def _require_label(spec, command: str) -> None:
    if spec.label_key is None:
        raise CommandError(f"the model_dir has no streamlin.toml naming the label column; pass --label-key NAME"
                           f" (or --spec SPEC) to {command}.")


def _check_columns(spec, data: Sequence[str], need_label: bool, extra: Sequence[str] = ()) -> None:
    """Fail early, naming the file and the column, when the data lacks a column the model reads."""
    from streamlin.errors import InputError

    fn = spec.input_fn(data, for_training=False, batch_size=1, label_key=None)
    first = fn.sources(0)[0]
    names: list[str] | None = None
    try:
        if spec.files(first)[0] == "parquet":
            import pyarrow.parquet as pq

            names = list(pq.read_schema(first).names)
        else:
            for batch in fn.read(first, None, 1):
                names = list(batch.schema.names)
                break
    except (OSError, ValueError) as exc:
        raise InputError(f"{first}: cannot be read ({exc}).") from None
    if names is None:
        return
    wanted: list[tuple[str, str]] = []
    if need_label and spec.label_key:
        wanted.append((spec.label_key, "label_key"))
    if need_label and spec.weight_column:
        wanted.append((spec.weight_column, "weight_column"))
    for column in spec.feature_columns:
        for key in column.keys:
            wanted.append((key, f"feature column {column.name!r}"))
        weight_key = getattr(column, "weight_feature_key", None)
        if weight_key:
            wanted.append((weight_key, f"feature column {column.name!r}"))
    wanted.extend((name, "--passthrough") for name in extra)
    for name, role in wanted:
        if name not in names:
            shown = ", ".join(repr(n) for n in names[:30]) + (", ..." if len(names) > 30 else "")
            raise InputError(f"{first}: column {name!r} ({role}) is missing; the file has {shown}. Fix the spec or"
                             " the data.")


def _distribute_engine(args: argparse.Namespace):
    if args.workers is None and args.scheduler is None:
        return None
    import importlib

    import streamlin

    module = getattr(streamlin, "distribute", None)
    if module is None:
        try:
            module = importlib.import_module("streamlin.distribute")
        except ImportError as exc:
            raise CommandError(f"--workers/--scheduler require streamlin.distribute, which is not available here"
                               f" ({exc}); install streamlin[distributed], or train without them.") from None
    if args.workers is not None and args.workers < 1:
        raise CommandError(f"--workers must be at least 1; found {args.workers}.")
    return module.Dask(client=args.scheduler, n_workers=args.workers)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# ------------------------------------------------------------------------------------------------
# progress: the estimator logs "global_step %d: loss %.6g, %.0f rows/s, %.1f steps/s" at INFO
# ------------------------------------------------------------------------------------------------
class Progress(logging.Handler):
    """Renders the estimator's progress records: a live line on a terminal, plain lines otherwise.

    Every progress record is also appended to ``model_dir/train_log.jsonl`` (step, loss, rows/s,
    time), so ``streamlin report`` can plot the training loss across runs.
    """

    def __init__(self, stream, *, live: bool, quiet: bool, log_path: Path | None, batch_size: int,
                 total_rows: int | None = None, rows_before: int = 0, step_limit: int | None = None):
        super().__init__(logging.INFO)
        self.stream = stream
        self.live = live
        self.quiet = quiet
        self.log_path = log_path
        self.batch_size = batch_size
        self.total_rows = total_rows
        self.rows = rows_before
        self.rows_before = rows_before
        self.step_limit = step_limit
        self.first_step: int | None = None
        self.last_step: int | None = None
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.line_open = False
        self.last_loss: float | None = None
        self.last_rate: float | None = None
        self.drawn_progress = False
        self._log_handle = None

    # -- the estimator's hooks -------------------------------------------------------------------
    def begin(self) -> None:
        self.started = time.monotonic()
        self._write_log({"event": "train_begin", "time": time.time(), "step": self.first_step})
        if self.live and not self.quiet:
            self._draw(f"step {self.first_step or 0:,} | starting...", force=True)

    def end(self, step: int) -> None:
        elapsed = time.monotonic() - self.started
        self._write_log({"event": "train_end", "time": time.time(), "step": step, "seconds": round(elapsed, 3)})
        self.last_step = step
        if self.live and not self.quiet and self.line_open:
            self._draw(self._text(final=True), force=True)
            self.stream.write("\n")
            self.stream.flush()
            self.line_open = False
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    # -- logging ----------------------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if isinstance(record.msg, str) and record.msg.startswith(_PROGRESS_MESSAGE) and len(record.args or ()) >= 3:
                self._progress(record)
            elif record.levelno >= logging.WARNING or not self.quiet:
                self._plain(f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a display problem must never stop training
            self.handleError(record)

    def _progress(self, record: logging.LogRecord) -> None:
        args = record.args
        step, loss, rows_per_sec = int(args[0]), float(args[1]), float(args[2])
        steps_per_sec = float(args[3]) if len(args) > 3 else None
        previous = self.last_step if self.last_step is not None else (self.first_step or 0)
        if steps_per_sec:
            self.rows += int(round(rows_per_sec / steps_per_sec * (step - previous)))
        else:
            self.rows += (step - previous) * self.batch_size
        self.last_step, self.last_loss, self.last_rate = step, loss, rows_per_sec
        self._write_log({"time": time.time(), "step": step, "loss": loss, "rows_per_sec": round(rows_per_sec, 1),
                         "steps_per_sec": None if steps_per_sec is None else round(steps_per_sec, 2),
                         "rows": self.rows})
        if self.quiet:
            return
        if self.live:
            self._draw(self._text(), force=not self.drawn_progress)
            self.drawn_progress = True
        else:
            self._plain(f"step {step}: loss {loss:.6g}, {self.rows:,} rows, {rows_per_sec:,.0f} rows/s")

    def _text(self, final: bool = False) -> str:
        parts = [f"step {self.last_step:,}" if self.last_step is not None else "step ?"]
        if self.drawn_progress or not final:
            rows_text = f"{self.rows:,} rows"
            if self.total_rows:
                rows_text += f" ({min(self.rows / self.total_rows, 1.0):.0%})"
            parts.append(rows_text)
        elapsed = time.monotonic() - self.started
        rate = (self.rows - self.rows_before) / elapsed if final and elapsed > 0 else self.last_rate
        if rate:
            parts.append(f"{rate:,.0f} rows/s")
        if self.last_loss is not None:
            parts.append(f"loss {self.last_loss:.4g}")
        if final:
            parts.append(f"done in {_duration(elapsed)}")
        elif self.total_rows and rate:
            parts.append(f"ETA {_duration(max(self.total_rows - self.rows, 0) / rate)}")
        return " | ".join(parts)

    def _draw(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self.line_open = True

    def _plain(self, text: str) -> None:
        if self.line_open:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"streamlin train: {text}\n")
        self.stream.flush()
        if self.line_open and self.live and self.last_step is not None:
            self._draw(self._text(), force=True)

    def _write_log(self, record: dict) -> None:
        if self.log_path is None:
            return
        if self._log_handle is None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = open(self.log_path, "a", encoding="utf-8")
        self._log_handle.write(json.dumps(record) + "\n")
        self._log_handle.flush()

    def close(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        super().close()


def _input_rows(spec, data: Sequence[str]) -> tuple[int | None, list[int] | None]:
    """(total rows, rows per file) when the files say so cheaply (Parquet and Arrow files), else None."""
    kind, files = spec.files(data)
    counts: list[int] = []
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            counts = [pq.ParquetFile(f).metadata.num_rows for f in files]
        elif kind == "arrow":
            import pyarrow as pa
            import pyarrow.ipc as ipc

            for f in files:
                with pa.memory_map(f, "r") as source:
                    reader = ipc.open_file(source)
                    counts.append(sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches)))
        else:
            return None, None
    except Exception:  # noqa: BLE001 - a count is only for the ETA
        return None, None
    return sum(counts), counts


# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from streamlin import demo

    demo.run(model_dir=args.model_dir, epochs=args.epochs)
    return 0


def _init(args: argparse.Namespace) -> int:
    from streamlin import spec as spec_module
    from streamlin.errors import ConfigError

    output = Path(args.output)
    if output.exists() and not args.force:
        raise CommandError(f"{output} exists; pass --force to replace it, or --output another file.")
    options = spec_module.InputOptions(delimiter=args.delimiter)
    if args.sample_rows < 1:
        raise ConfigError(f"--sample-rows must be at least 1; found {args.sample_rows}.")
    text = spec_module.infer(args.data, args.label_key, args.weight_column, sample_rows=args.sample_rows,
                             options=options, source=", ".join(args.data) if len(args.data) <= 2 else None)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    spec = spec_module.load(output)
    kinds: dict[str, int] = {}
    for column in spec.feature_columns:
        kind = spec_module.column_table(column)["type"]
        kinds[kind] = kinds.get(kind, 0) + 1
    shown = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"wrote {output}: {len(spec.feature_columns)} columns ({shown}), label {spec.label_key!r},"
          f" {spec.n_classes} classes")
    print(f"next: streamlin train {' '.join(args.data)} --spec {output} --model-dir runs/model")
    return 0


def _train(args: argparse.Namespace) -> int:
    from streamlin import spec as spec_module
    from streamlin.checkpoint import store
    from streamlin.errors import ConfigError

    model_dir = Path(args.model_dir)
    if args.spec:
        spec = spec_module.load(args.spec)
    elif (model_dir / spec_module.SPEC_FILE).is_file():
        spec = spec_module.load(model_dir / spec_module.SPEC_FILE)
    else:
        raise ConfigError(f"no --spec given and {model_dir / spec_module.SPEC_FILE} does not exist; write a spec with"
                          " `streamlin init DATA --label-key NAME` and pass --spec.")
    changes = {}
    if args.epochs is not None:
        changes["num_epochs"] = args.epochs
    if args.batch_size is not None:
        changes["batch_size"] = args.batch_size
    for name, value in changes.items():
        if value < 1:
            raise ConfigError(f"--{name.replace('num_', '').replace('_', '-')} must be at least 1; found {value}.")
    if changes:
        spec = dataclasses.replace(spec, **changes)
    if args.steps is not None and args.max_steps is not None:
        raise ConfigError("give --steps or --max-steps, not both.")
    _require_label(spec, "train")
    spec.check_model_dir(model_dir)
    _check_columns(spec, args.data, need_label=True)
    engine = _distribute_engine(args)
    overrides: dict[str, Any] = {"resume_input": not args.restart_input}
    if engine is not None:
        overrides["train_distribute"] = engine
    estimator = spec.estimator(model_dir, **overrides)
    input_fn = spec.input_fn(args.data, for_training=True)
    spec.write_to_model_dir(model_dir)

    latest = store.latest_snapshot(model_dir)
    first_step = latest.step if latest else 0
    total, per_file = _input_rows(spec, args.data)
    rows_before = 0
    if total is not None:
        epochs = spec.num_epochs or 1
        total_rows = total * epochs
        position = None
        if latest is not None and not args.restart_input:
            try:
                _, attrs = store.load_snapshot(latest.path, names=[])
                position = attrs.get("input_position")
            except StreamlinError:
                position = None
        sources = input_fn.sources(0)
        if position and per_file and position.get("source") in sources:
            index = int(position.get("file_index", 0))
            rows_before = int(position.get("epoch", 0)) * total + sum(per_file[:index]) + int(position.get("row_in_file", 0))
        limit = args.steps if args.steps is not None else (max(args.max_steps - first_step, 0) if args.max_steps else None)
        if limit is not None:
            total_rows = min(total_rows, rows_before + limit * spec.batch_size)
    else:
        total_rows = None
    stream = sys.stderr
    progress = Progress(stream, live=stream.isatty() and not args.quiet, quiet=args.quiet,
                        log_path=model_dir / "train_log.jsonl", batch_size=spec.batch_size,
                        total_rows=total_rows, rows_before=rows_before)
    progress.first_step = first_step
    logger = logging.getLogger("streamlin")
    saved = (logger.level, logger.propagate)
    logger.addHandler(progress)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    started = time.monotonic()
    try:
        estimator.train(input_fn, hooks=[progress], steps=args.steps, max_steps=args.max_steps)
    finally:
        logger.removeHandler(progress)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        progress.close()
    elapsed = time.monotonic() - started
    latest = store.latest_snapshot(model_dir)
    step = latest.step if latest else 0
    if not args.quiet:
        rows = progress.rows - rows_before
        rate = f", {rows / elapsed:,.0f} rows/s" if rows and elapsed > 0 else ""
        print(f"trained {step - first_step:,} steps (global_step {step:,}) in {elapsed:.1f} s{rate};"
              f" checkpoint {latest.path if latest else '-'}")
        if step == first_step and not args.restart_input and args.max_steps is None:
            print("nothing was left to read: an earlier run finished this input. Pass --restart-input to train on"
                  " it again, or give new data.", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    spec = _model_spec(args)
    _require_label(spec, "evaluate")
    _check_columns(spec, args.data, need_label=True)
    estimator = spec.estimator(args.model_dir)
    input_fn = spec.input_fn(args.data, for_training=False, batch_size=args.batch_size)
    metrics = estimator.evaluate(input_fn, steps=args.steps, checkpoint_path=_checkpoint_arg(args.checkpoint),
                                 name=args.name)
    print(json.dumps(_jsonable(metrics), indent=2, sort_keys=True))
    return 0


_BINARY_KEYS = ("logistic", "class_ids", "classes")
_MULTI_KEYS = ("probabilities", "class_ids", "classes")
_OUTPUT_KEYS = ("logits", "logistic", "probabilities", "class_ids", "classes")


def _prediction_columns(batch: dict, keys: Sequence[str], class_names: Sequence[str]) -> dict:
    import numpy as np
    import pyarrow as pa

    out = {}
    for key in keys:
        value = np.asarray(batch[key])
        if key in ("logistic", "class_ids", "classes") or (key == "logits" and value.shape[1] == 1):
            flat = value[:, 0]
            out[key] = pa.array(flat.astype(str) if key == "classes" else flat)
        else:  # probabilities and multi-class logits: one column per class
            for k, name in enumerate(class_names):
                out[f"{key}_{name}"] = pa.array(value[:, k])
    return out


class _RowQueue:
    """Rows of passthrough columns, taken in the same order and amounts as the predictions."""

    def __init__(self, chunks, columns: Sequence[str]):
        self.chunks = iter(chunks)
        self.columns = list(columns)
        self.pending: list = []
        self.available = 0

    def take(self, n: int):
        import pyarrow as pa

        while self.available < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                raise CommandError("the passthrough columns ran out before the predictions; the input changed while"
                                   " reading.")
            missing = [c for c in self.columns if c not in chunk.features.schema.names]
            if missing:
                raise CommandError(f"--passthrough column {missing[0]!r} is not in the data; it has"
                                   f" {', '.join(chunk.features.schema.names)}.")
            batch = chunk.features.select(self.columns)
            self.pending.append(batch)
            self.available += batch.num_rows
        table = pa.Table.from_batches(self.pending).combine_chunks()
        head, rest = table.slice(0, n), table.slice(n)
        self.pending = rest.to_batches() if rest.num_rows else []
        self.available = rest.num_rows
        return head


def _predict(args: argparse.Namespace) -> int:
    import pyarrow as pa

    spec = _model_spec(args)
    n_classes = spec.n_classes
    default = _BINARY_KEYS if n_classes == 2 else _MULTI_KEYS
    keys = list(args.keys) if args.keys else list(default)
    for key in keys:
        if key not in _OUTPUT_KEYS or (key == "logistic" and n_classes > 2):
            allowed = [k for k in _OUTPUT_KEYS if not (k == "logistic" and n_classes > 2)]
            raise CommandError(f"--keys {key!r} is not an output of this model; choose from {', '.join(allowed)}.")
    passthrough = list(args.passthrough or [])
    _check_columns(spec, args.data, need_label=False, extra=passthrough)
    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise CommandError(f"--output {output}: the file name must end in .csv or .parquet.")
    estimator = spec.estimator(args.model_dir)
    class_names = spec.label_vocabulary or tuple(str(i) for i in range(n_classes))
    input_fn = spec.input_fn(args.data, for_training=False, batch_size=args.batch_size)
    predictions = estimator.predict(input_fn, predict_keys=keys, checkpoint_path=_checkpoint_arg(args.checkpoint),
                                    yield_single_examples=False)
    queue = None
    if passthrough:
        pass_fn = spec.input_fn(args.data, for_training=False, batch_size=args.batch_size, label_key=None)
        queue = _RowQueue(pass_fn.chunks(columns=passthrough, chunk_rows=65536), passthrough)
    writer = None
    tmp = None
    rows = 0
    try:
        for batch in predictions:
            columns = _prediction_columns(batch, keys, class_names)
            n = len(next(iter(columns.values())))
            if queue is not None:
                extra = queue.take(n)
                columns = {**{name: extra.column(name) for name in passthrough},
                           **{k: v for k, v in columns.items() if k not in passthrough}}
            table = pa.table(columns)
            if writer is None:
                writer, tmp = _open_writer(output, table.schema)
            writer.write_table(table) if hasattr(writer, "write_table") else writer.write(table)
            rows += n
        if writer is None:  # no rows: still write the header / schema
            writer, tmp = _open_writer(output, pa.schema([(k, pa.string()) for k in passthrough + keys]))
    except BaseException:
        if writer is not None and output is not None:
            writer.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        raise
    writer.close()
    if output is not None:
        os.replace(tmp, output)
        print(f"wrote {rows:,} rows to {output}", file=sys.stderr)
    else:
        sys.stdout.flush()
    return 0


def _open_writer(output: Path | None, schema):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if output is None:
        return pacsv.CSVWriter(sys.stdout.buffer, schema), None
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".tmp-{output.name}-{os.getpid()}")
    if output.suffix.lower() == ".csv":
        return pacsv.CSVWriter(str(tmp), schema), tmp
    return pq.ParquetWriter(str(tmp), schema), tmp


def _export(args: argparse.Namespace) -> int:
    spec = _model_spec(args)
    estimator = spec.estimator(args.model_dir)
    base = args.export_dir_base or os.path.join(args.model_dir, "export")
    path = estimator.export_saved_model(base, checkpoint_path=_checkpoint_arg(args.checkpoint))
    print(path)
    return 0


_METRICS_SHOWN = ("average_loss", "auc", "accuracy", "auc_precision_recall", "loss")


def _checkpoints(args: argparse.Namespace) -> int:
    from streamlin import checkpoints

    if not Path(args.model_dir).is_dir():
        raise CommandError(f"{args.model_dir} is not a directory.")
    snapshots = checkpoints.list(args.model_dir)
    if args.json:
        print(json.dumps([_jsonable(dataclasses.asdict(s)) for s in snapshots], indent=2))
        return 0
    if not snapshots:
        print(f"{args.model_dir}: no checkpoints (train with `streamlin train DATA --model-dir {args.model_dir}`)")
        return 0
    rows = [("step", "time", "size", "metrics")]
    for s in snapshots:
        keys = [k for k in _METRICS_SHOWN if k in s.metrics] + sorted(
            k for k in s.metrics if k not in _METRICS_SHOWN and k != "global_step")
        shown = keys if args.all_metrics else keys[:4]
        metrics = ", ".join(f"{k} {s.metrics[k]:.4f}" for k in shown)
        rows.append((f"{s.step:,}", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.time)),
                     _human_bytes(s.bytes), metrics))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for k, row in enumerate(rows):
        print(f"{row[0].rjust(widths[0])}  {row[1].ljust(widths[1])}  {row[2].rjust(widths[2])}  {row[3]}".rstrip())
        if k == 0:
            print(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * widths[2]}  -------")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from streamlin import report
    from streamlin import spec as spec_module

    columns = None
    class_names = None
    if args.spec:
        spec = spec_module.load(args.spec)
        columns = spec.feature_columns
        class_names = spec.label_vocabulary or tuple(str(i) for i in range(spec.n_classes))
    if not os.path.exists(args.model_dir) and not os.path.exists(str(args.model_dir) + ".index"):
        raise CommandError(f"{args.model_dir} does not exist.")
    weights = report.load_weights(args.model_dir, _checkpoint_arg(args.checkpoint), columns, class_names)
    summary = report.summarize(weights, top=args.top)
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2))
    else:
        print(report.format_summary(summary, top=args.top, show_slots=args.slots))
    return 0


def _convert_tf(args: argparse.Namespace) -> int:
    from streamlin import checkpoints
    from streamlin import spec as spec_module

    spec = spec_module.load(args.spec)
    estimator = spec.estimator(args.model_dir)
    path = checkpoints.convert_tf(args.tf_path, estimator)
    spec.write_to_model_dir(args.model_dir)
    print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    from streamlin import report

    model_dir = Path(args.model_dir)
    if not model_dir.is_dir():
        raise CommandError(f"{model_dir} is not a directory.")
    output = Path(args.output) if args.output else model_dir / "report.html"
    if output.suffix.lower() not in (".html", ".htm"):
        raise CommandError(f"--output {output}: the report is HTML; give a file name ending in .html.")
    spec = None
    predictions = None
    try:
        spec = _model_spec(args)
    except StreamlinError:
        if args.data:
            raise
    if args.data:
        _require_label(spec, "report --data")
        _check_columns(spec, args.data, need_label=True)
        predictions = report.collect_predictions(spec, args.data, _checkpoint_arg(args.checkpoint), args.max_rows,
                                                 str(model_dir))
    path = report.write_report(model_dir, output, predictions=predictions, checkpoint=_checkpoint_arg(args.checkpoint),
                               spec=spec)
    print(path)
    return 0


# ------------------------------------------------------------------------------------------------
# the parser
# ------------------------------------------------------------------------------------------------
class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def _command(commands, name: str, help_text: str, description: str, example: str, run, parents) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=description, parents=parents,
                                 epilog="example:\n" + "\n".join(f"  {line}" for line in example.strip().splitlines()),
                                 formatter_class=_Formatter)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamlin", formatter_class=_Formatter,
        description="Streaming linear classifiers (tf.estimator.LinearClassifier's successor).",
        epilog="a first model, from a CSV of your own:\n"
               "  streamlin init data/train.csv --label-key label        # writes streamlin.toml: edit it\n"
               "  streamlin train data/train.csv --spec streamlin.toml --model-dir runs/m\n"
               "  streamlin evaluate data/test.csv --model-dir runs/m\n"
               "  streamlin export --model-dir runs/m\n\n"
               "`streamlin COMMAND --help` explains each command. Exit codes: 0 ok, 2 usage error, 1 failure.")
    from streamlin import __version__

    parser.add_argument("--version", action="version", version=f"streamlin {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parents = [common]
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _command(commands, "demo", "train, evaluate and predict on the bundled Adult data",
                 "Train TF's census-tutorial linear model on the bundled UCI Adult data, evaluate it and predict.",
                 "streamlin demo --epochs 2", _demo, parents)
    p.add_argument("--model-dir", default=None, help="where to write checkpoints (default: a temporary folder)")
    p.add_argument("--epochs", type=int, default=2)

    p = _command(commands, "init", "write a starter model spec inferred from a data file",
                 "Read the schema and a sample of DATA and write a starter TOML spec: strings with few values\n"
                 "become vocabulary lists, others hash buckets sized from their distinct count; small integer\n"
                 "codes become identity columns; wide-ranged numbers are bucketized at their deciles; empty\n"
                 "numbers get a default_value; a string label gets a label_vocabulary. Identifiers, constant\n"
                 "columns and copies of the label are left out (the file says why). Edit it, then train.",
                 "streamlin init data/train.csv --label-key income --output census.toml", _init, parents)
    p.add_argument("data", nargs="+", metavar="DATA", help="data files, directories or globs (.parquet, .csv, .arrow)")
    p.add_argument("--label-key", required=True, metavar="NAME", help="the column holding the label")
    p.add_argument("--weight-column", metavar="NAME", help="a column of example weights")
    p.add_argument("--output", "-o", default="streamlin.toml", metavar="SPEC", help="where to write the spec"
                   " (default: streamlin.toml)")
    p.add_argument("--delimiter", default=None, help="CSV delimiter (default: ',' or tab for .tsv)")
    p.add_argument("--sample-rows", type=int, default=100_000, metavar="N", help="rows to sample (default 100000)")
    p.add_argument("--force", action="store_true", help="replace an existing spec file")

    p = _command(commands, "train", "train a model (resumes from the latest checkpoint)",
                 "Train on DATA, one batch per step, resuming from the latest checkpoint in --model-dir and\n"
                 "where the last run stopped reading (unless --restart-input). The spec is copied to\n"
                 "MODEL_DIR/streamlin.toml, so later commands need only --model-dir. Progress goes to stderr: a\n"
                 "live line on a terminal, plain lines otherwise; JSON lines in MODEL_DIR/train_log.jsonl.",
                 "streamlin train data/train/*.parquet --spec streamlin.toml --model-dir runs/ctr\n"
                 "streamlin train data/more.parquet --model-dir runs/ctr --steps 1000    # continue", _train, parents)
    p.add_argument("data", nargs="+", metavar="DATA", help="data files, directories or globs")
    p.add_argument("--spec", metavar="SPEC", help="model spec (default: MODEL_DIR/streamlin.toml)")
    p.add_argument("--model-dir", required=True, metavar="DIR", help="where checkpoints go")
    p.add_argument("--steps", type=int, metavar="N", help="train N more steps (batches)")
    p.add_argument("--max-steps", type=int, metavar="N", help="train until global_step N")
    p.add_argument("--epochs", type=int, metavar="N", help="passes over DATA (overrides the spec's num_epochs)")
    p.add_argument("--batch-size", type=int, metavar="N", help="rows per step (overrides the spec)")
    p.add_argument("--restart-input", action="store_true", help="read DATA from the start instead of resuming")
    p.add_argument("--workers", type=int, metavar="N", help="train on N local Dask workers (streamlin.distribute)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="train on a Dask cluster, e.g. tcp://host:8786")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    p = _command(commands, "evaluate", "evaluate a checkpoint; prints the metrics as JSON",
                 "Evaluate a checkpoint (default: the latest) on DATA. Prints TF's metrics as JSON and appends\n"
                 "them to MODEL_DIR/eval[_NAME]/metrics.jsonl.",
                 "streamlin evaluate data/test.parquet --model-dir runs/ctr\n"
                 "streamlin evaluate data/test.parquet --model-dir runs/ctr --checkpoint 4000 --name holdout",
                 _evaluate, parents)
    p.add_argument("data", nargs="+", metavar="DATA")
    p.add_argument("--model-dir", required=True, metavar="DIR")
    p.add_argument("--checkpoint", metavar="PATH_OR_STEP", help="a snapshot path, a step, or a TF checkpoint")
    p.add_argument("--name", help="eval dir name: results go to MODEL_DIR/eval_NAME")
    p.add_argument("--steps", type=int, metavar="N", help="evaluate only the first N batches")
    p.add_argument("--batch-size", type=int, metavar="N", help="rows per batch (default: the spec's)")
    p.add_argument("--spec", metavar="SPEC", help="model spec (default: MODEL_DIR/streamlin.toml)")
    p.add_argument("--label-key", metavar="NAME", help="the label column, if the model_dir has no spec")

    p = _command(commands, "predict", "write predictions to CSV or Parquet",
                 "Predict every row of DATA, in order, with a checkpoint (default: the latest). Binary models\n"
                 "write logistic (P(label = class 1)), class_ids and classes; multi-class models write\n"
                 "probabilities_<class>, class_ids and classes. Without --output, CSV goes to stdout.",
                 "streamlin predict data/new.parquet --model-dir runs/ctr --output scores.parquet --passthrough id",
                 _predict, parents)
    p.add_argument("data", nargs="+", metavar="DATA")
    p.add_argument("--model-dir", required=True, metavar="DIR")
    p.add_argument("--output", "-o", metavar="FILE", help="a .csv or .parquet file (default: CSV on stdout)")
    p.add_argument("--checkpoint", metavar="PATH_OR_STEP")
    p.add_argument("--keys", nargs="+", metavar="KEY", help=f"outputs among {', '.join(_OUTPUT_KEYS)}")
    p.add_argument("--passthrough", nargs="+", metavar="COLUMN", help="input columns to copy to the output")
    p.add_argument("--batch-size", type=int, default=8192, metavar="N", help="rows per batch (default 8192)")
    p.add_argument("--spec", metavar="SPEC", help="model spec (default: MODEL_DIR/streamlin.toml)")

    p = _command(commands, "export", "export a checkpoint for serving (load with streamlin.load_exported)",
                 "Write a timestamped, pickle-free export of a checkpoint (default: the latest) and print its\n"
                 "directory. Load it in Python with streamlin.load_exported(path).",
                 "streamlin export --model-dir runs/ctr --export-dir-base exports/ctr", _export, parents)
    p.add_argument("--model-dir", required=True, metavar="DIR")
    p.add_argument("--export-dir-base", metavar="DIR", help="default: MODEL_DIR/export")
    p.add_argument("--checkpoint", metavar="PATH_OR_STEP")
    p.add_argument("--spec", metavar="SPEC", help="model spec (default: MODEL_DIR/streamlin.toml)")

    p = _command(commands, "checkpoints", "list snapshots: step, time, size, recorded metrics",
                 "List the snapshots of MODEL_DIR, oldest first, with the metrics `evaluate` recorded for them.",
                 "streamlin checkpoints runs/ctr", _checkpoints, parents)
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.add_argument("--all-metrics", action="store_true", help="show every recorded metric")

    p = _command(commands, "inspect", "variables, shapes, sparsity and top weights per column",
                 "Describe a checkpoint's variables: shapes, how many rows are non-zero, the range, and the\n"
                 "largest weights of each column with what they stand for (vocabulary entries, buckets).\n"
                 "Works on a TensorFlow model_dir or checkpoint prefix too (--spec labels its rows).",
                 "streamlin inspect runs/ctr --top 10\nstreamlin inspect tf_model_dir/ --spec census.toml",
                 _inspect, parents)
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--checkpoint", metavar="PATH_OR_STEP")
    p.add_argument("--top", type=int, default=5, metavar="N", help="weights shown per column (default 5)")
    p.add_argument("--spec", metavar="SPEC", help="column definitions for a TF checkpoint's rows")
    p.add_argument("--slots", action="store_true", help="also list the optimizer's slot variables")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = _command(commands, "convert-tf", "a TF LinearClassifier checkpoint to a streamlin snapshot",
                 "Convert a TensorFlow 1.x/2.x LinearClassifier checkpoint (a prefix or a model_dir) into\n"
                 "MODEL_DIR/model.ckpt-<step>, for the model SPEC describes (the same columns as the TF code).",
                 "streamlin convert-tf tf_runs/census --spec census.toml --model-dir runs/census", _convert_tf, parents)
    p.add_argument("tf_path", metavar="TF_PATH")
    p.add_argument("--spec", required=True, metavar="SPEC")
    p.add_argument("--model-dir", required=True, metavar="DIR")

    p = _command(commands, "report", "an HTML report: curves per eval dir, ROC/PR, calibration, weights",
                 "Write a self-contained HTML page (inline SVG, no plotting library): training loss and\n"
                 "throughput, every metric of each eval dir over the global step, weight histograms per column,\n"
                 "and with --data, ROC, precision-recall and calibration curves on that data.",
                 "streamlin report runs/ctr --output ctr.html --data data/test.parquet", _report, parents)
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("--output", "-o", metavar="FILE", help="an .html file (default: MODEL_DIR/report.html)")
    p.add_argument("--data", nargs="+", metavar="DATA", help="evaluation data for ROC/PR and calibration")
    p.add_argument("--checkpoint", metavar="PATH_OR_STEP")
    p.add_argument("--max-rows", type=int, default=1_000_000, metavar="N", help="rows of --data used (default 1e6)")
    p.add_argument("--spec", metavar="SPEC", help="model spec (default: MODEL_DIR/streamlin.toml)")
    p.add_argument("--label-key", metavar="NAME", help="the label column, if the model_dir has no spec")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # libraries that set their loggers to INFO (dask) stay quiet
        if handler.level == logging.NOTSET:
            handler.setLevel(logging.WARNING)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"streamlin {args.command}: interrupted; checkpoints written so far are intact.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `streamlin predict ... | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush at exit
        except OSError:
            pass
        return 0
    except Exception as exc:  # noqa: BLE001 - one line, no traceback, unless --debug
        if debug:
            raise
        print(f"streamlin {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, (StreamlinError, KeyError, ValueError, OSError)):
        text = str(exc)
        if isinstance(exc, KeyError) and not isinstance(exc, StreamlinError) and text.startswith(("'", '"')):
            text = text[1:-1]
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            text = f"{exc.filename}: {exc.strerror}"
    else:
        text = f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for the traceback and report it"
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())

"""Input functions: zero-argument callables that stream ``(features, labels)`` batches.

The built-in makers return :class:`StreamingInputFn` objects. Called, they yield batches of
exactly ``batch_size`` rows in file order (the last batch of an epoch may be shorter). The
estimator instead reads them in large chunks (``chunks()``) and runs many steps per chunk inside
one kernel call; the steps are the same batches either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from streamlin._arrow import as_record_batch
from streamlin.errors import ConfigError, InputError
from streamlin.inputs.chunks import Chunk, Origin, chunks_from_callable, step_bounds
from streamlin.inputs.files import arrow_batches, csv_batches, expand_paths, parquet_batches

PathsLike = Any
BAD_ROW_POLICIES = ("raise", "skip", "log")


def _check_positive(maker: str, **values: Any) -> None:
    for name, value in values.items():
        if value is None and name == "num_epochs":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{maker}: {name} must be a positive integer; found {value!r}.")


class StreamingInputFn:
    """Base of the built-in input functions: a stream of record batches from some sources."""

    maker = "input_fn"

    def __init__(self, label_key: str | None, batch_size: int, num_epochs: int | None,
                 on_bad_row: str = "raise", bad_rows_file: str | os.PathLike | None = None):
        _check_positive(self.maker, batch_size=batch_size, num_epochs=num_epochs)
        if on_bad_row not in BAD_ROW_POLICIES:
            raise ConfigError(f"{self.maker}: on_bad_row must be one of {BAD_ROW_POLICIES}; found {on_bad_row!r}.")
        self.label_key = label_key
        self.batch_size = batch_size
        self.num_epochs = num_epochs
        self.on_bad_row = on_bad_row
        self.bad_rows_file = None if bad_rows_file is None else os.fspath(bad_rows_file)

    # -- what subclasses provide -----------------------------------------------------------
    def sources(self, epoch: int) -> list[str]:
        raise NotImplementedError

    def identity(self) -> dict:
        """What must match for a recorded input position to be resumed: the maker and its sources."""
        return {"maker": self.maker, "sources": self.sources(0), "batch_size": self.batch_size}

    def read(self, source: str, columns: Sequence[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    # -- streaming --------------------------------------------------------------------------
    def __call__(self) -> Iterator[tuple[pa.RecordBatch, pa.Array | None]]:
        """Yield ``(features, labels)`` batches of ``batch_size`` rows (TF's input_fn contract)."""
        for chunk in self.chunks(columns=None, chunk_rows=self.batch_size * 64):
            for a, b in zip(chunk.step_bounds[:-1], chunk.step_bounds[1:]):
                features = chunk.features.slice(a, b - a)
                labels = None if chunk.labels is None else chunk.labels.slice(a, b - a)
                yield features, labels

    def chunks(self, columns: Sequence[str] | None = None, chunk_rows: int = 65536,
               start: Mapping | None = None) -> Iterator[Chunk]:
        """Chunks of whole steps (a multiple of ``batch_size`` rows, except at an epoch's end).

        ``columns`` limits what is read (the label is always read when present); ``start`` is a
        position from ``Chunk.position_at`` to resume from.
        """
        rows_per_chunk = max(1, chunk_rows // self.batch_size) * self.batch_size
        wanted = None if columns is None else list(dict.fromkeys(list(columns) + ([self.label_key] if self.label_key else [])))
        epoch = int(start["epoch"]) if start else 0
        while self.num_epochs is None or epoch < self.num_epochs:
            yield from self._epoch_chunks(epoch, wanted, rows_per_chunk, start if start and int(start["epoch"]) == epoch else None)
            start = None
            epoch += 1

    def _epoch_chunks(self, epoch: int, columns, rows_per_chunk: int, start: Mapping | None) -> Iterator[Chunk]:
        sources = self.sources(epoch)
        if start and not (0 <= int(start["file_index"]) < len(sources) and sources[int(start["file_index"])] == start.get("source")):
            raise InputError(
                f"{self.maker}: cannot resume at {start.get('source')!r} (file {start['file_index']}) -- the input's"
                " files changed. Pass the same files, or train without RunConfig(resume_input=True).")
        pending: list[tuple[pa.RecordBatch, Origin]] = []
        pending_rows = 0
        global_row = 0
        first_file = int(start["file_index"]) if start else 0
        skip_rows = int(start["row_in_file"]) if start else 0
        schema: pa.Schema | None = None
        schema_source = ""
        for file_index, source in enumerate(sources):
            source_row = 0
            for batch in self.read(source, columns, rows_per_chunk):
                n = batch.num_rows
                if file_index < first_file or (file_index == first_file and source_row + n <= skip_rows):
                    source_row += n
                    global_row += n
                    continue
                if file_index == first_file and source_row < skip_rows:
                    cut = skip_rows - source_row
                    batch, source_row, global_row, n = batch.slice(cut), source_row + cut, global_row + cut, n - cut
                if n == 0:
                    continue
                if schema is None:
                    schema, schema_source = batch.schema, source
                elif not batch.schema.equals(schema):
                    batch = _conform(batch, schema, source, schema_source)
                pending.append((batch, Origin(0, source, source_row, global_row, file_index, epoch)))
                pending_rows += n
                source_row += n
                global_row += n
                while pending_rows >= rows_per_chunk:
                    chunk, pending, pending_rows = self._cut(pending, rows_per_chunk)
                    yield chunk
        if pending_rows:
            chunk, pending, pending_rows = self._cut(pending, pending_rows)
            yield chunk

    def _cut(self, pending: list, rows: int) -> tuple[Chunk, list, int]:
        taken, origins, count = [], [], 0
        rest = []
        for batch, origin in pending:
            if count >= rows:
                rest.append((batch, origin))
                continue
            need = rows - count
            if batch.num_rows > need:
                rest.append((batch.slice(need), Origin(0, origin.source, origin.source_row + need,
                                                       origin.global_row + need, origin.file_index, origin.epoch)))
                batch = batch.slice(0, need)
            origins.append(Origin(count, origin.source, origin.source_row, origin.global_row, origin.file_index,
                                  origin.epoch))
            taken.append(batch)
            count += batch.num_rows
        table = pa.Table.from_batches(taken) if len(taken) > 1 else None
        merged = table.combine_chunks().to_batches()[0] if table is not None else taken[0]
        labels = None
        if self.label_key is not None and self.label_key in merged.schema.names:
            labels = merged.column(self.label_key)
            merged = merged.drop_columns([self.label_key]) if hasattr(merged, "drop_columns") else merged.select(
                [n for n in merged.schema.names if n != self.label_key])
        chunk = Chunk(merged, labels, step_bounds(count, self.batch_size), origins, label_key=self.label_key)
        return chunk, rest, sum(b.num_rows for b, _ in rest)


def _conform(batch: pa.RecordBatch, schema: pa.Schema, source: str, first_source: str) -> pa.RecordBatch:
    missing = [n for n in schema.names if n not in batch.schema.names]
    if missing:
        raise InputError(
            f"{source}: column {missing[0]!r} is missing, though {first_source} has it; every file of an"
            f" input must have the same columns (this one has {', '.join(batch.schema.names)}).")
    try:
        return batch.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as exc:
        raise InputError(
            f"{source}: its schema differs from {first_source}'s and cannot be cast ({exc}). Give every file"
            " the same column types.") from None


class _FileInputFn(StreamingInputFn):
    def __init__(self, paths: PathsLike, label_key: str | None, batch_size: int, num_epochs: int | None,
                 shuffle_files: bool = False, seed: int | None = None, on_bad_row: str = "raise",
                 bad_rows_file: str | os.PathLike | None = None):
        super().__init__(label_key, batch_size, num_epochs, on_bad_row, bad_rows_file)
        self.paths = expand_paths(paths, self.maker)
        self.shuffle_files = shuffle_files
        self.seed = seed

    def sources(self, epoch: int) -> list[str]:
        if not self.shuffle_files:
            return list(self.paths)
        order = np.random.default_rng(None if self.seed is None else [self.seed, epoch]).permutation(len(self.paths))
        return [self.paths[i] for i in order]

    def __repr__(self) -> str:
        shown = self.paths if len(self.paths) <= 3 else self.paths[:2] + [f"... ({len(self.paths)} files)"]
        return f"{self.maker}({shown}, label_key={self.label_key!r}, batch_size={self.batch_size}, num_epochs={self.num_epochs})"


class ParquetInputFn(_FileInputFn):
    maker = "parquet_input_fn"

    def __init__(self, paths, label_key, batch_size=1024, num_epochs=1, columns=None, shuffle_files=False, seed=None,
                 on_bad_row="raise", bad_rows_file=None):
        super().__init__(paths, label_key, batch_size, num_epochs, shuffle_files, seed, on_bad_row, bad_rows_file)
        self.columns = None if columns is None else list(columns)

    def read(self, source, columns, batch_rows):
        wanted = columns
        if self.columns is not None:
            wanted = [c for c in (columns or self.columns) if c in self.columns or c == self.label_key]
        return parquet_batches(source, batch_rows, wanted, optional=(self.label_key,))


class CsvInputFn(_FileInputFn):
    maker = "csv_input_fn"

    def __init__(self, paths, label_key, batch_size=1024, num_epochs=1, column_names=None, column_types=None,
                 delimiter=",", header=True, shuffle_files=False, seed=None, on_bad_row="raise", bad_rows_file=None):
        super().__init__(paths, label_key, batch_size, num_epochs, shuffle_files, seed, on_bad_row, bad_rows_file)
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise ConfigError(f"csv_input_fn: delimiter must be one character; found {delimiter!r}.")
        self.column_names, self.column_types = column_names, dict(column_types or {})
        self.delimiter, self.header = delimiter, header

    def read(self, source, columns, batch_rows):
        return csv_batches(source, columns, self.column_names, self.column_types, self.delimiter, self.header,
                           optional=(self.label_key,))


class ArrowInputFn(_FileInputFn):
    maker = "arrow_input_fn"

    def read(self, source, columns, batch_rows):
        for batch in arrow_batches(source, columns, optional=(self.label_key,)):
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)


class NumpyInputFn(StreamingInputFn):
    maker = "numpy_input_fn"

    def __init__(self, x: Mapping[str, Any], y: Any = None, batch_size: int = 128, num_epochs: int | None = 1,
                 shuffle: bool = False, seed: int | None = None, label_key: str = "__label__"):
        super().__init__(label_key if y is not None else None, batch_size, num_epochs)
        if not isinstance(x, Mapping):
            raise ConfigError(f"numpy_input_fn: x must be a dict of name -> array; found {type(x).__name__}.")
        table = dict(x)
        if y is not None:
            table[label_key] = y
        self.batch = as_record_batch(table)
        self.shuffle, self.seed = shuffle, seed

    def sources(self, epoch: int) -> list[str]:
        return [f"{self.maker}:epoch{epoch}"]

    def read(self, source, columns, batch_rows):
        batch = self.batch
        if columns is not None:
            batch = batch.select([c for c in columns if c in batch.schema.names])
        if self.shuffle:
            epoch = int(source.rsplit("epoch", 1)[1])
            order = np.random.default_rng(None if self.seed is None else [self.seed, epoch]).permutation(batch.num_rows)
            batch = batch.take(pa.array(order))
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)


def numpy_input_fn(x, y=None, batch_size=128, num_epochs=1, shuffle=False, seed=None) -> NumpyInputFn:
    """Batches from in-memory arrays: ``x`` a dict of name -> array, ``y`` labels (or None)."""
    return NumpyInputFn(x, y, batch_size, num_epochs, shuffle, seed)


def parquet_input_fn(paths, label_key, batch_size=1024, num_epochs=1, columns=None, shuffle_files=False,
                     seed=None, on_bad_row="raise", bad_rows_file=None) -> ParquetInputFn:
    """Stream Parquet files (a file, directory, glob or list), reading only the columns needed.

    ``on_bad_row``: ``"raise"`` (default) stops at a row that fails validation (bad label or weight,
    null numeric without default, out-of-range identity id); ``"skip"`` drops such rows and counts
    them; ``"log"`` also logs each one. ``bad_rows_file`` appends each dropped row's file, row and
    reason as a JSON line.
    """
    return ParquetInputFn(paths, label_key, batch_size, num_epochs, columns, shuffle_files, seed, on_bad_row,
                          bad_rows_file)


def csv_input_fn(paths, label_key, batch_size=1024, num_epochs=1, column_names=None, column_types=None,
                 delimiter=",", header=True, on_bad_row="raise", bad_rows_file=None) -> CsvInputFn:
    """Stream CSV files in bounded blocks; ``column_types`` maps a column to a type (e.g. ``"string"``).

    ``on_bad_row`` as for :func:`parquet_input_fn`; a value that cannot be parsed as its column's
    type stops with an InputError naming the file (pass ``column_types`` to read it as a string).
    """
    return CsvInputFn(paths, label_key, batch_size, num_epochs, column_names, column_types, delimiter, header,
                      on_bad_row=on_bad_row, bad_rows_file=bad_rows_file)


def arrow_input_fn(paths, label_key, batch_size=1024, num_epochs=1, on_bad_row="raise",
                   bad_rows_file=None) -> ArrowInputFn:
    """Stream Arrow IPC files or streams; ``on_bad_row`` as for :func:`parquet_input_fn`."""
    return ArrowInputFn(paths, label_key, batch_size, num_epochs, on_bad_row=on_bad_row, bad_rows_file=bad_rows_file)


def iter_chunks(input_fn: Callable, columns: Sequence[str] | None, chunk_rows: int,
                start: Mapping | None = None) -> Iterator[Chunk]:
    """Chunks from a built-in maker (many steps each) or a plain callable (one step per batch)."""
    if isinstance(input_fn, StreamingInputFn):
        return input_fn.chunks(columns, chunk_rows, start)
    if not callable(input_fn):
        raise ConfigError(f"input_fn must be callable (a zero-argument function); found {type(input_fn).__name__}.")
    return chunks_from_callable(input_fn)


__all__ = ["numpy_input_fn", "parquet_input_fn", "csv_input_fn", "arrow_input_fn", "StreamingInputFn", "Chunk",
           "iter_chunks"]

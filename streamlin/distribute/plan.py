"""The sharding plan: which rows each worker reads, round after round.

The input's files are expanded into sorted *units*: ``(file, row group)`` for Parquet,
``(file, record batch)`` for Arrow IPC files, whole files for CSV and Arrow IPC streams. Units are
dealt to the K workers in order, each to the worker with the fewest rows so far (round-robin when
the units are equal), so each worker reads a stream of units; every round it trains on the next ``rows_per_round`` rows of its stream. Where a worker
stands is a *cursor* ``(piece, row)``: the index of a piece in its stream and the row within that
piece's unit. The plan is a pure function of the files, their row groups and K; a resume with
another K re-deals what is left (pieces that start inside a unit).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from streamlin.errors import ConfigError, InputError
from streamlin.inputs import ArrowInputFn, Chunk, CsvInputFn, ParquetInputFn, step_bounds
from streamlin.inputs.chunks import Origin

DISTRIBUTABLE = (ParquetInputFn, CsvInputFn, ArrowInputFn)
READ_ROWS = 65536


def check_input_fn(input_fn, what: str) -> None:
    """Raise unless ``input_fn`` is a built-in file maker (the only inputs a plan can shard).

    Raises
    ------
    ConfigError
        (a ValueError) for any other input_fn.
    """
    if not isinstance(input_fn, DISTRIBUTABLE):
        raise ConfigError(
            f"{what}: only the built-in file makers (parquet_input_fn, csv_input_fn, arrow_input_fn) can be"
            f" distributed, because the plan deals their files' row groups to the workers; found"
            f" {type(input_fn).__name__} {input_fn!r}. Write the data to Parquet and use parquet_input_fn, or"
            " drop train_distribute/eval_distribute to run in one process.")


@dataclass(frozen=True)
class Unit:
    """The smallest piece of input a worker is dealt.

    ``part``: Parquet row group or Arrow IPC record batch, -1 for a whole file; ``rows``: its row
    count, -1 when unknown before reading (CSV, Arrow streams); ``first_row``: the row of the
    file the unit starts at.
    """

    source: str
    part: int
    rows: int
    first_row: int = 0


@dataclass(frozen=True)
class Piece:
    """A unit from row ``begin`` on (0 unless a re-deal split it)."""

    unit: int
    begin: int = 0


def _kind(input_fn) -> str:
    if isinstance(input_fn, ParquetInputFn):
        return "parquet"
    if isinstance(input_fn, ArrowInputFn):
        return "arrow"
    return "csv"


def file_units(kind: str, source: str) -> list[Unit]:
    """The units of one file, from its metadata (no data is read).

    Raises
    ------
    InputError
        The file cannot be opened as its format.
    """
    if kind == "parquet":
        try:
            metadata = pq.ParquetFile(source, pre_buffer=False).metadata
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise InputError(f"{source}: cannot be read as Parquet ({exc}). The file may be truncated or not"
                             " Parquet.") from None
        units, first = [], 0
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            units.append(Unit(source, group, rows, first))
            first += rows
        return units
    if kind == "arrow":
        try:
            with pa.memory_map(source, "r") as handle:
                try:
                    reader = ipc.open_file(handle)
                except pa.ArrowInvalid:
                    return [Unit(source, -1, -1)]  # an IPC stream: read whole
                units, first = [], 0
                for index in range(reader.num_record_batches):
                    rows = reader.get_batch(index).num_rows
                    units.append(Unit(source, index, rows, first))
                    first += rows
                return units
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise InputError(f"{source}: cannot be read as an Arrow IPC file or stream ({exc}).") from None
    return [Unit(source, -1, -1)]


class Plan:
    """Units of every file of a file maker, dealt to ``n_workers`` workers (see :meth:`deal`) per epoch.

    Parameters
    ----------
    input_fn : ParquetInputFn, CsvInputFn or ArrowInputFn
    n_workers : int
        K, the number of workers the units are dealt to.
    """

    def __init__(self, input_fn, n_workers: int):
        check_input_fn(input_fn, "streamlin.distribute")
        self.kind = _kind(input_fn)
        self.n_workers = int(n_workers)
        self.files = {source: file_units(self.kind, source) for source in input_fn.paths}

    def units(self, input_fn, epoch: int) -> list[Unit]:
        """Every unit of ``epoch``, in the order the one-process input reads them."""
        return [unit for source in input_fn.sources(epoch) for unit in self.files[source]]

    def signature(self) -> list:
        """JSON-ready description of the units (what must match for a recorded position to resume)."""
        return [[source, len(units), sum(u.rows for u in units) if all(u.rows >= 0 for u in units) else None]
                for source, units in sorted(self.files.items())]

    def deal(self, units: list[Unit], pieces: Sequence[Sequence[int]] | None = None,
             n_workers: int | None = None) -> list[list[Piece]]:
        """Each worker's pieces, dealt in unit order to the worker with the fewest rows so far.

        Ties go to the lowest worker, so units of equal size (and units of unknown size) are dealt
        round-robin; a file's shorter last row group no longer leaves one worker behind. ``pieces``
        (``[[unit, begin], ...]``) replaces the whole units after a re-deal.
        """
        k = n_workers or self.n_workers
        items = [Piece(i) for i in range(len(units))] if pieces is None else [Piece(int(u), int(b)) for u, b in pieces]
        streams: list[list[Piece]] = [[] for _ in range(k)]
        load = [0] * k
        for piece in items:
            w = min(range(k), key=lambda j: (load[j], j))
            streams[w].append(piece)
            rows = units[piece.unit].rows
            load[w] += rows - piece.begin if rows >= 0 else 1
        return streams

    def remaining(self, units: list[Unit], streams: list[list[Piece]], cursors: Sequence[Sequence[int]]) -> list[list[int]]:
        """The pieces no worker has read yet, in unit order, as ``[[unit, begin], ...]`` (for a re-deal)."""
        left = []
        for stream, (position, row) in zip(streams, cursors):
            for i in range(int(position), len(stream)):
                piece = stream[i]
                begin = int(row) if i == int(position) else piece.begin
                unit = units[piece.unit]
                if unit.rows < 0 or begin < unit.rows:
                    left.append([piece.unit, begin])
        left.sort()
        return left


def _wanted_parquet(input_fn: ParquetInputFn, columns: Sequence[str] | None) -> list[str] | None:
    wanted = columns
    if input_fn.columns is not None:
        wanted = [c for c in (columns or input_fn.columns) if c in input_fn.columns or c == input_fn.label_key]
    return None if wanted is None else list(wanted)


def read_unit(input_fn, unit: Unit, start: int, columns: Sequence[str] | None,
              batch_rows: int = READ_ROWS) -> Iterator[pa.RecordBatch]:
    """Record batches of ``unit`` from its row ``start`` on, with ``columns`` (those present).

    Raises
    ------
    InputError
        The file cannot be read as its format.
    """
    if unit.part < 0:  # a whole file: the maker's own reader
        skip = start
        for batch in input_fn.read(unit.source, columns, batch_rows):
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            if skip:
                batch, skip = batch.slice(skip), 0
            yield batch
        return
    if isinstance(input_fn, ParquetInputFn):
        try:
            parquet = pq.ParquetFile(unit.source, pre_buffer=False)
            names = set(parquet.schema_arrow.names)
            wanted = _wanted_parquet(input_fn, columns)
            wanted = None if wanted is None else [c for c in wanted if c in names]
            skip = start
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[unit.part], columns=wanted,
                                              use_threads=True):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                if skip:
                    batch, skip = batch.slice(skip), 0
                yield batch
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
            raise InputError(f"{unit.source}: cannot be read as Parquet ({exc}). The file may be truncated or not"
                             " Parquet.") from None
        return
    try:
        with pa.memory_map(unit.source, "r") as handle:
            batch = ipc.open_file(handle).get_batch(unit.part)
            if columns is not None:
                batch = batch.select([c for c in columns if c in batch.schema.names])
            for begin in range(start, batch.num_rows, batch_rows):
                yield batch.slice(begin, batch_rows)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise InputError(f"{unit.source}: cannot be read as an Arrow IPC file ({exc}).") from None


class StreamReader:
    """Reads up to ``max_rows`` rows of one worker's stream from a cursor; ``cursor``/``done`` after.

    ``batches()`` yields ``(batch, source, source_row)``. A unit of unknown length is known to be
    finished only when its reader ends, so reading exactly to a unit's end peeks one batch further.
    """

    def __init__(self, input_fn, units: list[Unit], stream: list[Piece], cursor: Sequence[int], max_rows: int,
                 columns: Sequence[str] | None, batch_rows: int = READ_ROWS):
        self.input_fn, self.units, self.stream = input_fn, units, stream
        self.cursor = (int(cursor[0]), int(cursor[1]))
        self.max_rows, self.columns = int(max_rows), columns
        self.batch_rows = max(1, min(batch_rows, self.max_rows))  # a short read decodes no more than it needs
        self.rows = 0

    @property
    def done(self) -> bool:
        return self.cursor[0] >= len(self.stream)

    def _advance(self, position: int) -> None:
        position += 1
        self.cursor = (position, self.stream[position].begin if position < len(self.stream) else 0)

    def batches(self) -> Iterator[tuple[pa.RecordBatch, str, int]]:
        remaining = self.max_rows - self.rows
        while not self.done and remaining > 0:
            position, row = self.cursor
            unit = self.units[self.stream[position].unit]
            if 0 <= unit.rows <= row:
                self._advance(position)
                continue
            exhausted = True
            for batch in read_unit(self.input_fn, unit, row, self.columns, self.batch_rows):
                if batch.num_rows == 0:
                    continue
                if remaining == 0:
                    exhausted = False  # the peek found more rows
                    break
                take = min(batch.num_rows, remaining)
                yield batch.slice(0, take) if take < batch.num_rows else batch, unit.source, unit.first_row + row
                row += take
                remaining -= take
                self.rows += take
                self.cursor = (position, row)
                if 0 <= unit.rows <= row:
                    break
                if take < batch.num_rows or (remaining == 0 and unit.rows >= 0):
                    exhausted = False
                    break
            if exhausted:
                self._advance(position)


def _conform(batch: pa.RecordBatch, schema: pa.Schema, source: str) -> pa.RecordBatch:
    missing = [n for n in schema.names if n not in batch.schema.names]
    if missing:
        raise InputError(f"{source}: column {missing[0]!r} is missing, though other files of the input have it;"
                         f" every file must have the same columns (this one has {', '.join(batch.schema.names)}).")
    try:
        return batch.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as exc:
        raise InputError(f"{source}: its schema differs from the other files' and cannot be cast ({exc}). Give"
                         " every file the same column types.") from None


def _chunk(pending: list, label_key: str | None, batch_size: int, epoch: int) -> Chunk:
    batches, origins, count = [], [], 0
    schema = pending[0][0].schema
    for batch, source, source_row in pending:
        if not batch.schema.equals(schema):
            batch = _conform(batch, schema, source)
        origins.append(Origin(count, source, source_row, source_row, 0, epoch))
        batches.append(batch)
        count += batch.num_rows
    merged = batches[0] if len(batches) == 1 else pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
    labels = None
    if label_key is not None and label_key in merged.schema.names:
        labels = merged.column(label_key)
        merged = merged.select([n for n in merged.schema.names if n != label_key])
    return Chunk(merged, labels, step_bounds(count, batch_size), origins)


def chunks(reader: StreamReader, label_key: str | None, batch_size: int, chunk_rows: int,
           epoch: int = 0) -> Iterator[Chunk]:
    """The reader's rows as chunks of whole steps of ``batch_size`` rows (the last may be shorter).

    Error messages locate a row as ``<file>, row <row in that file>``.
    """
    rows_per_chunk = max(1, chunk_rows // batch_size) * batch_size
    pending: list = []
    count = 0
    for batch, source, source_row in reader.batches():
        while batch.num_rows:
            take = min(batch.num_rows, rows_per_chunk - count)
            pending.append((batch.slice(0, take), source, source_row))
            batch, source_row, count = batch.slice(take), source_row + take, count + take
            if count == rows_per_chunk:
                yield _chunk(pending, label_key, batch_size, epoch)
                pending, count = [], 0
    if count:
        yield _chunk(pending, label_key, batch_size, epoch)


def read_columns(input_fn, needed: Sequence[str], extra: Sequence[str] = (), label: bool = True) -> list[str]:
    """The columns to read: what the model needs, the label (if ``label``), and ``extra`` (passthrough)."""
    label_columns = [input_fn.label_key] if input_fn.label_key and label else []
    return list(dict.fromkeys(list(needed) + label_columns + list(extra)))


def learning_rate_steps(optimizer, first_step: int, worker: int, n_workers: int, n_steps: int) -> np.ndarray:
    """float64 (n_steps,): worker k's j-th step of a round runs at global step first + j K + k.

    That is the round-robin interleaving of the workers' steps, the order a learning-rate schedule
    sees them in (a constant learning rate is unaffected).
    """
    if not callable(optimizer.learning_rate):
        return np.full(n_steps, float(optimizer.learning_rate), dtype=np.float64)
    return np.array([optimizer.learning_rate(first_step + j * n_workers + worker) for j in range(n_steps)],
                    dtype=np.float64)

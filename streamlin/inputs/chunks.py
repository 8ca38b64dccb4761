"""Chunks: the unit the estimator works on.

A chunk is a run of rows (a RecordBatch) cut into training steps (``step_bounds``), with enough
provenance to name the file and row of any of its rows in an error message.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from streamlin._arrow import as_arrow_array, as_record_batch
from streamlin.errors import InputError


@dataclass
class Origin:
    """Rows from ``chunk_row`` on come from ``source``, starting at its row ``source_row``
    (and at row ``global_row`` of the whole input)."""

    chunk_row: int
    source: str
    source_row: int
    global_row: int
    file_index: int = 0
    epoch: int = 0


@dataclass
class Chunk:
    """Rows to train on or evaluate, cut into steps.

    features: RecordBatch (n_rows); labels: pyarrow array (n_rows,) or None;
    step_bounds: int64 (n_steps + 1,), row offsets of the steps (0 ... n_rows);
    origins: where each run of rows came from (file, row), in chunk order.
    """

    features: pa.RecordBatch
    labels: pa.Array | None
    step_bounds: np.ndarray
    origins: list[Origin] = field(default_factory=list)
    row_map: np.ndarray | None = None  # int64: row i was row row_map[i] before bad rows were dropped
    _n_original: int | None = None
    label_key: str | None = None

    @property
    def n_rows(self) -> int:
        return self.features.num_rows

    @property
    def n_steps(self) -> int:
        return len(self.step_bounds) - 1

    def original_row(self, row: int) -> int:
        """The chunk row as read from the input, before any bad rows were dropped."""
        return row if self.row_map is None else int(self.row_map[row])

    @property
    def n_original_rows(self) -> int:
        return self._n_original if self._n_original is not None else self.n_rows

    def drop_rows(self, bad: np.ndarray) -> Chunk:
        """This chunk without rows ``bad`` (int64, chunk-relative); each step keeps its other rows,
        and a step left empty disappears."""
        keep = np.ones(self.n_rows, dtype=bool)
        keep[bad] = False
        kept_before = np.concatenate([[0], np.cumsum(keep)])
        bounds = np.unique(kept_before[self.step_bounds]).astype(np.int64)
        current = np.arange(self.n_rows, dtype=np.int64) if self.row_map is None else self.row_map
        mask = pa.array(keep)
        return Chunk(self.features.filter(mask), None if self.labels is None else self.labels.filter(mask),
                     bounds, self.origins, current[keep], self.n_original_rows, self.label_key)

    def _origin(self, row: int) -> Origin:
        index = bisect.bisect_right([o.chunk_row for o in self.origins], row) - 1
        return self.origins[max(index, 0)]

    def source_of(self, row: int) -> tuple[str | None, int]:
        """(file or input name, global row) of a chunk-relative row; the name is None without origins."""
        row = self.original_row(row)
        if not self.origins:
            return None, row
        origin = self._origin(row)
        return origin.source, origin.global_row + row - origin.chunk_row

    def locate(self, row: int) -> str:
        """'<file>, row <global row>' for a chunk-relative row."""
        source, global_row = self.source_of(row)
        return f"row {global_row}" if source is None else f"{source}, row {global_row}"

    def position_at(self, row: int) -> dict | None:
        """JSON-ready input position just before chunk-relative ``row`` (``n_rows``: after the chunk)."""
        if not self.origins:
            return None
        row = self.original_row(row) if row < self.n_rows else self.n_original_rows
        origin = self._origin(min(row, max(self.n_original_rows - 1, 0)))
        return {"epoch": origin.epoch, "file_index": origin.file_index, "source": origin.source,
                "row_in_file": origin.source_row + row - origin.chunk_row}


def step_bounds(n_rows: int, batch_size: int) -> np.ndarray:
    """Row offsets of consecutive steps of ``batch_size`` rows (the last may be shorter)."""
    bounds = np.arange(0, n_rows, batch_size, dtype=np.int64)
    return np.append(bounds, np.int64(n_rows)) if n_rows else np.zeros(1, dtype=np.int64)


def _split_pair(result: Any) -> tuple[Any, Any]:
    if isinstance(result, tuple) and len(result) == 2:
        return result
    return result, None


def _is_single_pair(result: Any) -> bool:
    if isinstance(result, (pa.RecordBatch, pa.Table, dict)):
        return True
    return (isinstance(result, tuple) and len(result) == 2
            and isinstance(result[0], (pa.RecordBatch, pa.Table, dict)))


def chunks_from_callable(input_fn: Any, name: str = "input_fn") -> Iterator[Chunk]:
    """Adapt a plain ``input_fn`` (one pair, or an iterable of pairs) to chunks of one step each."""
    result = input_fn()
    if _is_single_pair(result):
        pairs: Iterable = [result]
    elif isinstance(result, Iterable) and not isinstance(result, (str, bytes)):
        pairs = result
    else:
        raise InputError(
            f"{name} returned {type(result).__name__}; it must return (features, labels) or an iterable of such"
            " pairs (features: a RecordBatch, Table or dict of arrays).")
    global_row = 0
    for index, pair in enumerate(pairs):
        features, labels = _split_pair(pair)
        batch = as_record_batch(features)
        label_array = None if labels is None else as_arrow_array(labels, "labels")
        if label_array is not None and len(label_array) != batch.num_rows:
            raise InputError(
                f"{name} batch {index}: {len(label_array)} labels for {batch.num_rows} rows of features;"
                " give one label per row.")
        n = batch.num_rows
        # An empty batch is no step, but it still goes through the feature stage, so a feature it
        # lacks is reported.
        bounds = np.array([0, n] if n else [0], dtype=np.int64)
        yield Chunk(batch, label_array, bounds, [Origin(0, name, global_row, global_row)])
        global_row += n

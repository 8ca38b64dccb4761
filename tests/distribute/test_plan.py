"""``streamlin.distribute.plan``: units, the deal, and cursors that read every row exactly once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import streamlin as sl
from streamlin.distribute.plan import Plan, StreamReader, Unit


def _table(first: int, n: int) -> pa.Table:
    ids = np.arange(first, first + n)
    return pa.table({"id": ids, "label": ids % 2, "x": (ids * 7 % 13).astype(np.float32)})


def _write(kind: str, directory, sizes) -> list[str]:
    paths, first = [], 0
    for i, n in enumerate(sizes):
        table = _table(first, n)
        first += n
        path = str(directory / f"part-{i}.{kind}")
        if kind == "parquet":
            pq.write_table(table, path, row_group_size=700)
        elif kind == "csv":
            pacsv.write_csv(table, path)
        elif kind == "arrow":
            with ipc.new_file(path, table.schema) as writer:
                for batch in table.to_batches(max_chunksize=900):
                    writer.write_batch(batch)
        else:  # an Arrow IPC stream
            path = str(directory / f"part-{i}.arrows")
            with ipc.new_stream(path, table.schema) as writer:
                writer.write_table(table)
        paths.append(path)
    return paths


def _maker(kind, paths):
    if kind == "parquet":
        return sl.inputs.parquet_input_fn(paths, "label", batch_size=100)
    if kind == "csv":
        return sl.inputs.csv_input_fn(paths, "label", batch_size=100)
    return sl.inputs.arrow_input_fn(paths, "label", batch_size=100)


def _ids(reader: StreamReader) -> list[int]:
    return [i for batch, _, _ in reader.batches() for i in batch.column("id").to_pylist()]


def _run_rounds(fn, plan, units, streams, cursors, rows_per_round, rounds=None):
    """Read rounds until every stream is done (or ``rounds`` rounds); returns ids per worker."""
    seen = [[] for _ in streams]
    done = 0
    while not all(c[0] >= len(s) for c, s in zip(cursors, streams)) and (rounds is None or done < rounds):
        for w, stream in enumerate(streams):
            reader = StreamReader(fn, units, stream, cursors[w], rows_per_round, ["id"])
            seen[w] += _ids(reader)
            cursors[w] = list(reader.cursor)
        done += 1
    return seen


@pytest.mark.parametrize("kind", ["parquet", "csv", "arrow", "arrows"])
@pytest.mark.parametrize("n_workers, rows_per_round", [(1, 1000), (2, 450), (3, 1400)])
def test_every_row_is_read_once_in_stream_order(tmp_path, kind, n_workers, rows_per_round):
    sizes = [1500, 800, 0, 2100]
    fn = _maker(kind, _write(kind, tmp_path, sizes))
    plan = Plan(fn, n_workers)
    units = plan.units(fn, 0)
    streams = plan.deal(units)
    cursors = [[0, s[0].begin if s else 0] for s in streams]
    seen = _run_rounds(fn, plan, units, streams, cursors, rows_per_round)
    assert sorted(i for ids in seen for i in ids) == list(range(sum(sizes)))
    for ids, stream in zip(seen, streams):  # each worker reads its units in order, each unit in order
        expected = [i for p in stream for i in _unit_ids(fn, units[p.unit])]
        assert ids == expected


def _unit_ids(fn, unit: Unit) -> list[int]:
    reader = StreamReader(fn, [unit], [sl.distribute.plan.Piece(0)], (0, 0), 10 ** 9, ["id"])
    return _ids(reader)


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_resume_with_other_workers_redeals_what_is_left(tmp_path, kind):
    sizes = [1500, 800, 2100]
    fn = _maker(kind, _write(kind, tmp_path, sizes))
    plan = Plan(fn, 2)
    units = plan.units(fn, 0)
    streams = plan.deal(units)
    cursors = [[0, 0], [0, 0]]
    first = _run_rounds(fn, plan, units, streams, cursors, 600, rounds=2)
    left = plan.remaining(units, streams, cursors)
    plan.n_workers = 3
    streams = plan.deal(units, left)
    cursors = [[0, s[0].begin if s else 0] for s in streams]
    rest = _run_rounds(fn, plan, units, streams, cursors, 600)
    read = [i for ids in first + rest for i in ids]
    assert sorted(read) == list(range(sum(sizes)))


def test_the_deal_balances_rows_and_is_round_robin_for_equal_units():
    plan = Plan.__new__(Plan)
    plan.n_workers = 3
    equal = [Unit("f", i, 100) for i in range(7)]
    assert [[p.unit for p in s] for s in plan.deal(equal)] == [[0, 3, 6], [1, 4], [2, 5]]
    # a file's short last row group does not leave the worker that got it behind
    uneven = [Unit("a", 0, 100), Unit("a", 1, 10), Unit("b", 0, 100), Unit("b", 1, 10), Unit("c", 0, 100)]
    plan.n_workers = 2
    assert [[p.unit for p in s] for s in plan.deal(uneven)] == [[0, 3, 4], [1, 2]]


def test_units_come_from_metadata(tmp_path):
    paths = _write("parquet", tmp_path, [1500, 800])
    plan = Plan(sl.inputs.parquet_input_fn(paths, "label"), 2)
    assert [(u.part, u.rows, u.first_row) for u in plan.files[paths[0]]] == [(0, 700, 0), (1, 700, 700), (2, 100, 1400)]
    assert plan.signature() == [[paths[0], 3, 1500], [paths[1], 2, 800]]

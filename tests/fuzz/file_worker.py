"""Subprocess worker for the file fuzz: mutate a Parquet/CSV/Arrow IPC file and read it through streamlin.

Run by ``test_fuzz_files.py`` (a corrupt Arrow buffer may crash the process: the parent sees the signal
and names the case that was running). Each case prints one JSON line when it starts and one when it
ends. Reproduce one case with::

    python -m tests.fuzz.file_worker --kind arrow --seed 1 --cases 40 --only 17 --workdir /tmp/x

which leaves the mutated file in ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

import streamlin as sl
from streamlin import feature_column as fc
from streamlin.errors import StreamlinError

N_ROWS = 300
CSV_TOKENS = ['"', ",", "\n", "\r", "NaN", "1e400", "-", "\x00", "😀", "", " ", "inf", "-9223372036854775809",
              "18446744073709551616", "true", '""', "\\"]


def clean_table(kind: str) -> pa.Table:
    rng = np.random.default_rng(0)
    data = {
        "x": rng.normal(size=N_ROWS),
        "k": rng.choice(["a", "bb", "ccc", "", "é😀"], N_ROWS).tolist(),
        "id": rng.integers(0, 50, N_ROWS),
        "y": rng.integers(0, 2, N_ROWS),
    }
    if kind != "csv":
        data["tags"] = [list(rng.choice(["t1", "t2", "t3"], rng.integers(0, 3))) for _ in range(N_ROWS)]
    return pa.table(data)


def columns(kind: str) -> list:
    out = [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("k", 32),
           fc.categorical_column_with_identity("id", 50), fc.crossed_column(["k", "id"], 64)]
    if kind != "csv":
        out.append(fc.categorical_column_with_hash_bucket("tags", 16))
    return out


def write_clean(kind: str, path: Path) -> None:
    table = clean_table(kind)
    if kind == "parquet":
        pq.write_table(table, path, row_group_size=64)
    elif kind == "csv":
        pacsv.write_csv(table, path)
    else:
        with ipc.new_file(path, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=64):
                writer.write_batch(batch)


def maker(kind: str):
    return {"parquet": sl.inputs.parquet_input_fn, "csv": sl.inputs.csv_input_fn,
            "arrow": sl.inputs.arrow_input_fn}[kind]


def mutate(clean: bytes, kind: str, rng: random.Random) -> tuple[bytes, dict]:
    data = bytearray(clean)
    choices = ["truncate", "flip", "flip", "set", "splice"] + (["token", "token"] if kind == "csv" else [])
    what = rng.choice(choices)
    if what == "truncate":
        cut = rng.choice([rng.randrange(len(data)), len(data) - rng.randrange(1, 17), rng.randrange(64)])
        return bytes(data[:max(cut, 0)]), {"truncate": max(cut, 0)}
    position = rng.randrange(len(data))
    if what == "flip":
        data[position] ^= 1 << rng.randrange(8)
        return bytes(data), {"set": position, "value": data[position]}
    if what == "set":
        data[position] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        return bytes(data), {"set": position, "value": data[position]}
    if what == "splice":
        run = bytes(rng.randrange(256) for _ in range(rng.randrange(2, 17)))
        data[position:position + len(run)] = run
        return bytes(data), {"splice": position, "bytes": run.hex()}
    token = rng.choice(CSV_TOKENS).encode()
    replace = rng.randrange(0, 3)
    data[position:position + replace] = token
    return bytes(data), {"token_at": position, "replacing": replace, "token": token.decode()}


def classify(exc: BaseException, path: str) -> dict:
    if isinstance(exc, StreamlinError):
        return {"outcome": type(exc).__name__, "names_file": path in str(exc), "message": str(exc)[:300]}
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/streamlin/" in f.filename]
    frame = (ours or frames)[-1] if frames else None
    origin = f"{frame.filename[frame.filename.rfind('streamlin/'):]}:{frame.lineno}" if frame else "?"
    return {"outcome": "crash", "type": type(exc).__name__, "origin": origin, "message": str(exc)[:300]}


def run(kind: str, seed: int, cases: int, workdir: Path, train_every: int, only: int | None, start: int = 0) -> None:
    logging.getLogger("streamlin").setLevel(logging.ERROR)
    workdir.mkdir(parents=True, exist_ok=True)
    clean_path = workdir / f"clean.{kind}"
    write_clean(kind, clean_path)
    clean = clean_path.read_bytes()
    reference = sl.LinearClassifier(columns(kind), model_dir=str(workdir / "reference"))
    reference.train(maker(kind)(str(clean_path), label_key="y", batch_size=50))
    rng = random.Random(seed)
    for case in range(cases):
        data, mutation = mutate(clean, kind, rng)
        if (only is not None and case != only) or case < start:
            continue
        path = workdir / f"case-{case}.{kind}"
        path.write_bytes(data)
        line = {"case": case, "kind": kind, "seed": seed, "mutation": mutation}
        print(json.dumps({"start": line}), flush=True)
        result: dict = {}
        try:
            metrics = reference.evaluate(maker(kind)(str(path), label_key="y", batch_size=50))
            result = {"outcome": "ok", "finite": bool(all(np.isfinite(v) for v in metrics.values()))}
            if case % train_every == 0:
                model = sl.LinearClassifier(columns(kind), model_dir=str(workdir / f"model-{case}"))
                model.train(maker(kind)(str(path), label_key="y", batch_size=50))
                values = [model.get_variable_value(n) for n in model.get_variable_names()]
                result["trained"] = True
                result["finite"] = result["finite"] and bool(all(np.isfinite(v).all() for v in values))
                shutil.rmtree(workdir / f"model-{case}", ignore_errors=True)
        except Exception as exc:  # classified: a StreamlinError is fine, anything else is a crash
            result = classify(exc, str(path))
        print(json.dumps({"end": {**line, **result}}), flush=True)
        if only is None:
            path.unlink()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["parquet", "csv", "arrow"], required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--train-every", type=int, default=4)
    parser.add_argument("--only", type=int, default=None)
    parser.add_argument("--start", type=int, default=0, help="skip the cases before this one (after a crash)")
    args = parser.parse_args(argv)
    run(args.kind, args.seed, args.cases, args.workdir, args.train_every, args.only, args.start)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()

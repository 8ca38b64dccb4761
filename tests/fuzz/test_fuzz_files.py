"""Mutated and truncated Parquet, CSV and Arrow IPC files through ``*_input_fn`` -> evaluate/train.

Property: reading a damaged file either works (finite model and metrics) or raises a StreamlinError
whose message names the file; never another exception, a crash of the process, or a hang. The cases
run in subprocesses (``file_worker.py``), so a segfault in a reader or kernel fails the test instead
of the test run; the case that was running is named, and the campaign goes on from the next one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fuzz import harness

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("STREAMLIN_FUZZ_FILE_SEED", "1"))
BUDGET = {"parquet": 40, "csv": 40, "arrow": 40}
TIMEOUT_S = 900
MAX_RESTARTS = 20


def _campaign(kind: str, workdir: Path) -> dict:
    """Run the worker until every case ran, restarting it after a case that killed it."""
    cases = harness.examples(BUDGET[kind])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + sys.path)}
    ended, killed, start, stderr = [], [], 0, ""
    for _ in range(MAX_RESTARTS + 1):
        command = [sys.executable, "-m", "tests.fuzz.file_worker", "--kind", kind, "--seed", str(SEED),
                   "--cases", str(cases), "--start", str(start), "--workdir", str(workdir)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            out, err = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            err += f"\n(timed out after {TIMEOUT_S} s)"
        running = None
        for line in out.splitlines():
            record = json.loads(line)
            if "start" in record:
                running = record["start"]
            else:
                ended.append(record["end"])
                running = None
        if process.returncode == 0:
            break
        stderr = err
        if running is None:  # died outside a case: nothing to skip past
            killed.append({"returncode": process.returncode, "case": None, "stderr": err[-3000:]})
            break
        killed.append({"returncode": process.returncode, "case": running, "stderr": err[-3000:]})
        start = running["case"] + 1
        if start >= cases:
            break
    return {"ended": ended, "killed": killed, "stderr": stderr}


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory):
    """The three campaigns at once (a thread each, driving its worker processes)."""
    with ThreadPoolExecutor(len(BUDGET)) as pool:
        futures = {kind: pool.submit(_campaign, kind, tmp_path_factory.mktemp(f"files-{kind}")) for kind in BUDGET}
        return {kind: future.result() for kind, future in futures.items()}


def _reproduce(kind: str, case: dict) -> str:
    return (f"python -m tests.fuzz.file_worker --kind {kind} --seed {case['seed']} --cases {case['case'] + 1}"
            f" --only {case['case']} --workdir /tmp/streamlin-fuzz-{kind}   # mutation {case['mutation']}")


class _Crash(Exception):
    """A crash reported by a worker process."""


@pytest.mark.parametrize("kind", sorted(BUDGET))
def test_damaged_files_raise_input_errors_naming_the_file(campaigns, kind):
    result = campaigns[kind]
    target = f"files.{kind}"
    problems = []
    for case in result["ended"]:
        outcome = case["outcome"]
        harness.STATS[target]["cases"] += 1
        if outcome != "crash":
            harness.STATS[target][outcome if outcome != "ok" or case.get("finite", True) else "ok-nonfinite"] += 1
        if outcome == "crash":
            harness.record_crash(target, _Crash(case["message"]), _reproduce(kind, case), case["type"], case["origin"])
            problems.append(("crash", f"{case['type']} at {case['origin']}: {case['message']}\n    {_reproduce(kind, case)}"))
        elif outcome != "ok" and not case["names_file"]:
            problems.append(("error not naming the file",
                             f"{outcome} does not name the file: {case['message']}\n    {_reproduce(kind, case)}"))
        elif outcome == "ok" and not case.get("finite", True):
            problems.append(("non-finite model or metrics", f"non-finite model or metrics\n    {_reproduce(kind, case)}"))
    for death in result["killed"]:
        case = death["case"]
        harness.STATS[target]["cases"] += 1
        where = f"while running case {case}: {_reproduce(kind, case)}" if case else "outside a case"
        message = f"the {kind} worker died with exit code {death['returncode']} (-11: segfault) {where}"
        harness.record_crash(target, _Crash(message), _reproduce(kind, case) if case else "",
                             f"exit code {death['returncode']}", "the worker process (see test_fuzz_regressions.py)")
        problems.append(("crash", f"{message}\n{death['stderr'][-1500:]}"))
    for kind_of_problem, message in problems:
        if kind_of_problem != "crash":
            harness.STATS[target][kind_of_problem] += 1
            entry = harness.VIOLATIONS.setdefault((target, kind_of_problem), {"count": 0, "message": message})
            entry["count"] += 1
    assert result["ended"] or result["killed"], result["stderr"][-3000:]
    if not harness.KEEP_GOING:
        assert not problems, (f"{len(problems)} problems in {len(result['ended'])} {kind} cases:\n"
                              + "\n".join(m for _, m in problems[:12]))

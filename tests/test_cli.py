"""The `streamlin` command line, driven end to end through subprocesses on a slice of UCI Adult.

init -> train -> evaluate -> predict -> export -> checkpoints -> inspect -> report, plus
convert-tf on TensorFlow's own checkpoints, exit codes and one-line errors, and the progress
output on a pipe and on a pseudo-terminal.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import pty
import select
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import streamlin as sl
from streamlin import cli
from streamlin import spec as spec_module
from tests._shared import ROOT, SHARED, requires_shared

ADULT = Path(sl.__file__).parent / "data" / "adult"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
COMMANDS = ("demo", "init", "train", "evaluate", "predict", "export", "checkpoints", "inspect", "convert-tf", "report")


def run(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m streamlin.cli ARGS` with stdout/stderr captured (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "streamlin.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=300, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def one_line_failure(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> SimpleNamespace:
    """Adult slices as CSV (with empty hours) and Parquet; a spec from `init`, edited; one `train`."""
    root = tmp_path_factory.mktemp("cli")
    train = pq.read_table(ADULT / "adult_train.parquet").slice(0, 3000)
    hours = train["hours_per_week"].to_pylist()
    hours = [None if i % 25 == 0 else float(h) for i, h in enumerate(hours)]  # empty cells in the CSV
    train = train.set_column(train.schema.get_field_index("hours_per_week"), "hours_per_week", pa.array(hours))
    pacsv.write_csv(train, root / "train.csv")
    pq.write_table(train, root / "train.parquet")
    test = pq.read_table(ADULT / "adult_test.parquet").slice(0, 2000)
    pq.write_table(test, root / "test.parquet")

    init = ok(run("init", root / "train.csv", "--label-key", "income_bracket", "--output", root / "adult.toml"))
    text = (root / "adult.toml").read_text(encoding="utf-8")
    # the user's edits: smaller batches, two epochs, frequent logs and snapshots
    edited = (text.replace("batch_size = 256", "batch_size = 64").replace("num_epochs = 1", "num_epochs = 2")
              .replace("log_step_count_steps = 100", "log_step_count_steps = 5")
              .replace("save_checkpoints_secs = 600", "save_checkpoints_steps = 20"))
    assert edited != text
    (root / "adult.toml").write_text(edited, encoding="utf-8")
    model_dir = root / "model"
    train_proc = ok(run("train", root / "train.csv", "--spec", root / "adult.toml", "--model-dir", model_dir))
    evaluate = ok(run("evaluate", root / "test.parquet", "--model-dir", model_dir))
    return SimpleNamespace(root=root, model_dir=model_dir, init=init, init_text=text, spec_text=edited,
                           train=train_proc, evaluate=evaluate, test=test)


# ------------------------------------------------------------------------------------------------
# the happy path
# ------------------------------------------------------------------------------------------------
def test_init_infers_a_starter_spec(work) -> None:
    assert "wrote" in work.init.stdout and "next: streamlin train" in work.init.stdout
    text = work.init_text
    assert 'label_vocabulary = ["<=50K", ">50K"]' in text          # a string label
    assert "label: determines the label exactly in the sample" in text  # the 0/1 copy is left out
    spec = spec_module.loads(text, root=work.root)
    columns = {c.name: c for c in spec.feature_columns}
    hours = columns["hours_per_week_bucketized"].source_column
    assert hours.default_value == (0.0,)                           # empty cells get a default
    assert "education" in columns and columns["education"].num_oov_buckets == 1
    assert spec.input.column_types["occupation"] == "string"
    assert "label" not in columns and "income_bracket" not in columns


def test_train_logs_progress_lines_and_records_the_run(work) -> None:
    lines = [line for line in work.train.stderr.splitlines() if line.startswith("streamlin train: step ")]
    assert len(lines) >= 3, work.train.stderr
    assert all("loss" in line and "rows/s" in line for line in lines)
    assert "\r" not in work.train.stderr                          # no live line on a pipe
    assert "trained 94 steps (global_step 94)" in work.train.stdout  # 2 epochs x ceil(3000 / 64)
    model_dir = work.model_dir
    assert (model_dir / "streamlin.toml").read_text(encoding="utf-8") == work.spec_text
    records = [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]
    progress = [r for r in records if "loss" in r]
    assert progress and progress[-1]["step"] == 94 and all(r["loss"] > 0 for r in progress)
    assert records[0]["event"] == "train_begin" and records[-1]["event"] == "train_end"
    assert [s.step for s in sl.checkpoints.list(model_dir)][-3:] == [60, 80, 94]


def test_train_continues_with_only_the_model_dir(work, tmp_path) -> None:
    model_dir = tmp_path / "again"
    assert cli.main(["train", str(work.root / "train.parquet"), "--spec", str(work.root / "adult.toml"),
                     "--model-dir", str(model_dir), "--steps", "10", "--quiet"]) == 0
    proc = ok(run("train", work.root / "train.parquet", "--model-dir", model_dir, "--steps", "5", "--quiet"))
    assert proc.stdout == "" and proc.stderr == ""
    assert sl.checkpoints.list(model_dir)[-1].step == 15


def test_evaluate_prints_metrics_and_records_them(work) -> None:
    metrics = json.loads(work.evaluate.stdout)
    assert metrics["global_step"] == 94
    assert {"accuracy", "auc", "average_loss", "loss", "precision", "recall"} <= set(metrics)
    assert metrics["accuracy"] > 0.78 and metrics["auc"] > 0.82
    recorded = [json.loads(line) for line in (work.model_dir / "eval" / "metrics.jsonl").read_text().splitlines()]
    assert recorded[-1]["metrics"]["auc"] == pytest.approx(metrics["auc"])
    early = json.loads(ok(run("evaluate", work.root / "test.parquet", "--model-dir", work.model_dir,
                              "--checkpoint", "20", "--name", "early")).stdout)
    assert early["global_step"] == 20
    assert (work.model_dir / "eval_early" / "metrics.jsonl").is_file()


def test_predict_writes_one_row_per_input_row_in_order(work) -> None:
    output = work.root / "predictions.csv"
    ok(run("predict", work.root / "test.parquet", "--model-dir", work.model_dir, "--output", output,
           "--passthrough", "age", "income_bracket"))
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["age", "income_bracket", "logistic", "class_ids", "classes"]
    assert len(rows) == work.test.num_rows
    assert [int(r["age"]) for r in rows] == work.test["age"].to_pylist()
    assert [r["income_bracket"] for r in rows] == work.test["income_bracket"].to_pylist()
    logistic = np.array([float(r["logistic"]) for r in rows])
    assert np.all((logistic > 0) & (logistic < 1))
    assert [int(r["class_ids"]) for r in rows] == (logistic > 0.5).astype(int).tolist()
    assert {r["classes"] for r in rows} == {"<=50K", ">50K"}
    # the same numbers as the Python API
    estimator = spec_module.from_model_dir(work.model_dir).estimator(work.model_dir)
    fn = sl.inputs.parquet_input_fn(work.root / "test.parquet", "income_bracket", batch_size=500)
    expected = np.concatenate([b["logistic"][:, 0] for b in estimator.predict(fn, yield_single_examples=False)])
    np.testing.assert_allclose(logistic, expected, rtol=1e-6)


def test_predict_to_stdout_and_parquet_with_keys(work, capsys) -> None:
    assert cli.main(["predict", str(work.root / "test.parquet"), "--model-dir", str(work.model_dir),
                     "--keys", "classes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == '"classes"' and len(lines) == work.test.num_rows + 1
    output = work.root / "p.parquet"
    ok(run("predict", work.root / "test.parquet", "--model-dir", work.model_dir, "-o", output,
           "--keys", "probabilities", "logits", "--checkpoint", "20"))
    table = pq.read_table(output)
    assert table.column_names == ["probabilities_<=50K", "probabilities_>50K", "logits"]
    total = np.asarray(table["probabilities_<=50K"]) + np.asarray(table["probabilities_>50K"])
    np.testing.assert_allclose(total, 1.0, rtol=1e-6)


def test_predict_multi_class_writes_a_probability_per_class(work, tmp_path) -> None:
    text = work.spec_text.replace('label_key = "income_bracket"', 'label_key = "relationship"')
    text = text.replace('n_classes = 2\nlabel_vocabulary = ["<=50K", ">50K"]',
                        'label_vocabulary = ["Husband", "Not-in-family", "Other-relative", "Own-child",'
                        ' "Unmarried", "Wife"]')
    start = text.index('\nkey = "relationship"')
    block_start = text.rindex("[[columns]]", 0, start)
    block_end = text.find("[[columns]]", start)
    text = text[:block_start] + text[block_end:]  # the label is no longer a feature
    (tmp_path / "multi.toml").write_text(text, encoding="utf-8")
    spec = spec_module.load(tmp_path / "multi.toml")
    assert spec.n_classes == 6
    model_dir = tmp_path / "multi"
    spec.estimator(model_dir).train(spec.input_fn(work.root / "train.parquet", for_training=True))
    spec.write_to_model_dir(model_dir)
    output = tmp_path / "multi.parquet"
    ok(run("predict", work.root / "test.parquet", "--model-dir", model_dir, "--output", output))
    table = pq.read_table(output)
    names = [f"probabilities_{c}" for c in spec.label_vocabulary]
    assert table.column_names == names + ["class_ids", "classes"]
    probabilities = np.stack([np.asarray(table[n]) for n in names], axis=1)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(np.asarray(table["class_ids"]), probabilities.argmax(axis=1))
    assert table["classes"].to_pylist()[:3] == [spec.label_vocabulary[i] for i in probabilities.argmax(axis=1)[:3]]


def test_export_prints_a_loadable_directory(work) -> None:
    base = work.root / "exports"
    path = ok(run("export", "--model-dir", work.model_dir, "--export-dir-base", base)).stdout.strip()
    assert Path(path).parent == base and Path(path).is_dir()
    predictor = sl.load_exported(path)
    predicted = predictor.predict(work.test.slice(0, 100))["logistic"][:, 0]
    estimator = spec_module.from_model_dir(work.model_dir).estimator(work.model_dir)
    fn = sl.inputs.parquet_input_fn(work.root / "test.parquet", "income_bracket", batch_size=100)
    expected = next(iter(estimator.predict(fn, yield_single_examples=False)))["logistic"][:, 0]
    np.testing.assert_allclose(predicted, expected, rtol=1e-6)


def test_checkpoints_lists_steps_sizes_and_metrics(work) -> None:
    out = ok(run("checkpoints", work.model_dir)).stdout.splitlines()
    assert out[0].split() == ["step", "time", "size", "metrics"]
    rows = {line.split()[0]: line for line in out[2:]}
    assert set(rows) == {"20", "40", "60", "80", "94"}   # keep_checkpoint_max = 5
    assert "auc" in rows["94"] and "KiB" in rows["94"]


def test_checkpoints_json(work, capsys) -> None:
    assert cli.main(["checkpoints", str(work.model_dir), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in records] == [20, 40, 60, 80, 94]
    assert records[-1]["metrics"]["auc"] > 0.8 and records[-1]["bytes"] > 0


def test_inspect_shows_variables_sparsity_and_top_weights(work) -> None:
    out = ok(run("inspect", work.model_dir, "--top", "3")).stdout
    assert "global_step 94" in out
    assert "linear/linear_model/education/weights" in out and "17x1" in out
    assert "optimizer slots:" in out and "hyper-parameters:" in out
    education = next(line for line in out.splitlines() if line.strip().startswith("education:"))
    assert education.count("'") == 6                       # three vocabulary entries, by name
    hours = next(line for line in out.splitlines() if line.strip().startswith("hours_per_week_bucketized:"))
    assert "[" in hours or "<" in hours or ">=" in hours   # buckets as intervals


def test_inspect_json_and_slots(work, capsys) -> None:
    assert cli.main(["inspect", str(work.model_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    names = [c["variable"] for c in summary["columns"]]
    assert "linear/linear_model/bias_weights" in names and summary["global_step"] == 94
    education = next(c for c in summary["columns"] if c["column"] == "education")
    assert education["rows"] == 17 and 0 < education["nonzero_rows"] <= 17
    assert cli.main(["inspect", str(work.model_dir), "--slots", "--checkpoint", "20"]) == 0
    out = capsys.readouterr().out
    assert "global_step 20" in out and "training/Ftrl/linear/linear_model/education/weights/accumulator" in out


def test_report_draws_curves_and_histograms(work) -> None:
    output = work.root / "report.html"
    printed = ok(run("report", work.model_dir, "--output", output, "--data", work.root / "test.parquet")).stdout
    assert printed.strip() == str(output)
    page = output.read_text(encoding="utf-8")
    for title in ("Training loss", "Throughput", "average_loss", "auc", "ROC", "Precision-recall", "Calibration",
                  "Weights per column", "education"):
        assert title in page, title
    assert "eval_early" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    start = 0
    charts = 0
    while (start := page.find("<svg", start)) >= 0:
        end = page.index("</svg>", start) + len("</svg>")
        ET.fromstring(page[start:end])                                   # well-formed SVG
        charts += 1
        start = end
    assert charts >= 15
    roc = page[page.index('aria-label="ROC"'):]
    assert "AUC 0.8" in roc[:roc.index("</svg>")]


# ------------------------------------------------------------------------------------------------
# TensorFlow checkpoints
# ------------------------------------------------------------------------------------------------
TF_SPEC = """
label_key = "label"

[optimizer]
type = "Ftrl"
learning_rate = 0.1
l1_regularization_strength = 0.01
l2_regularization_strength = 0.01

[[columns]]
type = "numeric"
key = "x"

[[columns]]
type = "bucketized"
key = "age"
boundaries = [18.0, 25.0, 35.0, 50.0, 65.0]

[[columns]]
type = "hash_bucket"
key = "site"
hash_bucket_size = 100

[[columns]]
type = "vocabulary_list"
key = "color"
vocabulary_list = ["red", "green", "blue", "black", "white", "grün"]
num_oov_buckets = 2

[[columns]]
type = "crossed"
keys = [{ column = "age_bucketized" }, "color"]
hash_bucket_size = 50
"""


@requires_shared
def test_convert_tf_and_inspect_a_tf_model_dir(tmp_path, capsys) -> None:
    tf_dir = SHARED / "tfref" / "checkpoints" / "v2_ftrl_binary" / "model_dir"
    (tmp_path / "tf.toml").write_text(TF_SPEC, encoding="utf-8")
    model_dir = tmp_path / "converted"
    printed = ok(run("convert-tf", tf_dir, "--spec", tmp_path / "tf.toml", "--model-dir", model_dir)).stdout.strip()
    assert Path(printed).name == "model.ckpt-20"
    tf_values = sl.checkpoints.read_tf(tf_dir)
    estimator = spec_module.from_model_dir(model_dir).estimator(model_dir)
    for name in ("linear/linear_model/color/weights", "linear/linear_model/age_bucketized_X_color/weights"):
        np.testing.assert_array_equal(estimator.get_variable_value(name), tf_values[name])
    assert cli.main(["inspect", str(tf_dir), "--spec", str(tmp_path / "tf.toml")]) == 0
    out = capsys.readouterr().out
    assert "tensorflow checkpoint, global_step 20" in out
    color = next(line for line in out.splitlines() if line.strip().startswith("color:"))
    assert "'" in color or "OOV bucket" in color           # rows named by the spec's vocabulary


# ------------------------------------------------------------------------------------------------
# failures: exit codes and one-line messages
# ------------------------------------------------------------------------------------------------
def test_a_missing_column_fails_with_one_line_naming_it(work, tmp_path) -> None:
    table = pacsv.read_csv(work.root / "train.csv").drop_columns(["occupation"])
    pacsv.write_csv(table.slice(0, 200), tmp_path / "no_occupation.csv")
    proc = run("train", tmp_path / "no_occupation.csv", "--spec", work.root / "adult.toml", "--model-dir",
               tmp_path / "m")
    line = one_line_failure(proc)
    assert line.startswith("streamlin train: ") and "no_occupation.csv" in line
    assert "column 'occupation'" in line and "is missing" in line


def test_usage_errors_exit_2(tmp_path) -> None:
    proc = run("train", tmp_path / "x.csv")
    assert proc.returncode == 2 and "--model-dir" in proc.stderr and "Traceback" not in proc.stderr
    for argv in ([], ["nonsense"], ["evaluate"], ["predict", "x.csv"], ["init", "x.csv"], ["train", "x", "--model-dir",
                                                                                            "m", "--steps", "many"]):
        with pytest.raises(SystemExit) as raised:
            code = cli.main(argv)
            raise SystemExit(code)
        assert raised.value.code == 2, argv


def test_failures_exit_1_with_one_line(work, tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["evaluate", str(work.root / "test.parquet"), "--model-dir", str(empty)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has neither streamlin.toml nor a checkpoint" in err
    (tmp_path / "bad.toml").write_text('label_key = "y"\nbatch_sise = 3\n', encoding="utf-8")
    assert cli.main(["train", str(work.root / "train.csv"), "--spec", str(tmp_path / "bad.toml"), "--model-dir",
                     str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown key 'batch_sise'. Did you mean 'batch_size'?" in err
    assert cli.main(["evaluate", str(work.root / "test.parquet"), "--model-dir", str(work.model_dir),
                     "--checkpoint", "7"]) == 1
    err = capsys.readouterr().err.strip()
    assert "no checkpoint at step 7; it keeps 20, 40, 60, 80, 94" in err
    assert cli.main(["init", str(work.root / "train.csv"), "--label-key", "income", "--output",
                     str(tmp_path / "s.toml")]) == 1
    assert "--label-key column 'income' is missing" in capsys.readouterr().err
    assert cli.main(["predict", str(work.root / "test.parquet"), "--model-dir", str(work.model_dir), "--passthrough",
                     "nope", "-o", str(tmp_path / "p.csv")]) == 1
    assert "column 'nope' (--passthrough) is missing" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
    with pytest.raises(sl.errors.CheckpointError):   # --debug: the exception itself, with its traceback
        cli.main(["--debug", "evaluate", str(work.root / "test.parquet"), "--model-dir", str(work.model_dir),
                  "--checkpoint", "7"])


def _distribute_importable() -> bool:
    try:
        importlib.import_module("streamlin.distribute")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_distribute_importable(), reason="streamlin.distribute works here")
def test_workers_need_streamlin_distribute(work, tmp_path, capsys) -> None:
    code = cli.main(["train", str(work.root / "train.csv"), "--spec", str(work.root / "adult.toml"), "--model-dir",
                     str(tmp_path / "m"), "--workers", "2"])
    assert code == 1 and "require streamlin.distribute" in capsys.readouterr().err


@pytest.mark.skipif(not _distribute_importable(), reason="streamlin.distribute is not available here")
def test_workers_train_on_dask(work, tmp_path) -> None:
    model_dir = tmp_path / "dask"
    proc = ok(run("train", work.root / "train.csv", "--spec", work.root / "adult.toml", "--model-dir", model_dir,
                  "--workers", "2"))
    assert "trained" in proc.stdout and sl.checkpoints.list(model_dir)[-1].step > 0
    assert "INFO distributed" not in proc.stderr       # the cluster's own chatter stays out of the output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself_with_an_example(command, capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main([command, "--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"streamlin {command}" in out


# ------------------------------------------------------------------------------------------------
# progress on a terminal
# ------------------------------------------------------------------------------------------------
def _run_in_pty(argv: list[str], timeout: float = 240) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=ENV, close_fds=True)
    os.close(slave)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            output += data
    finally:
        os.close(master)
        proc.wait(timeout=60)
    return proc.returncode, output.decode("utf-8", "replace")


def test_progress_is_a_live_line_on_a_terminal(work, tmp_path) -> None:
    code, out = _run_in_pty([sys.executable, "-m", "streamlin.cli", "train", str(work.root / "train.parquet"),
                             "--spec", str(work.root / "adult.toml"), "--model-dir", str(tmp_path / "m")])
    assert code == 0, out
    assert "Traceback" not in out
    redraws = out.split("\r\x1b[K")
    assert len(redraws) >= 3, out                                   # the line is redrawn in place
    assert any("rows/s" in r and "loss" in r and "ETA" in r for r in redraws), out  # Parquet: the size is known
    assert "rows (100%)" in out and "done in" in out
    assert "streamlin train: step" not in out                        # no plain lines on a terminal
    assert "trained 94 steps (global_step 94)" in out

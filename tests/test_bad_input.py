"""Bad input, file by file: each case gets a clear streamlin error naming file, row, column and value,
or the documented behaviour. The table in the closing note mirrors CASES below."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import streamlin as sl
from streamlin import feature_column as fc
from streamlin.errors import InputError, MissingFeatureError, StreamlinError


def _table(n=40, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    data = {"x": rng.normal(size=n), "city": rng.choice(["a", "b", "c"], size=n).tolist(),
            "y": rng.integers(0, 2, size=n), "w": np.ones(n)}
    data.update(overrides)
    return pa.table(data)


def _columns(x_default=None):
    return [fc.numeric_column("x", default_value=x_default), fc.categorical_column_with_hash_bucket("city", 16)]


def _train(tmp_path, paths, kind="parquet", columns=None, **kwargs):
    est = sl.LinearClassifier(columns or _columns(), model_dir=str(tmp_path / "model"),
                              weight_column=kwargs.pop("weight_column", None),
                              label_vocabulary=kwargs.pop("label_vocabulary", None))
    maker = {"parquet": sl.inputs.parquet_input_fn, "csv": sl.inputs.csv_input_fn}[kind]
    est.train(maker(paths, label_key="y", batch_size=kwargs.pop("batch_size", 8), **kwargs))
    return est


def _write(tmp_path, name, table):
    path = tmp_path / name
    if name.endswith(".csv"):
        import pyarrow.csv as pacsv
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return str(path)


def test_missing_column_names_feature_file_and_present_columns(tmp_path):
    path = _write(tmp_path, "a.parquet", _table().drop_columns(["city"]))
    with pytest.raises(MissingFeatureError, match=r"a\.parquet: feature 'city'.* is missing; the file has 'x', 'y', 'w'"):
        _train(tmp_path, path)
    assert isinstance(MissingFeatureError("m"), KeyError)


def test_extra_columns_are_ignored(tmp_path):
    path = _write(tmp_path, "a.parquet", _table().append_column("unused", pa.array(["z"] * 40)))
    assert _train(tmp_path, path).get_variable_value("global_step") == 5


def test_column_missing_in_a_later_file_names_that_file(tmp_path):
    first = _write(tmp_path, "a.parquet", _table())
    second = _write(tmp_path, "b.parquet", _table(seed=1).drop_columns(["x"]))
    with pytest.raises(MissingFeatureError, match=r"b\.parquet: feature 'x'.* is missing; the file has 'city', 'y', 'w'"):
        _train(tmp_path, [first, second])
    third = _write(tmp_path, "c.parquet", _table(seed=2, x=["abc"] * 40))
    with pytest.raises(InputError, match=r"c\.parquet: its schema differs from .*a\.parquet's"):
        _train(tmp_path / "t", [first, third])


def test_string_in_numeric_column(tmp_path):
    path = _write(tmp_path, "a.parquet", _table(x=["1.0"] * 40))
    with pytest.raises(InputError, match=r"feature 'x' of numeric_column must hold numbers; found string"):
        _train(tmp_path, path)


def test_null_numeric_without_default_names_file_row_column(tmp_path):
    x = [0.5] * 40
    x[13] = None
    first = _write(tmp_path, "a.parquet", _table())
    second = _write(tmp_path, "b.parquet", _table(x=x))
    with pytest.raises(InputError, match=r"b\.parquet, row 53, column 'x': value is null or NaN.*default_value"):
        _train(tmp_path, [first, second])
    assert _train(tmp_path / "d", [first, second], columns=_columns(x_default=0.0)).get_variable_value("global_step") == 10


def test_nan_and_overflowing_numbers(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("x,city,y\n1.5,a,1\nNaN,b,0\n1e400,c,1\n")
    with pytest.raises(InputError, match=r"a\.csv, row 1, column 'x': value is null or NaN"):
        _train(tmp_path, str(csv), kind="csv")
    with pytest.raises(InputError, match=r"a\.csv, row 2, column 'x': value inf is not finite"):
        _train(tmp_path / "d", str(csv), kind="csv", columns=_columns(x_default=0.0))


def test_label_not_in_vocabulary_names_value_and_row(tmp_path):
    labels = ["no"] * 40
    labels[17] = "yes "
    path = _write(tmp_path, "a.parquet", _table(y=labels))
    with pytest.raises(InputError, match=r"a\.parquet, row 17, column 'y': label 'yes ' is not in label_vocabulary"):
        _train(tmp_path, path, label_vocabulary=["no", "yes"])
    assert issubclass(InputError, ValueError)


def test_binary_label_out_of_range_counts_rows_across_files(tmp_path):
    y = np.zeros(40, dtype=np.int64)
    y[3] = 2
    first = _write(tmp_path, "a.parquet", _table())
    second = _write(tmp_path, "b.parquet", _table(y=y))
    with pytest.raises(ValueError, match=r"b\.parquet, row 43, column 'y': a binary label must be in \[0, 1\]; found 2"):
        _train(tmp_path, [first, second])


def test_string_labels_without_vocabulary(tmp_path):
    path = _write(tmp_path, "a.parquet", _table(y=["true"] * 40))
    with pytest.raises(InputError, match=r"label 'true' is a string; pass label_vocabulary"):
        _train(tmp_path, path)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_example_weight(tmp_path, bad):
    w = np.ones(40)
    w[9] = bad
    path = _write(tmp_path, "a.parquet", _table(w=w))
    with pytest.raises(InputError, match=r"row 9, column 'w': example weight .* is not a finite number >= 0"):
        _train(tmp_path, path, weight_column="w")


def test_empty_and_corrupt_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.parquet: cannot be read as Parquet"):
        _train(tmp_path, str(empty))
    good = _write(tmp_path, "good.parquet", _table(n=4000))
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(Path(good).read_bytes()[:-100])
    with pytest.raises(InputError, match=r"truncated\.parquet: cannot be read as Parquet"):
        _train(tmp_path / "t", str(truncated))
    broken = tmp_path / "broken.csv"
    broken.write_text('x,city,y\n1.0,"a,1\n')
    with pytest.raises(InputError, match=r"broken\.csv: cannot be read as CSV"):
        _train(tmp_path / "c", str(broken), kind="csv")
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_text("")
    with pytest.raises(InputError, match=r"empty\.csv: cannot be read as CSV"):
        _train(tmp_path / "e", str(empty_csv), kind="csv")


def test_a_valid_file_without_rows_trains_nothing(tmp_path):
    path = _write(tmp_path, "a.parquet", _table().slice(0, 0))
    assert _train(tmp_path, path).get_variable_value("global_step") == 0


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(InputError, match=r"matches no file"):
        sl.inputs.parquet_input_fn(str(tmp_path / "*.parquet"), "y")


def test_multivalued_feature_of_wrong_depth(tmp_path):
    nested = [[["a"]]] * 40
    path = _write(tmp_path, "a.parquet", _table(city=nested))
    with pytest.raises(InputError, match=r"feature 'city' .* must hold strings or ints; found list<"):
        _train(tmp_path, path)


def test_identity_out_of_range(tmp_path):
    ids = np.arange(40) % 4
    ids[21] = 7
    path = _write(tmp_path, "a.parquet", _table(k=ids))
    columns = [fc.categorical_column_with_identity("k", 4)]
    with pytest.raises(InputError, match=r"row 21, column 'k': identity id 7 is outside \[0, 4\)"):
        _train(tmp_path, path, columns=columns)


def test_skip_policy_drops_bad_rows_counts_them_and_writes_a_side_file(tmp_path, caplog):
    y = np.zeros(40, dtype=np.int64)
    y[[2, 30]] = 5
    x = [0.1] * 40
    x[11] = None
    path = _write(tmp_path, "a.parquet", _table(y=y, x=x))
    side = tmp_path / "bad.jsonl"
    est = _train(tmp_path, path, on_bad_row="skip", bad_rows_file=str(side))
    assert est.get_variable_value("global_step") == 5
    records = [json.loads(line) for line in side.read_text().splitlines()]
    assert sorted(r["row"] for r in records) == [2, 11, 30]
    assert all(r["source"].endswith("a.parquet") for r in records)
    log = [json.loads(line) for line in (tmp_path / "model" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "bad_rows" and log[-1]["skipped_rows"] == 3
    assert "skipped 3 bad rows" in caplog.text


def test_skip_policy_equals_training_on_the_rows_kept(tmp_path):
    """Dropped rows shorten their batch; the model equals one trained on those same batches."""
    y = np.zeros(40, dtype=np.int64)
    y[[2, 3, 4, 5, 6, 7, 8, 9]] = 3  # the whole second batch of 8 (rows 8..15 keep 8, 9 bad)
    table = _table(y=y)
    path = _write(tmp_path, "a.parquet", table)
    skipped = _train(tmp_path / "s", path, on_bad_row="skip")
    keep = np.ones(40, dtype=bool)
    keep[[2, 3, 4, 5, 6, 7, 8, 9]] = False
    clean = table.filter(pa.array(keep))
    batches = [clean.slice(0, 2), clean.slice(2, 6)] + [clean.slice(8 + 8 * i, 8) for i in range(3)]

    def input_fn():
        for batch in batches:
            yield {name: batch.column(name) for name in ("x", "city")}, batch.column("y")

    reference = sl.LinearClassifier(_columns(), model_dir=str(tmp_path / "r"))
    reference.train(input_fn)
    assert skipped.get_variable_value("global_step") == reference.get_variable_value("global_step") == 5
    for name in skipped.get_variable_names():
        assert np.array_equal(skipped.get_variable_value(name), reference.get_variable_value(name)), name


def test_every_error_is_a_streamlin_error():
    for cls in (InputError, MissingFeatureError):
        assert issubclass(cls, StreamlinError)


FORBIDDEN = re.compile(r"\bimport pickle\b|\bpickle\.|\bmarshal\.|\beval\(|\bexec\(|allow_pickle\s*=\s*True|\bdill\b|joblib")


def test_no_pickle_eval_or_exec_in_the_package():
    package = Path(sl.__file__).parent
    offenders = [f"{path.relative_to(package)}:{number}: {line.strip()}"
                 for path in package.rglob("*.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if FORBIDDEN.search(line) and not line.strip().startswith("#")]
    assert offenders == []

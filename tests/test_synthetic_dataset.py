"""The Criteo-shaped synthetic generator (datasets/make_synthetic.py): determinism, schema,
streaming, click rate, null rates and the known true model."""

import hashlib
import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from perf._datasets import load_generator

ms = load_generator()
ROWS, TEST_ROWS = 20_000, 5_000


def _digests(d):
    out = {}
    for root, _dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            if f != "meta.json":
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synth"))
    meta = ms.generate(out, ROWS, seed=7, formats=("parquet", "csv", "vw"), files=2,
                       test_rows=TEST_ROWS)
    return out, meta


@pytest.fixture(scope="module")
def train_table(data):
    return pq.read_table(data[1]["paths"]["train"]["parquet"])


def test_same_seed_same_bytes_whatever_the_block_size(data, tmp_path):
    out, meta = data
    again = ms.generate(str(tmp_path / "a"), ROWS, seed=7, formats=("parquet", "csv", "vw"),
                        files=2, test_rows=TEST_ROWS, block_rows=777)
    assert _digests(out) == _digests(str(tmp_path / "a"))
    assert len(_digests(out)) == 3 * 3  # 2 train files + 1 test file per format
    assert again["bayes_logloss_test"] == meta["bayes_logloss_test"]


def test_other_seed_other_data(data, tmp_path):
    ms.generate(str(tmp_path / "b"), 2_000, seed=8)
    a = pq.read_table(data[1]["paths"]["train"]["parquet"][0]).slice(0, 2_000)
    b = pq.read_table(str(tmp_path / "b" / "parquet" / "train"))
    assert not a.equals(b)


def test_row_groups_are_fixed_and_independent_of_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(ms, "ROW_GROUP", 3_000)
    ms.generate(str(tmp_path / "x"), 10_000, seed=7, block_rows=1_234)
    ms.generate(str(tmp_path / "y"), 10_000, seed=7, block_rows=10_000)
    assert _digests(str(tmp_path / "x")) == _digests(str(tmp_path / "y"))
    md = pq.ParquetFile(str(tmp_path / "x" / "parquet" / "train" / "part-00000.parquet")).metadata
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [3_000] * 3 + [1_000]


def test_schema_and_value_domains(data, train_table):
    _out, meta = data
    t = train_table
    assert t.schema.equals(ms.schema())
    assert t.num_rows == ROWS
    assert [pq.ParquetFile(p).metadata.num_rows for p in meta["paths"]["train"]["parquet"]] == [
        ROWS // 2, ROWS // 2]
    assert set(np.unique(t["label"].to_numpy())) == {0, 1}
    for k in ms.NUMERIC:
        v = t[k].drop_null().to_numpy()
        assert v.dtype == np.float32 and (v >= 0).all() and (v == np.floor(v)).all()
        assert np.isfinite(v).all()
    # heavy tails: the 99th percentile is far above the median for the count-like columns
    i5 = t["I5"].drop_null().to_numpy()
    assert np.quantile(i5, 0.99) > 20 * np.quantile(i5, 0.5)
    for k, cd in zip(ms.CATEGORICAL, ms.CARDINALITIES):
        vals = t[k].drop_null().unique().to_pylist()
        assert len(vals) <= cd
        assert all(len(s) == 8 and all(ch in "0123456789abcdef" for ch in s) for s in vals[:50])
    assert len(t["C1"].drop_null().unique()) == 10
    assert len(t["C26"].drop_null().unique()) > 2_000  # high-cardinality, long-tailed


def test_csv_and_vw_carry_the_same_rows(data, train_table):
    _out, meta = data
    types = {k: pa.string() for k in ms.CATEGORICAL}
    types.update({k: pa.float32() for k in ms.NUMERIC})
    types["label"] = pa.int8()
    csv = pa.concat_tables([
        pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(column_types=types,
                                                               strings_can_be_null=True))
        for p in meta["paths"]["train"]["csv"]])
    assert csv.equals(train_table)
    lines = []
    for p in meta["paths"]["train"]["vw"]:
        with open(p) as f:
            lines += f.read().splitlines()
    assert len(lines) == ROWS
    first = lines[0].split(" |")
    assert first[0] in ("1", "-1") and (first[0] == "1") == (train_table["label"][0].as_py() == 1)
    assert [s[0] for s in first[1:]] == ["I"] + list(ms.VW_NAMESPACES)
    c1 = first[2].split()
    assert c1[0] == "a" and c1[1:] == [train_table["C1"][0].as_py()]
    nums = dict(f.split(":") for f in first[1].split()[1:])
    for k, v in nums.items():
        assert math.isclose(float(v), math.log1p(train_table[k][0].as_py()), rel_tol=1e-6)


def test_click_rate_and_null_rates(data, train_table):
    _out, meta = data
    t = train_table
    assert 0.18 <= meta["ctr_train"] <= 0.27 and 0.18 <= meta["ctr_test"] <= 0.27
    assert abs(t["label"].to_numpy().mean() - meta["ctr_train"]) < 1e-12
    tol = 4 * math.sqrt(0.25 / ROWS) + 1e-9
    for k, rate in zip(ms.CATEGORICAL, ms.CAT_NULL_RATES):
        assert abs(t[k].null_count / ROWS - rate) < tol, k
    for k, (rate, _m, _q) in zip(ms.NUMERIC, ms.NUM_SHAPE):
        assert abs(t[k].null_count / ROWS - rate) < tol, k
    assert sum(t[k].null_count for k in ms.CATEGORICAL) > 0
    assert sum(t[k].null_count for k in ms.NUMERIC) > 0


def test_bayes_logloss_beats_constant_predictor(data):
    out, meta = data
    assert meta["bayes_logloss_test"] < meta["constant_logloss_test"] - 0.05
    exp = ms.expected_bayes_logloss(7)
    assert exp == meta["expected_bayes_logloss"]
    assert abs(meta["bayes_logloss_test"] - exp) < 0.03  # 5k test rows: sampling noise only
    assert 0.3 < exp < 0.5
    with open(os.path.join(out, "meta.json")) as f:
        assert json.load(f)["bayes_logloss_test"] == meta["bayes_logloss_test"]


def test_true_probability_matches_the_generator(data):
    _out, meta = data
    test = pq.read_table(meta["paths"]["test"]["parquet"])
    p = ms.true_probability(test, seed=7)
    y = test["label"].to_numpy().astype(np.float64)
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    ll = float(np.mean(-(y * np.log(pc) + (1 - y) * np.log1p(-pc))))
    assert ll == pytest.approx(meta["bayes_logloss_test"], rel=1e-6)
    assert abs(p.mean() - 0.22) < 0.02


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        ms.generate(str(tmp_path), 10, formats=("json",))
    with pytest.raises(ValueError):
        ms.generate(str(tmp_path), -1)

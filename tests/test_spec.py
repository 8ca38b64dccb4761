"""streamlin.spec: TOML model specs read as checked data, written back, and inferred from data."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import streamlin as sl
from streamlin import feature_column as fc
from streamlin import spec as spec_module
from streamlin.errors import ConfigError
from streamlin.feature_column.columns import (
    BucketizedColumn,
    HashedCategoricalColumn,
    IdentityCategoricalColumn,
    NumericColumn,
    VocabularyFileCategoricalColumn,
    VocabularyListCategoricalColumn,
    WeightedCategoricalColumn,
)

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

ADULT_TRAIN = Path(sl.__file__).parent / "data" / "adult" / "adult_train.parquet"

FULL = """
label_key = "y"
weight_column = "w"
batch_size = 16
num_epochs = 2
loss_reduction = "sum"
sparse_combiner = "mean"

[input]
delimiter = ";"
column_types = { zip = "string" }

[optimizer]
type = "Ftrl"
learning_rate = { type = "ExponentialDecay", initial_learning_rate = 0.1, decay_steps = 10, decay_rate = 0.5 }
l1_regularization_strength = 0.01

[checkpoints]
save_checkpoints_steps = 10
keep_checkpoint_max = 3
log_step_count_steps = 5
keep_best = { metric = "auc", mode = "max" }

[[columns]]
type = "numeric"
key = "x"
shape = [2]
default_value = 0.5

[[columns]]
type = "crossed"
keys = [{ column = "age_bucketized" }, { column = "color" }, "site"]
hash_bucket_size = 50

[[columns]]
type = "bucketized"
key = "age"
boundaries = [18, 25, 35.5]

[[columns]]
type = "vocabulary_file"
key = "color"
vocabulary_file = "vocab/color.txt"
num_oov_buckets = 2

[[columns]]
type = "categorical_column_with_hash_bucket"
key = "site"
hash_bucket_size = 64

[[columns]]
type = "vocabulary_list"
key = "device"
vocabulary_list = ["ios", "android"]
default_value = 0

[[columns]]
type = "weighted"
weight_feature_key = "item_w"
categorical = { type = "identity", key = "item", num_buckets = 10 }

[[columns]]
type = "crossed"
keys = [{ type = "vocabulary_list", key = "a", vocabulary_list = [1, 2, 3] }, "b"]
hash_bucket_size = 7
hash_key = 12
"""


@pytest.fixture()
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "color.txt").write_text("red\ngreen\nblue\n", encoding="utf-8")
    (tmp_path / "model.toml").write_text(FULL, encoding="utf-8")
    return tmp_path


def _columns(spec) -> dict:
    return {c.name: c for c in spec.feature_columns}


def test_load_reads_every_column_kind_and_section(spec_dir: Path) -> None:
    spec = spec_module.load(spec_dir / "model.toml")
    columns = _columns(spec)
    assert set(columns) == {"x", "age_bucketized_X_color_X_site", "age_bucketized", "color", "site", "device",
                            "item_weighted_by_item_w", "a_X_b"}
    assert columns["x"] == fc.numeric_column("x", shape=2, default_value=0.5)
    assert isinstance(columns["age_bucketized"], BucketizedColumn)
    assert columns["age_bucketized"].boundaries == (18.0, 25.0, 35.5)
    color = columns["color"]
    assert isinstance(color, VocabularyFileCategoricalColumn)
    assert color.vocabulary == ("red", "green", "blue") and color.num_buckets == 5
    assert Path(color.vocabulary_file) == (spec_dir / "vocab" / "color.txt").resolve()
    assert isinstance(columns["site"], HashedCategoricalColumn) and columns["site"].hash_bucket_size == 64
    assert isinstance(columns["device"], VocabularyListCategoricalColumn) and columns["device"].default_value == 0
    weighted = columns["item_weighted_by_item_w"]
    assert isinstance(weighted, WeightedCategoricalColumn)
    assert isinstance(weighted.categorical_column, IdentityCategoricalColumn)
    # a { column = ... } reference crosses the column itself (its ids), a string the raw feature
    cross = columns["age_bucketized_X_color_X_site"]
    assert cross.keys_ == (columns["age_bucketized"], color, "site")
    inline = columns["a_X_b"]
    assert isinstance(inline.keys_[0], VocabularyListCategoricalColumn) and inline.hash_key == 12
    assert spec.label_key == "y" and spec.weight_column == "w"
    assert (spec.batch_size, spec.num_epochs, spec.loss_reduction, spec.sparse_combiner) == (16, 2, "sum", "mean")
    assert spec.input.delimiter == ";" and spec.input.column_types == {"zip": "string"}
    assert isinstance(spec.optimizer, sl.optimizers.Ftrl)
    assert spec.optimizer.l1_regularization_strength == 0.01
    assert spec.optimizer.learning_rate(10) == pytest.approx(0.05)
    config = spec.run_config()
    assert (config.save_checkpoints_steps, config.save_checkpoints_secs, config.keep_checkpoint_max,
            config.log_step_count_steps) == (10, None, 3, 5)
    assert config.keep_best.metric == "auc" and config.keep_best.mode == "max"
    assert spec.vocabulary_files == {"vocab/color.txt": str((spec_dir / "vocab" / "color.txt").resolve())}


def test_estimator_is_built_from_the_spec_with_overrides(spec_dir: Path, tmp_path: Path) -> None:
    spec = spec_module.load(spec_dir / "model.toml")
    estimator = spec.estimator(tmp_path / "m", resume_input=True, save_checkpoints_steps=7)
    params = estimator.params
    assert params["loss_reduction"] == "sum" and params["sparse_combiner"] == "mean"
    assert params["weight_column"] == "w"
    assert estimator.config.resume_input and estimator.config.save_checkpoints_steps == 7
    assert estimator.config.keep_checkpoint_max == 3
    other = spec.estimator(tmp_path / "m2", optimizer="SGD")
    assert other.params["optimizer"]["class"] == "SGD"
    with pytest.raises(ConfigError, match="'colour'.*neither a LinearClassifier argument nor a RunConfig field"):
        spec.estimator(tmp_path / "m3", colour="red")


def test_to_toml_reads_back_to_the_same_spec(spec_dir: Path) -> None:
    spec = spec_module.load(spec_dir / "model.toml")
    text = spec.to_toml()
    again = spec_module.loads(text, root=spec_dir)
    assert again.feature_columns == spec.feature_columns
    assert again.optimizer == spec.optimizer
    assert again.checkpoints == spec.checkpoints
    assert again.input == spec.input
    assert (again.label_key, again.weight_column, again.batch_size, again.num_epochs, again.loss_reduction,
            again.sparse_combiner) == (spec.label_key, spec.weight_column, 16, 2, "sum", "mean")
    assert 'vocabulary_file = "vocab/color.txt"' in text  # relative, as written
    assert '{ column = "age_bucketized" }' in text       # a reference stays a reference


@pytest.mark.parametrize("value", [
    'quote " backslash \\ newline \n tab \t',
    "unicode é ✓ 🐍",
    "control \x00\x01\x1f and delete \x7f",
    "",
])
def test_toml_strings_round_trip(value: str) -> None:
    text = spec_module.dumps({"s": value, "list": [value, "x"], "t": {"inner key": value}})
    doc = tomllib.loads(text)
    assert doc == {"s": value, "list": [value, "x"], "t": {"inner key": value}}


def test_toml_numbers_and_nesting_round_trip() -> None:
    doc = {"i": -3, "f": 0.1, "big": 2**62, "inf": math.inf, "neg": -math.inf, "b": True,
           "t": {"inline": {"a": [1, 2.5], "b": {"c": "d"}}},
           "rows": [{"#": "a comment", "x": 1}, {"x": 2, "ys": list(range(60))}]}
    parsed = tomllib.loads(spec_module.dumps(doc, header="header line\nsecond"))
    assert parsed["i"] == -3 and parsed["f"] == 0.1 and parsed["big"] == 2**62
    assert parsed["inf"] == math.inf and parsed["neg"] == -math.inf and parsed["b"] is True
    assert parsed["t"] == {"inline": {"a": [1, 2.5], "b": {"c": "d"}}}
    assert parsed["rows"] == [{"x": 1}, {"x": 2, "ys": list(range(60))}]
    assert math.isnan(tomllib.loads(spec_module.dumps({"n": math.nan}))["n"])


MINIMAL = 'label_key = "y"\n[[columns]]\ntype = "numeric"\nkey = "x"\n'


@pytest.mark.parametrize("text, message", [
    ('lable_key = "y"\n' + MINIMAL, r"top level: unknown key 'lable_key'\. Did you mean 'label_key'\?"),
    ('[[columns]]\ntype = "numeric"\nkey = "x"\n', r"top level: 'label_key' is missing; add label_key ="),
    ('label_key = 3\n' + MINIMAL.split("\n", 1)[1], r"label_key must be a string \(the label column's name\); found integer 3"),
    (MINIMAL + '[[columns]]\ntype = "hash_bucket"\nkey = "s"\nhash_bucket_size = "10"\n',
     r"columns\[1\] \(hash_bucket 's'\).*hash_bucket_size must be an integer >= 1; found '10'"),
    (MINIMAL + '[[columns]]\ntype = "hash_bucket"\nkey = "s"\nhash_bucket_size = 1099511627776\n',
     r"columns\[1\] \(hash_bucket 's'\).*larger than 17179869184; such a table cannot be allocated"),
    (MINIMAL + '[[columns]]\ntype = "hash_bucket"\nkey = "s"\n', r"'hash_bucket_size' is missing"),
    (MINIMAL + '[[columns]]\ntype = "hashed"\nkey = "s"\n', r"type 'hashed' is unknown; use one of"),
    (MINIMAL + '[[columns]]\ntype = "hash_bucket"\nkey = "s"\nhash_bucket_size = 8\nbuckets = 3\n',
     r"columns\[1\] \(hash_bucket\): unknown key 'buckets'"),
    (MINIMAL + '[[columns]]\ntype = "crossed"\nkeys = [{ column = "nope" }, "x"]\nhash_bucket_size = 8\n',
     r"refers to column 'nope', which no \[\[columns\]\] entry defines; defined: x"),
    (MINIMAL + '[[columns]]\ntype = "crossed"\nkeys = [{ type = "hash_bucket", key = "s", hash_bucket_size = 4 },'
               ' "x"]\nhash_bucket_size = 8\n', r"categorical_column_with_hash_bucket is not supported for crossing"),
    (MINIMAL + '[[columns]]\ntype = "numeric"\nkey = "x"\n', r"columns\[1\].*named 'x' is already defined by columns\[0\]"),
    (MINIMAL + '[[columns]]\ntype = "numeric"\nkey = "y"\n', r"label_key 'y' is also read by column 'y'"),
    (MINIMAL + '[[columns]]\ntype = "bucketized"\nkey = "a"\nboundaries = [3, 1]\n', r"boundaries must be a sorted"),
    ('label_key = "y"\n', r"columns: give at least one \[\[columns\]\] table"),
    (MINIMAL + '[optimizer]\ntype = "Adam"\n', r"\[optimizer\]: type must be \"Ftrl\", \"Adagrad\" or \"SGD\""),
    (MINIMAL + '[optimizer]\ntype = "SGD"\nl1_regularization_strength = 0.1\n',
     r"\[optimizer\] \(SGD\): unknown key 'l1_regularization_strength'"),
    (MINIMAL + '[optimizer]\nlearning_rate = -1\n', r"learning_rate must be a positive number"),
    (MINIMAL + '[checkpoints]\nsave_checkpoints_steps = 5\nsave_checkpoints_secs = 60\n',
     r"\[checkpoints\]: RunConfig: set save_checkpoints_steps or save_checkpoints_secs, not both"),
    (MINIMAL + '[input]\nformat = "json"\n', r"\[input\]: format must be one of"),
    (MINIMAL + '[input]\ncolumn_types = { a = "strin" }\n', r"'strin' is not a pyarrow type name"),
    ('label_key = "y"\nn_classes = 3\nlabel_vocabulary = ["a", "b"]\n' + MINIMAL.split("\n", 1)[1],
     r"label_vocabulary must list 3 strings"),
    ("label_key = \n", r"is not valid TOML"),
])
def test_invalid_specs_name_the_key_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_module.loads(text, source="bad.toml")


def test_a_model_larger_than_memory_is_refused_before_allocation(monkeypatch) -> None:
    text = MINIMAL + '[[columns]]\ntype = "hash_bucket"\nkey = "s"\nhash_bucket_size = 4194304\n'
    assert spec_module.loads(text).feature_columns  # fits
    monkeypatch.setattr(spec_module.os, "sysconf", lambda name: 4096 if name == "SC_PAGE_SIZE" else 1024)
    with pytest.raises(ConfigError, match=r"needs 0\.0 GiB.*largest column is 's' with 4,194,304 buckets"):
        spec_module.loads(text)


@pytest.mark.parametrize("path, message", [
    ("../outside.txt", "leaves the spec's folder"),
    ("vocab/../../outside.txt", "leaves the spec's folder"),
    ("/etc/hostname", "must be relative to the spec's folder"),
    ("vocab/missing.txt", "does not exist"),
])
def test_vocabulary_files_stay_inside_the_spec_folder(tmp_path: Path, path: str, message: str) -> None:
    root = tmp_path / "spec"
    (root / "vocab").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("a\n", encoding="utf-8")
    text = MINIMAL + f'[[columns]]\ntype = "vocabulary_file"\nkey = "c"\nvocabulary_file = "{path}"\n'
    (root / "s.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        spec_module.load(root / "s.toml")


def test_write_to_model_dir_copies_the_text_and_vocabulary_files(spec_dir: Path, tmp_path: Path) -> None:
    spec = spec_module.load(spec_dir / "model.toml")
    model_dir = tmp_path / "model"
    path = spec.write_to_model_dir(model_dir)
    assert Path(path).read_text(encoding="utf-8") == FULL  # the user's text, comments and all
    assert (model_dir / "vocab" / "color.txt").read_text(encoding="utf-8") == "red\ngreen\nblue\n"
    again = spec_module.from_model_dir(model_dir)
    assert [c.name for c in again.feature_columns] == [c.name for c in spec.feature_columns]
    assert Path(_columns(again)["color"].vocabulary_file) == (model_dir / "vocab" / "color.txt").resolve()
    (spec_dir / "vocab" / "color.txt").write_text("red\ngreen\nblue\nblack\n", encoding="utf-8")
    changed = spec_module.load(spec_dir / "model.toml")
    with pytest.raises(ConfigError, match="already exists with other contents"):
        changed.write_to_model_dir(model_dir)


def _small_data(tmp_path: Path) -> pa.Table:
    rng = np.random.default_rng(0)
    n = 1200
    table = pa.table({
        "id": pa.array([f"user-{i}" for i in range(n)]),
        "city": pa.array([f"c{int(v)}" for v in rng.integers(0, 400, n)]),
        "color": pa.array(rng.choice(["red", "green", "blue"], n)),
        "code": pa.array(rng.integers(0, 5, n)),
        "big": pa.array(rng.integers(0, 100_000, n)),
        "small": pa.array([None if i % 10 == 0 else float(v) for i, v in enumerate(rng.normal(size=n))]),
        "const": pa.array(["same"] * n),
        "outcome": pa.array(rng.choice(["no", "yes"], n)),
    })
    return table.append_column("outcome_copy", pa.array(["Y" if v == "yes" else "N" for v in table["outcome"].to_pylist()]))


def test_infer_writes_a_loadable_starter_spec(tmp_path: Path) -> None:
    table = _small_data(tmp_path)
    pq.write_table(table, tmp_path / "d.parquet")
    text = spec_module.infer(tmp_path / "d.parquet", "outcome")
    (tmp_path / "s.toml").write_text(text, encoding="utf-8")
    spec = spec_module.load(tmp_path / "s.toml")
    columns = _columns(spec)
    assert spec.label_vocabulary == ("no", "yes") and spec.n_classes == 2
    assert isinstance(columns["city"], HashedCategoricalColumn)
    assert columns["city"].hash_bucket_size == 2048  # 400 distinct -> next power of two >= 1600
    assert columns["color"] == fc.categorical_column_with_vocabulary_list(
        "color", columns["color"].vocabulary_list, num_oov_buckets=1)
    assert set(columns["color"].vocabulary_list) == {"red", "green", "blue"}
    assert isinstance(columns["code"], IdentityCategoricalColumn) and columns["code"].num_buckets == 5
    assert isinstance(columns["big_bucketized"], BucketizedColumn)
    assert isinstance(columns["small"], NumericColumn) and columns["small"].default_value == (0.0,)
    for left_out in ("id", "const", "outcome_copy"):
        assert left_out not in columns
    assert "id: 1,200 distinct values" in text and "outcome_copy: determines the label exactly" in text
    assert "const: one value ('same')" in text


def test_infer_csv_pins_string_columns_and_tsv_delimiter(tmp_path: Path) -> None:
    table = pa.table({"zip": ["00123", "04567", "00123"] * 10, "n": list(range(30)), "label": [0, 1, 1] * 10})
    options = pacsv.WriteOptions(delimiter="\t", quoting_style="none")
    pacsv.write_csv(table, tmp_path / "d.tsv", write_options=options)
    text = spec_module.infer(tmp_path / "d.tsv", "label")
    spec = spec_module.loads(text, root=tmp_path)
    assert spec.input.column_types == {"zip": "string"}
    assert spec.n_classes == 2 and spec.label_vocabulary is None
    fn = spec.input_fn(tmp_path / "d.tsv", for_training=False)
    features, labels = next(iter(fn()))
    assert features.column("zip").to_pylist()[:2] == ["00123", "04567"]  # not read as numbers


def test_infer_names_a_missing_label() -> None:
    with pytest.raises(ConfigError, match=r"--label-key column 'income' is missing; the data has 'age'"):
        spec_module.infer(ADULT_TRAIN, "income", sample_rows=100)


def test_input_fn_picks_the_format_by_extension(tmp_path: Path) -> None:
    table = pa.table({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    pq.write_table(table, tmp_path / "a.parquet")
    pacsv.write_csv(table, tmp_path / "a.csv")
    feather.write_feather(table, tmp_path / "a.feather")
    (tmp_path / "parts").mkdir()
    pq.write_table(table, tmp_path / "parts" / "p0.parquet")
    pq.write_table(table, tmp_path / "parts" / "p1.parquet")
    (tmp_path / "parts" / "_SUCCESS").write_text("")
    (tmp_path / "parts" / "notes.txt").write_text("not data")
    spec = spec_module.loads(MINIMAL)
    for name, maker in (("a.parquet", "parquet_input_fn"), ("a.csv", "csv_input_fn"), ("a.feather", "arrow_input_fn")):
        fn = spec.input_fn(tmp_path / name, for_training=True)
        assert fn.maker == maker
        features, labels = next(iter(fn()))
        assert features.column("x").to_pylist() == [1.0, 2.0, 3.0] and labels.to_pylist() == [0, 1, 0]
    assert spec.files(tmp_path / "parts")[1] == [str(tmp_path / "parts" / "p0.parquet"),
                                                 str(tmp_path / "parts" / "p1.parquet")]
    assert spec.files(str(tmp_path / "parts" / "*.parquet"))[0] == "parquet"
    with pytest.raises(ConfigError, match="mixes formats"):
        spec.files([tmp_path / "a.parquet", tmp_path / "a.csv"])
    with pytest.raises(ConfigError, match=r"notes\.txt: cannot tell the data format.*set format ="):
        spec.files(tmp_path / "parts" / "notes.txt")
    forced = spec_module.loads(MINIMAL + '[input]\nformat = "csv"\n')
    assert forced.input_fn(tmp_path / "a.csv", for_training=False).maker == "csv_input_fn"


def test_check_model_dir_refuses_another_model(tmp_path: Path) -> None:
    spec = spec_module.loads(MINIMAL + '[[columns]]\ntype = "hash_bucket"\nkey = "s"\nhash_bucket_size = 8\n')
    estimator = spec.estimator(tmp_path / "m")
    estimator.train(sl.inputs.numpy_input_fn({"x": np.ones(4), "s": np.array(["a", "b", "a", "b"], dtype=object)},
                                             np.array([0, 1, 0, 1]), batch_size=2))
    spec.check_model_dir(tmp_path / "m")  # the same spec is fine
    other = spec_module.loads(MINIMAL + '[[columns]]\ntype = "hash_bucket"\nkey = "s"\nhash_bucket_size = 16\n')
    with pytest.raises(ConfigError, match=r"trained with another spec: feature columns 's' differ"):
        other.check_model_dir(tmp_path / "m")
    # without a streamlin.toml the spec comes from the snapshot's attributes
    recorded = spec_module.from_model_dir(tmp_path / "m")
    assert set(recorded.feature_columns) == set(spec.feature_columns) and recorded.label_key is None

"""Minimal reproducers of what the fuzz tests found, one test each (deterministic, fast).

Each test states the contract (API.md / issue 7): bad input or a damaged file raises a StreamlinError
that says where; nothing else escapes, nothing is read out of bounds, no file-chosen code runs.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import streamlin as sl
from streamlin import feature_column as fc
from streamlin._arrow import as_record_batch
from streamlin.errors import CheckpointError, InputError, StreamlinError
from streamlin.feature_column.layout import Layout
from streamlin.heads import Head
from tests.fuzz import mutations as M

ROOT = Path(__file__).resolve().parents[2]
HASH = fc.categorical_column_with_hash_bucket("k", 8)


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("streamlin").setLevel(logging.ERROR)
    yield
    logging.getLogger("streamlin").setLevel(logging.NOTSET)


def _rows(columns, features):
    return Layout.build(columns).sparse_rows(as_record_batch(features))


# -- the feature stage --------------------------------------------------------------------------------------
@pytest.mark.parametrize("column", [HASH, fc.categorical_column_with_identity("k", 4),
                                    fc.categorical_column_with_hash_bucket("k", 8, dtype="int64")],
                         ids=["hash", "identity", "hash-int64"])
@pytest.mark.parametrize("type_", [pa.uint8(), pa.uint64()], ids=str)
def test_unsigned_ints_with_nulls(column, type_):
    # _arrow.to_int64 fills nulls with -1, which an unsigned type cannot hold: OverflowError.
    ids = fc.transform(column, {"k": pa.array([1, None], type_)})
    assert ids.to_pylist()[1] == []


@pytest.mark.parametrize("value", [2**53 + 1, 2**63 - 1, -(2**63)])
def test_int64_beyond_2_53_in_a_numeric_column(value):
    # pc.cast(int64 -> float64) is a *safe* cast: ArrowInvalid "Integer value ... not in range".
    rows = _rows([fc.numeric_column("x")], {"x": np.array([value, 1])})
    assert np.isfinite(rows.values).all()


def test_uint64_max_in_a_numeric_column():
    rows = _rows([fc.numeric_column("x")], {"x": pa.array([2**64 - 1, 1], pa.uint64())})
    assert np.isfinite(rows.values).all()


def test_int64_beyond_2_53_as_a_weighted_column_weight():
    column = fc.weighted_categorical_column(fc.categorical_column_with_identity("k", 4), "w")
    fc.transform(column, {"k": [1, 2], "w": np.array([2**53 + 1, 1])})


def test_uint64_above_int64_in_an_int_vocabulary_column():
    # pc.cast(uint64 -> int64) raises ArrowInvalid; such a value is simply out of vocabulary.
    column = fc.categorical_column_with_vocabulary_list("k", [1, 2], num_oov_buckets=1)
    ids = fc.transform(column, {"k": pa.array([2**64 - 1, 1], pa.uint64())})
    assert ids.to_pylist() == [[2], [0]]


@pytest.mark.parametrize("value", [1e308, -1e39, 3.5e38])
def test_numeric_value_that_overflows_float32_is_not_passed_on_as_inf(value):
    # Finite as float64, so the isinf check passes; then .astype(float32) makes it inf.
    with pytest.raises(InputError, match=r"row 0, column 'x'"):
        _rows([fc.numeric_column("x")], {"x": np.array([value])})


@pytest.mark.parametrize("weight", [np.inf, 1e308])
def test_weighted_column_weight_that_is_not_finite_in_float32(weight):
    column = fc.weighted_categorical_column(fc.categorical_column_with_identity("k", 4), "w")
    with pytest.raises(InputError, match=r"'w'"):
        _rows([column], {"k": [1], "w": np.array([weight])})


def test_example_weight_that_overflows_float32(tmp_path):
    est = sl.LinearClassifier([HASH], model_dir=str(tmp_path), weight_column="w")
    with pytest.raises(InputError, match=r"row 0, column 'w'"):
        est.train(lambda: ({"k": ["a", "b"], "w": np.array([1e308, 1.0])}, [0, 1]))


@pytest.mark.parametrize("value", [np.array([object()], dtype=object), np.array([1j]), np.array([[object()]], dtype=object),
                                   ["\ud800"], np.array(["\ud800"]), [2**64 - 1, -1]],
                         ids=["object", "complex", "object-2d", "lone-surrogate", "lone-surrogate-numpy", "int-beyond-int64"])
def test_unconvertible_feature_values_raise_input_error(value):
    # _arrow.as_arrow_array converts numpy arrays outside its try (ArrowInvalid / ArrowNotImplementedError),
    # and pa.array raises UnicodeEncodeError (not caught) for a lone surrogate.
    with pytest.raises(InputError, match=r"feature 'k'"):
        as_record_batch({"k": value})


def test_unconvertible_labels_raise_input_error(tmp_path):
    est = sl.LinearClassifier([HASH], model_dir=str(tmp_path))
    with pytest.raises(InputError, match=r"label"):
        est.train(lambda: ({"k": ["a"]}, np.array([object()], dtype=object)))


@pytest.mark.parametrize("labels", [pa.array([0, 2**64 - 1], pa.uint64()), np.array([0, 2**53 + 1])], ids=["uint64", "int64"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_huge_integer_labels_raise_input_error(tmp_path, labels, n_classes):
    # heads.encode_labels: pc.cast(labels, float64) is a safe cast -> ArrowInvalid.
    est = sl.LinearClassifier([HASH], model_dir=str(tmp_path), n_classes=n_classes)
    with pytest.raises(InputError, match=r"row 1, column 'label'"):
        est.train(lambda: ({"k": ["a", "b"]}, labels))


def test_huge_integer_example_weight(tmp_path):
    est = sl.LinearClassifier([HASH], model_dir=str(tmp_path), weight_column="w")
    est.train(lambda: ({"k": ["a", "b"], "w": pa.array([2**64 - 1, 1], pa.uint64())}, [0, 1]))


def test_empty_labels_with_a_vocabulary():
    # heads.py: the "not a string" message reads array[0] of an empty array -> IndexError (internal API).
    assert Head(2, ("a", "b")).encode_labels([], str).shape == (0,)


@pytest.mark.parametrize("result", [None, 5], ids=["None", "int"])
def test_input_fn_returning_neither_a_pair_nor_an_iterable(tmp_path, result):
    # inputs/chunks.py iterates whatever input_fn returned: TypeError "'NoneType' object is not iterable".
    est = sl.LinearClassifier([HASH], model_dir=str(tmp_path))
    with pytest.raises(StreamlinError, match=r"input_fn"):
        est.train(lambda: result)


def test_string_view_features_and_labels(tmp_path):
    # _arrow.is_string_type accepts string_view, but binary_length / index_in have no kernel for it.
    views = pa.array(["a", "", "b"], pa.string_view())
    fc.transform(fc.categorical_column_with_vocabulary_list("k", ["a", "b"]), {"k": views})
    est = sl.LinearClassifier([HASH], model_dir=str(tmp_path), label_vocabulary=["a", "b"])
    est.train(lambda: ({"k": views}, pa.array(["a", "b", "a"], pa.string_view())))


# -- reading files -----------------------------------------------------------------------------------------
def test_wrong_type_in_a_csv_names_the_file(tmp_path):
    # A numeric column that holds one non-number is read as string: the InputError says what, not where.
    path = tmp_path / "visits.csv"
    path.write_text("x,k,y\n1.5,a,1\nabc,b,0\n")
    est = sl.LinearClassifier([fc.numeric_column("x"), HASH], model_dir=str(tmp_path / "m"))
    with pytest.raises(InputError, match=r"visits\.csv"):
        est.train(sl.inputs.csv_input_fn(str(path), label_key="y"))


CORRUPT_OFFSETS = textwrap.dedent("""
    import numpy as np, pyarrow as pa, pyarrow.ipc as ipc, sys, tempfile
    import streamlin as sl
    from streamlin import feature_column as fc
    from streamlin.errors import StreamlinError
    # A string array whose middle offset went negative (as one flipped byte in an Arrow IPC file makes
    # it): Arrow's default validation, which IPC reading also runs, does not look at it.
    offsets = np.array([0, -2_000_000_000, 2], np.int32)
    strings = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"ab")])
    # A list array whose middle offset points far past its values (a flipped byte in list offsets):
    # the learn-side kernels then write past the buffers sized from the values (heap corruption).
    list_offsets = np.array([0, 1, 1_000_000, 2], np.int32)
    bad_lists = pa.ListArray.from_buffers(pa.list_(pa.string()), 3, [None, pa.py_buffer(list_offsets.tobytes())],
                                          children=[pa.array(["a", "b"])])
    how = sys.argv[1]
    try:
        if how == "list-offsets":
            from streamlin.feature_column.layout import Layout
            Layout.build([fc.categorical_column_with_hash_bucket("k", 8)]).sparse_rows(pa.record_batch({"k": bad_lists}))
        elif how == "transform":
            fc.transform(fc.categorical_column_with_hash_bucket("k", 8), {"k": pa.ListArray.from_arrays([0, 2], strings)})
        elif how == "layout":
            from streamlin.feature_column.layout import Layout
            Layout.build([fc.categorical_column_with_hash_bucket("k", 8)]).sparse_rows(pa.record_batch({"k": strings}))
        else:
            d = tempfile.mkdtemp()
            batch = pa.record_batch({"k": strings, "y": pa.array([0, 1])})
            with ipc.new_file(d + "/bad.arrow", batch.schema) as writer:
                writer.write_batch(batch)
            est = sl.LinearClassifier([fc.categorical_column_with_hash_bucket("k", 8)], model_dir=d + "/m")
            est.train(sl.inputs.arrow_input_fn(d + "/bad.arrow", label_key="y"))
    except StreamlinError as exc:
        print("StreamlinError", exc)
""")


CORRUPT_OFFSET_PATHS = ("transform", "layout", "arrow_input_fn", "list-offsets")


@pytest.fixture(scope="module")
def corrupt_offset_runs(tmp_path_factory):
    """Run the three reproducers at once, each in its own process (a segfault kills only that one)."""
    script = tmp_path_factory.mktemp("corrupt") / "corrupt.py"
    script.write_text(CORRUPT_OFFSETS)
    processes = {how: subprocess.Popen([sys.executable, str(script), how], cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True) for how in CORRUPT_OFFSET_PATHS}
    return {how: (p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for how, p in processes.items()}


@pytest.mark.parametrize("how", CORRUPT_OFFSET_PATHS)
def test_corrupt_string_offsets_never_reach_the_kernels(corrupt_offset_runs, how):
    # Segfault (SIGSEGV) in kernels/hashing.py, reached from hashing._fingerprint_strings /
    # layout.place_hashed_strings, and out-of-bounds writes in kernels/sparse.place_column (list
    # offsets; SIGABRT "malloc(): invalid size" from an Arrow file): the kernels trust Arrow's offsets.
    returncode, out, err = corrupt_offset_runs[how]
    assert returncode == 0, f"exit code {returncode} (-11: segfault)\n{err[-2000:]}"
    assert out.startswith("StreamlinError"), out + err[-2000:]


# -- snapshots ---------------------------------------------------------------------------------------------
SNAPSHOT_COLUMNS = [fc.numeric_column("x"), fc.categorical_column_with_hash_bucket("k", 8)]
_RNG = np.random.default_rng(0)
_X, _Y = {"x": _RNG.normal(size=48), "k": _RNG.choice(["a", "b", "c"], 48)}, _RNG.integers(0, 2, 48)


def _input_fn():
    return sl.inputs.numpy_input_fn(_X, _Y, batch_size=8)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """A model_dir with snapshots 0, 3 and 6 (and an export of step 6), trained once."""
    logging.getLogger("streamlin").setLevel(logging.ERROR)
    root = tmp_path_factory.mktemp("regressions")
    est = sl.LinearClassifier(SNAPSHOT_COLUMNS, model_dir=str(root / "m"), config=sl.RunConfig(save_checkpoints_steps=3))
    est.train(_input_fn())
    est.export_saved_model(root / "exports")
    return root


def _replace(path: Path, data: bytes) -> None:
    path.unlink()  # the test's copy is made of hard links: never write through one
    path.write_bytes(data)


def _model(tmp_path, trained_dir):
    M.linked_copy(trained_dir / "m", tmp_path / "m")
    return SNAPSHOT_COLUMNS, _input_fn, tmp_path / "m"


def test_deleted_latest_snapshot_is_not_silently_replaced_by_an_older_one(tmp_path, trained_dir):
    # store.list_snapshots drops index entries whose folder is gone: evaluate() then reports step 3
    # and train() resumes from step 3, silently (API.md: "never falls back to an older snapshot silently").
    columns, input_fn, model_dir = _model(tmp_path, trained_dir)
    shutil.rmtree(model_dir / "model.ckpt-6")
    est = sl.LinearClassifier(columns, model_dir=str(model_dir))
    with pytest.raises(CheckpointError, match=r"model\.ckpt-6"):
        est.evaluate(input_fn())
    with pytest.raises(CheckpointError, match=r"model\.ckpt-6"):
        est.train(input_fn(), steps=1)


@pytest.mark.parametrize("manifest", ["kept", "deleted"])
def test_deleted_chunk_of_a_snapshot_is_detected(tmp_path, trained_dir, manifest):
    # zarr reads a missing chunk as the fill value (0): the weights silently become zeros. A snapshot
    # this version wrote must not become trusted again when its manifest is lost too.
    columns, input_fn, model_dir = _model(tmp_path, trained_dir)
    (model_dir / "model.ckpt-6/linear/linear_model/k/weights/c/0/0").unlink()
    if manifest == "deleted":
        (model_dir / "model.ckpt-6/streamlin_manifest.json").unlink(missing_ok=True)
    est = sl.LinearClassifier(columns, model_dir=str(model_dir))
    with pytest.raises(CheckpointError, match=r"model\.ckpt-6"):
        est.evaluate(input_fn(), checkpoint_path=6)


def test_flipped_bits_in_a_snapshot_chunk_are_detected(tmp_path, trained_dir):
    # zstd frames without a checksum: most single-bit flips decode to other numbers without an error.
    columns, input_fn, model_dir = _model(tmp_path, trained_dir)
    chunk = model_dir / "model.ckpt-6/linear/linear_model/k/weights/c/0/0"
    clean = chunk.read_bytes()
    silent = []
    est = sl.LinearClassifier(columns, model_dir=str(model_dir))
    for position in range(len(clean)):  # one flip per byte, bit position % 8
        data = bytearray(clean)
        data[position] ^= 1 << (position % 8)
        _replace(chunk, bytes(data))
        try:
            est.get_variable_value("linear/linear_model/k/weights")
        except CheckpointError:
            continue
        silent.append(position)
    _replace(chunk, clean)
    assert not silent, f"{len(silent)} of {len(clean)} single-bit flips were not detected, at bytes {silent}"


def test_broken_latest_snapshot_without_an_index_is_not_silently_skipped(tmp_path, trained_dir):
    # With checkpoints.json gone, store.list_snapshots rebuilds the list from folders and skips one
    # without zarr.json: evaluate() reports step 3 and train() resumes from it, silently.
    columns, input_fn, model_dir = _model(tmp_path, trained_dir)
    (model_dir / "model.ckpt-6" / "zarr.json").unlink()
    (model_dir / "checkpoints.json").unlink()
    est = sl.LinearClassifier(columns, model_dir=str(model_dir))
    with pytest.raises(CheckpointError, match=r"model\.ckpt-6"):
        est.evaluate(input_fn())


@pytest.mark.parametrize("step", ["abc", None, [6]])
def test_snapshot_step_attribute_of_the_wrong_type(tmp_path, trained_dir, step):
    # state.restore: int(attrs["step"]) -> ValueError / TypeError. (Without a manifest, as a snapshot
    # written before manifests has none, or whose manifest was lost.)
    columns, input_fn, model_dir = _model(tmp_path, trained_dir)
    (model_dir / "model.ckpt-6" / "streamlin_manifest.json").unlink(missing_ok=True)
    meta = model_dir / "model.ckpt-6" / "zarr.json"
    document = json.loads(meta.read_text())
    document["attributes"]["step"] = step
    _replace(meta, json.dumps(document).encode())
    with pytest.raises(CheckpointError, match=r"model\.ckpt-6"):
        sl.LinearClassifier(columns, model_dir=str(model_dir)).evaluate(input_fn())


@pytest.mark.parametrize("field,value", [("time", None), ("time", "yesterday"), ("bytes", None)])
def test_index_entry_with_a_missing_or_mistyped_field(tmp_path, trained_dir, field, value):
    # store.list_snapshots reads e["time"] / e["bytes"] unchecked (KeyError), and apply_retention
    # subtracts times (TypeError for a string).
    columns, input_fn, model_dir = _model(tmp_path, trained_dir)
    index = model_dir / "checkpoints.json"
    document = json.loads(index.read_text())
    for entry in document["snapshots"]:
        if value is None:
            del entry[field]
        else:
            entry[field] = value
    _replace(index, json.dumps(document).encode())
    est = sl.LinearClassifier(columns, model_dir=str(model_dir), config=sl.RunConfig(keep_checkpoint_max=1))
    with pytest.raises(CheckpointError, match=r"checkpoints\.json"):
        est.train(input_fn(), steps=1)


# -- exports -----------------------------------------------------------------------------------------------
@pytest.fixture
def export(tmp_path, trained_dir):
    source = next((trained_dir / "exports").iterdir())
    return M.linked_copy(source, tmp_path / source.name), {"x": np.array([0.5]), "k": np.array(["a"])}


def _edit_description(path: Path, edit) -> None:
    meta = path / "model.zarr" / "zarr.json"
    document = json.loads(meta.read_text())
    edit(document["attributes"])
    _replace(meta, json.dumps(document).encode())


EXPORT_DAMAGE = {
    "no feature_columns": lambda a: a.pop("feature_columns"),
    "no head": lambda a: a.pop("head"),
    "head not a dict": lambda a: a.update(head="binary"),
    "feature_columns not a list": lambda a: a.update(feature_columns=5),
    "hash_bucket_size not a number": lambda a: a["feature_columns"][0].update(hash_bucket_size="abc"),
    "hash_bucket_size changed": lambda a: a["feature_columns"][0].update(hash_bucket_size=16),
    "shape not a list": lambda a: a["feature_columns"][1].update(shape=5),
    "default_value not a number": lambda a: a["feature_columns"][1].update(default_value="abc"),
    "unknown sparse_combiner": lambda a: a.update(sparse_combiner="max"),
    "no signature": lambda a: a.pop("signature"),
    "crossed keys a string": lambda a: a["feature_columns"].__setitem__(
        0, {"type": "crossed_column", "keys": "ab", "hash_bucket_size": 8}),
    "hash_key a string": lambda a: a["feature_columns"].__setitem__(
        0, {"type": "crossed_column", "keys": ["k", "x"], "hash_bucket_size": 8, "hash_key": "z"}),
    "normalizer_fn a list": lambda a: a["feature_columns"][1].update(normalizer_fn=[1], has_normalizer=True),
    "identity default a list": lambda a: a["feature_columns"].__setitem__(
        0, {"type": "categorical_column_with_identity", "key": "k", "num_buckets": 8, "default_value": [1]}),
    "sparse_combiner a number": lambda a: a.update(sparse_combiner=1.0),
    "no global_step": lambda a: a.pop("global_step"),
}


@pytest.mark.parametrize("damage", sorted(EXPORT_DAMAGE))
def test_damaged_export_description(export, damage):
    # export.ExportedModel parses the description unguarded: KeyError / TypeError / ValueError /
    # AttributeError escape (export.py:96-102, serialize.column_from_config, columns.py, and at predict
    # time layout.py COMBINERS[...]). The manifest catches an accidental edit; an export without one
    # (or whose manifest was rewritten with it, as here) reaches the parser.
    path, features = export
    _edit_description(path, EXPORT_DAMAGE[damage])
    M.reseal(path)
    with pytest.raises(StreamlinError, match=str(path)):
        sl.load_exported(path).predict(features)


@pytest.mark.parametrize("damage", ["truncate chunk", "delete array", "delete chunk and manifest"])
def test_damaged_export_arrays(export, damage):
    path, features = export
    weights = path / "model.zarr/linear/linear_model/k/weights"
    chunk = next(p for p in (weights / "c").rglob("*") if p.is_file())
    if damage == "delete array":
        shutil.rmtree(weights)
    elif damage == "truncate chunk":
        _replace(chunk, chunk.read_bytes()[:3])
    else:  # zarr reads the missing chunk as zeros; without the manifest nothing notices
        chunk.unlink()
        (path / "streamlin_manifest.json").unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match=str(path)):
        sl.load_exported(path).predict(features)


def test_an_export_cannot_name_any_callable_as_a_normalizer(export, capsys):
    # serialize.column_from_config -> columns.import_normalizer imports any "module:qualname" the file
    # names, and predict calls it: here builtins.print runs (it could be any importable function).
    path, features = export

    def hostile(attributes):
        column = next(c for c in attributes["feature_columns"] if c["type"] == "numeric_column")
        column.update(normalizer_fn="builtins:print", has_normalizer=True)

    _edit_description(path, hostile)
    M.reseal(path)  # whoever writes a hostile file writes a matching manifest too
    try:
        sl.load_exported(path).predict(features)
    except StreamlinError:
        pass
    except Exception:  # noqa: BLE001 - the point is what ran, not how it failed afterwards
        pass
    assert capsys.readouterr().out == "", "the export made streamlin call builtins.print"

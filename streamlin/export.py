"""Data-only exports: weights and the model description, and a predictor that reads them.

``export_dir_base/<unix time>/`` holds ``model.zarr`` (one array per weights variable, no optimizer
slots) with the feature columns, head and input signature in its attributes, plus a copy of
that description in ``streamlin_export.json`` for humans. Loading parses JSON and numeric arrays
only; nothing is unpickled or evaluated.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from streamlin import __version__
from streamlin._arrow import as_record_batch
from streamlin.checkpoint.store import _fsync_tree, verify_manifest, write_manifest
from streamlin.errors import CheckpointError, ConfigError
from streamlin.feature_column.columns import NumericColumn
from streamlin.feature_column.layout import BIAS_VARIABLE, COMBINERS, Layout
from streamlin.feature_column.serialize import column_from_config
from streamlin.heads import Head
from streamlin.kernels.sparse import add_logits
from streamlin.state import variable_view

EXPORT_FORMAT = "streamlin-export-1"


def _signature(layout: Layout, weight_column: str | None) -> dict:
    inputs = {}
    for column in layout.columns:
        for key in column.keys:
            kind = "float" if isinstance(column, NumericColumn) else "categorical"
            inputs.setdefault(key, kind)
    return {"inputs": inputs, "weight_column": weight_column}


def write_export(export_dir_base: str | os.PathLike, layout: Layout, head: Head, sparse_combiner: str,
                 state: Any, spec: dict) -> str:
    """Write the export; returns its timestamped directory.

    Raises
    ------
    ConfigError
        A numeric column's ``normalizer_fn`` has no import name (a lambda) and cannot be exported.
    """
    for column in layout.columns:
        source = column.source_column if hasattr(column, "source_column") else column
        if isinstance(source, NumericColumn) and source.normalizer_fn is not None and source.normalizer_name is None:
            raise ConfigError(
                f"numeric_column {source.key!r} has a normalizer_fn without an import name (a lambda or local"
                " function); an export must name it. Define it at module level and rebuild the columns.")
    base = Path(export_dir_base)
    base.mkdir(parents=True, exist_ok=True)
    stamp = int(time.time())
    while (base / str(stamp)).exists():
        stamp += 1
    final = base / str(stamp)
    tmp = base / f".tmp-{stamp}-{os.getpid()}"
    description = {"format": EXPORT_FORMAT, "streamlin_version": __version__, "global_step": state.global_step,
                   **spec, "signature": _signature(layout, spec.get("weight_column")),
                   "variables": [name for name, _, _ in layout.variables()], "manifest": True}
    group = zarr.open_group(str(tmp / "model.zarr"), mode="w", zarr_format=3)
    for name, begin, end in layout.variables():
        value = variable_view(state.weights, begin, end, name)
        chunks = (min(65536, max(1, value.shape[0])),) + value.shape[1:]
        array = group.create_array(name, shape=value.shape, chunks=chunks, dtype=value.dtype, fill_value=0.0,
                                   config={"write_empty_chunks": False})
        array[...] = value
    group.attrs.update(description)
    (tmp / "streamlin_export.json").write_text(json.dumps(description, indent=1), encoding="utf-8")
    write_manifest(tmp)
    _fsync_tree(tmp)
    os.rename(tmp, final)
    return str(final)


class ExportedModel:
    """A predictor loaded from an export: ``predict(features) -> dict`` of batch arrays."""

    def __init__(self, path: str | os.PathLike, normalizers: Mapping[str, Any] | None = None):
        self.path = str(path)
        verify_manifest(Path(self.path), required=True)
        try:
            group = zarr.open_group(os.path.join(self.path, "model.zarr"), mode="r")
            description = dict(group.attrs)
        except Exception as exc:
            raise CheckpointError(f"{path} is not a readable streamlin export ({type(exc).__name__}: {exc}).") from None
        if description.get("format") != EXPORT_FORMAT:
            raise CheckpointError(f"{path} is not a streamlin export (format {description.get('format')!r}).")
        try:
            self.layout = Layout.build([column_from_config(c, normalizers) for c in description["feature_columns"]])
            head = description["head"]
            self.head = Head(head["n_classes"], tuple(head["label_vocabulary"]) if head["label_vocabulary"] else None,
                             head["loss_reduction"])
            self.sparse_combiner = description["sparse_combiner"]
            if self.sparse_combiner not in COMBINERS:
                raise ValueError(f"sparse_combiner {self.sparse_combiner!r}")
            self.signature = dict(description["signature"])
            self.global_step = int(description["global_step"])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{path}: the export's description is damaged ({type(exc).__name__}: {exc}).") from None
        self.table = np.empty((self.layout.n_slots, 1, self.head.units), dtype=np.float32)
        self.table.fill(0.0)  # np.empty + fill gets huge pages; np.zeros does not
        for name, begin, end in self.layout.variables():
            expected = (self.head.units,) if name == BIAS_VARIABLE else (end - begin, self.head.units)
            try:
                value = np.asarray(group[name][...], dtype=np.float32)
            except Exception as exc:  # zarr/codec errors of a damaged file
                raise CheckpointError(f"{path}: variable {name!r} cannot be read ({type(exc).__name__}: {exc});"
                                      " the export is damaged.") from None
            if value.shape != expected:
                raise CheckpointError(f"{path}: variable {name!r} has shape {list(value.shape)}, expected"
                                      f" {list(expected)}; the export is damaged.")
            if name == BIAS_VARIABLE:
                self.table[begin, 0] = value
            else:
                self.table[begin:end, 0] = value

    def __repr__(self) -> str:
        return f"ExportedModel({self.path!r}, step {self.global_step}, inputs {list(self.signature['inputs'])})"

    def predict(self, features: Any) -> dict[str, np.ndarray]:
        """TF's prediction keys as batch arrays for a batch of features (RecordBatch, Table or dict)."""
        batch = as_record_batch(features)
        rows = self.layout.sparse_rows(batch, self.sparse_combiner)
        logits = np.empty((rows.n_rows, self.head.units), dtype=np.float64)
        add_logits(rows.col_indptr, rows.slots, rows.values, self.table, self.layout.bias_slot, 0, rows.n_rows, logits)
        return self.head.predictions(logits)


def load_exported(path: str | os.PathLike, normalizers: Mapping[str, Any] | None = None) -> ExportedModel:
    """Load an export written by ``export_saved_model``; data only, nothing imported or executed.

    ``normalizers`` maps the ``module:qualname`` a numeric column recorded to the function itself
    (numpy ufuncs such as ``numpy:log1p`` resolve without it).
    """
    return ExportedModel(path, normalizers)

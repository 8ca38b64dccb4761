"""Heads: label checks and encoding, loss reduction, and TF's prediction keys.

Binary heads use sigmoid cross-entropy (soft labels in [0, 1] allowed), multi-class heads sparse
softmax cross-entropy, exactly as TF's ``binary_class_head`` / ``multi_class_head``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamlin._arrow import as_arrow_array, is_string_type, to_float64
from streamlin.errors import ConfigError, InputError
from streamlin.kernels.learn import LOSS_SIGMOID, LOSS_SOFTMAX

REDUCTIONS = ("sum_over_batch_size", "sum")


@dataclass(frozen=True)
class Head:
    """What the model predicts: ``n_classes`` and how labels are read."""

    n_classes: int = 2
    label_vocabulary: tuple[str, ...] | None = None
    loss_reduction: str = "sum_over_batch_size"

    def __post_init__(self) -> None:
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int) or self.n_classes < 2:
            raise ConfigError(f"n_classes must be an integer >= 2; found {self.n_classes!r}.")
        if self.label_vocabulary is not None:
            vocabulary = tuple(self.label_vocabulary)
            if len(vocabulary) != self.n_classes or not all(isinstance(v, str) for v in vocabulary):
                raise ConfigError(
                    f"label_vocabulary must list {self.n_classes} strings (one per class); found {list(vocabulary)!r}.")
            if len(set(vocabulary)) != len(vocabulary):
                raise ConfigError(f"label_vocabulary has duplicates: {list(vocabulary)!r}.")
            object.__setattr__(self, "label_vocabulary", vocabulary)
        reduction = str(self.loss_reduction).lower()
        reduction = {"sum_over_batch_size": "sum_over_batch_size", "sum": "sum"}.get(reduction.rsplit(".", 1)[-1])
        if reduction is None:
            raise ConfigError(
                f"loss_reduction must be 'sum_over_batch_size' (TF's default) or 'sum'; found {self.loss_reduction!r}.")
        object.__setattr__(self, "loss_reduction", reduction)

    @property
    def units(self) -> int:
        return 1 if self.n_classes == 2 else self.n_classes

    @property
    def loss_kind(self) -> int:
        return LOSS_SIGMOID if self.n_classes == 2 else LOSS_SOFTMAX

    @property
    def reduce_sum(self) -> bool:
        return self.loss_reduction == "sum"

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.label_vocabulary or tuple(str(i) for i in range(self.n_classes))

    def encode_labels(self, labels: Any, locate: Callable[[int], str], label_key: str = "label") -> np.ndarray:
        """Labels as float64 (n,): binary in [0, 1], multi-class a class id; bad labels raise.

        Raises
        ------
        InputError
            (a ValueError) naming the first bad value and its row.
        """
        array = as_arrow_array(labels, label_key)
        if len(array) == 0:
            return np.zeros(0, dtype=np.float64)
        if pa.types.is_fixed_size_list(array.type) or pa.types.is_list(array.type):
            if pa.types.is_fixed_size_list(array.type) and array.type.list_size == 1 and array.null_count == 0:
                array = array.flatten()
            else:
                raise InputError(f"labels {label_key!r} must hold one value per row; found {array.type}.")
        if array.null_count:
            bad = np.flatnonzero(~array.is_valid().to_numpy(zero_copy_only=False))
            raise InputError(f"{locate(int(bad[0]))}, column {label_key!r}: label is missing (null). Drop or fill"
                             " such rows.", rows=bad)
        if self.label_vocabulary is not None:
            if not is_string_type(array.type):
                raise InputError(
                    f"{locate(0)}, column {label_key!r}: label {array[0].as_py()!r} is not a string, but"
                    f" label_vocabulary={list(self.label_vocabulary)!r} expects strings.")
            if pa.types.is_dictionary(array.type):
                array = array.dictionary_decode()
            found = pc.index_in(array, value_set=pa.array(self.label_vocabulary, type=pa.string()))
            ids = pc.fill_null(found, -1).to_numpy(zero_copy_only=False)
            bad = np.flatnonzero(ids < 0)
            if bad.size:
                row = int(bad[0])
                raise InputError(
                    f"{locate(row)}, column {label_key!r}: label {array[row].as_py()!r} is not in"
                    f" label_vocabulary {list(self.label_vocabulary)!r}. Fix the data (whitespace, case) or"
                    " the vocabulary.", rows=bad)
            return ids.astype(np.float64)
        if is_string_type(array.type):
            raise InputError(
                f"{locate(0)}, column {label_key!r}: label {array[0].as_py()!r} is a string; pass"
                " label_vocabulary=[...] listing the class names, or give numeric labels.")
        if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type)):
            raise InputError(f"column {label_key!r}: labels must be numbers; found {array.type}.")
        values = to_float64(array)
        if self.n_classes == 2:
            bad = np.flatnonzero(~((values >= 0.0) & (values <= 1.0)))
            if bad.size:
                row = int(bad[0])
                raise InputError(
                    f"{locate(row)}, column {label_key!r}: a binary label must be in [0, 1]; found"
                    f" {array[row].as_py()!r}. Pass label_vocabulary=[...] for string labels.", rows=bad)
            return values
        bad = np.flatnonzero(~((values >= 0) & (values < self.n_classes) & (values == np.floor(values))))
        if bad.size:
            row = int(bad[0])
            raise InputError(
                f"{locate(row)}, column {label_key!r}: a label must be an integer in [0, {self.n_classes});"
                f" found {array[row].as_py()!r}.", rows=bad)
        return values

    def predictions(self, logits: np.ndarray) -> dict[str, np.ndarray]:
        """TF's prediction keys for logits float64 (n, units), as batch arrays."""
        n = logits.shape[0]
        names = np.array(self.class_names, dtype=object)
        if self.n_classes == 2:
            z = logits[:, 0]
            logistic = sigmoid(z)
            probabilities = np.stack([1.0 - logistic, logistic], axis=1)
            class_ids = (z > 0).astype(np.int64)
            out = {"logits": logits.astype(np.float32), "logistic": logistic[:, None].astype(np.float32)}
        else:
            probabilities = softmax(logits)
            class_ids = np.argmax(logits, axis=1).astype(np.int64)
            out = {"logits": logits.astype(np.float32)}
        out["probabilities"] = probabilities.astype(np.float32)
        out["class_ids"] = class_ids[:, None]
        out["classes"] = names[class_ids][:, None]
        out["all_class_ids"] = np.tile(np.arange(self.n_classes, dtype=np.int64), (n, 1))
        out["all_classes"] = np.tile(names, (n, 1))
        return out

    def to_config(self) -> dict:
        return {"n_classes": self.n_classes,
                "label_vocabulary": list(self.label_vocabulary) if self.label_vocabulary else None,
                "loss_reduction": self.loss_reduction}


def sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z, dtype=np.float64)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def per_example_loss(logits: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Unweighted cross-entropy per example, float64 (n,)."""
    if n_classes == 2:
        z = logits[:, 0]
        return np.maximum(z, 0) - z * labels + np.log1p(np.exp(-np.abs(z)))
    top = logits.max(axis=1, keepdims=True)
    log_normalizer = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return log_normalizer - logits[np.arange(len(labels)), labels.astype(np.int64)]


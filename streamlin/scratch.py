"""The learn kernel's scratch buffers, grown as chunks need them and reused across calls."""

from __future__ import annotations

import numpy as np

from streamlin.kernels.learn import step_capacity


class LearnScratch:
    """Buffers ``kernels.learn.train_steps`` needs besides the model: a step's touched slots, their
    gradients, its hash map and its logits, for ``units`` outputs."""

    def __init__(self, units: int):
        self.units = units
        self.dz = np.empty(units, dtype=np.float64)
        self.touched = np.empty(0, dtype=np.int64)
        self.touched_bucket = np.empty(0, dtype=np.int64)
        self.hash_slots = np.full(1, -1, dtype=np.int64)
        self.hash_index = np.empty(1, dtype=np.int64)
        self.grad = np.empty((0, units), dtype=np.float64)
        self.logits = np.empty((0, units), dtype=np.float64)

    def fit(self, rows, bounds: np.ndarray) -> None:
        """Grow the buffers for the steps ``bounds`` (int64 row offsets) of ``rows`` (SparseRows)."""
        capacity = int(step_capacity(rows.col_indptr, bounds))
        if capacity > len(self.touched):
            self.touched = np.empty(capacity, dtype=np.int64)
            self.touched_bucket = np.empty(capacity, dtype=np.int64)
            self.grad = np.empty((capacity, self.units), dtype=np.float64)
            buckets = 1 << int(2 * capacity - 1).bit_length()
            self.hash_slots = np.full(buckets, -1, dtype=np.int64)
            self.hash_index = np.empty(buckets, dtype=np.int64)
        longest = int(np.diff(bounds).max()) if len(bounds) > 1 else 0
        if longest > len(self.logits):
            self.logits = np.empty((longest, self.units), dtype=np.float64)

    def kernel_arguments(self) -> tuple:
        """The trailing arguments of ``train_steps`` before ``step_losses``."""
        return (self.hash_slots, self.hash_index, self.touched, self.touched_bucket, self.grad, self.logits, self.dz)

"""streamlin's exceptions.

Every error streamlin raises on purpose is a :class:`StreamlinError`; each subclass also derives
from the built-in error that ``API.md`` promises, so ``except ValueError`` keeps working for code
written against TensorFlow.
"""

from __future__ import annotations


class StreamlinError(Exception):
    """Base class of every error streamlin raises on purpose."""


class ConfigError(StreamlinError, ValueError):
    """A column, optimizer, estimator or run configuration is invalid."""


class InputError(StreamlinError, ValueError):
    """Input data is unreadable or invalid; the message names file, row, column and value.

    ``rows``, when set, holds every offending row of the batch (int64, batch-relative), so a
    ``on_bad_row="skip"`` policy can drop them all at once.
    """

    def __init__(self, message: str, rows=None):
        super().__init__(message)
        self.rows = rows


class MissingFeatureError(StreamlinError, KeyError):
    """A feature that a column reads is absent from the input."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0]) if self.args else ""


class CheckpointError(StreamlinError):
    """A checkpoint is missing, damaged, or does not fit the model."""


__all__ = ["StreamlinError", "ConfigError", "InputError", "MissingFeatureError", "CheckpointError"]

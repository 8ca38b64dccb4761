"""Run configuration and warm-start settings: frozen dataclasses validated at construction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streamlin.errors import ConfigError


@dataclass(frozen=True)
class RunConfig:
    """Where and how often to checkpoint, as TF's ``RunConfig`` (same defaults).

    If neither ``save_checkpoints_steps`` nor ``save_checkpoints_secs`` is set, a snapshot is written
    every 600 s; one is always written at the start and at the end of each ``train()`` call.
    ``keep_best`` (a :class:`streamlin.checkpoints.KeepBest`) also keeps the best snapshots by a
    metric that ``evaluate`` recorded. ``train_distribute``/``eval_distribute`` take a
    ``streamlin.distribute`` engine; None runs in this process.
    """

    model_dir: str | None = None
    save_checkpoints_steps: int | None = None
    save_checkpoints_secs: float | None = None
    keep_checkpoint_max: int | None = 5
    keep_checkpoint_every_n_hours: float = 10000
    keep_best: Any = None
    log_step_count_steps: int | None = 100
    resume_input: bool = False
    train_distribute: Any = None
    eval_distribute: Any = None
    chunk_rows: int = 65536
    tf_random_seed: int | None = None

    def __post_init__(self) -> None:
        if self.save_checkpoints_steps is not None and self.save_checkpoints_secs is not None:
            raise ConfigError(
                "RunConfig: set save_checkpoints_steps or save_checkpoints_secs, not both"
                f" (found {self.save_checkpoints_steps} and {self.save_checkpoints_secs}).")
        if self.save_checkpoints_steps is None and self.save_checkpoints_secs is None:
            object.__setattr__(self, "save_checkpoints_secs", 600)
        for name in ("save_checkpoints_steps", "keep_checkpoint_max", "log_step_count_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"RunConfig: {name} must be a non-negative integer or None; found {value!r}.")
        if self.save_checkpoints_secs is not None and self.save_checkpoints_secs < 0:
            raise ConfigError(f"RunConfig: save_checkpoints_secs must be >= 0; found {self.save_checkpoints_secs}.")
        if not isinstance(self.chunk_rows, int) or self.chunk_rows < 1:
            raise ConfigError(f"RunConfig: chunk_rows must be a positive integer; found {self.chunk_rows!r}.")

    def replace(self, **changes: Any) -> RunConfig:
        if "save_checkpoints_steps" in changes and "save_checkpoints_secs" not in changes:
            changes["save_checkpoints_secs"] = None
        return replace(self, **changes)


@dataclass(frozen=True)
class VocabInfo:
    """How to remap a vocabulary-backed variable's rows from an old vocabulary to a new one."""

    new_vocab: str | Sequence[str]
    new_vocab_size: int
    num_oov_buckets: int
    old_vocab: str | Sequence[str]
    old_vocab_size: int = -1
    backup_initializer: float | None = None

    def __post_init__(self) -> None:
        if self.new_vocab_size < 0 or self.num_oov_buckets < 0:
            raise ConfigError(
                f"VocabInfo: new_vocab_size and num_oov_buckets must be >= 0; found {self.new_vocab_size},"
                f" {self.num_oov_buckets}.")


@dataclass(frozen=True)
class WarmStartSettings:
    """TF's ``WarmStartSettings``: which variables to copy from ``ckpt_to_initialize_from``.

    ``vars_to_warm_start``: a regex matched (``re.match``) against the weights variables; a list of
    names/patterns matches every variable, optimizer slots included; None only those in
    ``var_name_to_vocab_info``.
    """

    ckpt_to_initialize_from: str
    vars_to_warm_start: str | Sequence[str] | None = ".*"
    var_name_to_vocab_info: dict[str, VocabInfo] | None = field(default=None, hash=False)
    var_name_to_prev_var_name: dict[str, str] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not self.ckpt_to_initialize_from:
            raise ConfigError("WarmStartSettings: ckpt_to_initialize_from is empty; give a checkpoint or model_dir.")
        object.__setattr__(self, "ckpt_to_initialize_from", str(self.ckpt_to_initialize_from))

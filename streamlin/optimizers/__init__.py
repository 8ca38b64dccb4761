"""Optimizers: hyper-parameters, slot layout and the kernel code each one runs.

Ftrl, Adagrad and SGD follow TF's legacy Keras optimizers (the ones ``tf.estimator`` used),
including their defaults. The optimizer owns the names and initial values of its slots; the
arrays themselves live in the estimator's model state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Union

import numpy as np

from streamlin.errors import ConfigError
from streamlin.kernels.learn import OPTIMIZER_ADAGRAD, OPTIMIZER_FTRL, OPTIMIZER_SGD
from streamlin.optimizers import schedules
from streamlin.optimizers.schedules import ExponentialDecay, schedule_from_config

LearningRate = Union[float, Callable[[int], float]]


def _check_learning_rate(name: str, value: LearningRate, allow_zero: bool = False) -> None:
    if callable(value):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}: learning_rate must be a positive number or a schedule; found {value!r}.")


def _check_non_negative(name: str, **values: float) -> None:
    for argument, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{name}: {argument} must be a number >= 0; found {value!r}.")


class _Optimizer:
    code: int
    name: str
    slot_names: tuple[str, ...] = ()
    learning_rate: LearningRate

    def learning_rates(self, first_step: int, n_steps: int) -> np.ndarray:
        """float64 (n_steps,): the learning rate at global steps first_step, first_step + 1, ..."""
        if callable(self.learning_rate):
            return np.array([self.learning_rate(first_step + i) for i in range(n_steps)], dtype=np.float64)
        return np.full(n_steps, float(self.learning_rate), dtype=np.float64)

    def slot_initial_value(self, slot: str) -> float:
        return 0.0

    def hparams(self) -> np.ndarray:
        return np.zeros(5, dtype=np.float64)

    def to_config(self) -> dict:
        config = {"class": type(self).__name__}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if callable(value):
                if not hasattr(value, "to_config"):
                    config[f.name] = None
                    config[f.name + "_unsaved"] = repr(value)
                    continue
                value = value.to_config()
            config[f.name] = value
        return config

    def slot_variable(self, variable: str, slot: str) -> str:
        return f"training/{self.name}/{variable}/{slot}"

    _hyperparameter_fields: tuple[str, ...] = ()

    def hyperparameter_variables(self, global_step: int) -> dict[str, float]:
        """TF's scalar hyper-parameter variables (``training/Ftrl/learning_rate``, ...) at a step."""
        lr = self.learning_rate(global_step) if callable(self.learning_rate) else self.learning_rate
        out = {f"training/{self.name}/learning_rate": float(lr), f"training/{self.name}/decay": 0.0}
        for name in self._hyperparameter_fields:
            out[f"training/{self.name}/{name}"] = float(getattr(self, name))
        return out


@dataclass(frozen=True)
class Ftrl(_Optimizer):
    """FTRL-Proximal as TF's legacy Keras ``Ftrl`` (beta folded into l2, l2 shrinkage, lr power)."""

    learning_rate: LearningRate = 0.001
    learning_rate_power: float = -0.5
    initial_accumulator_value: float = 0.1
    l1_regularization_strength: float = 0.0
    l2_regularization_strength: float = 0.0
    l2_shrinkage_regularization_strength: float = 0.0
    beta: float = 0.0

    code = OPTIMIZER_FTRL
    name = "Ftrl"
    slot_names = ("accumulator", "linear")
    _hyperparameter_fields = ("learning_rate_power", "l1_regularization_strength", "l2_regularization_strength",
                              "beta")

    def __post_init__(self) -> None:
        _check_learning_rate("Ftrl", self.learning_rate)
        _check_non_negative("Ftrl", initial_accumulator_value=self.initial_accumulator_value,
                            l1_regularization_strength=self.l1_regularization_strength,
                            l2_regularization_strength=self.l2_regularization_strength,
                            l2_shrinkage_regularization_strength=self.l2_shrinkage_regularization_strength,
                            beta=self.beta)
        if self.learning_rate_power > 0:
            raise ConfigError(f"Ftrl: learning_rate_power must be <= 0; found {self.learning_rate_power}.")

    def slot_initial_value(self, slot: str) -> float:
        return float(self.initial_accumulator_value) if slot == "accumulator" else 0.0

    def hparams(self) -> np.ndarray:
        return np.array([self.l1_regularization_strength, self.l2_regularization_strength,
                         self.learning_rate_power, self.l2_shrinkage_regularization_strength, self.beta],
                        dtype=np.float64)


@dataclass(frozen=True)
class Adagrad(_Optimizer):
    """TF's legacy Keras ``Adagrad``: ``acc += g²; w -= lr·g / (√acc + ε)``."""

    learning_rate: LearningRate = 0.001
    initial_accumulator_value: float = 0.1
    epsilon: float = 1e-7

    code = OPTIMIZER_ADAGRAD
    name = "Adagrad"
    slot_names = ("accumulator",)

    def __post_init__(self) -> None:
        _check_learning_rate("Adagrad", self.learning_rate)
        _check_non_negative("Adagrad", initial_accumulator_value=self.initial_accumulator_value,
                            epsilon=self.epsilon)

    def slot_initial_value(self, slot: str) -> float:
        return float(self.initial_accumulator_value)

    def hparams(self) -> np.ndarray:
        out = np.zeros(5, dtype=np.float64)
        out[0] = self.epsilon
        return out


@dataclass(frozen=True)
class SGD(_Optimizer):
    """Plain gradient descent ``w -= lr·g``; ``learning_rate=0`` freezes the weights (as TF's tests do)."""

    learning_rate: LearningRate = 0.01

    code = OPTIMIZER_SGD
    name = "SGD"

    def __post_init__(self) -> None:
        _check_learning_rate("SGD", self.learning_rate, allow_zero=True)


Optimizer = Union[Ftrl, Adagrad, SGD]
_BY_NAME = {"ftrl": Ftrl, "adagrad": Adagrad, "sgd": SGD}
DEFAULT_LEARNING_RATE = 0.2  # tensorflow_estimator canned/linear.py _LEARNING_RATE


def get_optimizer(optimizer, n_feature_columns: int) -> Optimizer:
    """TF's rules: a name → that optimizer at lr 0.2; None → FTRL at min(0.2, 1/√n_columns)."""
    if optimizer is None:
        return Ftrl(learning_rate=min(DEFAULT_LEARNING_RATE, 1.0 / n_feature_columns ** 0.5))
    if isinstance(optimizer, str):
        cls = _BY_NAME.get(optimizer.lower())
        if cls is None:
            raise ConfigError(f"optimizer {optimizer!r} is unknown; use 'Ftrl', 'Adagrad' or 'SGD', or an instance.")
        return cls(learning_rate=DEFAULT_LEARNING_RATE)
    if isinstance(optimizer, (Ftrl, Adagrad, SGD)):
        return optimizer
    if callable(optimizer):
        made = optimizer()
        if isinstance(made, (Ftrl, Adagrad, SGD)):
            return made
        raise ConfigError(f"optimizer callable returned {made!r}; it must return a streamlin optimizer.")
    raise ConfigError(
        f"optimizer must be 'Ftrl', 'Adagrad', 'SGD', an optimizer instance or a callable returning one; found {optimizer!r}.")


def optimizer_from_config(config: dict) -> Optimizer:
    """Rebuild an optimizer from ``to_config()`` (data only)."""
    config = dict(config)
    cls = {"Ftrl": Ftrl, "Adagrad": Adagrad, "SGD": SGD}.get(config.pop("class", None))
    if cls is None:
        raise ConfigError(f"unknown optimizer class in a saved model: {config!r}.")
    learning_rate = config.get("learning_rate")
    if isinstance(learning_rate, dict):
        config["learning_rate"] = schedule_from_config(learning_rate)
    elif learning_rate is None:
        raise ConfigError(
            f"the saved optimizer's learning-rate schedule ({config.get('learning_rate_unsaved')}) was a plain"
            " callable and was not saved; pass optimizer= when building the estimator.")
    allowed = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in config.items() if k in allowed})


__all__ = ["Ftrl", "Adagrad", "SGD", "schedules", "ExponentialDecay", "get_optimizer", "optimizer_from_config"]

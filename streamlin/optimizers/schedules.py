"""Learning-rate schedules: pure ``step -> float`` callables, evaluated at the pre-update step."""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamlin.errors import ConfigError


@dataclass(frozen=True)
class ExponentialDecay:
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floored when ``staircase``)."""

    initial_learning_rate: float
    decay_steps: int
    decay_rate: float
    staircase: bool = False

    def __post_init__(self) -> None:
        if not self.decay_steps or self.decay_steps <= 0:
            raise ConfigError(f"ExponentialDecay: decay_steps must be positive; found {self.decay_steps}.")
        if self.initial_learning_rate < 0 or self.decay_rate <= 0:
            raise ConfigError(
                "ExponentialDecay: initial_learning_rate must be >= 0 and decay_rate > 0; found"
                f" {self.initial_learning_rate}, {self.decay_rate}.")

    def __call__(self, step: int) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return float(self.initial_learning_rate * self.decay_rate ** exponent)

    def to_config(self) -> dict:
        return {"class": "ExponentialDecay", "initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate, "staircase": self.staircase}


def schedule_from_config(config: dict) -> ExponentialDecay:
    if config.get("class") != "ExponentialDecay":
        raise ConfigError(f"unknown learning-rate schedule {config.get('class')!r} in a saved model.")
    return ExponentialDecay(float(config["initial_learning_rate"]), int(config["decay_steps"]),
                            float(config["decay_rate"]), bool(config["staircase"]))

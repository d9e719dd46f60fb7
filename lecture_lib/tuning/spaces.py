"""Search spaces: what a hyperparameter may be, and how to draw one.

A **search space** is a dict ``name -> spec``:

- ``LogUniform(1e-6, 1e-3)``: sampled as ``10 ** uniform(log10 low, log10 high)`` (the lecture's
  ``lr = 10 ** uniform(-6, -3)``, "it's best to optimize in log space"): learning rates and
  regularization strengths act multiplicatively, so each decade deserves the same number of trials;
- ``Uniform(0.0, 0.5)``: sampled uniformly (dropout rate, momentum);
- a list / tuple: the values to try (grid search) or to choose from (random search);
- anything else (e.g. ``epochs=3``): a fixed value passed through to the objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

__all__ = ["LogUniform", "Uniform", "log_uniform", "log_grid"]


# --- input checks shared by the whole package ----------------------------------------------------


def _check_range(low: float, high: float, log: bool) -> None:
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if log and (low <= 0 or high <= 0):
        raise ValueError(f"log-scale bounds must be > 0, got low={low:g}, high={high:g}")
    if low > high:
        raise ValueError(f"low must be <= high, got low={low:g} > high={high:g}")


def _check_count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _rng(rng) -> np.random.Generator:
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def _check_space(space: Mapping[str, Any]) -> None:
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space must be a non-empty dict name -> spec, got {space!r}")
    for name, spec in space.items():
        if isinstance(spec, (list, tuple)) and len(spec) == 0:
            raise ValueError(f"space[{name!r}] must list at least one value, got an empty {type(spec).__name__}")


# --- ranges ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogUniform:
    """``10 ** uniform(log10 low, log10 high)``; ``0 < low <= high``."""

    low: float
    high: float

    def __post_init__(self):
        _check_range(self.low, self.high, log=True)

    def sample(self, rng: np.random.Generator) -> float:
        return float(log_uniform(self.low, self.high, rng=rng))

    def position(self, value: float) -> float:
        """Where ``value`` lies in the range, 0 (low) .. 1 (high), in log space."""
        lo, hi = math.log10(self.low), math.log10(self.high)
        return 0.5 if hi == lo else (math.log10(value) - lo) / (hi - lo)

    def narrow(self, center: float, shrink: float) -> "LogUniform":
        lo, hi = math.log10(self.low), math.log10(self.high)
        half = (hi - lo) * shrink / 2
        c = math.log10(center)
        return LogUniform(10 ** max(lo, c - half), 10 ** min(hi, c + half))


@dataclass(frozen=True)
class Uniform:
    """``uniform(low, high)``; ``low <= high``."""

    low: float
    high: float

    def __post_init__(self):
        _check_range(self.low, self.high, log=False)

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def position(self, value: float) -> float:
        return 0.5 if self.high == self.low else (value - self.low) / (self.high - self.low)

    def narrow(self, center: float, shrink: float) -> "Uniform":
        half = (self.high - self.low) * shrink / 2
        return Uniform(max(self.low, center - half), min(self.high, center + half))


def log_uniform(low: float, high: float, size: int | tuple[int, ...] | None = None,
                rng: np.random.Generator | int | None = None) -> float | np.ndarray:
    """``10 ** uniform(log10 low, log10 high)``: equal probability for every decade.

    Args:
        low, high: bounds, ``0 < low <= high``.
        size: None for one float, else the shape of the returned np.ndarray.
        rng: a numpy Generator or an int seed (None: fresh entropy).
    """
    _check_range(low, high, log=True)
    exponent = _rng(rng).uniform(math.log10(low), math.log10(high), size=size)
    return float(10 ** exponent) if size is None else 10 ** exponent


def log_grid(low: float, high: float, num: int) -> np.ndarray:
    """``num`` values evenly spaced in log space from ``low`` to ``high`` (np.ndarray[num])."""
    _check_range(low, high, log=True)
    return np.logspace(math.log10(low), math.log10(high), _check_count("num", num))


def _sample(space: Mapping[str, Any], rng: np.random.Generator) -> dict:
    """One draw of every parameter of ``space`` (fixed values passed through)."""
    params = {}
    for name, spec in space.items():
        if isinstance(spec, (LogUniform, Uniform)):
            params[name] = spec.sample(rng)
        elif isinstance(spec, (list, tuple)):
            params[name] = spec[int(rng.integers(len(spec)))]
        else:
            params[name] = spec
    return params

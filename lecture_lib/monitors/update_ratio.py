"""The update/weight ratio, one rule for the whole course.

The lecture: "Track the ratio of weight updates / weight magnitudes": "want ~1e-3", and of its
example 0.0002 / 0.02 = 0.01: "0.01 is probably too high". So ``RATIO_TARGET`` = 1e-3; a ratio
at or above ``RATIO_TOO_HIGH`` = 1e-2 (the lecture's example, 10x the target) is too high; the
same factor below the target, ``RATIO_TOO_LOW`` = 1e-4, is too low (``ratio_verdict``). The
lecture adds that the ratio "will typically decrease over time": judge it while the network is
still learning. ``UpdateRatio`` measures it during ``fit()``, ``plot_update_ratio`` draws it
with the rule, ``diagnose_learning_rate`` reads a run from its loss and its ratio.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from lecture_lib.lecture import UPDATE_RATIO_EXAMPLE, UPDATE_RATIO_TARGET
from lecture_lib.monitors._common import _MARKERS, _axis, _check_every, _tracked_parameters
from lecture_lib.train import Callback, TrainState

__all__ = ["RATIO_TARGET", "RATIO_TOO_HIGH", "RATIO_TOO_LOW", "update_ratio", "ratio_verdict",
           "diagnose_learning_rate", "UpdateRatio", "plot_update_ratio"]

# The course's one update/weight rule, from the lecture's two figures (see the module docstring).
RATIO_TARGET: float = UPDATE_RATIO_TARGET                      # "want ~1e-3"
RATIO_TOO_HIGH: float = UPDATE_RATIO_EXAMPLE["ratio"]          # "0.01 is probably too high"
RATIO_TOO_LOW: float = RATIO_TARGET / (RATIO_TOO_HIGH / RATIO_TARGET)  # as far below the target: 1e-4


def update_ratio(before: Tensor, after: Tensor) -> float:
    """``||after - before|| / ||before||``: the size of one update relative to the weights.

    For plain SGD this is ``lr * ||dW|| / ||W||``, the lecture's ``update_scale / param_scale``
    ("want ~1e-3"); judge it with ``ratio_verdict``.
    """
    if before.shape != after.shape:
        raise ValueError(f"before and after must have the same shape, got {list(before.shape)} and {list(after.shape)}")
    before, after = before.detach().double(), after.detach().double()
    scale = torch.linalg.vector_norm(before).item()
    change = torch.linalg.vector_norm(after - before).item()
    return change / scale if scale > 0 else float("inf") if change > 0 else float("nan")


def ratio_verdict(ratio: float) -> str:
    """The course's one update/weight rule: ``"too high"``, ``"too low"`` or ``"good"``.

    ``ratio >= RATIO_TOO_HIGH`` (1e-2, the lecture's "0.01 is probably too high") or not finite:
    too high; ``ratio < RATIO_TOO_LOW`` (1e-4, as far below the target 1e-3): too low; else good.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating, np.integer)):
        raise TypeError(f"ratio must be a real number, got {type(ratio).__name__}")
    ratio = float(ratio)
    if math.isnan(ratio) or ratio < 0:
        raise ValueError(f"ratio must be a number >= 0, got {ratio}")
    if ratio >= RATIO_TOO_HIGH:  # also inf
        return "too high"
    return "too low" if ratio < RATIO_TOO_LOW else "good"


def diagnose_learning_rate(step_loss: Sequence[float], median_update_ratio: float) -> str:
    """Read a run from its loss and its update/weight ratio: ``"too high"``, ``"too low"`` or ``"good"``.

    Too high: the loss is not finite or ends above where it started (the last tenth of the
    steps against the first tenth). Otherwise the verdict of ``ratio_verdict`` on the run's
    median update/weight ratio: the course's one rule (>= 1e-2 too high, < 1e-4 too low).
    """
    losses = np.asarray(step_loss, dtype=float)
    if losses.size == 0:
        raise ValueError("step_loss must hold at least one value, got 0")
    if not np.all(np.isfinite(losses)):
        return "too high"
    k = max(1, losses.size // 10)
    if losses[-k:].mean() > losses[:k].mean():
        return "too high"
    return ratio_verdict(median_update_ratio)


class UpdateRatio(Callback):
    """``||W_after - W_before|| / ||W_before||`` per weight tensor, every ``every`` steps.

    Copies the weights in ``on_after_backward`` (before the optimizer step) and compares in
    ``on_step_end``; so it measures what the optimizer really did (momentum, Adam, clipping).
    After training: ``steps`` and ``ratios[name]`` (list[float]).
    """

    def __init__(self, every: int = 1, include_bias: bool = False):
        self.every, self.include_bias = _check_every(every), include_bias
        self.steps: list[int] = []
        self.ratios: dict[str, list[float]] = {}
        self._before: dict[str, Tensor] | None = None

    def on_after_backward(self, state: TrainState) -> None:
        self._before = None
        if state.step % self.every == 0:
            self._before = {n: p.detach().clone() for n, p in _tracked_parameters(state.model, self.include_bias).items()}

    def on_step_end(self, state: TrainState) -> None:
        if self._before is None:
            return
        self.steps.append(state.step - 1)  # fit counted the step already
        params = _tracked_parameters(state.model, self.include_bias)
        for name, before in self._before.items():
            self.ratios.setdefault(name, []).append(update_ratio(before, params[name]))
        self._before = None

    def median(self) -> float:
        """Median ratio over all layers and records (``nan`` before training)."""
        values = [r for rs in self.ratios.values() for r in rs if math.isfinite(r)]
        return float(np.median(values)) if values else float("nan")


def plot_update_ratio(monitor: UpdateRatio, ax=None, legend: bool = True):
    """Update/weight ratio per layer on a log axis, with the course's one rule drawn in.

    Shaded: the good range, ``RATIO_TOO_LOW`` (1e-4) to ``RATIO_TOO_HIGH`` (1e-2, the lecture's
    "0.01 is probably too high"); dashed: the lecture's target ``RATIO_TARGET`` ("want ~1e-3").
    The legend goes to the right of the axes, where it covers neither band nor data;
    ``legend=False`` leaves it to the caller.
    """
    ax = _axis(ax)
    ax.axhspan(RATIO_TOO_LOW, RATIO_TOO_HIGH, color="green", alpha=0.12,
               label=f"good: {RATIO_TOO_LOW:.0e} to {RATIO_TOO_HIGH:.0e}")
    ax.axhline(RATIO_TARGET, color="green", ls="--", lw=1, label=f"lecture: want ~{RATIO_TARGET:.0e}")
    for k, (name, ratios) in enumerate(monitor.ratios.items()):
        steps = monitor.steps[:len(ratios)]
        ax.plot(steps, ratios, marker=_MARKERS[k % len(_MARKERS)], markevery=max(1, len(steps) // 8), ms=4, label=name)
    ax.set_yscale("log")
    ax.set(title="Update / weight ratio per layer", xlabel="optimizer step", ylabel="||ΔW|| / ||W||")
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return ax

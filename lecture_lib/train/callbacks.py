"""Callbacks that belong to every training run of the course: the divergence guard and a
reporter of per-epoch values (to a search, or to Optuna's pruner).

The lecture's tip for detecting explosions in the solver: "If the cost is ever > 3 * original
cost, break out early" (``lecture_lib.lecture.EXPLOSION_FACTOR``). ``DivergenceGuard`` applies
it after every optimizer step; a search records such a trial as "diverged".

    history = fit(model, loader, epochs=20, callbacks=[DivergenceGuard()])
    history.stop_reason     # "diverged: loss 9.1 > 3 x initial 2.3 at step 7" (or "")
"""

from __future__ import annotations

import math
from typing import Callable

from lecture_lib.lecture import EXPLOSION_FACTOR
from lecture_lib.train.state import Callback, TrainState

__all__ = ["Diverged", "is_diverging", "DivergenceGuard", "ReportCallback"]


class Diverged(Exception):
    """Raised by an objective (or ``DivergenceGuard(action="raise")``) when training blows up."""


def is_diverging(cost: float, initial_cost: float, factor: float = EXPLOSION_FACTOR) -> bool:
    """True when ``cost`` is not finite or exceeds ``factor`` x ``initial_cost`` (CS231n's rule)."""
    return not math.isfinite(cost) or cost > factor * initial_cost


class DivergenceGuard(Callback):
    """Stop training as soon as the loss exceeds ``factor`` x the first step's loss.

    Args:
        factor: 3 in the lecture ("cost > 3 x original cost: break out early").
        action: "stop" sets ``state.stop`` (``fit`` returns normally, ``history.stop_reason``
            says why); "raise" raises ``Diverged`` (searches record the trial as diverged).

    Attributes:
        initial: the first step's loss; ``diverged_at``: the step that crossed the line (or None).
    """

    def __init__(self, factor: float = EXPLOSION_FACTOR, action: str = "stop"):
        if not factor > 1:
            raise ValueError(f"factor must be > 1, got {factor!r}")
        if action not in ("stop", "raise"):
            raise ValueError(f"action must be 'stop' or 'raise', got {action!r}")
        self.factor, self.action = factor, action
        self.initial: float | None = None
        self.diverged_at: int | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self.initial, self.diverged_at = None, None

    def on_step_end(self, state: TrainState) -> None:
        cost = state.history.step_loss[-1]
        if self.initial is None:
            self.initial = cost
            if math.isfinite(cost):
                return
        if is_diverging(cost, self.initial, self.factor):
            self.diverged_at = state.step
            reason = f"diverged: loss {cost:.3g} > {self.factor:g} x initial {self.initial:.3g} at step {state.step}"
            if self.action == "raise":
                raise Diverged(reason)
            state.stop, state.stop_reason = True, reason


class ReportCallback(Callback):
    """Calls ``report(epoch, history[key][-1])`` after every epoch (1-based epoch numbers)."""

    def __init__(self, report: Callable[[int, float], None], key: str = "val_acc"):
        self.report, self.key = report, key

    def on_epoch_end(self, state: TrainState) -> None:
        self.report(state.epoch + 1, state.history.epochs[-1][self.key])

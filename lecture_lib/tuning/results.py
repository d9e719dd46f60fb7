"""What a search returns: one record per trial, the best one, and warnings worth reading.

An **objective** is ``objective(params) -> float`` (higher is better unless
``direction="minimize"``), or ``objective(params, report)`` to report intermediate values
(``report(epoch, value)``) that the searches record and Optuna's pruner uses. It raises
``Diverged`` (e.g. through ``DivergenceGuard(action="raise")``) when training blows up; a
non-finite score counts as diverged too.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from lecture_lib.lecture import EXPLOSION_FACTOR
from lecture_lib.train.callbacks import Diverged
from lecture_lib.tuning.spaces import LogUniform, Uniform

__all__ = ["SearchResult", "Diverged", "edge_warnings"]


@dataclass
class SearchResult:
    """What a search did.

    Attributes:
        trials: one dict per trial, in order: ``params`` (dict), ``score`` (float, nan unless
            ``status == "ok"``), ``status`` ("ok", "diverged", "pruned" or "failed"),
            ``stage`` (int), ``seconds``, ``curve`` (list of reported (step, value) pairs).
        best: the best "ok" trial (of the last stage for ``coarse_to_fine``), None if none.
        warnings: human-readable problems, e.g. "best lr 9.7e-04 is within 10% of the upper
            edge 1e-03 of its range".
        direction: "maximize" or "minimize".
        spaces: the search space of each stage (one for grid / random search).
    """

    trials: list[dict] = field(default_factory=list)
    best: dict | None = None
    warnings: list[str] = field(default_factory=list)
    direction: str = "maximize"
    spaces: list[dict] = field(default_factory=list)

    def scores(self) -> np.ndarray:
        """np.ndarray[T] of scores (nan for trials that are not "ok")."""
        return np.array([t["score"] for t in self.trials], dtype=float)

    def best_so_far(self) -> np.ndarray:
        """np.ndarray[T]: best score among the first t trials (nan until one is "ok")."""
        s = self.scores()
        fill = -np.inf if self.direction == "maximize" else np.inf
        acc = np.maximum.accumulate if self.direction == "maximize" else np.minimum.accumulate
        out = acc(np.where(np.isnan(s), fill, s))
        return np.where(np.isinf(out), np.nan, out)

    def top(self, k: int = 5) -> list[dict]:
        """The ``k`` best "ok" trials, best first."""
        ok = [t for t in self.trials if t["status"] == "ok"]
        return sorted(ok, key=lambda t: t["score"], reverse=self.direction == "maximize")[:k]


def _check_direction(direction: str) -> str:
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return direction


def _takes_report(objective: Callable) -> bool:
    """Whether ``objective`` accepts a second positional argument, ``report``."""
    try:
        params = inspect.signature(objective).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _run_trial(objective: Callable, params: dict, stage: int = 0) -> dict:
    """Call ``objective`` once; a ``Diverged`` or a non-finite score is a "diverged" trial."""
    trial = {"params": params, "score": float("nan"), "status": "ok", "stage": stage, "curve": []}
    started = time.perf_counter()

    def report(step: int, value: float) -> None:
        trial["curve"].append((step, float(value)))

    try:
        score = objective(params, report) if _takes_report(objective) else objective(params)
        score = float(score)
        if math.isfinite(score):
            trial["score"] = score
        else:
            trial["status"] = "diverged"
    except Diverged as error:
        trial["status"], trial["reason"] = "diverged", str(error)
    trial["seconds"] = time.perf_counter() - started
    return trial


def _best(trials: list[dict], direction: str) -> dict | None:
    ok = [t for t in trials if t["status"] == "ok"]
    return sorted(ok, key=lambda t: t["score"], reverse=direction == "maximize")[0] if ok else None


def _finish(trials: list[dict], spaces: list[dict], direction: str, stage: int | None = None) -> SearchResult:
    """The ``SearchResult`` of ``trials``: best of ``stage`` (all stages when None), warnings."""
    result = SearchResult(trials=trials, direction=direction, spaces=spaces)
    result.best = _best([t for t in trials if stage is None or t["stage"] == stage], direction)
    if result.best is None:
        result.warnings.append("no trial finished with a finite score: every trial diverged")
        return result
    result.warnings.extend(edge_warnings(result.best["params"], spaces[-1]))
    n_diverged = sum(t["status"] == "diverged" for t in trials)
    if n_diverged:
        result.warnings.append(f"{n_diverged} of {len(trials)} trials diverged "
                               f"(cost > {EXPLOSION_FACTOR:g}x initial or not finite)")
    return result


def _range_warning(name: str, value: float, spec: LogUniform | Uniform, tolerance: float) -> str | None:
    log = isinstance(spec, LogUniform)
    shown = f"{value:.1e}" if log else f"{value:.3g}"

    def edge(v):  # 1e-03, 2.5e-04 (as the lecture writes bounds)
        return np.format_float_scientific(v, precision=2, trim="-", exp_digits=2) if log else f"{v:.3g}"

    pos = spec.position(value)
    if pos >= 1 - tolerance:
        return f"best {name} {shown} is within {tolerance:.0%} of the upper edge {edge(spec.high)} of its range"
    if pos <= tolerance:
        return f"best {name} {shown} is within {tolerance:.0%} of the lower edge {edge(spec.low)} of its range"
    return None


def _list_warning(name: str, value: Any, values: list | tuple) -> str | None:
    if len(values) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    if value == max(values):
        return f"best {name} {value:.3g} is the largest value tried; try larger ones"
    if value == min(values):
        return f"best {name} {value:.3g} is the smallest value tried; try smaller ones"
    return None


def edge_warnings(best_params: Mapping[str, Any], space: Mapping[str, Any], tolerance: float = 0.1) -> list[str]:
    """Warn when a best value sits at the edge of its range: the optimum may lie outside it
    (the lecture: "this best cross-validation result is worrying. Why?").

    For ``LogUniform``/``Uniform`` ranges: within ``tolerance`` of an edge (in log space for
    ``LogUniform``). For lists of 3 or more numbers: the smallest or largest value.
    """
    out = []
    for name, spec in space.items():
        value = best_params.get(name)
        if isinstance(spec, (LogUniform, Uniform)):
            warning = _range_warning(name, value, spec, tolerance)
        elif isinstance(spec, (list, tuple)):
            warning = _list_warning(name, value, spec)
        else:
            warning = None
        if warning is not None:
            out.append(warning)
    return out

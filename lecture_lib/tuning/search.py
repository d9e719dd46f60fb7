"""Grid, random and coarse-to-fine search, and why random beats grid.

The lecture's strategy ("coarse -> fine cross-validation in stages"): a first stage of only a
few epochs over a wide range of values, then longer runs over a finer range around what
worked, "repeat as necessary". Each trial samples every parameter independently (random
search, Bergstra & Bengio 2012), in log space for rates and strengths.

    result = coarse_to_fine(TwoLayerNetObjective(), {"lr": LogUniform(1e-6, 1e-3),
                            "reg": LogUniform(1e-5, 1e5)}, [Stage(100, {"epochs": 1}), Stage(50, {"epochs": 5})])
    result.best, result.warnings
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lecture_lib.train.progress import close_transient
from lecture_lib.tuning.results import SearchResult, _best, _check_direction, _finish, _run_trial
from lecture_lib.tuning.spaces import LogUniform, Uniform, _check_count, _check_space, _rng, _sample

__all__ = ["random_search", "grid_search", "Stage", "coarse_to_fine", "bergstra_objective", "random_vs_grid"]


def _progress(iterable, total: int, enabled: bool, desc: str):
    """``iterable``, with a transient tqdm bar when ``enabled`` (closed by ``close_transient``)."""
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, leave=False)
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        close_transient(bar)


def random_search(objective: Callable, space: Mapping[str, Any], n_trials: int,
                  rng: np.random.Generator | int | None = None, *, direction: str = "maximize",
                  progress: bool = False) -> SearchResult:
    """``n_trials`` independent samples of ``space`` (Bergstra & Bengio 2012).

    With the same budget as a grid, random search tries ``n_trials`` distinct values of every
    continuous parameter, so the important ones get explored even when we do not know which.
    """
    _check_space(space)
    n_trials = _check_count("n_trials", n_trials)
    direction, rng = _check_direction(direction), _rng(rng)
    trials = [_run_trial(objective, _sample(space, rng))
              for _ in _progress(range(n_trials), n_trials, progress, "random search")]
    return _finish(trials, [dict(space)], direction)


def grid_search(objective: Callable, space: Mapping[str, Any], *, direction: str = "maximize",
                progress: bool = False) -> SearchResult:
    """Every combination of the listed values (``itertools.product`` in the order of ``space``).

    Ranges must be turned into values first, e.g. ``log_grid(1e-6, 1e-3, 4)``.
    """
    _check_space(space)
    direction = _check_direction(direction)
    axes = []
    for name, spec in space.items():
        if isinstance(spec, (LogUniform, Uniform)):
            raise TypeError(f"grid_search needs a list of values for {name!r}, got {type(spec).__name__}; "
                            "use e.g. log_grid(low, high, num)")
        axes.append(list(spec) if isinstance(spec, (list, tuple, np.ndarray)) else [spec])
    names = list(space)
    total = math.prod(len(a) for a in axes)
    trials = [_run_trial(objective, dict(zip(names, values)))
              for values in _progress(itertools.product(*axes), total, progress, "grid search")]
    grid_space = {n: [float(v) if isinstance(v, np.floating) else v for v in a] for n, a in zip(names, axes)}
    return _finish(trials, [grid_space], direction)


@dataclass(frozen=True)
class Stage:
    """One stage of ``coarse_to_fine``.

    Attributes:
        n_trials: random trials in this stage.
        fixed: values merged into every trial's params (e.g. ``{"epochs": 1}`` for a cheap
            coarse stage, ``{"epochs": 10}`` later).
        shrink: this stage's ranges are the previous stage's, ``shrink`` times as wide (in log
            space for ``LogUniform``), centred on the previous best and kept inside the range.
    """

    n_trials: int
    fixed: Mapping[str, Any] = field(default_factory=dict)
    shrink: float = 1 / 3

    def __post_init__(self):
        _check_count("n_trials", self.n_trials)
        if not 0 < self.shrink <= 1:
            raise ValueError(f"shrink must be in (0, 1], got {self.shrink!r}")


def _check_stages(stages: Sequence[Stage]) -> None:
    if not stages:
        raise ValueError("stages must hold at least one Stage, got none")
    for s in stages:
        if not isinstance(s, Stage):
            raise TypeError(f"stages must be Stage objects, got {type(s).__name__}")


def _narrowed(space: dict, trials: list[dict], stage: int, shrink: float, direction: str) -> dict:
    """``space`` with its ranges narrowed around the best trial of ``stage`` (unchanged if none)."""
    best = _best([t for t in trials if t["stage"] == stage], direction)
    if best is None:
        return space
    return {n: s.narrow(best["params"][n], shrink) if isinstance(s, (LogUniform, Uniform)) else s
            for n, s in space.items()}


def coarse_to_fine(objective: Callable, space: Mapping[str, Any], stages: Sequence[Stage],
                   rng: np.random.Generator | int | None = None, *, direction: str = "maximize",
                   progress: bool = False) -> SearchResult:
    """Random search in stages, each around the previous stage's best.

    CS231n: first a coarse search with few epochs over wide log ranges, then a finer one,
    with more epochs, in the region that worked. ``best`` is the best trial of the *last*
    stage (scores of cheaper stages are not comparable); ``spaces`` holds each stage's ranges.
    ``progress`` shows a tqdm bar per stage (also for ``random_search`` / ``grid_search``).
    """
    _check_space(space)
    direction, rng = _check_direction(direction), _rng(rng)
    _check_stages(stages)
    trials, spaces = [], []
    current = dict(space)
    for k, stage in enumerate(stages):
        if k > 0:
            current = _narrowed(current, trials, k - 1, stage.shrink, direction)
        spaces.append(dict(current))
        for _ in _progress(range(stage.n_trials), stage.n_trials, progress, f"stage {k}"):
            trials.append(_run_trial(objective, {**_sample(current, rng), **stage.fixed}, stage=k))
    return _finish(trials, spaces, direction, stage=len(stages) - 1)


# --- Random Search vs. Grid Search (Bergstra & Bengio 2012, Figure 1) -----------------------------


def bergstra_objective(x: np.ndarray, y: np.ndarray, center: float | np.ndarray, width: float = 0.05) -> np.ndarray:
    """A score with one important parameter ``x`` (a narrow peak at ``center``) and one
    unimportant ``y`` (1% effect), both in [0, 1] (Bergstra & Bengio 2012, Figure 1)."""
    return np.exp(-0.5 * ((np.asarray(x) - center) / width) ** 2) + 0.01 * np.asarray(y)


def random_vs_grid(n_per_axis: int = 3, repeats: int = 1000, width: float = 0.05,
                   rng: np.random.Generator | int | None = None) -> dict[str, np.ndarray]:
    """Best score of a grid vs random search with the same budget, over ``repeats`` problems.

    Each repeat draws the peak ``center ~ U(0, 1)`` of ``bergstra_objective``; the grid
    tries ``n_per_axis`` values of each parameter (cell centres), so only ``n_per_axis``
    distinct values of the important one; random search tries ``n_per_axis ** 2`` distinct ones.

    Returns:
        ``{"grid": np.ndarray[repeats], "random": np.ndarray[repeats], "center": np.ndarray[repeats]}``
    """
    n_per_axis, repeats = _check_count("n_per_axis", n_per_axis), _check_count("repeats", repeats)
    rng = _rng(rng)
    centers = rng.uniform(0, 1, repeats)
    axis = (np.arange(n_per_axis) + 0.5) / n_per_axis
    gx, gy = (a.ravel() for a in np.meshgrid(axis, axis))
    grid = bergstra_objective(gx[None], gy[None], centers[:, None], width).max(axis=1)
    budget = n_per_axis ** 2
    rx, ry = rng.uniform(0, 1, (repeats, budget)), rng.uniform(0, 1, (repeats, budget))
    random = bergstra_objective(rx, ry, centers[:, None], width).max(axis=1)
    return {"grid": grid, "random": random, "center": centers}

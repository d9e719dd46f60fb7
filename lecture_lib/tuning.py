"""Hyperparameter optimization: search spaces, grid / random / coarse-to-fine search, blocked
k-fold, the divergence guard, hypergradients, and a bridge to Optuna for parallel search.

A **search space** is a dict ``name -> spec``:

- ``LogUniform(1e-6, 1e-3)``: sampled as ``10 ** uniform(log10 low, log10 high)`` (the lecture's
  ``lr = 10 ** uniform(-6, -3)``): learning rates and regularization strengths act
  multiplicatively, so each decade deserves the same number of trials;
- ``Uniform(0.0, 0.5)``: sampled uniformly (dropout rate, momentum);
- a list / tuple: the values to try (grid search) or to choose from (random search);
- anything else (e.g. ``epochs=3``): a fixed value passed through to the objective.

An **objective** is ``objective(params) -> float`` (higher is better unless
``direction="minimize"``), or ``objective(params, report)`` to report intermediate values
(``report(epoch, value)``) that the searches record and Optuna's pruner uses. It raises
``Diverged`` (e.g. through ``DivergenceGuard(action="raise")``) when training blows up; a
non-finite score counts as diverged too. ``TwoLayerNetObjective`` is the lecture's experiment.
"""

from __future__ import annotations

import datetime
import inspect
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.train import Callback, TrainState, close_transient

__all__ = [
    "LogUniform", "Uniform", "log_uniform", "log_grid", "SearchResult", "Stage", "Diverged",
    "random_search", "grid_search", "coarse_to_fine", "edge_warnings", "blocked_kfold",
    "bergstra_objective", "random_vs_grid",
    "is_diverging", "DivergenceGuard", "ReportCallback", "TwoLayerNetObjective",
    "HypergradientResult", "hypergradient", "unrolled_val_loss", "tune_by_hypergradient",
    "make_storage", "optuna_search", "parallel_optuna_search", "study_to_result",
    "plot_search_2d", "plot_best_so_far",
]


# --- validation -------------------------------------------------------------------------------


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


# --- search spaces ----------------------------------------------------------------------------


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


# --- results ----------------------------------------------------------------------------------


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


class Diverged(Exception):
    """Raised by an objective (or ``DivergenceGuard(action="raise")``) when training blows up."""


def _check_direction(direction: str) -> str:
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return direction


def _takes_report(objective: Callable) -> bool:
    try:
        params = inspect.signature(objective).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _run_trial(objective: Callable, params: dict, stage: int = 0) -> dict:
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


def _finish(trials: list[dict], spaces: list[dict], direction: str, stage: int | None = None) -> SearchResult:
    result = SearchResult(trials=trials, direction=direction, spaces=spaces)
    pool = [t for t in trials if t["status"] == "ok" and (stage is None or t["stage"] == stage)]
    if not pool:
        result.warnings.append("no trial finished with a finite score: every trial diverged")
        return result
    result.best = sorted(pool, key=lambda t: t["score"], reverse=direction == "maximize")[0]
    result.warnings.extend(edge_warnings(result.best["params"], spaces[-1]))
    n_diverged = sum(t["status"] == "diverged" for t in trials)
    if n_diverged:
        result.warnings.append(f"{n_diverged} of {len(trials)} trials diverged (cost > 3x initial or not finite)")
    return result


def edge_warnings(best_params: Mapping[str, Any], space: Mapping[str, Any], tolerance: float = 0.1) -> list[str]:
    """Warn when a best value sits at the edge of its range: the optimum may lie outside it.

    For ``LogUniform``/``Uniform`` ranges: within ``tolerance`` of an edge (in log space for
    ``LogUniform``). For lists of 3 or more numbers: the smallest or largest value.
    """
    out = []
    for name, spec in space.items():
        value = best_params.get(name)
        if isinstance(spec, (LogUniform, Uniform)):
            pos = spec.position(value)
            log = isinstance(spec, LogUniform)

            def fmt(v, log=log):
                return f"{v:.1e}" if log else f"{v:.3g}"

            def edge(v, log=log):  # 1e-03, 2.5e-04 (as the lecture writes bounds)
                return np.format_float_scientific(v, precision=2, trim="-", exp_digits=2) if log else f"{v:.3g}"

            if pos >= 1 - tolerance:
                out.append(f"best {name} {fmt(value)} is within {tolerance:.0%} of the upper edge "
                           f"{edge(spec.high)} of its range")
            elif pos <= tolerance:
                out.append(f"best {name} {fmt(value)} is within {tolerance:.0%} of the lower edge "
                           f"{edge(spec.low)} of its range")
        elif isinstance(spec, (list, tuple)) and len(spec) >= 3 and \
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
            if value == max(spec):
                out.append(f"best {name} {value:.3g} is the largest value tried; try larger ones")
            elif value == min(spec):
                out.append(f"best {name} {value:.3g} is the smallest value tried; try smaller ones")
    return out


# --- searches ---------------------------------------------------------------------------------


def _sample(space: Mapping[str, Any], rng: np.random.Generator) -> dict:
    params = {}
    for name, spec in space.items():
        if isinstance(spec, (LogUniform, Uniform)):
            params[name] = spec.sample(rng)
        elif isinstance(spec, (list, tuple)):
            params[name] = spec[int(rng.integers(len(spec)))]
        else:
            params[name] = spec
    return params


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
    if not stages:
        raise ValueError("stages must hold at least one Stage, got none")
    for s in stages:
        if not isinstance(s, Stage):
            raise TypeError(f"stages must be Stage objects, got {type(s).__name__}")
    trials, spaces = [], []
    current = dict(space)
    for k, stage in enumerate(stages):
        if k > 0:
            ok = [t for t in trials if t["stage"] == k - 1 and t["status"] == "ok"]
            if ok:  # else keep the ranges: nothing to narrow around
                best = sorted(ok, key=lambda t: t["score"], reverse=direction == "maximize")[0]["params"]
                current = {n: s.narrow(best[n], stage.shrink) if isinstance(s, (LogUniform, Uniform)) else s
                           for n, s in current.items()}
        spaces.append(dict(current))
        for _ in _progress(range(stage.n_trials), stage.n_trials, progress, f"stage {k}"):
            trials.append(_run_trial(objective, {**_sample(current, rng), **stage.fixed}, stage=k))
    return _finish(trials, spaces, direction, stage=len(stages) - 1)


def blocked_kfold(n_samples: int, n_folds: int, gap: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold cross-validation with contiguous validation blocks (no shuffling).

    When samples are ordered in time and neighbours are correlated, random folds put a
    validation sample's near-duplicate neighbours into training and overestimate accuracy.
    Blocks keep validation data away from training data; ``gap`` drops that many training
    samples on each side of the validation block to cut the remaining correlation.

    Returns:
        list of ``n_folds`` pairs ``(train_idx, val_idx)`` (np.ndarray int64); the first
        ``n_samples % n_folds`` blocks are one sample longer (as ``sklearn.model_selection.KFold``).
    """
    n_samples = _check_count("n_samples", n_samples)
    n_folds = _check_count("n_folds", n_folds, minimum=2)
    if n_folds > n_samples:
        raise ValueError(f"n_folds must be <= n_samples, got n_folds={n_folds} > n_samples={n_samples}")
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ValueError(f"gap must be an int >= 0, got {gap!r}")
    sizes = np.full(n_folds, n_samples // n_folds)
    sizes[: n_samples % n_folds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    index = np.arange(n_samples)
    folds = []
    for k in range(n_folds):
        start, stop = bounds[k], bounds[k + 1]
        train = index[(index < start - gap) | (index >= stop + gap)]
        folds.append((train, index[start:stop]))
    return folds


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


# --- divergence guard and reporting -----------------------------------------------------------


def is_diverging(cost: float, initial_cost: float, factor: float = 3.0) -> bool:
    """True when ``cost`` is not finite or exceeds ``factor`` x ``initial_cost`` (CS231n's rule)."""
    return not math.isfinite(cost) or cost > factor * initial_cost


class DivergenceGuard(Callback):
    """Stop training as soon as the loss exceeds ``factor`` x the first step's loss.

    Args:
        factor: 3 in the lecture ("cost > 3 x original cost: break out early").
        action: "stop" sets ``state.stop`` (``fit`` returns normally, ``history.stop_reason``
            says why); "raise" raises ``Diverged`` (searches record the trial as diverged).
    """

    def __init__(self, factor: float = 3.0, action: str = "stop"):
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


# --- the lecture's experiment -----------------------------------------------------------------


_DATA_CACHE: dict = {}


@dataclass
class TwoLayerNetObjective:
    """Validation accuracy of a 2-layer net (``hidden`` ReLU units) trained with SGD on digits (or CIFAR-10).

    ``params``: ``lr`` (required), ``reg`` (L2 weight decay, default 0), ``epochs`` (default
    ``self.epochs``). Inputs are 8-bit pixel values (the digits' 0..16 intensities times 16)
    minus the training mean, as CS231n feeds CIFAR-10 pixels, so the lecture's learning-rate
    range 1e-6..1e-3 is the right one. With ``cifar10_root`` (the folder holding
    ``cifar-10-batches-py``) the data are CIFAR-10 itself, the lecture's data set: 3072 raw pixel
    values minus the mean image, 1000 validation images (``n_samples`` then caps the training
    images; see ``load_cifar10_split``). Training stops
    with ``Diverged`` when the loss exceeds 3x its initial value. Picklable, so Optuna worker
    processes can run it. ``device`` defaults to the CPU: a 50-unit network is faster there
    than on a GPU (pass ``device="cuda"`` or ``str(get_device())`` for bigger variants).
    """

    hidden: int = 50
    epochs: int = 5
    batch_size: int = 64
    n_samples: int | None = None
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    cifar10_root: str | None = None

    def data(self):
        """The split (8-bit pixel values minus the training mean); cached per process."""
        key = (self.seed, self.n_samples, self.cifar10_root)
        if key not in _DATA_CACHE:
            if self.cifar10_root is not None:
                from lecture_lib.data.classification import load_cifar10_split

                split, scale = load_cifar10_split(self.cifar10_root, n_train=self.n_samples, seed=self.seed), 1
            else:
                from lecture_lib.data.tabular import load_digits_split

                split = load_digits_split(seed=self.seed, standardize=False, n_samples=self.n_samples)
                scale = 16  # digits' intensities 0..16 -> 0..256
            mean = split.x_train.mean(dim=0) * scale
            for name in ("x_train", "x_val", "x_test"):
                setattr(split, name, getattr(split, name) * scale - mean)
            _DATA_CACHE[key] = split
        return _DATA_CACHE[key]

    def __call__(self, params: Mapping[str, Any], report: Callable[[int, float], None] | None = None) -> float:
        from lecture_lib.data.tabular import TensorBatches
        from lecture_lib.train import fit

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        if "lr" not in params:
            raise ValueError(f"params must hold 'lr', got {sorted(params)}")
        split = self.data()
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        model = nn.Sequential(nn.Linear(split.num_features, self.hidden), nn.ReLU(),
                              nn.Linear(self.hidden, split.num_classes))
        optimizer = torch.optim.SGD(model.parameters(), lr=float(params["lr"]), momentum=0.9,
                                    weight_decay=float(params.get("reg", 0.0)))
        callbacks: list[Callback] = [DivergenceGuard(3.0, action="raise")]
        if report is not None:
            callbacks.append(ReportCallback(report, "val_acc"))
        train = TensorBatches(split.x_train, split.y_train, self.batch_size, shuffle=True, generator=generator)
        val = [(split.x_val, split.y_val)]
        history = fit(model, train, epochs=int(params.get("epochs", self.epochs)), optimizer=optimizer,
                      val_loader=val, callbacks=callbacks, device=self.device or "cpu", progress=False)
        return history["val_acc"][-1]


# --- gradient-based tuning --------------------------------------------------------------------


@dataclass
class HypergradientResult:
    """``val_loss`` after the unrolled run; ``grad`` (Tensor[2]) = d val_loss / d(log10 lr,
    log10 wd); ``stored_bytes``: peak bytes kept for the backward pass (measured with
    ``torch.autograd.graph.saved_tensors_hooks`` plus the stored weight snapshots)."""

    val_loss: float
    grad: Tensor
    stored_bytes: int
    seconds: float


class _SavedBytes:
    """Counts distinct tensor storages autograd saves for backward while active."""

    def __init__(self):
        self.seen: set = set()
        self.bytes = 0

    def pack(self, t: Tensor):
        key = (t.untyped_storage().data_ptr(), t.dtype)
        if key not in self.seen:
            self.seen.add(key)
            self.bytes += t.untyped_storage().nbytes()
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def _check_unroll(model: nn.Module, train_batches: Sequence, val_batch) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if len(train_batches) == 0:
        raise ValueError("train_batches must hold at least one (inputs, targets) batch, got 0")
    if not (isinstance(val_batch, (list, tuple)) and len(val_batch) == 2):
        raise ValueError(f"val_batch must be a pair (inputs, targets), got {type(val_batch).__name__}")


def _sgd_step(model, params: dict, buffers: dict, batch, lr: Tensor, wd: Tensor, loss_fn, create_graph: bool):
    x, y = batch
    loss = loss_fn(torch.func.functional_call(model, {**params, **buffers}, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    # SGD with L2 weight decay: w <- w - lr * (dL/dw + wd * w)
    return {k: p - lr * (g + wd * p) for (k, p), g in zip(params.items(), grads)}


def _val_loss(model, params, buffers, val_batch, loss_fn) -> Tensor:
    x, y = val_batch
    return loss_fn(torch.func.functional_call(model, {**params, **buffers}, (x,)), y)


def unrolled_val_loss(model: nn.Module, train_batches: Sequence, val_batch, log10_lr: float, log10_wd: float,
                      loss_fn: Callable = F.cross_entropy) -> float:
    """Validation loss after ``len(train_batches)`` SGD steps from the model's current weights
    (the model itself is left unchanged). Deterministic models only (no dropout)."""
    _check_unroll(model, train_batches, val_batch)
    dtype = next(model.parameters()).dtype
    lr, wd = torch.tensor(10.0 ** log10_lr, dtype=dtype), torch.tensor(10.0 ** log10_wd, dtype=dtype)
    params = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    for batch in train_batches:
        params = {k: v.detach().requires_grad_() for k, v in
                  _sgd_step(model, params, buffers, batch, lr, wd, loss_fn, create_graph=False).items()}
    with torch.no_grad():
        return _val_loss(model, params, buffers, val_batch, loss_fn).item()


def hypergradient(model: nn.Module, train_batches: Sequence, val_batch, log10_lr: float, log10_wd: float,
                  loss_fn: Callable = F.cross_entropy, checkpoint_every: int | None = None) -> HypergradientResult:
    """Gradient of the validation loss after an unrolled SGD run w.r.t. log10 lr and log10 wd.

    The run: ``T = len(train_batches)`` steps ``w <- w - lr (dL_train/dw + wd w)`` from the
    model's current weights. Reverse-mode differentiation through it needs every ``w_t``:

    - ``checkpoint_every=None``: autograd keeps the whole graph of all T steps (simplest,
      memory grows with T times the activations);
    - ``checkpoint_every=k``: keep only every k-th weight vector, recompute the others segment
      by segment during the backward pass (memory ~ (T/k + k) weight vectors; k = 1 stores all
      weights but no activations). Maclaurin et al. 2015 avoid even that by reversing SGD with
      momentum exactly, storing only the bits that finite precision would lose.

    Returns:
        HypergradientResult (grad Tensor[2]: d/d log10 lr, d/d log10 wd).
    """
    _check_unroll(model, train_batches, val_batch)
    if checkpoint_every is not None:
        checkpoint_every = _check_count("checkpoint_every", checkpoint_every)
    started = time.perf_counter()
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    h = torch.tensor([log10_lr, log10_wd], dtype=dtype, device=device, requires_grad=True)
    buffers = dict(model.named_buffers())
    w0 = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    param_bytes = sum(v.numel() * v.element_size() for v in w0.values())

    def hyper(hh):
        return 10.0 ** hh[0], 10.0 ** hh[1]

    if checkpoint_every is None:
        with _SavedBytes() as saved:
            lr, wd = hyper(h)
            params = w0
            for batch in train_batches:
                params = _sgd_step(model, params, buffers, batch, lr, wd, loss_fn, create_graph=True)
            val = _val_loss(model, params, buffers, val_batch, loss_fn)
        (grad,) = torch.autograd.grad(val, h)
        return HypergradientResult(val.item(), grad.detach(), saved.bytes, time.perf_counter() - started)

    # forward without a graph, keeping every k-th weight vector
    T, k = len(train_batches), checkpoint_every
    lr0, wd0 = (v.detach() for v in hyper(h))

    def step_no_graph(params, t):
        new = _sgd_step(model, params, buffers, train_batches[t], lr0, wd0, loss_fn, create_graph=False)
        return {n: v.detach().requires_grad_() for n, v in new.items()}

    snapshots = {}
    params = w0
    for t in range(T):
        if t % k == 0:
            snapshots[t] = params
        params = step_no_graph(params, t)
    wT = {n: v.detach().requires_grad_() for n, v in params.items()}
    val = _val_loss(model, wT, buffers, val_batch, loss_fn)
    adjoint = torch.autograd.grad(val, list(wT.values()))
    grad = torch.zeros_like(h)
    peak_step_bytes = 0
    for start in reversed(range(0, T, k)):
        segment = [snapshots[start]]  # recompute this segment's weights from its snapshot
        for t in range(start, min(start + k, T) - 1):
            segment.append(step_no_graph(segment[-1], t))
        for t in reversed(range(start, min(start + k, T))):
            w_t = {n: v.detach().requires_grad_() for n, v in segment[t - start].items()}
            with _SavedBytes() as saved:
                lr, wd = hyper(h)
                w_next = _sgd_step(model, w_t, buffers, train_batches[t], lr, wd, loss_fn, create_graph=True)
            peak_step_bytes = max(peak_step_bytes, saved.bytes)
            grads = torch.autograd.grad(list(w_next.values()), [*w_t.values(), h], grad_outputs=adjoint)
            adjoint, grad = grads[:-1], grad + grads[-1]
    stored = (len(snapshots) + k) * param_bytes + peak_step_bytes
    return HypergradientResult(val.item(), grad.detach(), stored, time.perf_counter() - started)


def tune_by_hypergradient(model: nn.Module, train_batches: Sequence, val_batch, log10_lr: float,
                          log10_wd: float, hyper_steps: int = 20, hyper_lr: float = 0.5,
                          max_step: float = 0.5, loss_fn: Callable = F.cross_entropy,
                          checkpoint_every: int | None = None) -> list[dict]:
    """Gradient descent on (log10 lr, log10 wd), each step re-running the unrolled training
    from the same initial weights. Steps are clipped to ``max_step`` decades per coordinate
    (hypergradients of chaotic unrolled runs can be huge).

    Returns:
        list of ``hyper_steps + 1`` dicts ``{"step", "log10_lr", "log10_wd", "val_loss", "grad"}``;
        the last one is the final point (its grad is evaluated too).
    """
    hyper_steps = _check_count("hyper_steps", hyper_steps, minimum=0)
    h = np.array([log10_lr, log10_wd], dtype=float)
    path = []
    for step in range(hyper_steps + 1):
        res = hypergradient(model, train_batches, val_batch, h[0], h[1], loss_fn, checkpoint_every)
        g = res.grad.cpu().double().numpy()
        path.append({"step": step, "log10_lr": float(h[0]), "log10_wd": float(h[1]),
                     "val_loss": res.val_loss, "grad": g})
        if not np.all(np.isfinite(g)):
            break
        h = h - np.clip(hyper_lr * g, -max_step, max_step)
    return path


# --- Optuna -----------------------------------------------------------------------------------


def make_storage(storage: str | Path | None = None):
    """Optuna storage: None -> journal file ``optuna_journal.log`` in the working folder; a path
    ending in ``.log`` -> that journal file; a database URL (``sqlite:///search.db``,
    ``postgresql://user:pw@host/db`` for a class cluster) is returned unchanged.

    Journal files and databases survive a crash or Ctrl-C: the study continues where it stopped.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if storage is None:
        storage = "optuna_journal.log"
    storage = str(storage)
    if "://" in storage:
        return storage
    if not storage.endswith(".log"):
        raise ValueError(f"storage must be a database URL or a journal file path ending in .log, got {storage!r}")
    return optuna.storages.JournalStorage(JournalFileBackend(storage))


def _suggest(trial, space: Mapping[str, Any]) -> dict:
    params = {}
    for name, spec in space.items():
        if isinstance(spec, LogUniform):
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=True)
        elif isinstance(spec, Uniform):
            params[name] = trial.suggest_float(name, spec.low, spec.high)
        elif isinstance(spec, (list, tuple)):
            params[name] = trial.suggest_categorical(name, list(spec))
        else:
            params[name] = spec
    return params


def _optuna_objective(objective: Callable, space: Mapping[str, Any]):
    import optuna

    def run(trial):
        params = _suggest(trial, space)

        def report(step: int, value: float) -> None:
            trial.report(float(value), step)
            if trial.should_prune():  # median pruner: worse than the median of earlier trials here
                raise optuna.TrialPruned(f"pruned at step {step}")

        try:
            score = objective(params, report) if _takes_report(objective) else objective(params)
        except Diverged as error:  # the 3x guard, expressed as pruning
            trial.set_user_attr("diverged", str(error))
            raise optuna.TrialPruned(str(error)) from None
        if not math.isfinite(score):
            trial.set_user_attr("diverged", f"score {score}")
            raise optuna.TrialPruned(f"score {score}")
        return float(score)

    return run


def _make_study(study_name, storage, direction, seed, pruner):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name, storage=make_storage(storage), direction=direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))


def _finished(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=states))


def _reached(study, n_trials: int, since: datetime.datetime) -> bool:
    """Whether finished trials plus the trials running now (started at or after ``since``) reach
    ``n_trials``. Counting the running trials of other workers keeps a parallel study from
    overshooting; a trial left RUNNING by a crash before ``since`` is not counted, so a resumed
    study still runs the trials that crash lost."""
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    in_flight = sum(t.datetime_start is not None and t.datetime_start >= since for t in running)
    return _finished(study) + in_flight >= n_trials


class _StopAtTotal:
    """Optuna callback: stop this worker once ``_reached`` (Optuna calls it after each trial)."""

    def __init__(self, n_trials: int, since: datetime.datetime):
        self.n_trials, self.since = n_trials, since

    def __call__(self, study, trial) -> None:
        if _reached(study, self.n_trials, self.since):
            study.stop()


def optuna_search(objective: Callable, space: Mapping[str, Any], n_trials: int, *,
                  study_name: str = "lecture-search", storage: str | Path | None = None,
                  direction: str = "maximize", seed: int = 0, pruner=None,
                  timeout: float | None = None):
    """The same search on Optuna: TPE sampler, median pruner on reported values, the 3x guard
    as pruning, persistent storage (see ``make_storage``).

    ``n_trials`` is the total the study should reach: run it again after a crash or Ctrl-C
    (same ``study_name`` and ``storage``) and it runs only the missing trials.

    Returns:
        ``(SearchResult, optuna.Study)``
    """
    _check_space(space)
    n_trials = _check_count("n_trials", n_trials)
    direction = _check_direction(direction)
    study = _optimize(objective, space, n_trials, study_name, storage, direction, seed, pruner, timeout,
                      since=datetime.datetime.now())  # Optuna stamps trials with local time
    return study_to_result(study, space), study


def _optimize(objective, space, n_trials, study_name, storage, direction, seed, pruner, timeout, since):
    """Run the trials the study misses to reach ``n_trials`` (see ``_reached``); return the study."""
    study = _make_study(study_name, storage, direction, seed, pruner)
    missing = n_trials - _finished(study)
    if missing > 0:
        study.optimize(_optuna_objective(objective, space), n_trials=missing, timeout=timeout,
                       catch=(), callbacks=[_StopAtTotal(n_trials, since)])
    return study


def _worker(objective, space, n_trials, study_name, storage, direction, seed, threads, pruner, barrier, since):
    torch.set_num_threads(threads)
    _make_study(study_name, storage, direction, seed, pruner)  # imports optuna, opens the storage
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # the first optimizer imports torch._dynamo (seconds)
    barrier.wait()  # all workers start their trials together, whatever their start-up time
    _optimize(objective, space, n_trials, study_name, storage, direction, seed, pruner, None, since)


def parallel_optuna_search(objective: Callable, space: Mapping[str, Any], n_trials: int, n_workers: int = 2, *,
                           study_name: str = "lecture-search", storage: str | Path | None = None,
                           direction: str = "maximize", seed: int = 0, threads_per_worker: int = 1,
                           pruner=None):
    """``n_workers`` processes join one study through its storage until it holds ``n_trials``.

    Each worker is what you would start on another machine: same ``study_name``, same
    ``storage`` (a PostgreSQL URL across machines). ``objective`` must be picklable (a
    module-level function or e.g. ``TwoLayerNetObjective``); workers get seeds ``seed + i`` so
    their first samples differ. ``pruner`` (picklable; default median pruner) as in
    ``optuna_search``. After each trial a worker counts the finished trials plus those the other
    workers are running and stops when they reach ``n_trials``, so the study ends with
    ``n_trials`` trials (Optuna's own ``MaxTrialsCallback`` counts finished trials only and lets
    each of the other workers start one more). Only two workers finishing within the same few
    milliseconds, between one's count and its next trial, can still add one trial.

    Returns:
        ``(SearchResult, optuna.Study)``
    """
    import multiprocessing

    _check_space(space)
    n_trials, n_workers = _check_count("n_trials", n_trials), _check_count("n_workers", n_workers)
    storage = "optuna_journal.log" if storage is None else str(storage)
    _make_study(study_name, storage, _check_direction(direction), seed, pruner)  # create it once, up front
    since = datetime.datetime.now()  # trials RUNNING before this moment are left over from a crash
    context = multiprocessing.get_context("spawn")  # fork + torch threads can deadlock
    barrier = context.Barrier(n_workers)
    workers = [context.Process(target=_worker, args=(objective, dict(space), n_trials, study_name, storage,
                                                     direction, seed + i, threads_per_worker, pruner, barrier,
                                                     since))
               for i in range(n_workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    bad = [w.exitcode for w in workers if w.exitcode != 0]
    if bad:
        raise RuntimeError(f"optuna workers must exit with code 0, got {bad}")
    study = _make_study(study_name, storage, direction, seed, None)
    return study_to_result(study, space), study


def study_to_result(study, space: Mapping[str, Any]) -> SearchResult:
    """An Optuna study as a ``SearchResult`` (trial order = trial number)."""
    import optuna

    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    fixed = {n: s for n, s in space.items() if not isinstance(s, (LogUniform, Uniform, list, tuple))}
    trials = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state == optuna.trial.TrialState.COMPLETE:
            status = "ok"
        elif t.state == optuna.trial.TrialState.PRUNED:
            status = "diverged" if "diverged" in t.user_attrs else "pruned"
        elif t.state == optuna.trial.TrialState.FAIL:
            status = "failed"
        else:
            continue  # running (another worker) or waiting
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else float("nan")
        trials.append({"params": {**t.params, **fixed}, "score": t.value if status == "ok" else float("nan"),
                       "status": status, "stage": 0, "seconds": seconds, "number": t.number,
                       "curve": sorted(t.intermediate_values.items())})
    return _finish(trials, [dict(space)], direction)


# --- plots --------------------------------------------------------------------------------------


def plot_search_2d(result: SearchResult, x: str, y: str, stage: int | None = None, ax=None):
    """Trials over two parameters, coloured by score (log axes for ``LogUniform`` ranges);
    diverged trials as grey crosses, the best as a red star."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    trials = [t for t in result.trials if stage is None or t["stage"] == stage]
    ok = [t for t in trials if t["status"] == "ok"]
    bad = [t for t in trials if t["status"] != "ok"]
    if ok:
        points = ax.scatter([t["params"][x] for t in ok], [t["params"][y] for t in ok],
                            c=[t["score"] for t in ok], cmap="viridis", s=30, edgecolors="k", linewidths=0.3)
        ax.figure.colorbar(points, ax=ax, label="score")
    if bad:
        ax.scatter([t["params"][x] for t in bad], [t["params"][y] for t in bad], marker="x", color="gray",
                   label="diverged / pruned")
    best = result.best if stage is None or (result.best and result.best["stage"] == stage) else \
        (sorted(ok, key=lambda t: t["score"], reverse=result.direction == "maximize") or [None])[0]
    if best is not None:
        ax.plot(best["params"][x], best["params"][y], "r*", ms=15, label="best")
    space = result.spaces[stage if stage is not None else -1] if result.spaces else {}
    for name, setter in ((x, ax.set_xscale), (y, ax.set_yscale)):
        spec = space.get(name)
        if isinstance(spec, LogUniform) or (isinstance(spec, (list, tuple)) and len(spec) > 2 and
                                            all(isinstance(v, (int, float)) and v > 0 for v in spec) and
                                            max(spec) / min(spec) > 50):
            setter("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter
    from matplotlib.transforms import ScaledTranslation

    def two_and_five(value, _pos):  # minor-tick label only at 2 x 10^k and 5 x 10^k
        exponent = int(np.floor(np.log10(value) + 1e-9))
        mantissa = round(value / 10.0 ** exponent)
        return f"${mantissa}\\times10^{{{exponent}}}$" if mantissa in (2, 5) else ""

    for axis, name in ((ax.xaxis, x), (ax.yaxis, y)):
        values = [t["params"][name] for t in trials]
        # Labelled minor ticks (2x10^-4, 3x10^-4, ...) overlap. Over 1.5 decades or more the 10^k
        # labels suffice; over fewer there may be one 10^k tick or none: label 2 and 5 x 10^k too.
        if axis.get_scale() == "log" and values:
            wide = np.log10(max(values) / min(values)) >= 1.5
            axis.set_minor_formatter(NullFormatter() if wide else FuncFormatter(two_and_five))
    title = "Search" + (f", stage {stage}" if stage is not None else "")
    ax.set(title=title, xlabel=x, ylabel=y)
    if ax.get_legend_handles_labels()[0]:  # below the axes, where it covers no trial
        below = ax.transAxes + ScaledTranslation(0, -0.5, ax.figure.dpi_scale_trans)  # under the x label
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncol=2, frameon=False)
    return ax


def plot_best_so_far(result: SearchResult, ax=None, label: str | None = None):
    """Best score among the first t trials, against t."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    best = result.best_so_far()
    ax.plot(np.arange(1, len(best) + 1), best, drawstyle="steps-post", label=label)
    ax.set(title="Best score so far", xlabel="trials", ylabel="best score")
    if label:
        ax.legend()
    return ax

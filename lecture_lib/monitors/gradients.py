"""Watching each parameter's gradient while a network trains: ``GradientStats`` (a ``fit()``
callback) records ``gradient_stats`` and the histogram of log10|g| after every backward pass;
``plot_gradient_stats`` and ``plot_gradient_histograms`` draw them.
"""

from __future__ import annotations

import numpy as np

from lecture_lib.monitors._common import _STAT_LABELS, _axis, _check_every, _plot_stat_lines, _tracked_parameters
from lecture_lib.monitors.statistics import _GRAD_BINS, feature_profile, gradient_stats
from lecture_lib.train import Callback, TrainState

__all__ = ["GradientStats", "plot_gradient_stats", "plot_gradient_histograms"]


class GradientStats(Callback):
    """Per-parameter gradient statistics every ``every`` steps (read in ``on_after_backward``).

    After training: ``steps``; ``stats[name][key]`` for the keys of ``gradient_stats``
    (magnitude, mean, median, std, q1, q3, norm, abs_max, feature_spread, spatial_spread);
    ``hists[name]`` list of np.ndarray[56] (counts of log10|g| in ``bins``); ``profiles[name]``
    list of ``feature_profile(grad, unit_dim=0)`` arrays (output units by gradient magnitude).
    """

    def __init__(self, every: int = 1, include_bias: bool = False):
        self.every, self.include_bias = _check_every(every), include_bias
        self.bins = _GRAD_BINS
        self.steps: list[int] = []
        self.stats: dict[str, dict[str, list[float]]] = {}
        self.hists: dict[str, list[np.ndarray]] = {}
        self.profiles: dict[str, list[np.ndarray]] = {}

    def on_after_backward(self, state: TrainState) -> None:
        if state.step % self.every:
            return
        self.steps.append(state.step)
        for name, p in _tracked_parameters(state.model, self.include_bias).items():
            if p.grad is None:
                continue
            s = gradient_stats(p.grad, self.bins)
            self.hists.setdefault(name, []).append(s.pop("hist"))
            if p.grad.dim() >= 2:
                self.profiles.setdefault(name, []).append(feature_profile(p.grad, unit_dim=0))
            row = self.stats.setdefault(name, {k: [] for k in s})
            for key, value in s.items():
                row[key].append(value)


def plot_gradient_stats(monitor: GradientStats, stat: str = "magnitude", ax=None):
    """One line per parameter: ``stat`` (a numeric key of ``gradient_stats``) over steps;
    ``"median"`` shades the quartiles too. Magnitudes go on a log axis."""
    ax = _axis(ax)
    keys = tuple(k for k in next(iter(monitor.stats.values()), {}) if k != "hist") or (
        "magnitude", "mean", "median", "std", "q1", "q3", "norm", "abs_max", "feature_spread", "spatial_spread")
    if stat not in keys:
        raise ValueError(f"stat must be one of {keys}, got {stat!r}")
    shown = {n: row for n, row in monitor.stats.items() if np.isfinite(row[stat]).any()}
    _plot_stat_lines(ax, monitor.steps, shown, stat, {n: n for n in shown})
    if stat in ("magnitude", "norm", "abs_max", "std"):
        ax.set_yscale("log")
    ax.set(title=f"Weight gradients per layer: {stat}", xlabel="optimizer step",
           ylabel={"norm": "L2 norm", "abs_max": "largest |gradient|"}.get(stat, _STAT_LABELS.get(stat, stat)))
    if ax.lines:
        ax.legend(title="parameter")
    return ax


def plot_gradient_histograms(monitor: GradientStats, name: str, ax=None):
    """Histogram of log10|gradient| of one parameter over time, as an image (like TensorBoard)."""
    ax = _axis(ax)
    if name not in monitor.hists:
        raise ValueError(f"name must be one of {list(monitor.hists)}, got {name!r}")
    counts = np.stack(monitor.hists[name]).T  # [bins, records]
    fractions = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1)
    steps = monitor.steps
    image = ax.imshow(fractions, origin="lower", aspect="auto", cmap="viridis",
                      extent=(steps[0], steps[-1] + 1, monitor.bins[0], monitor.bins[-1]))
    ax.figure.colorbar(image, ax=ax, label="fraction of entries")
    # y range: the bins that ever hold at least 0.1 % of the entries (not the fixed -12..2 of the bins)
    occupied = np.flatnonzero(fractions.max(axis=1) >= 1e-3)
    if occupied.size:
        ax.set_ylim(monitor.bins[max(occupied[0] - 1, 0)], monitor.bins[min(occupied[-1] + 2, len(monitor.bins) - 1)])
    ax.set(title=f"Gradient magnitudes of {name} over time", xlabel="optimizer step",
           ylabel="log10 |gradient|")
    return ax

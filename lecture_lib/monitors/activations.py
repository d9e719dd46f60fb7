"""Watching each layer's activations while a network trains: ``ActivationStats`` (a ``fit()``
callback with forward hooks) records ``activation_stats``, histograms and the feature-rank and
spatial profiles of every nonlinearity; the ``plot_*`` functions draw them. Rules of thumb that
are *not* on the slides (CS231n notes; Glorot & Bengio 2010): tanh units stuck at +-1
(saturated) or ReLU units that never fire (dead) do not learn.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import Tensor, nn

from lecture_lib.monitors._common import _MARKERS, _STAT_LABELS, _axis, _check_every, _plot_stat_lines
from lecture_lib.monitors.gradients import GradientStats
from lecture_lib.monitors.statistics import (_ACTIVATION_KEYS, _BOUNDS, activation_stats, feature_profile,
                                             spatial_profile)
from lecture_lib.train import Callback, TrainState

__all__ = ["ActivationStats", "plot_activation_stats", "plot_feature_profile", "plot_spatial_profile",
           "plot_activation_histograms"]

_NONLINEARITIES = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softsign)


def _select_modules(model: nn.Module, layers: Sequence[str] | None) -> dict[str, nn.Module]:
    named = dict(model.named_modules())
    if layers is None:
        return {name: m for name, m in named.items() if isinstance(m, _NONLINEARITIES)}
    missing = [name for name in layers if name not in named]
    if missing:
        raise ValueError(f"layers must name modules of the model (e.g. {list(named)[1:4]}), got unknown {missing}")
    return {name: named[name] for name in layers}


class ActivationStats(Callback):
    """Per-layer activation statistics every ``every`` training steps, via forward hooks.

    Args:
        layers: module names (``model.named_modules()``); default every nonlinearity.
        every: record on steps 0, every, 2 * every, ...
        bins (array[K + 1]): histogram bin edges for the activation values.

    After training: ``steps`` (list[int]); ``stats[name][key]`` (list over records; keys of
    ``activation_stats``); ``hists[name]`` (list of np.ndarray[K]); ``profiles[name]`` (list of
    ``feature_profile`` arrays) and ``spatial[name]`` (list of ``spatial_profile`` arrays, only
    for layers with spatial dimensions).
    """

    def __init__(self, layers: Sequence[str] | None = None, every: int = 10,
                 bins: np.ndarray | None = None):
        self.layers, self.every = layers, _check_every(every)
        self.bins = np.linspace(-1.0, 1.0, 41) if bins is None else np.asarray(bins)
        self.steps: list[int] = []
        self.stats: dict[str, dict[str, list[float]]] = {}
        self.hists: dict[str, list[np.ndarray]] = {}
        self.profiles: dict[str, list[np.ndarray]] = {}
        self.spatial: dict[str, list[np.ndarray]] = {}
        self.kinds: dict[str, str] = {}  # module class per layer name, for legends
        self._handles: list = []
        self._recording = False

    def on_fit_start(self, state: TrainState) -> None:
        modules = _select_modules(state.model, self.layers)
        for name, module in modules.items():
            self.stats.setdefault(name, {k: [] for k in _ACTIVATION_KEYS})
            self.hists.setdefault(name, [])
            self.profiles.setdefault(name, [])
            self.kinds[name] = type(module).__name__
            self._handles.append(module.register_forward_hook(self._hook(name, _BOUNDS.get(type(module)))))

    def _hook(self, name: str, bounds):
        def hook(module, inputs, output):
            if self._recording and isinstance(output, Tensor):
                for key, value in activation_stats(output, bounds).items():
                    self.stats[name][key].append(value)
                values = output.detach().float().flatten().cpu().numpy()
                self.hists[name].append(np.histogram(np.clip(values, self.bins[0], self.bins[-1]), self.bins)[0])
                self.profiles[name].append(feature_profile(output))
                if output.dim() > 2:
                    self.spatial.setdefault(name, []).append(spatial_profile(output))
        return hook

    def on_batch_start(self, state: TrainState) -> None:
        self._recording = state.step % self.every == 0
        if self._recording:
            self.steps.append(state.step)

    def on_after_backward(self, state: TrainState) -> None:
        self._recording = False  # validation passes are not recorded

    def on_fit_end(self, state: TrainState) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def plot_activation_stats(monitor: ActivationStats, stat: str = "std", ax=None):
    """One line per layer: ``stat`` (a key of ``activation_stats``) over steps.

    ``"median"`` also shades the quartiles (the lecture's centre and breadth). Fractions only
    where they mean something: "saturated" for bounded nonlinearities (tanh, sigmoid, ...),
    "zero" and "dead" for the others (ReLU-like); their y axis starts at 0.
    """
    ax = _axis(ax)
    if stat not in _ACTIVATION_KEYS:
        raise ValueError(f"stat must be one of {_ACTIVATION_KEYS}, got {stat!r}")
    bounded = {kind.__name__ for kind in _BOUNDS}
    kinds_shown = set()
    shown = {}
    for name, stats in monitor.stats.items():
        kind = monitor.kinds.get(name, "?")
        if (stat == "saturated" and kind not in bounded) or (stat in ("zero", "dead") and kind in bounded):
            continue
        if stat == "spatial_spread" and not np.isfinite(stats[stat]).any():
            continue  # no spatial dimensions in this layer
        kinds_shown.add(kind)
        shown[name] = stats
    _plot_stat_lines(ax, monitor.steps, shown, stat, {n: f"{n} ({monitor.kinds.get(n, '?')})" for n in shown})
    if stat in _STAT_LABELS:
        ax.set(title=f"Activations per layer: {stat}", xlabel="optimizer step", ylabel=_STAT_LABELS[stat])
    else:
        units = {"saturated": "Saturated", "dead": "Dead", "zero": "Zero"}[stat]
        what = "units" if stat != "zero" else "outputs"
        kind_text = " / ".join(sorted(kinds_shown)) if kinds_shown else "no matching layer"
        ax.set(title=f"{units} {kind_text} {what}", xlabel="optimizer step", ylabel=f"fraction {stat}")
        top = max([np.nanmax(line.get_ydata()) for line in ax.lines if np.isfinite(line.get_ydata()).any()] + [0.0])
        ax.set_ylim(0, max(0.05, 1.15 * top))
    if ax.lines:
        ax.legend(title="layer")
    return ax


def plot_feature_profile(monitor: ActivationStats | GradientStats, record: int = -1, ax=None):
    """Units ranked by magnitude, one line per layer (the lecture's "feature-rank variations").

    x: rank of the unit (0 = largest), y: its root mean square at one record, on a log axis
    (dead units, exactly 0, drop off the axis: their count is in the legend).
    """
    ax = _axis(ax)
    what = "activations" if isinstance(monitor, ActivationStats) else "weight gradients"
    for k, (name, profiles) in enumerate(monitor.profiles.items()):
        if not profiles:
            continue
        profile = profiles[record]
        zeros = int(np.sum(profile == 0))
        label = name if not isinstance(monitor, ActivationStats) else f"{name} ({monitor.kinds.get(name, '?')})"
        ax.plot(np.arange(len(profile)), np.where(profile > 0, profile, np.nan), marker=_MARKERS[k % len(_MARKERS)],
                markevery=max(1, len(profile) // 8), ms=4, label=label + (f", {zeros} at 0" if zeros else ""))
    step = monitor.steps[record] if monitor.steps else 0
    ax.set_yscale("log")
    ax.set(title=f"Units ranked by magnitude of their {what} (step {step})", xlabel="rank of the unit (0 = largest)",
           ylabel="root mean square")
    if ax.lines:
        ax.legend(title="layer")
    return ax


def plot_spatial_profile(monitor: ActivationStats, name: str, record: int = -1, ax=None):
    """Magnitude of one layer's activations at each position (the lecture's "spatial variations")."""
    ax = _axis(ax)
    if name not in monitor.spatial:
        raise ValueError(f"name must be a layer with spatial dimensions, one of {list(monitor.spatial)}, got {name!r}")
    image = np.asarray(monitor.spatial[name][record])
    if image.ndim != 2:
        raise ValueError(f"spatial_profile of {name!r} must be 2-D ([H, W]), got shape {list(image.shape)}")
    shown = ax.imshow(image, cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(shown, ax=ax, label="root mean square over batch and channels")
    ax.set(title=f"{name}: activation magnitude per position (step {monitor.steps[record]})", xlabel="x (pixels)",
           ylabel="y (pixels)")
    return ax


def plot_activation_histograms(monitor: ActivationStats, record: int = -1, ax=None):
    """Distribution of each layer's activations at one record (CS231n's per-layer histograms)."""
    ax = _axis(ax)
    centers = (monitor.bins[:-1] + monitor.bins[1:]) / 2
    for k, (name, hists) in enumerate(monitor.hists.items()):
        counts = hists[record]
        ax.plot(centers, counts / max(counts.sum(), 1), marker=_MARKERS[k % len(_MARKERS)], ms=3,
                label=f"{name} ({monitor.kinds.get(name, '?')})")
    step = monitor.steps[record] if monitor.steps else 0
    ax.set(title=f"Activation distribution per layer (step {step})", xlabel="activation value",
           ylabel="fraction of values")
    ax.legend(title="layer")
    return ax

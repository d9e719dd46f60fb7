"""Plots of a search: trials over two parameters, and the best score so far.

    plot_search_2d(result, "lr", "reg")      # log axes for LogUniform ranges, the best as a star
    plot_best_so_far(result)
"""

from __future__ import annotations

import numpy as np

from lecture_lib.tuning.results import SearchResult, _best
from lecture_lib.tuning.spaces import LogUniform

__all__ = ["plot_search_2d", "plot_best_so_far"]


def _is_log(spec) -> bool:
    """Log axis for a ``LogUniform`` range, or a list of positive numbers spanning > 50x."""
    if isinstance(spec, LogUniform):
        return True
    return (isinstance(spec, (list, tuple)) and len(spec) > 2 and
            all(isinstance(v, (int, float)) and v > 0 for v in spec) and max(spec) / min(spec) > 50)


def _two_and_five(value, _pos):
    """Minor-tick label only at 2 x 10^k and 5 x 10^k."""
    exponent = int(np.floor(np.log10(value) + 1e-9))
    mantissa = round(value / 10.0 ** exponent)
    return f"${mantissa}\\times10^{{{exponent}}}$" if mantissa in (2, 5) else ""


def _label_minor_ticks(ax, trials: list[dict], x: str, y: str) -> None:
    """Labelled minor ticks (2x10^-4, 3x10^-4, ...) overlap. Over 1.5 decades or more the 10^k
    labels suffice; over fewer there may be one 10^k tick or none: label 2 and 5 x 10^k too."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for axis, name in ((ax.xaxis, x), (ax.yaxis, y)):
        values = [t["params"][name] for t in trials]
        if axis.get_scale() == "log" and values:
            wide = np.log10(max(values) / min(values)) >= 1.5
            axis.set_minor_formatter(NullFormatter() if wide else FuncFormatter(_two_and_five))


def _legend_below(ax) -> None:
    """The legend under the x label, where it covers no trial."""
    from matplotlib.transforms import ScaledTranslation

    if ax.get_legend_handles_labels()[0]:
        below = ax.transAxes + ScaledTranslation(0, -0.5, ax.figure.dpi_scale_trans)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncol=2, frameon=False)


def plot_search_2d(result: SearchResult, x: str, y: str, stage: int | None = None, ax=None):
    """Trials over two parameters, coloured by score (log axes for ``LogUniform`` ranges);
    diverged trials as grey crosses, the best as a red star. Returns the axis."""
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
    own_stage = stage is None or (result.best is not None and result.best["stage"] == stage)
    best = result.best if own_stage else _best(ok, result.direction)
    if best is not None:
        ax.plot(best["params"][x], best["params"][y], "r*", ms=15, label="best")
    space = result.spaces[stage if stage is not None else -1] if result.spaces else {}
    for name, setter in ((x, ax.set_xscale), (y, ax.set_yscale)):
        if _is_log(space.get(name)):
            setter("log")
    _label_minor_ticks(ax, trials, x, y)
    ax.set(title="Search" + (f", stage {stage}" if stage is not None else ""), xlabel=x, ylabel=y)
    _legend_below(ax)
    return ax


def plot_best_so_far(result: SearchResult, ax=None, label: str | None = None):
    """Best score among the first t trials, against t. Returns the axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    best = result.best_so_far()
    ax.plot(np.arange(1, len(best) + 1), best, drawstyle="steps-post", label=label)
    ax.set(title="Best score so far", xlabel="trials", ylabel="best score")
    if label:
        ax.legend()
    return ax

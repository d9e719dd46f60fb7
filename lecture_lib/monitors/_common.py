"""What the monitors share: argument checks, the default axis, markers per line, the parameters
a callback tracks, and the lines of a per-layer statistic over steps."""

from __future__ import annotations

from torch import nn

_MARKERS = "os^vDP*X"  # one per line: colour is never the only thing that tells layers apart


def _check_every(every: int) -> int:
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    return every


def _tracked_parameters(model: nn.Module, include_bias: bool) -> dict[str, nn.Parameter]:
    # biases start at 0, so their ratio is meaningless early on; weights are what the rule is about
    return {name: p for name, p in model.named_parameters() if p.requires_grad and (include_bias or p.dim() > 1)}


def _axis(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def _plot_stat_lines(ax, steps, stats: dict[str, dict[str, list[float]]], stat: str, labels: dict[str, str]):
    """One line per layer; for ``median`` the quartiles q1..q3 shaded around it (centre and breadth)."""
    for k, (name, row) in enumerate(stats.items()):
        n = len(row[stat])
        line = ax.plot(steps[:n], row[stat], marker=_MARKERS[k % len(_MARKERS)], markevery=max(1, n // 8), ms=4,
                       label=labels[name])[0]
        if stat == "median":
            ax.fill_between(steps[:n], row["q1"], row["q3"], color=line.get_color(), alpha=0.2, lw=0)


_STAT_LABELS = {"magnitude": "root mean square", "mean": "mean", "median": "median (shaded: quartiles q1 to q3)",
                "std": "standard deviation", "q1": "first quartile", "q3": "third quartile",
                "feature_spread": "spread across units (std / mean)",
                "spatial_spread": "spread across positions (std / mean)"}

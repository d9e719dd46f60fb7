"""The learning trajectory: the weights' path projected on its two principal directions, over
the loss landscape of that plane (Li et al. 2018, "Visualizing the Loss Landscape of Neural
Nets"). ``WeightTrajectory`` (a ``fit()`` callback) stores the flattened weights, ``pca_2d``
projects them, ``loss_grid`` evaluates the loss on a grid of the plane, ``plot_trajectory``
draws the path over its contours.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from lecture_lib.monitors._common import _axis, _check_every
from lecture_lib.train import Callback, TrainState

__all__ = ["pca_2d", "loss_grid", "WeightTrajectory", "plot_trajectory"]


def pca_2d(points: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Project a weight trajectory on its two principal directions (Li et al. 2018).

    Args:
        points (array[T, P]): T snapshots of the flattened P weights, T >= 2.

    Returns:
        ``coords`` [T, 2] (snapshots in the plane), ``components`` [2, P] (unit directions),
        ``mean`` [P] (origin of the plane) and ``explained`` [2] (explained variance ratio).
        Signs of the components are arbitrary (as in any PCA); we make the largest-magnitude
        entry of each component positive, like scikit-learn.
    """
    x = np.asarray(points.detach().cpu() if isinstance(points, Tensor) else points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"points must have shape [T, P] with T >= 2, got {list(x.shape)}")
    mean = x.mean(axis=0)
    u, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(2, vt.shape[0])
    components = vt[:k]
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    signs[signs == 0] = 1
    components = components * signs[:, None]
    if k < 2:  # one weight only: the plane degenerates to a line
        components = np.vstack([components, np.zeros_like(components)])
    variance = s ** 2
    explained = np.zeros(2)
    explained[:k] = variance[:k] / variance.sum() if variance.sum() > 0 else 0.0
    return (x - mean) @ components.T, components, mean, explained


@torch.no_grad()
def loss_grid(model: nn.Module, loss_fn, inputs: Tensor, targets: Tensor, origin: np.ndarray,
              components: np.ndarray, alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Loss at ``origin + a * components[0] + b * components[1]`` for every (a, b) on a grid.

    Args:
        model: its parameters (in ``parameters()`` order, flattened) are replaced temporarily.
        origin (array[P]), components (array[2, P]): from ``pca_2d``.
        alphas (array[A]), betas (array[B]): grid coordinates along the two components.

    Returns:
        np.ndarray[B, A]: ``grid[j, i]`` is the loss at ``(alphas[i], betas[j])`` (contour-ready).
    """
    params = list(model.parameters())
    p = sum(q.numel() for q in params)
    origin = np.asarray(origin, dtype=np.float64)
    components = np.asarray(components, dtype=np.float64)
    if origin.shape != (p,) or components.shape != (2, p):
        raise ValueError(f"origin must have shape [{p}] and components [2, {p}] for this model, got "
                         f"{list(origin.shape)} and {list(components.shape)}")
    saved = nn.utils.parameters_to_vector(params).clone()
    was_training = model.training
    model.eval()
    device, dtype = saved.device, saved.dtype
    o = torch.as_tensor(origin, device=device, dtype=dtype)
    d = torch.as_tensor(components, device=device, dtype=dtype)
    grid = np.empty((len(betas), len(alphas)))
    try:
        for j, b in enumerate(betas):
            for i, a in enumerate(alphas):
                nn.utils.vector_to_parameters(o + float(a) * d[0] + float(b) * d[1], params)
                grid[j, i] = loss_fn(model(inputs), targets).item()
    finally:
        nn.utils.vector_to_parameters(saved, params)
        model.train(was_training)
    return grid


class WeightTrajectory(Callback):
    """Flattened weights (all parameters, ``parameters()`` order) at the start and every
    ``every`` steps: ``points`` is np.ndarray[T, P] after training, ready for ``pca_2d``."""

    def __init__(self, every: int = 1):
        self.every = _check_every(every)
        self.steps: list[int] = []
        self._points: list[np.ndarray] = []

    def _record(self, state: TrainState, step: int) -> None:
        self.steps.append(step)
        self._points.append(nn.utils.parameters_to_vector(state.model.parameters()).detach().cpu().double().numpy())

    def on_fit_start(self, state: TrainState) -> None:
        self._record(state, state.step)

    def on_step_end(self, state: TrainState) -> None:
        if state.step % self.every == 0:
            self._record(state, state.step)

    @property
    def points(self) -> np.ndarray:
        return np.stack(self._points) if self._points else np.zeros((0, 0))


def plot_trajectory(coords: np.ndarray, alphas: np.ndarray | None = None, betas: np.ndarray | None = None,
                    grid: np.ndarray | None = None, explained: np.ndarray | None = None, ax=None,
                    label: str = "trajectory", grid_label: str = "training loss"):
    """The weight path in the PCA plane (start o, end *), over loss contours when ``grid`` is given
    (with a colorbar labelled ``grid_label``). The two axes keep their own scales: PC 2 usually
    spans a much smaller distance than PC 1."""
    ax = _axis(ax)
    if grid is not None:
        levels = np.unique(np.quantile(grid, np.linspace(0, 1, 15)))
        # enough significant digits to tell neighbouring levels apart (a nearly flat landscape
        # spans 0.358 to 0.360: "%.2g" would label every contour 0.36)
        span = max(levels[-1] - levels[0], 1e-12)
        digits = max(2, int(np.ceil(np.log10(max(np.abs(levels).max(), 1e-12) / span))) + 1)
        contour = ax.contour(alphas, betas, grid, levels=levels, cmap="viridis", linewidths=0.8)
        ax.clabel(contour, fontsize=8, fmt=f"%.{digits}g")
        ax.figure.colorbar(contour, ax=ax, label=grid_label, format=f"%.{digits + 1}g")
    ax.plot(coords[:, 0], coords[:, 1], ".-", color="C3", ms=3, lw=1, label=label)
    ax.plot(*coords[0], "o", color="k", label="start")
    ax.plot(*coords[-1], "*", color="k", ms=12, label="end")
    xlabel, ylabel = "PC 1", "PC 2"
    if explained is not None:
        xlabel, ylabel = f"PC 1 ({100 * explained[0]:.0f}% of variance)", f"PC 2 ({100 * explained[1]:.0f}%)"
    ax.set(title="Learning trajectory projected on its 2 principal directions", xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return ax

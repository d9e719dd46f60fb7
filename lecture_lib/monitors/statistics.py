"""Statistics of one layer's activations or one parameter's gradient, as the lecture lists them
("Other Features to capture and plot"): *magnitude*, *centre* (mean or median), *breadth*
(standard deviation or quartiles), and the *feature-rank* and *spatial* variations
(``feature_profile``, ``spatial_profile``). Pure functions on tensors; the callbacks in
``activations.py`` and ``gradients.py`` call them during training.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["activation_stats", "gradient_stats", "feature_profile", "spatial_profile"]

# output range of bounded nonlinearities: a unit is "saturated" near either end
_BOUNDS = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0), nn.Hardtanh: (-1.0, 1.0), nn.Softsign: (-1.0, 1.0)}
_GRAD_BINS = np.linspace(-12.0, 2.0, 57)  # log10 |g|, fixed so that histograms line up over time


def _distribution(x: Tensor) -> dict[str, float]:
    """Magnitude, centre and breadth of all values of ``x`` (the lecture's three numbers)."""
    values = x.detach().double().flatten().cpu().numpy()
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])  # linear interpolation, NumPy's default
    return {
        "magnitude": float(np.sqrt(np.mean(values ** 2))),   # root mean square = ||x|| / sqrt(n)
        "mean": float(values.mean()),
        "median": float(median),
        "std": float(values.std()),                         # population, ddof=0
        "q1": float(q1),
        "q3": float(q3),
    }


def _rms_over(x: Tensor, keep: Sequence[int]) -> Tensor:
    """Root mean square of ``x`` over every dimension not in ``keep``."""
    other = [d for d in range(x.dim()) if d not in keep]
    squares = x.detach().double() ** 2
    return squares.mean(dim=other).sqrt() if other else squares.sqrt()


def feature_profile(x: Tensor, unit_dim: int = 1) -> np.ndarray:
    """Magnitude of each unit, largest first: the "feature-rank" variation of a layer.

    Args:
        x (Tensor[N, C, *] for activations, or a weight gradient Tensor[C_out, C_in, *] with
            ``unit_dim=0``): values of a batch (or of a parameter).
        unit_dim: the dimension that indexes units (features / channels).

    Returns:
        np.ndarray[C]: root mean square of each unit over all other dimensions, sorted from
        largest to smallest. A flat profile: every unit carries signal; a steep one: a few units
        dominate; trailing zeros: dead units.
    """
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dimensions ([N, C, *]), got shape {list(x.shape)}")
    if not -x.dim() <= unit_dim < x.dim():
        raise ValueError(f"unit_dim must index a dimension of x (shape {list(x.shape)}), got {unit_dim}")
    per_unit = _rms_over(x, [unit_dim % x.dim()]).cpu().numpy()
    return np.sort(per_unit)[::-1].copy()


def spatial_profile(x: Tensor) -> np.ndarray:
    """Magnitude at each spatial position: the "spatial" variation of a layer.

    Args:
        x (Tensor[N, C, *S]): activations with at least one spatial dimension (or a conv weight
            gradient [C_out, C_in, kh, kw]: then the profile is over kernel positions).

    Returns:
        np.ndarray[*S]: root mean square over dims 0 and 1 at every position (e.g. [H, W]).
    """
    if x.dim() < 3:
        raise ValueError(f"x must have spatial dimensions ([N, C, *S], S non-empty), got shape {list(x.shape)}")
    return _rms_over(x, list(range(2, x.dim()))).cpu().numpy()


def _spread(profile: np.ndarray) -> float:
    """Coefficient of variation (std / mean) of a profile: 0 when every entry is the same."""
    mean = float(np.mean(profile)) if profile.size else float("nan")
    return float(np.std(profile) / mean) if mean > 0 else float("nan")


_ACTIVATION_KEYS = ("magnitude", "mean", "median", "std", "q1", "q3", "feature_spread", "spatial_spread",
                    "zero", "dead", "saturated")


def activation_stats(x: Tensor, bounds: tuple[float, float] | None = None, margin: float = 0.01) -> dict[str, float]:
    """Statistics of one layer's activations, as the lecture lists them.

    Args:
        x (Tensor[N, C, *]): activations of a batch; dim 1 indexes units (features/channels).
        bounds: output range ``(low, high)`` of a bounded nonlinearity (tanh: (-1, 1)).
        margin: "saturated" = within ``margin * (high - low)`` of either bound.

    Returns:
        dict with
        ``magnitude`` (root mean square), centre ``mean`` and ``median``, breadth ``std``
        (population, ddof=0) and the quartiles ``q1``, ``q3``; the variations
        ``feature_spread`` (std / mean of the units' magnitudes, see ``feature_profile``) and
        ``spatial_spread`` (the same over positions, ``nan`` without spatial dimensions);
        ``zero`` (fraction of exact zeros), ``dead`` (fraction of units that are zero for every
        sample and position: dead ReLUs), ``saturated`` (fraction near a bound; ``nan``
        without ``bounds``).
    """
    if x.dim() < 2:
        raise ValueError(f"activations must have shape [N, C, *], got {list(x.shape)}")
    x = x.detach().float()
    if x.numel() == 0:
        return dict.fromkeys(_ACTIVATION_KEYS, float("nan"))
    units_alive = (x != 0).transpose(0, 1).reshape(x.shape[1], -1).any(dim=1)
    saturated = float("nan")
    if bounds is not None:
        low, high = bounds
        width = margin * (high - low)
        saturated = ((x <= low + width) | (x >= high - width)).float().mean().item()
    return {
        **_distribution(x),
        "feature_spread": _spread(feature_profile(x)),
        "spatial_spread": _spread(spatial_profile(x)) if x.dim() > 2 else float("nan"),
        "zero": (x == 0).float().mean().item(),
        "dead": 1.0 - units_alive.float().mean().item(),
        "saturated": saturated,
    }


def gradient_stats(grad: Tensor, bins: np.ndarray = _GRAD_BINS) -> dict:
    """Statistics of one parameter's gradient, as the lecture lists them.

    Args:
        grad (Tensor[C_out, *]): a parameter's gradient; dim 0 indexes the layer's output units.

    Returns:
        dict with ``magnitude`` (root mean square), ``mean``, ``median``, ``std`` (ddof=0),
        ``q1``, ``q3``, ``norm`` (L2), ``abs_max``, ``feature_spread`` (std / mean of the
        output units' gradient magnitudes; ``nan`` for a 1-D parameter), ``spatial_spread``
        (the same over kernel positions of a conv weight, else ``nan``) and ``hist``
        (np.ndarray[len(bins) - 1], counts of log10|g| in ``bins``; exact zeros are not counted).
    """
    g = grad.detach().float()
    flat = g.flatten()
    magnitude = flat.abs()
    logs = torch.log10(magnitude[magnitude > 0]).cpu().numpy()
    empty = flat.numel() == 0
    nan = float("nan")
    return {
        **(dict.fromkeys(("magnitude", "mean", "median", "std", "q1", "q3"), nan) if empty else _distribution(flat)),
        "norm": torch.linalg.vector_norm(flat).item(),
        "abs_max": nan if empty else magnitude.max().item(),
        "feature_spread": _spread(feature_profile(g, unit_dim=0)) if g.dim() >= 2 and not empty else nan,
        "spatial_spread": _spread(spatial_profile(g)) if g.dim() >= 3 and not empty else nan,
        "hist": np.histogram(np.clip(logs, bins[0], bins[-1]), bins=bins)[0],
    }

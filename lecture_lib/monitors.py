"""Monitoring training: what to look at while a network learns, as ``fit()`` callbacks.

Each concept has a pure function (tested against NumPy / scikit-learn), a callback that calls
it during training, and a ``plot_*(..., ax=None)`` that draws on a matplotlib axis and returns it.

=========================  ===========================  =====================================
what                       function                     callback / plot
=========================  ===========================  =====================================
loss per step              ``smooth``                   ``History.step_loss`` / ``plot_loss``
train vs val accuracy      ``accuracy_gap``             ``History`` / ``plot_accuracy``
activations per layer      ``activation_stats``         ``ActivationStats`` / ``plot_activation_stats``,
                                                        ``plot_activation_histograms``
gradients per layer        ``gradient_stats``           ``GradientStats`` / ``plot_gradient_stats``,
                                                        ``plot_gradient_histograms``
feature-rank variation     ``feature_profile``          ``*.profiles`` / ``plot_feature_profile``
spatial variation          ``spatial_profile``          ``ActivationStats.spatial`` / ``plot_spatial_profile``
update / weight ratio      ``update_ratio``,            ``UpdateRatio`` / ``plot_update_ratio``
                           ``ratio_verdict``
learning trajectory        ``pca_2d``, ``loss_grid``    ``WeightTrajectory`` / ``plot_trajectory``
=========================  ===========================  =====================================

What the lecture lists ("Other Features to capture and plot"): per-layer activations and
gradients by their *magnitude*, *centre* (mean or median), *breadth* (standard deviation or
quartiles) and *spatial / feature-rank variations*; ``activation_stats`` and ``gradient_stats``
return all of them, ``feature_profile`` and ``spatial_profile`` the variations.

The update/weight ratio, one rule for the whole course (lecture, "Track the ratio of weight
updates / weight magnitudes": "want ~1e-3", and of its example 0.0002 / 0.02 = 0.01: "0.01 is
probably too high"): ``RATIO_TARGET`` = 1e-3; a ratio at or above ``RATIO_TOO_HIGH`` = 1e-2 (the
lecture's example, 10x the target) is too high; the same factor below the target,
``RATIO_TOO_LOW`` = 1e-4, is too low (see ``ratio_verdict``). The lecture adds that the ratio
"will typically decrease over time": judge it while the network is still learning.

Rules of thumb that are *not* on the slides (CS231n notes; Glorot & Bengio 2010): tanh units
stuck at +-1 (saturated) or ReLU units that never fire (dead) do not learn.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lecture_lib.lecture import UPDATE_RATIO_EXAMPLE, UPDATE_RATIO_TARGET
from lecture_lib.train import Callback, History, TrainState

__all__ = [
    "RATIO_TARGET", "RATIO_TOO_HIGH", "RATIO_TOO_LOW",
    "smooth", "accuracy_gap", "activation_stats", "gradient_stats", "feature_profile", "spatial_profile",
    "update_ratio", "ratio_verdict", "pca_2d", "loss_grid", "diagnose_learning_rate",
    "ActivationStats", "GradientStats", "UpdateRatio", "WeightTrajectory",
    "plot_loss", "plot_accuracy", "plot_activation_stats", "plot_activation_histograms", "plot_feature_profile",
    "plot_spatial_profile", "plot_gradient_stats", "plot_gradient_histograms", "plot_update_ratio",
    "plot_trajectory",
]

# The course's one update/weight rule, from the lecture's two figures (see the module docstring).
RATIO_TARGET: float = UPDATE_RATIO_TARGET                      # "want ~1e-3"
RATIO_TOO_HIGH: float = UPDATE_RATIO_EXAMPLE["ratio"]          # "0.01 is probably too high"
RATIO_TOO_LOW: float = RATIO_TARGET / (RATIO_TOO_HIGH / RATIO_TARGET)  # as far below the target: 1e-4

# output range of bounded nonlinearities: a unit is "saturated" near either end
_BOUNDS = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0), nn.Hardtanh: (-1.0, 1.0), nn.Softsign: (-1.0, 1.0)}
_NONLINEARITIES = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softsign)
_GRAD_BINS = np.linspace(-12.0, 2.0, 57)  # log10 |g|, fixed so that histograms line up over time
_MARKERS = "os^vDP*X"  # one per line: colour is never the only thing that tells layers apart


def _check_every(every: int) -> int:
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"every must be an int >= 1, got {every!r}")
    return every


# --- pure functions --------------------------------------------------------------------------


def smooth(values: Sequence[float], beta: float = 0.9) -> np.ndarray:
    """Bias-corrected exponential moving average (as Adam corrects its moments).

    ``s_t = beta * s_{t-1} + (1 - beta) * v_t``, reported as ``s_t / (1 - beta**t)`` so that the
    first values are not pulled towards 0.

    Args:
        values (sequence of float, length T); beta in [0, 1) (0 = no smoothing).

    Returns:
        np.ndarray[T]
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {list(values.shape)}")
    out = np.empty_like(values)
    s = 0.0
    for t, v in enumerate(values, start=1):
        s = beta * s + (1 - beta) * v
        out[t - 1] = s / (1 - beta ** t)
    return out


def accuracy_gap(history: History) -> np.ndarray:
    """``train_acc - val_acc`` per epoch (np.ndarray[E]); a growing gap signals overfitting."""
    return np.asarray(history["train_acc"], dtype=float) - np.asarray(history["val_acc"], dtype=float)


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


def update_ratio(before: Tensor, after: Tensor) -> float:
    """``||after - before|| / ||before||``: the size of one update relative to the weights.

    For plain SGD this is ``lr * ||dW|| / ||W||``, the lecture's ``update_scale / param_scale``
    ("want ~1e-3"); judge it with ``ratio_verdict``.
    """
    if before.shape != after.shape:
        raise ValueError(f"before and after must have the same shape, got {list(before.shape)} and {list(after.shape)}")
    before, after = before.detach().double(), after.detach().double()
    scale = torch.linalg.vector_norm(before).item()
    change = torch.linalg.vector_norm(after - before).item()
    return change / scale if scale > 0 else float("inf") if change > 0 else float("nan")


def ratio_verdict(ratio: float) -> str:
    """The course's one update/weight rule: ``"too high"``, ``"too low"`` or ``"good"``.

    ``ratio >= RATIO_TOO_HIGH`` (1e-2, the lecture's "0.01 is probably too high") or not finite:
    too high; ``ratio < RATIO_TOO_LOW`` (1e-4, as far below the target 1e-3): too low; else good.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating, np.integer)):
        raise TypeError(f"ratio must be a real number, got {type(ratio).__name__}")
    ratio = float(ratio)
    if math.isnan(ratio) or ratio < 0:
        raise ValueError(f"ratio must be a number >= 0, got {ratio}")
    if ratio >= RATIO_TOO_HIGH:  # also inf
        return "too high"
    return "too low" if ratio < RATIO_TOO_LOW else "good"


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


def diagnose_learning_rate(step_loss: Sequence[float], median_update_ratio: float) -> str:
    """Read a run from its loss and its update/weight ratio: ``"too high"``, ``"too low"`` or ``"good"``.

    Too high: the loss is not finite or ends above where it started (the last tenth of the
    steps against the first tenth). Otherwise the verdict of ``ratio_verdict`` on the run's
    median update/weight ratio: the course's one rule (>= 1e-2 too high, < 1e-4 too low).
    """
    losses = np.asarray(step_loss, dtype=float)
    if losses.size == 0:
        raise ValueError("step_loss must hold at least one value, got 0")
    if not np.all(np.isfinite(losses)):
        return "too high"
    k = max(1, losses.size // 10)
    if losses[-k:].mean() > losses[:k].mean():
        return "too high"
    return ratio_verdict(median_update_ratio)


# --- callbacks ---------------------------------------------------------------------------------


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


def _tracked_parameters(model: nn.Module, include_bias: bool) -> dict[str, nn.Parameter]:
    # biases start at 0, so their ratio is meaningless early on; weights are what the rule is about
    return {name: p for name, p in model.named_parameters() if p.requires_grad and (include_bias or p.dim() > 1)}


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


class UpdateRatio(Callback):
    """``||W_after - W_before|| / ||W_before||`` per weight tensor, every ``every`` steps.

    Copies the weights in ``on_after_backward`` (before the optimizer step) and compares in
    ``on_step_end``; so it measures what the optimizer really did (momentum, Adam, clipping).
    After training: ``steps`` and ``ratios[name]`` (list[float]).
    """

    def __init__(self, every: int = 1, include_bias: bool = False):
        self.every, self.include_bias = _check_every(every), include_bias
        self.steps: list[int] = []
        self.ratios: dict[str, list[float]] = {}
        self._before: dict[str, Tensor] | None = None

    def on_after_backward(self, state: TrainState) -> None:
        self._before = None
        if state.step % self.every == 0:
            self._before = {n: p.detach().clone() for n, p in _tracked_parameters(state.model, self.include_bias).items()}

    def on_step_end(self, state: TrainState) -> None:
        if self._before is None:
            return
        self.steps.append(state.step - 1)  # fit counted the step already
        params = _tracked_parameters(state.model, self.include_bias)
        for name, before in self._before.items():
            self.ratios.setdefault(name, []).append(update_ratio(before, params[name]))
        self._before = None

    def median(self) -> float:
        """Median ratio over all layers and records (``nan`` before training)."""
        values = [r for rs in self.ratios.values() for r in rs if math.isfinite(r)]
        return float(np.median(values)) if values else float("nan")


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


# --- plots -------------------------------------------------------------------------------------


def _axis(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def plot_loss(step_loss: Sequence[float] | History, beta: float = 0.9, ax=None, log: bool = False,
              label: str | None = None):
    """Raw loss per step (faint) and its smoothed curve; ``log`` for a log y axis."""
    ax = _axis(ax)
    values = step_loss.step_loss if isinstance(step_loss, History) else list(step_loss)
    steps = np.arange(len(values))
    raw = ax.plot(steps, values, alpha=0.3, lw=0.8, label="raw (per step)")[0]
    ax.plot(steps, smooth(values, beta), color=raw.get_color(), lw=2,
            label=label or f"smoothed (beta={beta})")
    if log:
        ax.set_yscale("log")
    ax.set(title="Training loss per step", xlabel="optimizer step", ylabel="loss")
    ax.legend()
    return ax


def plot_accuracy(history: History, ax=None):
    """Train and validation accuracy per epoch, the gap between them shaded."""
    ax = _axis(ax)
    epochs = np.asarray(history["epoch"])
    train, val = np.asarray(history["train_acc"]), np.asarray(history["val_acc"])
    ax.plot(epochs, train, "o-", label="train")
    ax.plot(epochs, val, "s-", label="validation")
    ax.fill_between(epochs, val, train, alpha=0.15, color="gray", label="gap (overfitting signal)")
    ax.set(title="Accuracy: train vs validation", xlabel="epoch", ylabel="accuracy")
    ax.legend()
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


def plot_update_ratio(monitor: UpdateRatio, ax=None, legend: bool = True):
    """Update/weight ratio per layer on a log axis, with the course's one rule drawn in.

    Shaded: the good range, ``RATIO_TOO_LOW`` (1e-4) to ``RATIO_TOO_HIGH`` (1e-2, the lecture's
    "0.01 is probably too high"); dashed: the lecture's target ``RATIO_TARGET`` ("want ~1e-3").
    The legend goes to the right of the axes, where it covers neither band nor data;
    ``legend=False`` leaves it to the caller.
    """
    ax = _axis(ax)
    ax.axhspan(RATIO_TOO_LOW, RATIO_TOO_HIGH, color="green", alpha=0.12,
               label=f"good: {RATIO_TOO_LOW:.0e} to {RATIO_TOO_HIGH:.0e}")
    ax.axhline(RATIO_TARGET, color="green", ls="--", lw=1, label=f"lecture: want ~{RATIO_TARGET:.0e}")
    for k, (name, ratios) in enumerate(monitor.ratios.items()):
        steps = monitor.steps[:len(ratios)]
        ax.plot(steps, ratios, marker=_MARKERS[k % len(_MARKERS)], markevery=max(1, len(steps) // 8), ms=4, label=name)
    ax.set_yscale("log")
    ax.set(title="Update / weight ratio per layer", xlabel="optimizer step", ylabel="||ΔW|| / ||W||")
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return ax


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

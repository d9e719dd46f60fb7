"""The loss per step and the accuracy per epoch: the first two curves to look at.

``smooth`` (a bias-corrected moving average of the noisy per-step loss) and ``accuracy_gap``
(train minus validation accuracy: a growing gap signals overfitting) are pure; ``plot_loss`` and
``plot_accuracy`` draw them from a ``History``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lecture_lib.monitors._common import _axis
from lecture_lib.train import History

__all__ = ["smooth", "accuracy_gap", "plot_loss", "plot_accuracy"]


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

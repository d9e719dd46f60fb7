"""What a training run records (``History``), what a callback sees (``TrainState``), and the
``Callback`` base class with its hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["History", "TrainState", "Callback"]


@dataclass
class History:
    """What ``fit`` measured.

    Attributes:
        step_loss: training loss of every optimizer step (list[float], length = total steps).
        epochs: one dict per epoch with ``epoch`` (1-based), ``train_loss``, ``train_acc``,
            ``val_loss``, ``val_acc`` (``nan`` when there is no metric or no ``val_loader``),
            ``lr`` (of the first parameter group at the end of the epoch) and ``seconds``;
            callbacks may add keys in ``on_epoch_end``.
        seconds: wall-clock seconds spent in ``fit`` (summed over resumed runs).
        stop_reason: why training stopped early ("" when it ran all epochs).
    """

    step_loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    stop_reason: str = ""

    def __getitem__(self, key: str) -> list[float]:
        """``history["val_acc"]`` -> that column over epochs (``nan`` where missing)."""
        return [row.get(key, float("nan")) for row in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)


@dataclass
class TrainState:
    """Everything a callback may read (and ``stop``/``stop_reason``, which it may set).

    ``epoch`` is 0-based while running; ``step`` counts optimizer steps since the start of
    training (it survives resume); ``batch_index`` is the position in the current epoch.
    ``batch`` is the current batch as the loader gave it (moved to ``device``);
    ``inputs``/``targets`` are its two parts (set before ``on_batch_start`` for pair batches,
    else after the forward pass); ``outputs`` (whatever the model returned) and ``loss`` are set
    after the forward pass.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    history: History
    device: torch.device
    epochs: int
    epoch: int = 0
    step: int = 0
    batch_index: int = 0
    batch: Any = None
    inputs: Any = None
    targets: Any = None
    outputs: Any = None
    loss: Tensor | None = None
    stop: bool = False
    stop_reason: str = ""


class Callback:
    """Base class: override the hooks you need; each gets the ``TrainState``."""

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_batch_start(self, state: TrainState) -> None: ...
    def on_after_backward(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...

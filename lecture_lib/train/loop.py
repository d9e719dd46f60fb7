"""One small training loop, ``fit()``, extended through callbacks (not through copies of the loop).

    history = fit(model, train_loader, epochs=5, lr=1e-3, val_loader=val_loader,
                  callbacks=[LossHistory()], checkpoint_path="run.ckpt", resume=True)
    history["val_acc"]        # one value per epoch
    history.step_loss         # one value per optimizer step

What one step does, and where a ``Callback`` can look (``state`` is a ``TrainState``)::

    on_fit_start -> for each epoch: on_epoch_start
        for each batch: on_batch_start -> forward, loss, backward
                        -> on_after_backward   (gradients present, unscaled, not yet clipped/applied)
                        -> clip, optimizer.step(), scheduler.step() if per batch
                        -> on_step_end         (parameters updated; .grad still holds the gradient)
        validation -> history.epochs[-1] written -> scheduler.step() if per epoch
        -> on_epoch_end -> checkpoint
    -> on_fit_end

A callback stops training by setting ``state.stop = True`` (and ``state.stop_reason``): the
current batch finishes, the partial epoch is recorded (with validation), and ``fit`` returns.
The divergence guard of ``lecture_lib.tuning`` works this way.

Classification (logits ``[N, C]``, targets ``[N]``) and segmentation (per-pixel logits
``[N, C, H, W]``, targets ``[N, H, W]``) both work with the defaults: ``F.cross_entropy`` and
``accuracy`` handle the class dimension at position 1.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.config import get_device

__all__ = ["Callback", "History", "TrainState", "accuracy", "evaluate", "fit"]

_SCHEDULER_INTERVALS = ("epoch", "batch")


# --- metric ---------------------------------------------------------------------------------


def accuracy(outputs: Tensor, targets: Tensor, ignore_index: int | None = None) -> float:
    """Fraction of correct arg-max predictions.

    Args:
        outputs (Tensor[N, C] or Tensor[N, C, H, W]): logits or scores; classes on dim 1.
        targets (Tensor[N] or Tensor[N, H, W]): integer class labels.
        ignore_index: label whose elements are left out (e.g. 255 for VOC borders).

    Returns:
        float in [0, 1] (``nan`` when no element counts).
    """
    if outputs.dim() != targets.dim() + 1 or outputs.shape[0] != targets.shape[0] or \
            outputs.shape[2:] != targets.shape[1:]:
        raise ValueError("outputs must have shape [N, C, *S] for targets of shape [N, *S], got "
                         f"outputs {list(outputs.shape)} and targets {list(targets.shape)}")
    correct = outputs.argmax(dim=1) == targets
    if ignore_index is not None:
        keep = targets != ignore_index
        correct = correct[keep]
    if correct.numel() == 0:
        return float("nan")
    return correct.float().mean().item()


# --- records ----------------------------------------------------------------------------------


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


# --- helpers --------------------------------------------------------------------------------


def _check_fit_args(model, epochs, callbacks, scheduler_interval, max_grad_norm, lr) -> list[Callback]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if scheduler_interval not in _SCHEDULER_INTERVALS:
        raise ValueError(f"scheduler_interval must be one of {_SCHEDULER_INTERVALS}, got {scheduler_interval!r}")
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be lecture_lib.train.Callback instances, got {type(cb).__name__}")
    return callbacks


def _to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors inside (nested) tuples/lists/dicts to ``device`` (detection targets are dicts)."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _default_forward(model: nn.Module, batch: Any, loss_fn: Callable) -> tuple[Tensor, Any, Any, Any]:
    if not isinstance(batch, (list, tuple)) or len(batch) != 2:
        raise ValueError("each batch must be a pair (inputs, targets) unless forward_fn is given, got "
                         f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}")
    inputs, targets = batch
    outputs = model(inputs)
    return loss_fn(outputs, targets), inputs, targets, outputs


def _batch_size(targets: Any) -> int:
    if isinstance(targets, Tensor) and targets.dim() > 0:
        return int(targets.shape[0])
    if isinstance(targets, (list, tuple)):
        return len(targets)
    return 1


def _rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _step_scheduler(scheduler: Any, monitor: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitor)  # it needs the value it watches
    else:
        scheduler.step()


def _save_checkpoint(path: Path, state: TrainState, scaler) -> None:
    payload = {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "epoch": state.epoch + 1,  # completed epochs
        "step": state.step,
        "history": asdict(state.history),
        "rng": _rng_state(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash while saving never leaves half a checkpoint


# --- evaluation -------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, loss_fn: Callable | None = None,
             metric: Callable | None = accuracy, device: torch.device | str | None = None,
             amp: bool = False, forward_fn: Callable | None = None) -> dict[str, float]:
    """Mean loss and metric of ``model`` over ``loader`` in eval mode.

    Means are over samples: each batch counts with its size (its first target dimension).

    Returns:
        ``{"loss": float, "acc": float}`` (``acc`` is ``nan`` when ``metric`` is None).
    """
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss = total_metric = 0.0
    n = 0
    try:
        for batch in loader:
            batch = _to_device(batch, device)
            with torch.autocast(device_type=device.type, enabled=amp):
                if forward_fn is None:
                    loss, _, targets, outputs = _default_forward(model, batch, loss_fn)
                else:
                    loss, _, targets, outputs = forward_fn(model, batch)
            size = _batch_size(targets)
            total_loss += loss.item() * size
            if metric is not None:
                total_metric += metric(outputs.float(), targets) * size
            n += size
    finally:
        model.train(was_training)
    if n == 0:
        return {"loss": float("nan"), "acc": float("nan")}
    return {"loss": total_loss / n, "acc": total_metric / n if metric is not None else float("nan")}


# --- the loop ---------------------------------------------------------------------------------


def close_transient(bar) -> None:
    """Close a ``leave=False`` tqdm bar so that it leaves no trace.

    In a notebook, tqdm hides a finished transient bar with the CSS ``visibility: hidden``, which
    keeps its 32 px: a saved notebook, and the static book built from it, showed a blank box for
    every bar (3 000 px of white on a page that trained for 60 epochs). ``display: none`` takes
    no room. Console bars just close.
    """
    layout = getattr(getattr(bar, "container", None), "layout", None)  # tqdm.notebook's ipywidgets HBox
    if layout is not None:
        layout.display = "none"
    bar.close()


def _length(iterable) -> int | None:
    try:
        return len(iterable)
    except TypeError:  # a generator or an IterableDataset loader: the bar counts without a total
        return None


def fit(model: nn.Module, train_loader: Iterable, *, epochs: int,
        optimizer: torch.optim.Optimizer | None = None, lr: float = 1e-3,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        val_loader: Iterable | None = None, callbacks: Sequence[Callback] = (),
        scheduler: Any = None, scheduler_interval: str = "epoch",
        device: torch.device | str | None = None, amp: bool | None = None,
        checkpoint_path: str | os.PathLike | None = None, resume: bool = False,
        progress: bool = True, metric: Callable[[Tensor, Tensor], float] | None = accuracy,
        max_grad_norm: float | None = None,
        forward_fn: Callable[[nn.Module, Any], tuple[Tensor, Any, Any, Any]] | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs and return its ``History``.

    Args:
        model: moved to ``device`` (in place).
        train_loader: iterable of ``(inputs, targets)`` batches, e.g. a ``DataLoader``;
            tensors nested in tuples/lists/dicts are moved to ``device``.
        epochs: total number of epochs (with ``resume``, counting those already done).
        optimizer: created after the model is moved; default ``Adam(model.parameters(), lr)``.
        lr: learning rate of the default optimizer (ignored when ``optimizer`` is given).
        loss_fn: ``loss_fn(outputs, targets) -> scalar``; default ``F.cross_entropy``
            (``[N, C]`` with ``[N]``, or ``[N, C, H, W]`` with ``[N, H, W]``).
        val_loader: evaluated after every epoch (``val_loss``, ``val_acc``).
        callbacks: ``Callback`` instances, called in order.
        scheduler: a ``torch.optim.lr_scheduler`` object, stepped once per epoch (after
            validation; ``ReduceLROnPlateau`` gets ``val_loss``, else ``train_loss``) or, with
            ``scheduler_interval="batch"``, after every optimizer step.
        device: default ``lecture_lib.config.get_device()``.
        amp: mixed precision (``torch.autocast`` + ``GradScaler``); default True on cuda only.
        checkpoint_path: model, optimizer, scheduler, scaler, epoch, history and RNG states are
            saved there after every completed epoch.
        resume: continue from ``checkpoint_path`` when it exists (from scratch otherwise); with
            the same seed this gives the same numbers as one uninterrupted run.
        progress: a tqdm bar over the epochs that stays (with the last epoch's losses and
            accuracies) and, inside it, one over each epoch's batches that disappears.
        metric: ``metric(outputs, targets) -> float``, averaged over samples; None to skip.
        max_grad_norm: clip the global gradient norm to this value before each step.
        forward_fn: ``forward_fn(model, batch) -> (loss, inputs, targets, outputs)`` for models
            whose batches are not ``(inputs, targets)`` pairs (e.g. detectors returning losses);
            ``loss_fn`` is then unused.

    Returns:
        History: per-step losses, per-epoch metrics and the seconds spent.
    """
    callbacks = _check_fit_args(model, epochs, callbacks, scheduler_interval, max_grad_norm, lr)
    device = get_device() if device is None else torch.device(device)
    amp = (device.type == "cuda") if amp is None else bool(amp)
    if amp and device.type != "cuda":
        raise ValueError(f"amp=True needs a cuda device, got {device.type!r}")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path, got None")
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    if forward_fn is None:
        def forward_fn(m, b):
            return _default_forward(m, b, loss_fn)

    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    state = TrainState(model=model, optimizer=optimizer, scheduler=scheduler, history=History(),
                       device=device, epochs=epochs)

    start_epoch = 0
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    if resume and path.exists():
        # on the CPU: RNG states must stay CPU tensors; load_state_dict copies the rest to the device
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt["scaler"] and amp:  # empty when saved without amp (e.g. on a CPU)
            scaler.load_state_dict(ckpt["scaler"])
        state.history = History(**ckpt["history"])
        state.step = ckpt["step"]
        start_epoch = ckpt["epoch"]
        _set_rng_state(ckpt["rng"])  # same shuffles and dropout masks as an uninterrupted run

    overall = inner = None
    if progress:
        from tqdm.auto import tqdm

        # the outer bar stays, so a notebook (and the static book built from it) keeps a record
        # of the run; the per-epoch bars are transient
        overall = tqdm(total=epochs, initial=start_epoch, desc="fit", unit="epoch")

    started = time.perf_counter()
    seconds_before = state.history.seconds
    for cb in callbacks:
        cb.on_fit_start(state)
    for epoch in range(start_epoch, epochs):
        state.epoch = epoch
        epoch_started = time.perf_counter()
        model.train()
        for cb in callbacks:
            cb.on_epoch_start(state)
        total_loss = total_metric = 0.0
        n = 0
        if progress:  # one transient bar, reset every epoch (see close_transient)
            if inner is None:
                inner = tqdm(total=_length(train_loader), leave=False)
            else:
                inner.reset(total=_length(train_loader))
            inner.set_description(f"epoch {epoch + 1}/{epochs}")
        for batch_index, batch in enumerate(train_loader):
            state.batch_index = batch_index
            batch = _to_device(batch, device)
            state.batch, state.outputs, state.loss = batch, None, None
            state.inputs, state.targets = batch if isinstance(batch, (list, tuple)) and len(batch) == 2 else (None, None)
            for cb in callbacks:
                cb.on_batch_start(state)
            with torch.autocast(device_type=device.type, enabled=amp):
                loss, inputs, targets, outputs = forward_fn(model, batch)
            state.inputs, state.targets, state.outputs, state.loss = inputs, targets, outputs, loss
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # callbacks and clipping see true gradients (no-op without amp)
            for cb in callbacks:
                cb.on_after_backward(state)
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None and scheduler_interval == "batch":
                _step_scheduler(scheduler, loss.item())
            state.step += 1
            loss_value = loss.item()
            state.history.step_loss.append(loss_value)
            size = _batch_size(targets)
            total_loss += loss_value * size
            if metric is not None:
                with torch.no_grad():
                    total_metric += metric(outputs.detach().float(), targets) * size
            n += size
            if inner is not None:
                inner.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
                inner.update(1)
            for cb in callbacks:
                cb.on_step_end(state)
            if state.stop:
                break
        stopped_mid_epoch = state.stop

        row = {"epoch": epoch + 1,
               "train_loss": total_loss / n if n else float("nan"),
               "train_acc": total_metric / n if n and metric is not None else float("nan"),
               "val_loss": float("nan"), "val_acc": float("nan")}
        if val_loader is not None:
            val = evaluate(model, val_loader, loss_fn=loss_fn, metric=metric, device=device, amp=amp,
                           forward_fn=forward_fn)
            row["val_loss"], row["val_acc"] = val["loss"], val["acc"]
        if scheduler is not None and scheduler_interval == "epoch":
            _step_scheduler(scheduler, row["val_loss"] if val_loader is not None else row["train_loss"])
        row["lr"] = optimizer.param_groups[0]["lr"]
        row["seconds"] = time.perf_counter() - epoch_started
        state.history.epochs.append(row)
        state.history.seconds = seconds_before + time.perf_counter() - started
        if overall is not None:
            overall.set_postfix({k: f"{row[k]:.4g}" for k in ("train_loss", "train_acc", "val_loss", "val_acc")
                                 if math.isfinite(row[k])}, refresh=False)
            overall.update(1)
        for cb in callbacks:
            cb.on_epoch_end(state)
        # a partial epoch is not checkpointed: resume restarts after the last complete one
        if path is not None and not stopped_mid_epoch:
            _save_checkpoint(path, state, scaler)
        if state.stop:
            state.history.stop_reason = state.stop_reason or "stopped by a callback"
            break

    state.history.seconds = seconds_before + time.perf_counter() - started
    if inner is not None:
        close_transient(inner)
    if overall is not None:
        overall.close()
    for cb in callbacks:
        cb.on_fit_end(state)
    return state.history

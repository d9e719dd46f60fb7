"""One small training loop, ``fit()``, extended through callbacks (not through copies of the loop).

    history = fit(model, train_loader, epochs=5, lr=1e-3, val_loader=val_loader,
                  callbacks=[LossHistory()], checkpoint_path="run.ckpt", resume=True)
    history["val_acc"]        # one value per epoch
    history.step_loss         # one value per optimizer step

``fit`` reads like the loop on a slide: load a checkpoint, then for each epoch train one epoch
(``train_one_epoch``), evaluate (``evaluate``), record, save a checkpoint. What one step does,
and where a ``Callback`` can look (``state`` is a ``TrainState``)::

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
The divergence guard (``lecture_lib.train.callbacks.DivergenceGuard``) works this way; the
progress bars (``progress.py``) are a callback too.

Classification (logits ``[N, C]``, targets ``[N]``) and segmentation (per-pixel logits
``[N, C, H, W]``, targets ``[N, H, W]``) both work with the defaults: ``F.cross_entropy`` and
``accuracy`` handle the class dimension at position 1.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.config import get_device
from lecture_lib.train.checkpoint import load_checkpoint, save_checkpoint
from lecture_lib.train.evaluate import _batch_size, _default_forward, _to_device, accuracy, evaluate
from lecture_lib.train.progress import ProgressBars, close_transient
from lecture_lib.train.state import Callback, History, TrainState

# fit and its parts, plus the names lecture_lib.train has always imported from here
__all__ = ["fit", "train_one_epoch", "StepRecipe", "Callback", "History", "TrainState", "accuracy", "evaluate",
           "close_transient"]

_SCHEDULER_INTERVALS = ("epoch", "batch")


@dataclass
class StepRecipe:
    """How ``train_one_epoch`` turns a batch into an optimizer step (fixed for a whole ``fit``).

    ``forward_fn(model, batch) -> (loss, inputs, targets, outputs)``; ``scaler``: the AMP
    gradient scaler (disabled without ``amp``); ``max_grad_norm``: clip before each step, or
    None; ``metric(outputs, targets) -> float`` or None; ``scheduler_per_batch``: step the
    scheduler after every optimizer step instead of after every epoch.
    """

    forward_fn: Callable[[nn.Module, Any], tuple[Tensor, Any, Any, Any]]
    scaler: torch.amp.GradScaler
    amp: bool = False
    max_grad_norm: float | None = None
    metric: Callable[[Tensor, Tensor], float] | None = accuracy
    scheduler_per_batch: bool = False


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


def _device_and_amp(device, amp) -> tuple[torch.device, bool]:
    device = get_device() if device is None else torch.device(device)
    amp = (device.type == "cuda") if amp is None else bool(amp)
    if amp and device.type != "cuda":
        raise ValueError(f"amp=True needs a cuda device, got {device.type!r}")
    return device, amp


def _call(callbacks: Sequence[Callback], hook: str, state: TrainState) -> None:
    for cb in callbacks:
        getattr(cb, hook)(state)


def _step_scheduler(scheduler: Any, monitor: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitor)  # it needs the value it watches
    else:
        scheduler.step()


def _train_step(state: TrainState, batch: Any, recipe: StepRecipe, callbacks: Sequence[Callback]) -> None:
    """Forward, backward, (clip), optimizer step for one batch; sets ``state.loss`` etc."""
    state.batch, state.outputs, state.loss = batch, None, None
    state.inputs, state.targets = batch if isinstance(batch, (list, tuple)) and len(batch) == 2 else (None, None)
    _call(callbacks, "on_batch_start", state)
    with torch.autocast(device_type=state.device.type, enabled=recipe.amp):
        loss, inputs, targets, outputs = recipe.forward_fn(state.model, batch)
    state.inputs, state.targets, state.outputs, state.loss = inputs, targets, outputs, loss
    state.optimizer.zero_grad(set_to_none=True)
    recipe.scaler.scale(loss).backward()
    recipe.scaler.unscale_(state.optimizer)  # callbacks and clipping see true gradients (no-op without amp)
    _call(callbacks, "on_after_backward", state)
    if recipe.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), recipe.max_grad_norm)
    recipe.scaler.step(state.optimizer)
    recipe.scaler.update()
    if state.scheduler is not None and recipe.scheduler_per_batch:
        _step_scheduler(state.scheduler, loss.item())
    state.step += 1


def train_one_epoch(state: TrainState, train_loader: Iterable, recipe: StepRecipe,
                    callbacks: Sequence[Callback] = ()) -> dict[str, float]:
    """One pass over ``train_loader`` (or until a callback sets ``state.stop``).

    Returns:
        ``{"train_loss": float, "train_acc": float}``: means over the samples seen (``nan``
        without a metric or without batches); every step's loss is appended to
        ``state.history.step_loss``.
    """
    state.model.train()
    _call(callbacks, "on_epoch_start", state)
    total_loss = total_metric = 0.0
    n = 0
    for batch_index, batch in enumerate(train_loader):
        state.batch_index = batch_index
        _train_step(state, _to_device(batch, state.device), recipe, callbacks)
        loss_value = state.loss.item()
        state.history.step_loss.append(loss_value)
        size = _batch_size(state.targets)
        total_loss += loss_value * size
        if recipe.metric is not None:
            with torch.no_grad():
                total_metric += recipe.metric(state.outputs.detach().float(), state.targets) * size
        n += size
        _call(callbacks, "on_step_end", state)
        if state.stop:
            break
    return {"train_loss": total_loss / n if n else float("nan"),
            "train_acc": total_metric / n if n and recipe.metric is not None else float("nan")}


def _end_epoch(state: TrainState, row: dict, val_loader, recipe: StepRecipe, loss_fn, started: float) -> None:
    """Validate, step a per-epoch scheduler, and append the epoch's ``row`` to the history."""
    row["val_loss"] = row["val_acc"] = float("nan")
    if val_loader is not None:
        val = evaluate(state.model, val_loader, loss_fn=loss_fn, metric=recipe.metric, device=state.device,
                       amp=recipe.amp, forward_fn=recipe.forward_fn)
        row["val_loss"], row["val_acc"] = val["loss"], val["acc"]
    if state.scheduler is not None and not recipe.scheduler_per_batch:
        _step_scheduler(state.scheduler, row["val_loss"] if val_loader is not None else row["train_loss"])
    row["lr"] = state.optimizer.param_groups[0]["lr"]
    row["seconds"] = time.perf_counter() - started
    state.history.epochs.append(row)


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
    device, amp = _device_and_amp(device, amp)
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path, got None")
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    if forward_fn is None:
        forward_fn = functools.partial(_default_forward, loss_fn=loss_fn)
    recipe = StepRecipe(forward_fn, torch.amp.GradScaler(device.type, enabled=amp), amp, max_grad_norm, metric,
                        scheduler_per_batch=scheduler_interval == "batch")
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    state = TrainState(model=model, optimizer=optimizer, scheduler=scheduler, history=History(), device=device,
                       epochs=epochs)
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    start_epoch = load_checkpoint(path, state, recipe.scaler) if resume and path.exists() else 0
    if progress:
        callbacks.insert(0, ProgressBars(epochs, start_epoch, train_loader))

    started, seconds_before = time.perf_counter(), state.history.seconds
    _call(callbacks, "on_fit_start", state)
    for epoch in range(start_epoch, epochs):
        state.epoch, epoch_started = epoch, time.perf_counter()
        row = {"epoch": epoch + 1, **train_one_epoch(state, train_loader, recipe, callbacks)}
        stopped_mid_epoch = state.stop
        _end_epoch(state, row, val_loader, recipe, loss_fn, epoch_started)
        state.history.seconds = seconds_before + time.perf_counter() - started
        _call(callbacks, "on_epoch_end", state)
        if path is not None and not stopped_mid_epoch:  # a partial epoch is not checkpointed
            save_checkpoint(path, state, recipe.scaler)
        if state.stop:
            state.history.stop_reason = state.stop_reason or "stopped by a callback"
            break
    state.history.seconds = seconds_before + time.perf_counter() - started
    _call(callbacks, "on_fit_end", state)
    return state.history

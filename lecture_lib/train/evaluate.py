"""Evaluation: the accuracy metric, and the mean loss and metric of a model over a loader."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["accuracy", "evaluate"]


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


# --- batches ------------------------------------------------------------------------------------


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
    """``(loss, inputs, targets, outputs)`` of an ``(inputs, targets)`` batch."""
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


# --- evaluation ---------------------------------------------------------------------------------


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

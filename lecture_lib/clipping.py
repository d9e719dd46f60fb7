"""Gradient clipping by value and by norm (same results as ``torch.nn.utils``).

Exploding gradients make one SGD step jump far out of the region where the loss was
approximated well (Pascanu et al. 2013). Two cures from the lecture:

* **by value**: clamp every gradient element to ``[-clip_value, clip_value]``. Cheap, but it
  changes the gradient's *direction* whenever some elements are clipped and others are not.
* **by norm**: if the norm ``||g||`` of all gradients together (one long vector) exceeds
  ``max_norm``, scale them all by ``max_norm / ||g||``. The direction is kept; only the step
  length is capped.

Both work in place on ``p.grad`` and are called between ``loss.backward()`` and
``optimizer.step()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real

import torch
from torch import Tensor

__all__ = ["clip_grad_value_", "clip_grad_norm_", "grad_total_norm"]


def _check_params(parameters, limit, limit_name: str) -> tuple[list[Tensor], float]:
    """Return (the gradients that exist, limit as float); raise on wrong types or a negative limit."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    elif isinstance(parameters, Iterable):
        parameters = list(parameters)  # a generator must only be walked once
    else:
        raise TypeError(f"parameters must be a Tensor or an iterable of Tensors, got {type(parameters).__name__}")
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters must hold Tensors, got {type(p).__name__} at position {i}")
    if isinstance(limit, bool) or not isinstance(limit, (Real, Tensor)):
        raise TypeError(f"{limit_name} must be a real number, got {type(limit).__name__}")
    limit = float(limit)
    if not limit >= 0:  # also rejects NaN
        raise ValueError(f"{limit_name} must be >= 0, got {limit}")
    return [p.grad for p in parameters if p.grad is not None], limit


def _norm_type(norm_type) -> float:
    try:
        norm_type = float(norm_type)  # accepts "inf" like torch
    except (TypeError, ValueError):
        raise TypeError(f"norm_type must be a number or 'inf', got {norm_type!r}") from None
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 (1, 2, 3, ... or inf), got {norm_type}")
    return norm_type


@torch.no_grad()
def grad_total_norm(grads: Iterable[Tensor], norm_type: float = 2.0) -> Tensor:
    """Norm of all ``grads`` together, as if they were concatenated into one vector.

    The p-norm of the per-tensor p-norms equals the p-norm of the concatenation (for p = inf:
    the largest of the per-tensor maxima), without building the long vector.

    Args:
        grads (Iterable[Tensor]): tensors of any shapes.
        norm_type (float): p of the p-norm; ``inf`` for the largest absolute value.

    Returns:
        Tensor[]: a scalar on the device of the first tensor; ``tensor(0.)`` for no tensors.
    """
    grads = list(grads)
    norm_type = _norm_type(norm_type)
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    norms = [torch.linalg.vector_norm(g, norm_type) for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), norm_type)


@torch.no_grad()
def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place.

    Args:
        parameters (Tensor or Iterable[Tensor]): tensors whose ``.grad`` is clipped; those
            without a gradient are skipped.
        clip_value (float): >= 0.

    Same as ``torch.nn.utils.clip_grad_value_``, except that a negative ``clip_value`` raises
    ``ValueError`` instead of silently setting every gradient to ``clip_value``.
    """
    grads, clip_value = _check_params(parameters, clip_value, "clip_value")
    for g in grads:
        g.clamp_(min=-clip_value, max=clip_value)


@torch.no_grad()
def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their total norm is at most ``max_norm``, in place.

    Args:
        parameters (Tensor or Iterable[Tensor]): tensors whose ``.grad`` is clipped; those
            without a gradient are skipped.
        max_norm (float): >= 0.
        norm_type (float): p of the p-norm (1, 2, 3, ..., ``inf``).
        error_if_nonfinite (bool): raise ``RuntimeError`` (as torch does) when the total norm is
            NaN or infinite instead of scaling by it.

    Returns:
        Tensor[]: the total norm of the gradients *before* clipping (handy for monitoring).

    Same results as ``torch.nn.utils.clip_grad_norm_``; a negative ``max_norm`` raises
    ``ValueError`` here.
    """
    grads, max_norm = _check_params(parameters, max_norm, "max_norm")
    total_norm = grad_total_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(float(total_norm)):
        raise RuntimeError(
            f"The total norm of order {_norm_type(norm_type)} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the non-finite "
            "norm anyway, set `error_if_nonfinite=False`"
        )
    # 1e-6 guards against dividing by a zero norm; the factor is capped at 1 so small gradients
    # are never scaled *up*. Multiplying by 1 when no clipping is needed avoids a branch (and a
    # GPU -> CPU sync), exactly as torch does.
    clip_coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(clip_coef.to(g.device))
    return total_norm

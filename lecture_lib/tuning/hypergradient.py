"""Gradient-based hyperparameter tuning: differentiate the validation loss of an unrolled SGD run
with respect to log10 lr and log10 weight decay (Maclaurin et al. 2015, "Gradient-based
Hyperparameter Optimization through Reversible Learning", the lecture's "Optimal
Hyper-parameters" slide).

    res = hypergradient(model, train_batches, val_batch, log10_lr=-2.0, log10_wd=-3.0)
    res.grad            # Tensor[2]: d val_loss / d(log10 lr, log10 wd)
    path = tune_by_hypergradient(model, train_batches, val_batch, -2.0, -3.0, hyper_steps=20)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.tuning.spaces import _check_count

__all__ = ["HypergradientResult", "hypergradient", "unrolled_val_loss", "tune_by_hypergradient"]


@dataclass
class HypergradientResult:
    """``val_loss`` after the unrolled run; ``grad`` (Tensor[2]) = d val_loss / d(log10 lr,
    log10 wd); ``stored_bytes``: peak bytes kept for the backward pass (measured with
    ``torch.autograd.graph.saved_tensors_hooks`` plus the stored weight snapshots)."""

    val_loss: float
    grad: Tensor
    stored_bytes: int
    seconds: float


class _SavedBytes:
    """Counts distinct tensor storages autograd saves for backward while active."""

    def __init__(self):
        self.seen: set = set()
        self.bytes = 0

    def pack(self, t: Tensor):
        key = (t.untyped_storage().data_ptr(), t.dtype)
        if key not in self.seen:
            self.seen.add(key)
            self.bytes += t.untyped_storage().nbytes()
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def _check_unroll(model: nn.Module, train_batches: Sequence, val_batch) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if len(train_batches) == 0:
        raise ValueError("train_batches must hold at least one (inputs, targets) batch, got 0")
    if not (isinstance(val_batch, (list, tuple)) and len(val_batch) == 2):
        raise ValueError(f"val_batch must be a pair (inputs, targets), got {type(val_batch).__name__}")


def _sgd_step(model, params: dict, buffers: dict, batch, lr: Tensor, wd: Tensor, loss_fn, create_graph: bool):
    x, y = batch
    loss = loss_fn(torch.func.functional_call(model, {**params, **buffers}, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    # SGD with L2 weight decay: w <- w - lr * (dL/dw + wd * w)
    return {k: p - lr * (g + wd * p) for (k, p), g in zip(params.items(), grads)}


def _val_loss(model, params, buffers, val_batch, loss_fn) -> Tensor:
    x, y = val_batch
    return loss_fn(torch.func.functional_call(model, {**params, **buffers}, (x,)), y)


def _detached(params: dict) -> dict:
    return {n: v.detach().requires_grad_() for n, v in params.items()}


def unrolled_val_loss(model: nn.Module, train_batches: Sequence, val_batch, log10_lr: float, log10_wd: float,
                      loss_fn: Callable = F.cross_entropy) -> float:
    """Validation loss after ``len(train_batches)`` SGD steps from the model's current weights
    (the model itself is left unchanged). Deterministic models only (no dropout)."""
    _check_unroll(model, train_batches, val_batch)
    dtype = next(model.parameters()).dtype
    lr, wd = torch.tensor(10.0 ** log10_lr, dtype=dtype), torch.tensor(10.0 ** log10_wd, dtype=dtype)
    params = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    for batch in train_batches:
        params = _detached(_sgd_step(model, params, buffers, batch, lr, wd, loss_fn, create_graph=False))
    with torch.no_grad():
        return _val_loss(model, params, buffers, val_batch, loss_fn).item()


def _hyper(h: Tensor) -> tuple[Tensor, Tensor]:
    return 10.0 ** h[0], 10.0 ** h[1]


def _full_graph(model, w0, buffers, train_batches, val_batch, h, loss_fn) -> tuple[float, Tensor, int]:
    """Autograd keeps the graph of all T steps: (val loss, grad, bytes saved for backward)."""
    with _SavedBytes() as saved:
        lr, wd = _hyper(h)
        params = w0
        for batch in train_batches:
            params = _sgd_step(model, params, buffers, batch, lr, wd, loss_fn, create_graph=True)
        val = _val_loss(model, params, buffers, val_batch, loss_fn)
    (grad,) = torch.autograd.grad(val, h)
    return val.item(), grad, saved.bytes


def _checkpointed(model, w0, buffers, train_batches, val_batch, h, loss_fn, k: int) -> tuple[float, Tensor, int]:
    """Keep every k-th weight vector on the way forward; on the way back recompute each segment
    from its snapshot and carry the adjoint dL_val/dw_t backwards through it, step by step."""
    T = len(train_batches)
    lr0, wd0 = (v.detach() for v in _hyper(h))

    def step_no_graph(params, t):
        return _detached(_sgd_step(model, params, buffers, train_batches[t], lr0, wd0, loss_fn, create_graph=False))

    snapshots, params = {}, w0
    for t in range(T):
        if t % k == 0:
            snapshots[t] = params
        params = step_no_graph(params, t)
    wT = _detached(params)
    val = _val_loss(model, wT, buffers, val_batch, loss_fn)
    adjoint = torch.autograd.grad(val, list(wT.values()))
    grad, peak_step_bytes = torch.zeros_like(h), 0
    for start in reversed(range(0, T, k)):
        segment = [snapshots[start]]  # recompute this segment's weights from its snapshot
        for t in range(start, min(start + k, T) - 1):
            segment.append(step_no_graph(segment[-1], t))
        for t in reversed(range(start, min(start + k, T))):
            w_t = _detached(segment[t - start])
            with _SavedBytes() as saved:
                lr, wd = _hyper(h)
                w_next = _sgd_step(model, w_t, buffers, train_batches[t], lr, wd, loss_fn, create_graph=True)
            peak_step_bytes = max(peak_step_bytes, saved.bytes)
            grads = torch.autograd.grad(list(w_next.values()), [*w_t.values(), h], grad_outputs=adjoint)
            adjoint, grad = grads[:-1], grad + grads[-1]
    param_bytes = sum(v.numel() * v.element_size() for v in w0.values())
    return val.item(), grad, (len(snapshots) + k) * param_bytes + peak_step_bytes


def hypergradient(model: nn.Module, train_batches: Sequence, val_batch, log10_lr: float, log10_wd: float,
                  loss_fn: Callable = F.cross_entropy, checkpoint_every: int | None = None) -> HypergradientResult:
    """Gradient of the validation loss after an unrolled SGD run w.r.t. log10 lr and log10 wd.

    The run: ``T = len(train_batches)`` steps ``w <- w - lr (dL_train/dw + wd w)`` from the
    model's current weights. Reverse-mode differentiation through it needs every ``w_t``:

    - ``checkpoint_every=None``: autograd keeps the whole graph of all T steps (simplest,
      memory grows with T times the activations);
    - ``checkpoint_every=k``: keep only every k-th weight vector, recompute the others segment
      by segment during the backward pass (memory ~ (T/k + k) weight vectors; k = 1 stores all
      weights but no activations). Maclaurin et al. 2015 avoid even that by reversing SGD with
      momentum exactly, storing only the bits that finite precision would lose.

    Returns:
        HypergradientResult (grad Tensor[2]: d/d log10 lr, d/d log10 wd).
    """
    _check_unroll(model, train_batches, val_batch)
    if checkpoint_every is not None:
        checkpoint_every = _check_count("checkpoint_every", checkpoint_every)
    started = time.perf_counter()
    first = next(model.parameters())
    h = torch.tensor([log10_lr, log10_wd], dtype=first.dtype, device=first.device, requires_grad=True)
    buffers = dict(model.named_buffers())
    w0 = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    if checkpoint_every is None:
        val, grad, stored = _full_graph(model, w0, buffers, train_batches, val_batch, h, loss_fn)
    else:
        val, grad, stored = _checkpointed(model, w0, buffers, train_batches, val_batch, h, loss_fn, checkpoint_every)
    return HypergradientResult(val, grad.detach(), stored, time.perf_counter() - started)


def tune_by_hypergradient(model: nn.Module, train_batches: Sequence, val_batch, log10_lr: float,
                          log10_wd: float, hyper_steps: int = 20, hyper_lr: float = 0.5,
                          max_step: float = 0.5, loss_fn: Callable = F.cross_entropy,
                          checkpoint_every: int | None = None) -> list[dict]:
    """Gradient descent on (log10 lr, log10 wd), each step re-running the unrolled training
    from the same initial weights. Steps are clipped to ``max_step`` decades per coordinate
    (hypergradients of chaotic unrolled runs can be huge).

    Returns:
        list of ``hyper_steps + 1`` dicts ``{"step", "log10_lr", "log10_wd", "val_loss", "grad"}``;
        the last one is the final point (its grad is evaluated too).
    """
    hyper_steps = _check_count("hyper_steps", hyper_steps, minimum=0)
    h = np.array([log10_lr, log10_wd], dtype=float)
    path = []
    for step in range(hyper_steps + 1):
        res = hypergradient(model, train_batches, val_batch, h[0], h[1], loss_fn, checkpoint_every)
        g = res.grad.cpu().double().numpy()
        path.append({"step": step, "log10_lr": float(h[0]), "log10_wd": float(h[1]),
                     "val_loss": res.val_loss, "grad": g})
        if not np.all(np.isfinite(g)):
            break
        h = h - np.clip(hyper_lr * g, -max_step, max_step)
    return path

"""Run the course's detection kernels (``nms``, ``roi_pool``, ``roi_align``) on one CPU thread.

torchvision's C++ kernels for these operations use one thread. Ours are dozens of tensor
operations in a row; with several threads, each large one is split and the threads meet again
at its end. On a machine whose cores are all busy (a shared course server) every meeting waits
for a thread to be scheduled: at a load average of 20 on 2 cores, NMS on 2 000 boxes took seconds
instead of milliseconds, and the backward pass of ``roi_pool`` five times torchvision's. One
thread is within the course's speed targets (``benchmarks/bench_ops.py``), so the kernels, and
the backward passes of the differentiable ones, run on one; the caller's setting is restored.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor

__all__ = ["one_cpu_thread", "one_cpu_thread_with_backward"]


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


class _OneThreadBackward(torch.autograd.Function):
    """``kernel(input)`` whose backward pass, too, runs on one thread: the kernel's own graph is
    built on a detached copy of ``input`` and differentiated inside ``backward``."""

    @staticmethod
    def forward(ctx, input, kernel):
        with _threads(1), torch.enable_grad():
            ctx.leaf = input.detach().requires_grad_()
            ctx.output = kernel(ctx.leaf)
        return ctx.output.detach()

    @staticmethod
    def backward(ctx, grad_output):
        if not ctx.output.requires_grad:  # e.g. no boxes: the output does not depend on input
            return torch.zeros_like(ctx.leaf), None
        with _threads(1):
            (grad,) = torch.autograd.grad(ctx.output, ctx.leaf, grad_output)
        return grad, None


def one_cpu_thread(kernel):
    """Decorator: ``kernel(...)`` runs with one intra-op CPU thread (for NMS: no gradient)."""

    @functools.wraps(kernel)
    def wrapper(*args, **kwargs):
        with _threads(1):
            return kernel(*args, **kwargs)

    return wrapper


def one_cpu_thread_with_backward(kernel):
    """Decorator: ``kernel(input, ...)`` and its gradient with respect to ``input`` run with one
    intra-op CPU thread (for RoI pooling and RoI align)."""

    @functools.wraps(kernel)
    def wrapper(input, *args, **kwargs):
        if isinstance(input, Tensor) and input.requires_grad and torch.is_grad_enabled():
            return _OneThreadBackward.apply(input, lambda leaf: kernel(leaf, *args, **kwargs))
        with _threads(1):
            return kernel(input, *args, **kwargs)

    return wrapper

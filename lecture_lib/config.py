"""Run-time configuration shared by notebooks, tests and benchmarks.

``QUICK`` is true when the environment variable ``LECTURE_QUICK`` is ``1`` (or ``true``/``yes``):
notebooks and benchmarks then shrink data sets and epochs so that every notebook runs in well
under two minutes on two CPU cores. ``make test`` and CI set it; ``make book`` does not.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["QUICK", "is_quick", "get_device", "seed_everything", "pick"]


def is_quick() -> bool:
    """Read ``LECTURE_QUICK`` now (``QUICK`` is the value read at import time)."""
    return os.environ.get("LECTURE_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}


QUICK: bool = is_quick()


def pick(full, quick):
    """Return ``quick`` in quick mode, else ``full``: ``epochs = pick(30, 2)``."""
    return quick if is_quick() else full


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: cuda > mps > cpu.

    Args:
        prefer: force a device type ("cuda", "mps" or "cpu"); raises ``ValueError`` when the
            requested type is unknown or not available on this machine.
    """
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if prefer is not None:
        if prefer not in available:
            raise ValueError(f"prefer must be one of {sorted(available)}, got {prefer!r}")
        if not available[prefer]:
            raise ValueError(f"device {prefer!r} was requested but is not available here")
        return torch.device(prefer)
    for name in ("cuda", "mps", "cpu"):
        if available[name]:
            return torch.device(name)
    raise AssertionError("unreachable: cpu is always available")


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a fresh NumPy ``Generator``.

    Same seed, same device, same library versions: same numbers. (cuDNN may still pick
    non-deterministic kernels on a GPU; that only changes the last digits.)
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)

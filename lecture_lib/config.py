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

__all__ = ["QUICK", "is_quick", "get_device", "seed_everything", "seeded_loader_kwargs", "pick"]


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


def seed_everything(seed: int = 0, *, deterministic: bool = True, threads: int | None = None) -> np.random.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA) and return a fresh NumPy ``Generator``.

    Every page calls this once at the top, so that two builds of the book on the same machine
    print the same numbers.

    Args:
        seed: the seed (>= 0).
        deterministic: also ask torch for deterministic algorithms where it has them
            (``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN's
            deterministic mode, no cuDNN benchmark), as PyTorch's reproducibility notes advise.
        threads: fix torch's intra-op thread count (the order of a parallel sum depends on
            it). ``None``: the environment variable ``LECTURE_THREADS`` if set, else torch's
            current count, which is then kept fixed.

    Same seed, same machine, same library versions: same numbers. Training for a *time*
    budget is the exception: how many steps fit depends on the machine's load.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if threads is None:
        threads = int(os.environ.get("LECTURE_THREADS", "0") or 0) or torch.get_num_threads()
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        # deterministic mode also fills every new tensor with NaN (to expose reads of uninitialized
        # memory): 15-17 % of a small CNN's training step on a CPU, and no result here reads such memory
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)


def _seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoader workers: seed NumPy and ``random`` from torch's
    per-worker seed (which the loader's generator decides), as PyTorch's notes recommend."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def seeded_loader_kwargs(seed: int = 0) -> dict:
    """Keyword arguments that make a ``DataLoader``'s shuffling and its workers reproducible:
    ``DataLoader(dataset, shuffle=True, **seeded_loader_kwargs(0))``."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return {"generator": torch.Generator().manual_seed(seed), "worker_init_fn": _seed_worker}

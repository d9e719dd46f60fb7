"""Shared helpers for the benchmarks: paired timing against a reference and result files.

Timings on shared 2-core machines are noisy, so a speed target is never an absolute time: we
interleave the candidate and the reference call (A, B, A, B, ...) and report the median of the
per-pair ratios, so that a burst of noise hits both alike.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from lecture_lib.config import is_quick

RESULTS = Path(__file__).resolve().parent / "results"


def paired_ratio(candidate: Callable[[], object], reference: Callable[[], object], repeats: int = 7,
                 warmup: int = 1) -> dict:
    """Time ``candidate`` and ``reference`` interleaved; ratio = reference time / candidate time.

    Returns a dict with the median ratio (> 1 means the candidate is faster), the per-pair
    ratios and the median seconds of each.
    """
    for _ in range(warmup):
        candidate()
        reference()
    ratios, t_cand, t_ref = [], [], []
    for i in range(repeats):
        # alternate which one goes first so that neither always gets a warm cache
        order = (candidate, reference) if i % 2 == 0 else (reference, candidate)
        times = {}
        for fn in order:
            start = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - start
        t_cand.append(times[candidate])
        t_ref.append(times[reference])
        ratios.append(times[reference] / times[candidate])
    return {
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "candidate_s_median": statistics.median(t_cand),
        "reference_s_median": statistics.median(t_ref),
        "repeats": repeats,
    }


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_result(name: str, result: dict) -> Path:
    """Write ``benchmarks/results/<name>.json`` (with the environment) and return its path.

    In quick mode (``LECTURE_QUICK=1``, a smoke run) the file goes to ``results/quick/`` instead,
    so that a smoke run never overwrites a recorded full-size result.
    """
    folder = RESULTS / "quick" if is_quick() else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "environment": environment(), **result}, indent=2) + "\n")
    return path

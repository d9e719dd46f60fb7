"""Checkpoints: save after every completed epoch, load to resume where a run stopped.

A checkpoint holds the model, optimizer, scheduler and AMP scaler states, the epoch and step
counters, the history, and every random number generator's state, so that a resumed run gives
the same numbers as one uninterrupted run (same shuffles, same dropout masks).
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from lecture_lib.train.state import History, TrainState

__all__ = ["save_checkpoint", "load_checkpoint"]


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


def save_checkpoint(path: Path, state: TrainState, scaler: torch.amp.GradScaler) -> None:
    """Write the run after epoch ``state.epoch`` to ``path``, atomically (a crash while saving
    never leaves half a checkpoint)."""
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
    os.replace(tmp, path)


def load_checkpoint(path: Path, state: TrainState, scaler: torch.amp.GradScaler) -> int:
    """Restore ``state`` (model, optimizer, scheduler, history, step), ``scaler`` and the RNG
    states from ``path``; return the number of completed epochs (the epoch to start from)."""
    # on the CPU: RNG states must stay CPU tensors; load_state_dict copies the rest to the device
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    if state.scheduler is not None and ckpt["scheduler"] is not None:
        state.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt["scaler"] and scaler.is_enabled():  # empty when saved without amp (e.g. on a CPU)
        scaler.load_state_dict(ckpt["scaler"])
    state.history = History(**ckpt["history"])
    state.step = ckpt["step"]
    _set_rng_state(ckpt["rng"])  # same shuffles and dropout masks as an uninterrupted run
    return ckpt["epoch"]

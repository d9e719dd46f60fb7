"""Snapshot ensembles: the cyclic learning rate (cosine annealing with warm restarts) and the
callback that saves a snapshot at the end of each cycle."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from lecture_lib.train import Callback, TrainState


def cosine_restart_lr(step: int, base_lr: float, cycle_length: int, eta_min: float = 0.0, t_mult: int = 1) -> float:
    """Learning rate of SGDR (cosine annealing with warm restarts) after ``step`` steps.

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_i)) / 2`` where ``t`` counts the
    steps since the last restart and ``T_i`` is the length of the current cycle (the first has
    ``cycle_length`` steps, each next one ``t_mult`` times more). Huang et al.'s snapshot
    schedule is ``eta_min=0, t_mult=1``. Same values as
    ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0=cycle_length, T_mult=t_mult)``.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if isinstance(cycle_length, bool) or not isinstance(cycle_length, int) or cycle_length < 1:
        raise ValueError(f"cycle_length must be an int >= 1, got {cycle_length!r}")
    if isinstance(t_mult, bool) or not isinstance(t_mult, int) or t_mult < 1:
        raise ValueError(f"t_mult must be an int >= 1, got {t_mult!r}")
    t, length = step, cycle_length
    while t >= length:  # walk through the finished cycles
        t -= length
        length *= t_mult
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t / length)) / 2


def cosine_restart_scheduler(optimizer: torch.optim.Optimizer, cycle_length: int, eta_min: float = 0.0,
                             t_mult: int = 1) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that sets each group's LR to :func:`cosine_restart_lr` of its initial LR.

    Step it once per optimizer step (``fit(..., scheduler_interval="batch")``) with
    ``cycle_length = epochs_per_cycle * len(train_loader)``, as Huang et al. do.
    """
    def factor(base_lr):
        return lambda step: cosine_restart_lr(step, base_lr, cycle_length, eta_min, t_mult) / base_lr

    cosine_restart_lr(0, 1.0, cycle_length, eta_min, t_mult)  # validate the arguments now
    base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(lr) for lr in base_lrs])


class SnapshotCallback(Callback):
    """``fit`` callback that saves a snapshot of the model at the end of every LR cycle.

    Cycles are counted in epochs (``cycle_epochs``, Huang et al.'s setting) or, for cycles shorter
    than an epoch (the lecture's 25 snapshots within 10 epochs), in optimizer steps
    (``cycle_steps``, equal cycles only). Give exactly one of them.

    Args:
        cycle_epochs: epochs in the first cycle (cycle ``i`` has ``cycle_epochs * t_mult**i``).
        t_mult: growth factor of the cycle length (1 = all cycles equal, as in Huang et al.).
        cycle_steps: optimizer steps per cycle (a snapshot after every ``cycle_steps`` steps).

    Attributes:
        snapshots (list[dict]): CPU copies of ``model.state_dict()``, one per finished cycle.
        epochs (list[int]): the (1-based) epoch after which (or, with ``cycle_steps``, during
            which) each snapshot was taken.
        steps (list[int]): the optimizer steps done when each snapshot was taken.
    """

    def __init__(self, cycle_epochs: int | None = None, t_mult: int = 1, *, cycle_steps: int | None = None) -> None:
        if (cycle_epochs is None) == (cycle_steps is None):
            raise ValueError(f"give exactly one of cycle_epochs and cycle_steps, got cycle_epochs={cycle_epochs!r}, "
                             f"cycle_steps={cycle_steps!r}")
        if cycle_steps is not None and t_mult != 1:
            raise ValueError(f"cycle_steps makes equal cycles: t_mult must be 1, got {t_mult!r}")
        cosine_restart_lr(0, 1.0, cycle_epochs if cycle_steps is None else cycle_steps, 0.0, t_mult)  # same checks
        self.cycle_epochs, self.t_mult, self.cycle_steps = cycle_epochs, t_mult, cycle_steps
        self.snapshots: list[dict[str, Tensor]] = []
        self.epochs: list[int] = []
        self.steps: list[int] = []

    def is_cycle_end(self, epoch: int) -> bool:
        """True when the 1-based ``epoch`` is the last of a cycle (epoch-counted cycles only)."""
        if self.cycle_epochs is None:
            raise ValueError("is_cycle_end counts epochs; this callback counts cycle_steps")
        end, length = 0, self.cycle_epochs
        while end < epoch:
            end += length
            length *= self.t_mult
        return end == epoch

    def _save(self, state: TrainState) -> None:
        self.snapshots.append({k: v.detach().to("cpu", copy=True) for k, v in state.model.state_dict().items()})
        self.epochs.append(state.epoch + 1)
        self.steps.append(state.step)

    def on_step_end(self, state: TrainState) -> None:
        if self.cycle_steps is not None and state.step % self.cycle_steps == 0:
            self._save(state)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.cycle_steps is not None:
            taken = sum(e == state.epoch + 1 for e in self.epochs)
            if taken:
                state.history.epochs[-1]["snapshot"] = len(self.snapshots)
                state.history.epochs[-1]["snapshots_taken"] = taken
            return
        epoch = state.epoch + 1
        if self.is_cycle_end(epoch) and not state.stop:
            self._save(state)
            state.history.epochs[-1]["snapshot"] = len(self.snapshots)

    def models(self, model: nn.Module) -> list[nn.Module]:
        """One copy of ``model`` per snapshot, in eval mode."""
        copies = []
        for sd in self.snapshots:
            m = copy.deepcopy(model)
            m.load_state_dict(sd)
            copies.append(m.eval())
        return copies

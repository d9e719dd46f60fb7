"""Model ensembles: true ensembles, snapshot ensembles, and three ways to combine members.

* **True ensemble**: train M models independently (different random initializations and data
  orders) and combine their predictions. Costs M training runs.
* **Snapshot ensemble** (Huang et al. 2017): one run with a cyclic learning rate -- cosine
  annealing with warm restarts (Loshchilov & Hutter 2017, SGDR). At the end of each cycle the LR
  is near 0 and the model sits in a (local) minimum: save a snapshot; the restart to a large LR
  kicks it towards another one. M snapshots for the price of one run.

Combining the members' outputs on the same inputs:

* **prediction averaging**: mean of the softmax probabilities, then arg max;
* **majority vote**: each member votes for its arg max class (ties: see :func:`majority_vote`);
* **parameter averaging**: one network whose weights are the mean of the members' weights
  (one forward pass at test time). It only works when the members lie in one basin of the loss,
  as consecutive snapshots of one run do (the idea behind Polyak averaging and SWA, Izmailov
  et al. 2018). Independently trained networks are not aligned -- hidden unit 3 of one net has
  nothing to do with hidden unit 3 of the other (any permutation of the units gives the same
  function) -- so their average is a poor network. BatchNorm's running statistics of an
  averaged network are *not* the average of the members' statistics (the activations change
  when the weights do), so they are recomputed with one pass over training data
  (:func:`recompute_bn_statistics`, the same as ``torch.optim.swa_utils.update_bn``).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from lecture_lib.config import get_device
from lecture_lib.layers import BatchNorm2d
from lecture_lib.lecture import ENSEMBLE_EPOCHS, ENSEMBLE_MODELS, ENSEMBLE_SNAPSHOTS, ENSEMBLES_TABLE
from lecture_lib.train import Callback, History, TrainState, fit

__all__ = [
    "average_predictions",
    "majority_vote",
    "average_state_dicts",
    "average_models",
    "recompute_bn_statistics",
    "cosine_restart_lr",
    "cosine_restart_scheduler",
    "SnapshotCallback",
    "Ensemble",
    "predict_logits",
    "train_true_ensemble",
    "train_snapshot_ensemble",
    "small_cnn",
    "TIE_BREAKS",
    "LECTURE_TABLE",
    "EnsembleExperiment",
    "EnsembleMembers",
    "train_ensembles",
    "evaluate_ensembles",
    "compare_ensembles",
    "ensemble_costs",
    "ensemble_train_loader",
    "ensemble_test_loaders",
    "ensembles_recipe",
    "ENSEMBLES_STORED",
]

TIE_BREAKS = ("lowest", "average")


def _check_logits(logits) -> Tensor:
    """Return the members' logits as one Tensor[M, N, C]; raise on anything else."""
    if isinstance(logits, (list, tuple)):
        if not logits:
            raise ValueError("logits must hold at least one member, got an empty sequence")
        if not all(isinstance(t, Tensor) for t in logits):
            raise TypeError("logits must be a Tensor[M, N, C] or a sequence of Tensor[N, C]")
        shapes = {tuple(t.shape) for t in logits}
        if len(shapes) != 1:
            raise ValueError(f"every member's logits must have the same shape [N, C], got {sorted(shapes)}")
        logits = torch.stack(list(logits))
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a Tensor[M, N, C] or a sequence of Tensor[N, C], got {type(logits).__name__}")
    if logits.dim() != 3 or logits.shape[0] == 0 or logits.shape[2] == 0:
        raise ValueError(f"logits must have shape [M, N, C] with M >= 1 and C >= 1, got {list(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    return logits


# --- combining predictions -------------------------------------------------------------------


def average_predictions(logits: Tensor | Sequence[Tensor]) -> Tensor:
    """Prediction averaging: the mean of the members' softmax probabilities.

    Args:
        logits (Tensor[M, N, C] or M x Tensor[N, C]): raw scores of M members for N samples.

    Returns:
        Tensor[N, C]: averaged probabilities (rows sum to 1); the prediction is ``.argmax(1)``.
    """
    logits = _check_logits(logits)
    # Average probabilities, not logits: a member that is sure of itself should not outvote
    # the others by the size of its raw scores.
    return logits.softmax(dim=2).mean(dim=0)


def majority_vote(logits: Tensor | Sequence[Tensor], tie_break: str = "lowest") -> Tensor:
    """Majority vote: each member votes for its arg max class; the most votes win.

    Ties between classes with the same number of votes:

    * ``"lowest"`` (default): the lowest class index wins -- a fixed rule, the same as
      ``scipy.stats.mode``;
    * ``"average"``: the tied class with the highest averaged probability wins (falls back to
      the lowest index if that ties too).

    Args:
        logits (Tensor[M, N, C] or M x Tensor[N, C]): raw scores of M members for N samples.
        tie_break: ``"lowest"`` or ``"average"``.

    Returns:
        Tensor[N] int64: the winning class of every sample.
    """
    logits = _check_logits(logits)
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    _, n, c = logits.shape
    votes = logits.argmax(dim=2)  # [M, N]
    counts = torch.zeros(n, c, dtype=torch.long, device=logits.device)
    counts.scatter_add_(1, votes.T, torch.ones_like(votes.T))  # counts[i, k] = votes for class k
    winners = counts == counts.max(dim=1, keepdim=True).values  # [N, C] the tied leaders
    if tie_break == "lowest":
        # argmax returns the first maximal index: the lowest class among the leaders
        return winners.long().argmax(dim=1)
    probs = average_predictions(logits).masked_fill(~winners, -1.0)
    return probs.argmax(dim=1)


# --- parameter averaging ----------------------------------------------------------------------


def average_state_dicts(state_dicts: Sequence[dict[str, Tensor]],
                        weights: Sequence[float] | None = None) -> dict[str, Tensor]:
    """Element-wise (weighted) mean of several ``state_dict``\\ s of the same architecture.

    Floating-point entries (weights, biases, BN running mean/var) are averaged; integer ones
    (BN's ``num_batches_tracked``) are copied from the first dict. Averaged BN running
    statistics are only a starting point: recompute them with :func:`recompute_bn_statistics`.

    Args:
        state_dicts: M dicts with the same keys and shapes.
        weights: M non-negative numbers (normalized to sum to 1); default equal weights.

    Returns:
        a new dict (tensors are not shared with the inputs).
    """
    state_dicts = list(state_dicts)
    if not state_dicts:
        raise ValueError("state_dicts must hold at least one state dict, got none")
    keys = list(state_dicts[0])
    for i, sd in enumerate(state_dicts[1:], start=1):
        if list(sd) != keys:
            raise ValueError(f"state dict {i} has keys {sorted(set(sd) ^ set(keys))} that state dict 0 "
                             "does not share (or a different order): all members need the same architecture")
        for key in keys:
            if sd[key].shape != state_dicts[0][key].shape:
                raise ValueError(f"{key!r} must have shape {list(state_dicts[0][key].shape)} in every state "
                                 f"dict, got {list(sd[key].shape)} in state dict {i}")
    if weights is None:
        weights = [1.0] * len(state_dicts)
    weights = [float(w) for w in weights]
    if len(weights) != len(state_dicts) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"weights must be {len(state_dicts)} non-negative numbers with a positive sum, got {weights}")
    total = sum(weights)
    averaged = {}
    for key in keys:
        first = state_dicts[0][key]
        if first.is_floating_point():
            acc = torch.zeros_like(first, dtype=torch.float64)
            for w, sd in zip(weights, state_dicts):
                acc += (w / total) * sd[key].to(torch.float64)
            averaged[key] = acc.to(first.dtype)
        else:
            averaged[key] = first.clone()
    return averaged


def average_models(models: Sequence[nn.Module], weights: Sequence[float] | None = None) -> nn.Module:
    """A deep copy of ``models[0]`` carrying the averaged parameters and buffers of ``models``."""
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one model, got none")
    averaged = copy.deepcopy(models[0])
    averaged.load_state_dict(average_state_dicts([m.state_dict() for m in models], weights))
    return averaged


_BN_TYPES = (nn.modules.batchnorm._BatchNorm, BatchNorm2d)


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, loader: Iterable, device: torch.device | str | None = None) -> nn.Module:
    """Re-estimate every BatchNorm layer's running mean and variance with one pass over ``loader``.

    The running statistics are reset and then accumulated as an equal-weight average over the
    batches (``momentum=None``); the parameters are not touched. Same result as
    ``torch.optim.swa_utils.update_bn``, and it also handles ``lecture_lib.layers.BatchNorm2d``.

    Args:
        model: changed in place and returned; left in the train/eval mode it was in.
        loader: batches that are tensors or ``(inputs, ...)`` tuples (training data, no labels needed).
        device: where to move the inputs (default: the model's device).
    """
    layers = [m for m in model.modules() if isinstance(m, _BN_TYPES) and m.track_running_stats]
    if not layers:
        return model
    device = torch.device(device) if device is not None else next(model.parameters()).device
    momenta = {}
    for layer in layers:
        layer.reset_running_stats()
        momenta[layer] = layer.momentum
        layer.momentum = None  # cumulative average: every batch counts the same
    was_training = model.training
    model.train()
    try:
        for batch in loader:
            inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
            model(inputs.to(device))
    finally:
        for layer, momentum in momenta.items():
            layer.momentum = momentum
        model.train(was_training)
    return model


# --- cyclic learning rate -------------------------------------------------------------------


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


# --- ensembles as models ----------------------------------------------------------------------


class Ensemble(nn.Module):
    """Several models as one: ``forward`` returns the log of the averaged probabilities.

    ``log(mean softmax)`` is a valid input for ``F.cross_entropy`` (the ensemble's negative
    log-likelihood) and its arg max is the prediction-averaging vote, so ``lecture_lib.train.
    evaluate(Ensemble(models), loader)`` measures the averaged ensemble.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(models) == 0:
            raise ValueError("models must hold at least one model, got none")
        self.members = nn.ModuleList(models)

    def member_logits(self, x: Tensor) -> Tensor:
        """Tensor[M, N, C]: every member's logits."""
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: Tensor) -> Tensor:
        return average_predictions(self.member_logits(x)).clamp_min(1e-12).log()


@torch.no_grad()
def predict_logits(models: Sequence[nn.Module], loader: Iterable,
                   device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Every model's logits on every sample of ``loader`` (eval mode).

    Returns:
        (logits (Tensor[M, N, C]) on the CPU, targets (Tensor[N]))
    """
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one model, got none")
    device = torch.device(device) if device is not None else next(models[0].parameters()).device
    modes = [m.training for m in models]
    for m in models:
        m.eval().to(device)
    outs, targets = [[] for _ in models], []
    try:
        for inputs, target in loader:
            inputs = inputs.to(device)
            for i, m in enumerate(models):
                outs[i].append(m(inputs).float().cpu())
            targets.append(target.cpu())
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    if not targets:
        raise ValueError("loader yielded no batches")
    return torch.stack([torch.cat(o) for o in outs]), torch.cat(targets)


# --- training (through lecture_lib.train.fit) -------------------------------------------------


def _sgd(params, lr: float) -> torch.optim.Optimizer:
    # Huang et al. train snapshot ensembles with SGD + Nesterov momentum 0.9 and weight decay.
    return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


def train_true_ensemble(make_model: Callable[[], nn.Module], train_loader: Iterable, *, n_models: int,
                        epochs: int, lr: float = 0.05, seed: int = 0,
                        make_optimizer: Callable[..., torch.optim.Optimizer] = _sgd,
                        **fit_kwargs) -> tuple[list[nn.Module], list[History]]:
    """Train ``n_models`` models independently, each with its own seed (initialization and order).

    Each run uses a cosine LR decay over ``epochs`` (one cycle of the snapshot schedule, so
    baseline and members are trained alike). ``fit_kwargs`` go to ``lecture_lib.train.fit``.

    Returns:
        (models in eval mode, their histories): the cost is the sum of ``history.seconds``.
    """
    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    models, histories = [], []
    for k in range(n_models):
        torch.manual_seed(seed + k)  # different initialization and data order per member
        model = make_model()
        optimizer = make_optimizer(model.parameters(), lr)
        scheduler = cosine_restart_scheduler(optimizer, epochs * len(train_loader))
        history = fit(model, train_loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                      scheduler_interval="batch", **fit_kwargs)
        models.append(model.eval())
        histories.append(history)
    return models, histories


def train_snapshot_ensemble(make_model: Callable[[], nn.Module], train_loader: Iterable, *, n_cycles: int,
                            cycle_epochs: int | None = None, epochs: int | None = None, lr: float = 0.1,
                            seed: int = 0, make_optimizer: Callable[..., torch.optim.Optimizer] = _sgd,
                            **fit_kwargs) -> tuple[list[nn.Module], History, SnapshotCallback]:
    """One run with cosine warm restarts; a snapshot at the end of every cycle.

    Either ``n_cycles`` cycles of ``cycle_epochs`` epochs (Huang et al.), or ``n_cycles`` equal
    cycles within ``epochs`` epochs (the lecture's budget rule: 25 snapshots within the baseline's
    10 epochs); then ``epochs * len(train_loader)`` must be a multiple of ``n_cycles``.

    Returns:
        (snapshot models in eval mode, the run's history, the callback holding the state dicts)
    """
    if n_cycles < 1:
        raise ValueError(f"n_cycles must be >= 1, got {n_cycles}")
    if (cycle_epochs is None) == (epochs is None):
        raise ValueError(f"give exactly one of cycle_epochs and epochs, got cycle_epochs={cycle_epochs!r}, "
                         f"epochs={epochs!r}")
    if epochs is not None:
        total_steps = epochs * len(train_loader)
        if total_steps % n_cycles:
            raise ValueError(f"{epochs} epochs of {len(train_loader)} steps ({total_steps} steps) do not split into "
                             f"{n_cycles} equal cycles: choose n_cycles dividing {total_steps}")
        cycle_steps = total_steps // n_cycles
        snapshots = SnapshotCallback(cycle_steps=cycle_steps)
    else:
        epochs = n_cycles * cycle_epochs
        cycle_steps = cycle_epochs * len(train_loader)
        snapshots = SnapshotCallback(cycle_epochs)
    torch.manual_seed(seed)
    model = make_model()
    optimizer = make_optimizer(model.parameters(), lr)
    scheduler = cosine_restart_scheduler(optimizer, cycle_steps)
    callbacks = list(fit_kwargs.pop("callbacks", ())) + [snapshots]
    history = fit(model, train_loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  scheduler_interval="batch", callbacks=callbacks, **fit_kwargs)
    return snapshots.models(model), history, snapshots


def small_cnn(width: int = 16, num_classes: int = 10, batch_norm: bool = True) -> nn.Sequential:
    """The small VGG-style CNN of the recap experiments (32x32 RGB in, ``num_classes`` logits out).

    Four 3x3 conv blocks (``width``, 2 ``width``, 4 ``width``, 4 ``width`` channels), each conv ->
    BatchNorm -> ReLU, max pooling after the first three, global average pooling, one linear
    layer. ``width=16``: about 60 k parameters -- a few seconds per epoch on a CPU.
    """
    def block(c_in, c_out):
        layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        return layers + [nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, width), nn.MaxPool2d(2),
        *block(width, 2 * width), nn.MaxPool2d(2),
        *block(2 * width, 4 * width), nn.MaxPool2d(2),
        *block(4 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes),
    )


# --- the lecture's comparison table -----------------------------------------------------------

# The lecture's slide "Last Time: Ensembles (VGGNet and CIFAR 10)" (lecture_lib.lecture), keyed
# by the rows of our table.
_LECTURE_ROWS = {
    ("Single model",): "baseline",
    ("True", "Average predictions"): "true_average",
    ("True", "Voting"): "true_vote",
    ("Snapshots", "Average predictions"): "snapshot_average",
    ("Snapshots", "Voting"): "snapshot_vote",
    ("Snapshots", "Parameter averaging"): "snapshot_param_average",
}


def _lecture_table() -> dict[str, float]:
    table = {}
    for ensemble, combine, accuracy in ENSEMBLES_TABLE:
        for words, key in _LECTURE_ROWS.items():
            if (len(words) == 1 and combine == words[0]) or (ensemble.startswith(words[0]) and combine == words[-1]):
                table[key] = accuracy
    return table


# test accuracy of each row on the lecture's slide (VGG on CIFAR-10)
LECTURE_TABLE: dict[str, float] = _lecture_table()


@dataclass(frozen=True)
class EnsembleExperiment:
    """Sizes of the ensemble comparison, under the lecture's budget rule.

    The lecture (VGG, CIFAR-10) trains a baseline for ``ENSEMBLE_EPOCHS`` = 10 epochs, a true
    ensemble of ``ENSEMBLE_MODELS`` = 10 models, and takes ``ENSEMBLE_SNAPSHOTS`` = 25 snapshots
    *within the same 10 epochs* as the baseline. The defaults are the lecture's numbers: the
    snapshot run lasts exactly ``epochs`` epochs, cut into ``n_snapshots`` equal cosine cycles
    (with 5 000 images in batches of 40: 125 steps an epoch, a snapshot every 50 steps).

    Attributes:
        n_models: members of the true ensemble, ``epochs`` epochs each (member 0 is the baseline).
        epochs: epochs of the baseline, of each member, and of the whole snapshot run.
        n_snapshots: cosine cycles (= snapshots) within the snapshot run's ``epochs`` epochs.
        lr, snapshot_lr: initial learning rates (SGD, Nesterov momentum 0.9, weight decay 5e-4).
        seed: seeds member k with ``seed + k`` and the snapshot run with ``seed + 100``.
        width: ``small_cnn(width)``.
        n_train, n_test, batch_size: the ShapeClassification data (:func:`ensemble_train_loader`, :func:`ensemble_test_loaders`).
    """

    n_models: int = ENSEMBLE_MODELS
    epochs: int = ENSEMBLE_EPOCHS
    n_snapshots: int = ENSEMBLE_SNAPSHOTS
    lr: float = 0.05
    snapshot_lr: float = 0.05
    seed: int = 0
    width: int = 16
    n_train: int = 5_000
    n_test: int = 3_000
    batch_size: int = 40


class EnsembleMembers(nn.Module):
    """Every network of the comparison in one module (one state dict to store and load).

    The members are *kept* in ``dtype`` (default half precision: the stored file is half as large,
    4.3 MB for 35 small CNNs) and computed with in float32: :func:`evaluate_ensembles` works on
    float32 copies, so every accuracy is measured from exactly the rounded weights that are stored.

    Attributes:
        true (nn.ModuleList): the true ensemble's ``n_models`` members; ``true[0]`` is the baseline.
        snapshots (nn.ModuleList): the snapshot run's ``n_snapshots`` snapshots, in order.
    """

    def __init__(self, n_models: int, n_snapshots: int, make_model: Callable[[], nn.Module],
                 dtype: torch.dtype = torch.float16) -> None:
        super().__init__()
        if n_models < 1 or n_snapshots < 1:
            raise ValueError(f"n_models and n_snapshots must be >= 1, got {n_models} and {n_snapshots}")
        self.true = nn.ModuleList([make_model() for _ in range(n_models)])
        self.snapshots = nn.ModuleList([make_model() for _ in range(n_snapshots)])
        self.to(dtype)  # floating-point tensors only (BatchNorm's num_batches_tracked stays int64)

    @classmethod
    def from_config(cls, config: EnsembleExperiment) -> "EnsembleMembers":
        return cls(config.n_models, config.n_snapshots, lambda: small_cnn(config.width))

    def float_models(self) -> tuple[list[nn.Module], list[nn.Module]]:
        """float32 copies in eval mode: ``(true members, snapshots)``.

        The copies are in ``channels_last`` memory format: the same outputs (to ~1e-7), about
        twice as fast on a CPU (oneDNN's NHWC convolutions), which matters when a page
        evaluates 35 networks on 3 000 images.
        """
        def copies(models):
            return [copy.deepcopy(m).float().eval().to(memory_format=torch.channels_last) for m in models]
        return copies(self.true), copies(self.snapshots)


def _history_dict(history: History, step_loss: bool = True) -> dict:
    out = {"epochs": history.epochs, "seconds": history.seconds}
    if step_loss:
        out["step_loss"] = history.step_loss
    return out


def train_ensembles(members: EnsembleMembers, train_loader, config: EnsembleExperiment,
                    make_model: Callable[[], nn.Module] | None = None, progress: bool = True) -> dict:
    """Train the true ensemble and the snapshot run into ``members`` (in place, on its device).

    Returns:
        the history: ``{"true": [per member {"epochs", "seconds"} (+ "step_loss" for the
        baseline)], "snapshot": {"epochs", "seconds", "step_loss", "snapshot_steps"},
        "steps_per_epoch"}``.
    """
    if len(members.true) != config.n_models or len(members.snapshots) != config.n_snapshots:
        raise ValueError(f"members must hold {config.n_models} models and {config.n_snapshots} snapshots, got "
                         f"{len(members.true)} and {len(members.snapshots)}")
    make_model = (lambda: small_cnn(config.width)) if make_model is None else make_model
    device = next(members.parameters()).device
    fit_kwargs = {"device": device, "progress": progress}
    true_models, true_hist = train_true_ensemble(make_model, train_loader, n_models=config.n_models,
                                                 epochs=config.epochs, lr=config.lr, seed=config.seed, **fit_kwargs)
    snap_models, snap_hist, callback = train_snapshot_ensemble(
        make_model, train_loader, n_cycles=config.n_snapshots, epochs=config.epochs, lr=config.snapshot_lr,
        seed=config.seed + 100, **fit_kwargs)
    for target, trained in zip(list(members.true) + list(members.snapshots), true_models + snap_models):
        target.load_state_dict(trained.state_dict())
    members.eval()
    return {"true": [_history_dict(h, step_loss=k == 0) for k, h in enumerate(true_hist)],
            "snapshot": {**_history_dict(snap_hist), "snapshot_steps": callback.steps},
            "steps_per_epoch": len(train_loader)}


@torch.no_grad()
def evaluate_ensembles(members: EnsembleMembers, test_loader, bn_loader, return_logits: bool = False) -> dict:
    """Every row of the lecture's table (and a few more), measured on ``test_loader``.

    Parameter averages get their BatchNorm statistics recomputed on ``bn_loader`` (training data).

    Returns:
        ``{"accuracy": {row: float}, "members": {"true": [...], "snapshot": [...]}}`` and, with
        ``return_logits``, ``"logits": {"true": Tensor[M, N, C], "snapshot": Tensor[S, N, C],
        "targets": Tensor[N]}`` (for curves over the ensemble size); rows:
        baseline, true_average, true_vote, true_param_average, snapshot_last, snapshot_average,
        snapshot_vote, snapshot_param_average, snapshot_param_average_last5.
    """
    device = next(members.parameters()).device
    true_models, snap_models = members.float_models()
    true_logits, targets = predict_logits(true_models, test_loader, device)
    snap_logits, _ = predict_logits(snap_models, test_loader, device)

    def acc(pred):
        return (pred == targets).float().mean().item()

    def param_average(models):
        model = recompute_bn_statistics(average_models(models), bn_loader, device)
        logits, _ = predict_logits([model], test_loader, device)
        return acc(logits[0].argmax(1))

    accuracy = {
        "baseline": acc(true_logits[0].argmax(1)),
        "true_average": acc(average_predictions(true_logits).argmax(1)),
        "true_vote": acc(majority_vote(true_logits)),
        "true_param_average": param_average(true_models),
        "snapshot_last": acc(snap_logits[-1].argmax(1)),
        "snapshot_average": acc(average_predictions(snap_logits).argmax(1)),
        "snapshot_vote": acc(majority_vote(snap_logits)),
        "snapshot_param_average": param_average(snap_models),
        "snapshot_param_average_last5": param_average(snap_models[-5:]),
    }
    members_acc = {"true": [acc(l.argmax(1)) for l in true_logits],
                   "snapshot": [acc(l.argmax(1)) for l in snap_logits]}
    result = {"accuracy": accuracy, "members": members_acc}
    if return_logits:
        result["logits"] = {"true": true_logits, "snapshot": snap_logits, "targets": targets}
    return result


def compare_ensembles(make_model: Callable[[], nn.Module], train_loader, test_loader, bn_loader=None,
                      config: EnsembleExperiment = EnsembleExperiment(), device=None,
                      progress: bool = True) -> dict:
    """Train a true and a snapshot ensemble and measure every row of the lecture's table.

    Args:
        make_model: builds a fresh (randomly initialized) model.
        train_loader: shuffled training batches ``(images, labels)``.
        test_loader: the held-out batches the accuracies are measured on.
        bn_loader: training batches used to re-estimate BatchNorm statistics of averaged
            parameters (default ``train_loader``).

    Returns:
        dict with ``accuracy`` (row name -> test accuracy), ``cost`` (row name -> {"seconds",
        "epochs"} of training), ``members`` (accuracy of each member / snapshot),
        ``lecture`` (:data:`LECTURE_TABLE`), ``history`` and ``config``.
    """
    device = get_device() if device is None else torch.device(device)
    members = EnsembleMembers(config.n_models, config.n_snapshots, make_model, dtype=torch.float32).to(device)
    history = train_ensembles(members, train_loader, config, make_model, progress)
    result = evaluate_ensembles(members, test_loader, train_loader if bn_loader is None else bn_loader)
    return {**result, "cost": ensemble_costs(history, config), "lecture": dict(LECTURE_TABLE),
            "history": history, "config": asdict(config)}


def ensemble_costs(history: dict, config: EnsembleExperiment) -> dict:
    """Training cost ``{"seconds", "epochs"}`` of every row, from :func:`train_ensembles`' history."""
    one_run = {"seconds": history["true"][0]["seconds"], "epochs": config.epochs}
    true_cost = {"seconds": sum(h["seconds"] for h in history["true"]), "epochs": config.n_models * config.epochs}
    snap_cost = {"seconds": history["snapshot"]["seconds"], "epochs": config.epochs}
    rows = ("baseline", "true_average", "true_vote", "true_param_average", "snapshot_last", "snapshot_average",
            "snapshot_vote", "snapshot_param_average", "snapshot_param_average_last5")
    return {row: one_run if row == "baseline" else true_cost if row.startswith("true") else snap_cost for row in rows}


# --- the stored result (lecture_lib.weights) ----------------------------------------------------


@functools.lru_cache(maxsize=4)
def _shape_tensors(split: str, n: int) -> tuple[Tensor, Tensor]:
    from lecture_lib.data.classification import ShapeClassification  # data only when asked for

    return ShapeClassification(split, n, seed=0).tensors()


def ensemble_train_loader(config: EnsembleExperiment = EnsembleExperiment()):
    """Shuffled training batches of ShapeClassification (``config.n_train`` images).

    A fresh generator seeded with ``config.seed`` per call: every training run from this loader
    sees the same sequence of orders.
    """
    from torch.utils.data import DataLoader, TensorDataset

    x_train, y_train = _shape_tensors("train", config.n_train)
    return DataLoader(TensorDataset(x_train, y_train), batch_size=config.batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(config.seed))


# with a small test set (the check slice, quick mode) the BN statistics of parameter averages
# are re-estimated on this many training images instead of the whole training set
SMALL_BN_IMAGES = 1_000


def ensemble_test_loaders(config: EnsembleExperiment = EnsembleExperiment(), n_test: int | None = None):
    """``(test_loader, bn_loader)``: the test images and the training images for BN re-estimation.

    ``n_test=None``: the full ``config.n_test`` test images and the whole training set. Otherwise
    a test set of ``n_test`` images (``ShapeClassification("test", n_test)``, a set of its own:
    the images depend on the size) and :data:`SMALL_BN_IMAGES` training images -- cheap enough
    for the stale test and quick mode.
    """
    from torch.utils.data import DataLoader, TensorDataset

    x_test, y_test = _shape_tensors("test", config.n_test if n_test is None else n_test)
    x_bn, y_bn = _shape_tensors("train", config.n_train if n_test is None else min(SMALL_BN_IMAGES, config.n_train))
    # test batches of 250: the fastest size for these small networks on a CPU (measured); the BN
    # pass keeps batches of 500 (its cumulative average of batch statistics depends on the size)
    return (DataLoader(TensorDataset(x_test, y_test), batch_size=250),
            DataLoader(TensorDataset(x_bn, y_bn), batch_size=500))


ENSEMBLES_STORED = EnsembleExperiment()


def _flat_accuracies(result: dict) -> dict[str, float]:
    flat = dict(result["accuracy"])
    for kind, values in result["members"].items():
        flat.update({f"{kind}_member_{k}": v for k, v in enumerate(values)})
    return flat


def ensembles_recipe():
    """``make weights NAME=ensembles_shapes``: the whole comparison of the page, stored.

    ``evaluate(members, n_images)`` returns every row of :func:`evaluate_ensembles` plus each
    member's accuracy (``true_member_k``, ``snapshot_member_k``), on the test set or, with
    ``n_images``, on a test set of that size (:func:`ensemble_test_loaders`); headline
    ``snapshot_average``.
    """
    from lecture_lib.weights import Recipe

    config = ENSEMBLES_STORED

    def train(members, seed):
        seeded = replace(config, seed=seed)
        return train_ensembles(members, ensemble_train_loader(seeded), seeded)

    def evaluate(members, n_images=None):
        test_loader, bn_loader = ensemble_test_loaders(config, n_test=n_images)
        return _flat_accuracies(evaluate_ensembles(members, test_loader, bn_loader))

    return Recipe(name="ensembles_shapes", build=lambda: EnsembleMembers.from_config(config), train=train,
                  evaluate=evaluate, metric="snapshot_average", check_images=500, seed=config.seed,
                  description=f"{config.n_models} independent small_cnn({config.width}) x {config.epochs} epochs + "
                              f"{config.n_snapshots} snapshots within one {config.epochs}-epoch run, ShapeClassification")

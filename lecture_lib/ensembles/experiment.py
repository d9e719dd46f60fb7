"""The lecture's comparison table, measured: one experiment trains a single model, a true
ensemble and a snapshot ensemble, and evaluates every way of combining them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lecture_lib.config import get_device
from lecture_lib.ensembles.averaging import average_models, recompute_bn_statistics
from lecture_lib.ensembles.combining import average_predictions, majority_vote
from lecture_lib.ensembles.training import (
    predict_logits,
    small_cnn,
    train_snapshot_ensemble,
    train_true_ensemble,
)
from lecture_lib.lecture import (
    ENSEMBLE_EPOCHS,
    ENSEMBLE_MODELS,
    ENSEMBLE_SNAPSHOTS,
    ENSEMBLES_TABLE,
)
from lecture_lib.train import History

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
        twice as fast on a CPU (oneDNN's NHWC convolutions) for the BatchNorm re-estimation
        passes of the parameter averages (``predict_logits`` makes its own inference copies).
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

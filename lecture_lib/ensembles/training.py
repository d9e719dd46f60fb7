"""Ensembles as models, and training true and snapshot ensembles through ``lecture_lib.train.fit``."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from lecture_lib.ensembles.combining import average_predictions
from lecture_lib.ensembles.snapshots import SnapshotCallback, cosine_restart_scheduler
from lecture_lib.models.unet import ChannelsLastConv2d
from lecture_lib.train import History, fit


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


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model``: every BatchNorm that directly follows a convolution in an
    ``nn.Sequential`` is folded into that convolution's weights and bias.

    In eval mode BatchNorm is the affine map ``gamma * (z - mean) / sqrt(var + eps) + beta`` of the
    convolution's output ``z``, so it can be applied to the convolution's weights once instead of
    to every activation (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same outputs up to float
    rounding (~1e-6), about a third faster for :func:`small_cnn`. Only for prediction: the copy has
    no BatchNorm statistics left to re-estimate or train. ``model`` itself is not changed.

    Returns:
        the copy, in eval mode.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for conv_name, bn_name in itertools.pairwise(list(module._modules)):
            conv, bn = module._modules[conv_name], module._modules[bn_name]
            # exact types: a subclass may compute something else (ChannelsLastConv2d computes the same)
            if (type(conv) in (nn.Conv2d, ChannelsLastConv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                    and bn.running_mean is not None):
                module._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                module._modules[bn_name] = nn.Identity()
    return folded


@torch.no_grad()
def predict_logits(models: Sequence[nn.Module], loader: Iterable,
                   device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Every model's logits on every sample of ``loader`` (eval mode).

    The models predict through inference copies -- BatchNorm folded into the convolutions
    (:func:`fold_batch_norm`), channels-last memory format (oneDNN's fast CPU kernels), each
    batch converted once for all models: the same logits up to float rounding (~1e-5), about
    3x faster for :func:`small_cnn` on a CPU. The models themselves are not changed.

    Returns:
        (logits (Tensor[M, N, C]) on the CPU, targets (Tensor[N]))
    """
    models = list(models)
    if not models:
        raise ValueError("models must hold at least one model, got none")
    device = torch.device(device) if device is not None else next(models[0].parameters()).device
    copies = [fold_batch_norm(m).to(device=device, memory_format=torch.channels_last) for m in models]
    outs, targets = [[] for _ in copies], []
    for inputs, target in loader:
        inputs = inputs.to(device)
        if inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        for i, m in enumerate(copies):
            outs[i].append(m(inputs).float().cpu())
        targets.append(target.cpu())
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

"""Parameter averaging: one network whose weights are the members' mean, and BatchNorm
statistics recomputed for it."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from lecture_lib.layers import BatchNorm2d


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

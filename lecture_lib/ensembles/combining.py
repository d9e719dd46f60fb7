"""Combining the members' predictions: probability averaging and majority vote."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

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

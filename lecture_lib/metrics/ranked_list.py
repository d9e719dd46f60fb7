"""One ranked list of detections: precision and recall after each detection, the interpolated
precision, and average precision three ways (COCO's 101 points, VOC2010's all points, VOC2007's
11 points). The readable version of what ``mean_average_precision`` does for every class at once;
the curve helpers (``_envelope``, ``_read_levels``, ``_area``) serve both.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lecture_lib.metrics._checks import _check_curve
from lecture_lib.metrics.conventions import _EPS, COCO_RECALL_THRESHOLDS, METHODS, VOC07_RECALL_THRESHOLDS

__all__ = ["precision_recall", "interpolated_precision", "average_precision"]


def _precision(true_positives: Tensor, counted: Tensor) -> Tensor:
    """Precision after ``counted`` detections of which ``true_positives`` were right (float64).

    pycocotools' formula, ``TP / (TP + FP + eps)``: the eps keeps a list that starts with
    ignored detections (none counted yet) at 0 instead of 0 / 0.
    """
    return true_positives.to(torch.float64) / (counted.to(torch.float64) + _EPS)


def precision_recall(tp, num_gt: int) -> tuple[Tensor, Tensor]:
    """Precision and recall after each detection of a ranked list (highest score first).

    Args:
        tp (Tensor[N] bool, or a list of bools): ``tp[k]`` is True when the k-th detection is a
            true positive.
        num_gt: the number of ground-truth objects (what recall is a fraction of).

    Returns:
        (precision, recall), both Tensor[N] float64: after the first ``k + 1`` detections,
        ``precision[k] = TP / (k + 1)`` and ``recall[k] = TP / num_gt``.
    """
    tp = torch.as_tensor(tp)
    if tp.dim() != 1 or tp.dtype != torch.bool:
        raise ValueError(
            f"tp must be a 1-D bool tensor (one flag per ranked detection), got {tp.dtype} {list(tp.shape)}"
        )
    if isinstance(num_gt, bool) or not isinstance(num_gt, int) or num_gt < 1:
        raise ValueError(f"num_gt must be a positive int, got {num_gt!r}")
    true_positives = torch.cumsum(tp, 0).to(torch.float64)
    return _precision(true_positives, torch.arange(1, len(tp) + 1)), true_positives / num_gt


def _envelope(precision: Tensor) -> Tensor:
    """The precision envelope of curves (Tensor[S, L]): ``max`` of the precision from each point on."""
    return torch.flip(torch.cummax(torch.flip(precision, [1]), dim=1).values, [1])


def _read_levels(recall: Tensor, envelope: Tensor, levels: np.ndarray) -> Tensor:
    """Interpolated precision at recall ``levels`` for curves ``recall``, ``envelope`` (Tensor[S, L],
    recall non-decreasing along a row, ``inf`` past a curve's end): the envelope at the first
    point whose recall reaches the level (``np.searchsorted``, as pycocotools), 0 if none does.
    Returns Tensor[S, len(levels)]."""
    num_curves, n = recall.shape
    if n == 0:
        return torch.zeros(num_curves, len(levels), dtype=torch.float64)
    levels_t = torch.as_tensor(np.asarray(levels, dtype=np.float64)).expand(num_curves, -1).contiguous()
    index = torch.searchsorted(recall.contiguous(), levels_t, side="left")
    value = envelope.gather(1, index.clamp(max=n - 1))
    reached = index < n
    reached &= torch.isfinite(recall.gather(1, index.clamp(max=n - 1)))
    return torch.where(reached, value, torch.zeros((), dtype=value.dtype))


def _area(recall: Tensor, envelope: Tensor) -> Tensor:
    """The exact area under the envelope (VOC devkit ``voc_ap``): the sum, over the points where
    recall grows, of (recall step) x envelope. Curves as in ``_read_levels``; returns Tensor[S]."""
    previous = torch.cat([torch.zeros(len(recall), 1, dtype=recall.dtype), recall[:, :-1]], 1)
    step = recall - previous
    grows = (step > 0) & torch.isfinite(recall)
    return torch.where(grows, step * envelope, torch.zeros((), dtype=envelope.dtype)).sum(1)


def _ap_of_curves(recall: Tensor, envelope: Tensor, method: str) -> tuple[Tensor, Tensor]:
    """(interpolated precision at COCO's 101 levels [S, 101], AP by ``method`` [S])."""
    q = _read_levels(recall, envelope, COCO_RECALL_THRESHOLDS)
    if method == "coco":
        return q, q.mean(1)
    if method == "voc07":
        return q, _read_levels(recall, envelope, VOC07_RECALL_THRESHOLDS).mean(1)
    return q, _area(recall, envelope)


def interpolated_precision(recall, precision, recall_levels=COCO_RECALL_THRESHOLDS) -> np.ndarray:
    """The interpolated precision ``p_interp(r) = max_{r' >= r} p(r')`` at ``recall_levels``.

    Read as in pycocotools: the precision envelope at the first ranked detection whose recall
    reaches the level, 0 when the list never reaches it.

    Args:
        recall, precision (Tensor[N] or array-like): the curve down the ranked list.
        recall_levels (array-like[R]): increasing recall levels (COCO: 0, 0.01, ..., 1).

    Returns:
        np.ndarray[R] float64.
    """
    recall, precision = _check_curve(recall, precision)
    r, p = torch.from_numpy(recall)[None], torch.from_numpy(precision)[None]
    return _read_levels(r, _envelope(p), np.asarray(recall_levels, dtype=np.float64))[0].numpy()


def average_precision(recall, precision, method: str = "coco") -> float:
    """Area under a precision/recall curve, three ways.

    Args:
        recall (Tensor[N] or array-like): recall after each ranked detection (non-decreasing).
        precision (Tensor[N] or array-like): precision after each ranked detection.
        method: ``"coco"``: mean of the interpolated precision at the 101 recall levels 0, 0.01,
            ..., 1 (pycocotools); ``"voc"``: the exact area under the precision envelope
            (VOC2010 and later); ``"voc07"``: mean of the interpolated precision at the 11
            recall levels 0, 0.1, ..., 1 (VOC2007).

    Returns:
        float: AP in [0, 1]; 0 for an empty list.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    recall, precision = _check_curve(recall, precision)
    if recall.size == 0:
        return 0.0
    r, p = torch.from_numpy(recall)[None], torch.from_numpy(precision)[None]
    return float(_ap_of_curves(r, _envelope(p), method)[1][0])

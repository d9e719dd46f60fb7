"""Non-maximum suppression: keep the best box, drop its duplicates, repeat.

A detector fires many overlapping boxes on one object (neighbouring sliding windows, anchors,
proposals). Greedy NMS, as used since the Viola-Jones / DPM detectors and in every R-CNN:

1. sort the boxes by score, highest first;
2. take the best remaining box and keep it;
3. discard every remaining box whose IoU with it is **greater than** ``iou_threshold``;
4. repeat from 2 until no box is left.

``nms`` returns exactly what ``torchvision.ops.nms`` returns on the CPU, in the same order, score
ties included: like torchvision's kernel we sort the scores with a *stable* descending sort (of
equal scores, the earlier box wins) and compare the IoU with the threshold in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecture_lib.boxes import _check_boxes, box_iou

__all__ = ["nms", "batched_nms"]


def _check_nms_inputs(boxes, scores, iou_threshold) -> None:
    """Raise a clear error unless boxes (Tensor[N, 4]), scores (Tensor[N]) and the threshold fit."""
    _check_boxes(boxes)
    if not boxes.is_floating_point():
        raise TypeError(f"boxes must be a floating point tensor, got dtype {boxes.dtype}")
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores must be a torch.Tensor of shape [N], got {type(scores).__name__}")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape [N] = [{boxes.shape[0]}] like boxes, got {list(scores.shape)}")
    if scores.dtype != boxes.dtype:
        raise TypeError(f"scores must have the same dtype as boxes ({boxes.dtype}), got {scores.dtype}")
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"iou_threshold must be a number, got {type(iou_threshold).__name__}")
    if math.isnan(iou_threshold) or not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression.

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format, float32 or float64.
        scores (Tensor[N]): score of each box (same dtype as ``boxes``).
        iou_threshold (float): a box is discarded when its IoU with a kept, higher-scoring box
            is **greater than** this value.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, in decreasing order of score
        (== ``torchvision.ops.nms``, ties included).
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    # Ties: torchvision's kernel (0.29) sorts with stable=True, so of two equal scores the box
    # that comes first in the input is visited first. The default torch.sort is not stable: for
    # more than 16 equal scores it reorders them, and a different box of a tie would be kept.
    order = torch.sort(scores, dim=0, descending=True, stable=True).indices
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        # IoU of the kept box with every box; compared in float64 because the kernel compares
        # its float IoU with the double threshold (0.1f > 0.1 is true, float32(0.1) > 0.1f is not).
        iou = box_iou(boxes[i : i + 1], boxes)[0]
        suppressed |= iou.to(torch.float64) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS applied separately to each category: boxes of different ``idxs`` never suppress
    each other.

    The coordinate trick of torchvision: shift the boxes of category ``c`` by
    ``c * (max_coordinate + 1)`` so that boxes of different categories cannot overlap, then run
    one :func:`nms` over all of them.

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format.
        scores (Tensor[N]): score of each box.
        idxs (Tensor[N]): integer category (or image) index of each box.
        iou_threshold (float): as in :func:`nms`.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, in decreasing order of score
        (== torchvision's coordinate-trick ``batched_nms``, which ``torchvision.ops.batched_nms``
        uses for up to 1000 boxes on the CPU).
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    if not isinstance(idxs, Tensor):
        raise TypeError(f"idxs must be a torch.Tensor of shape [N], got {type(idxs).__name__}")
    if idxs.dim() != 1 or idxs.shape[0] != boxes.shape[0]:
        raise ValueError(f"idxs must have shape [N] = [{boxes.shape[0]}] like boxes, got {list(idxs.shape)}")
    if idxs.is_floating_point() or idxs.is_complex() or idxs.dtype == torch.bool:
        raise TypeError(f"idxs must hold integer category indices, got dtype {idxs.dtype}")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    # torchvision's offset max + 1 separates the categories only when no coordinate is below 0
    # (its documented precondition). IoU does not change under translation, so move such boxes
    # into the positive quadrant first instead of silently merging categories.
    lowest = boxes.min()
    if lowest < 0:
        boxes = boxes - lowest
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)

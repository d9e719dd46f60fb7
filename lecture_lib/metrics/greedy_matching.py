"""Matching one image's detections of one class to its objects, one detection at a time: the
lecture's greedy rule as a step-through (``match_detections``), replaying the decisions of the
one vectorized matcher (``metrics/matching.py``) that serves the whole data set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from lecture_lib.boxes import _check_boxes
from lecture_lib.metrics._checks import _check_flag, _check_options
from lecture_lib.metrics.matching import MAX_IOU, match_ranked, pairs_in_groups

__all__ = ["MatchStep", "MatchResult", "match_detections"]


@dataclass
class MatchStep:
    """One detection of the greedy matching (for the step-through)."""

    rank: int  # position in the ranked list (0 = highest score)
    detection: int  # index of the detection in the input
    score: float
    ious: Tensor  # Tensor[M]: IoU with every ground-truth box
    candidates: Tensor  # Tensor[M] bool: boxes this detection may take
    matched_gt: int  # -1 when none
    status: str  # "tp", "fp" or "ignored"
    gt_taken: Tensor  # Tensor[M] bool: ground truth taken after this step


@dataclass
class MatchResult:
    """Outcome of ``match_detections``: per input detection and per ground-truth box."""

    order: Tensor  # Tensor[N] int64: detection indices, highest score first
    matched_gt: Tensor  # Tensor[N] int64: matched ground-truth index per detection, -1 if none
    status: list  # list[str] of length N: "tp", "fp" or "ignored" per detection
    gt_taken: Tensor  # Tensor[M] bool: ground truth found by some detection
    steps: list = field(default_factory=list)  # list[MatchStep] in rank order


def _box_pair_iou(boxes: Tensor, gt_boxes: Tensor, crowd: Tensor | None = None, plus_one: bool = False) -> Tensor:
    """IoU of ``boxes[i]`` with ``gt_boxes[i]`` (Tensor[P, 4] each, broadcastable) -> Tensor[P].

    ``box_iou``'s operations in the same order (so the same floats as pycocotools' bbox IoU);
    two empty boxes get 0 instead of NaN. Against a crowd region (``crowd[i]``) the union is the
    detection's own area, as in pycocotools. ``plus_one``: widths and heights are ``x2 - x1 + 1``
    (the VOC devkit's pixel convention).
    """
    if plus_one:
        area = (boxes[..., 2] - boxes[..., 0] + 1.0) * (boxes[..., 3] - boxes[..., 1] + 1.0)
        gt_area = (gt_boxes[..., 2] - gt_boxes[..., 0] + 1.0) * (gt_boxes[..., 3] - gt_boxes[..., 1] + 1.0)
        wh = (torch.min(boxes[..., 2:], gt_boxes[..., 2:]) - torch.max(boxes[..., :2], gt_boxes[..., :2]) + 1.0)
    else:
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        gt_area = (gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])
        wh = torch.min(boxes[..., 2:], gt_boxes[..., 2:]) - torch.max(boxes[..., :2], gt_boxes[..., :2])
    wh = wh.clamp(min=0)
    intersection = wh[..., 0] * wh[..., 1]
    union = area + gt_area - intersection
    if crowd is not None:
        union = torch.where(crowd, area.expand_as(union), union)
    return (intersection / union).nan_to_num(0.0)


def _box_area(boxes: Tensor, plus_one: bool) -> Tensor:
    one = 1.0 if plus_one else 0.0
    if plus_one:
        return (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _match_one_list(ious: Tensor, order: Tensor, threshold: float, method: str, ignore: Tensor,
                    crowd: Tensor) -> Tensor:
    """The shared matcher on one image and class: the object taken by each detection in rank
    order (Tensor[N] int64, -1 for none). ``ious`` is Tensor[N, M] in input order."""
    num_det, num_gt = ious.shape
    pair_det, pair_gt = pairs_in_groups(torch.zeros(num_det, dtype=torch.long), torch.zeros(num_gt, dtype=torch.long))
    result = match_ranked(pair_det, pair_gt, ious[order][pair_det, pair_gt], torch.zeros(num_det, dtype=torch.long),
                          torch.zeros(num_gt, dtype=torch.long), ignore[None], crowd, [threshold],
                          "coco" if method == "coco" else "voc")
    taken = torch.full((num_det,), -1, dtype=torch.long)
    taken[result.det] = result.gt[0, 0]
    return taken


def match_detections(boxes: Tensor, scores: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5,
                     method: str = "coco", gt_ignore: Tensor | None = None, *, gt_crowd: Tensor | None = None,
                     plus_one: bool = False) -> MatchResult:
    """Greedy matching of one image's detections of one class to its ground truth.

    Go down the detections by decreasing score (stable: equal scores keep input order):

    - ``"coco"``: take the still-unmatched ground truth with the highest IoU >= threshold
      (ties: the later box, as pycocotools' loop does; non-ignored boxes first);
    - ``"voc"`` / ``"voc07"``: look at the ground truth with the highest IoU (matched or not);
      if IoU > threshold it is a TP when that box is still free, a duplicate (FP) otherwise.

    A detection that lands on an ignored (difficult, crowd) box is "ignored": neither TP nor FP.
    A crowd box is never used up, and its IoU is the share of the detection it covers.

    The matching itself is ``metrics.matching.match_ranked``, the one that serves the whole data
    set; this function replays its decisions one detection at a time for the step-through.

    Args:
        boxes (Tensor[N, 4]): detections (x1, y1, x2, y2).
        scores (Tensor[N]): their confidences.
        gt_boxes (Tensor[M, 4]): ground-truth boxes of the same class.
        iou_threshold: in [0, 1].
        method: "coco", "voc" or "voc07".
        gt_ignore (Tensor[M] bool, optional): ground truth to ignore (VOC "difficult").
        gt_crowd (Tensor[M] bool, optional): crowd regions (COCO ``iscrowd``).
        plus_one: measure boxes in integer pixels (``x2 - x1 + 1``), as the VOC devkit.

    Returns:
        MatchResult, with the list of ``MatchStep`` for a step-through.
    """
    _check_boxes(boxes, "boxes")
    _check_boxes(gt_boxes, "gt_boxes")
    (threshold,) = _check_options([iou_threshold], method, None)
    plus_one = _check_flag(plus_one, "plus_one")
    if not isinstance(scores, Tensor) or scores.shape != (boxes.shape[0],):
        raise ValueError(f"scores must be a Tensor of shape [{boxes.shape[0]}], got {getattr(scores, 'shape', scores)}")
    num_gt = gt_boxes.shape[0]
    flags = []
    for name, value in (("gt_ignore", gt_ignore), ("gt_crowd", gt_crowd)):
        flag = torch.zeros(num_gt, dtype=torch.bool) if value is None else value
        if not isinstance(flag, Tensor) or flag.shape != (num_gt,) or flag.dtype != torch.bool:
            got = f"{flag.dtype} {list(flag.shape)}" if isinstance(flag, Tensor) else type(flag).__name__
            raise ValueError(f"{name} must be a bool tensor of shape [{num_gt}], got {got}")
        flags.append(flag.cpu())
    crowd = flags[1]
    ignore = flags[0] | crowd
    boxes, scores, gt_boxes = boxes.cpu().double(), scores.cpu(), gt_boxes.cpu().double()
    ious = _box_pair_iou(boxes[:, None], gt_boxes[None], crowd[None], plus_one)  # [N, M]
    order = torch.sort(-scores.double(), stable=True).indices
    took = _match_one_list(ious, order, threshold, method, ignore, crowd)
    # Replay, one detection after the other, what each one saw and did.
    matched = torch.full((boxes.shape[0],), -1, dtype=torch.long)
    status = ["fp"] * boxes.shape[0]
    taken = torch.zeros(num_gt, dtype=torch.bool)
    steps = []
    for rank, d in enumerate(order.tolist()):
        row, j = ious[d], int(took[rank])
        if method == "coco":
            candidates = ~(taken & ~crowd) & (row >= min(threshold, MAX_IOU))
        else:
            candidates = torch.zeros(num_gt, dtype=torch.bool)
            if num_gt and row.max() > threshold:
                candidates[int(row.argmax())] = True
        if j >= 0:
            matched[d] = j
            status[d] = "ignored" if ignore[j] else "tp"
            taken[j] = True
        steps.append(MatchStep(rank, d, float(scores[d]), row.clone(), candidates, j, status[d], taken.clone()))
    return MatchResult(order, matched, status, taken, steps)

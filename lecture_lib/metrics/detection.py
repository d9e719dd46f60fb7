"""Evaluating detectors: precision and recall over a ranked list, AP, mAP and COCO's twelve
statistics.

A detector returns, for every image, boxes with a class label and a confidence score. To score
it we (1) *match* detections to ground-truth objects (``metrics/matching.py``): going down the
detections of one image and class by decreasing score, a detection is a true positive (TP)
when it overlaps an object of its class enough (IoU threshold) that no higher-scoring
detection has taken already, and a false positive (FP) otherwise; (2) read the ranked list of
each class, over all images, as a **precision/recall curve**; (3) summarise the curve by its
area, the **average precision** (AP); (4) average AP over the classes (and, COCO style, over
the IoU thresholds 0.50:0.05:0.95): the **mAP**.

``mean_average_precision`` returns everything ``COCOeval.summarize()`` prints, under the names
torchmetrics' ``MeanAveragePrecision`` uses: ``map``, ``map_50``, ``map_75``, AP by object size
``map_small`` / ``map_medium`` / ``map_large`` (area < 32², 32²..96², > 96² pixels) and average
recall with at most 1 / 10 / 100 detections per image and class (``mar_1``, ``mar_10``,
``mar_100``) and by size (``mar_small``, ...). Two conventions, each equal to its reference:

- ``method="coco"`` == pycocotools' ``COCOeval`` (all twelve ``stats``): IoU >= t; each
  detection takes the *best still-unmatched* object (ties: the later one); crowd regions
  (``iscrowd``) are compared by the share of the *detection* they cover and can absorb any
  number of detections; objects outside the area range under evaluation, crowds and
  "difficult" ones are *ignored* (matching them is neither TP nor FP, missing them costs no
  recall); at most ``max_detections`` per image and class; precision interpolated at 101 recall
  points.
- ``method="voc"`` / ``"voc07"`` == the PASCAL VOC devkit (``voc_eval``): IoU > t with the
  *highest-IoU* object, matched or not (a second hit on it is a duplicate, i.e. FP); AP as the
  area under the precision envelope (VOC2010+, all points) or the 11-point mean of VOC2007.
  The size and recall statistics apply COCO's area ranges and detection limits to this rule.

``plus_one=True`` measures boxes as the VOC devkit (and many older code bases) do, in integer
pixels: a box from x1 to x2 is ``x2 - x1 + 1`` wide, in every IoU and area. The same boxes then
give different IoUs, hence different APs: a number is only comparable with one computed the
same way.

The readable version of each step (``precision_recall``, ``match_detections``) works on one
short list, as on the slides; ``mean_average_precision`` runs the same steps for every image,
class, area range and IoU threshold at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from lecture_lib.boxes import _check_boxes
from lecture_lib.metrics.matching import MAX_IOU, match_ranked, pairs_in_groups

__all__ = [
    "METHODS",
    "STATISTICS",
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "COCO_AREA_RANGES",
    "VOC07_RECALL_THRESHOLDS",
    "precision_recall",
    "average_precision",
    "interpolated_precision",
    "MatchStep",
    "MatchResult",
    "match_detections",
    "mean_average_precision",
    "summarize",
]

METHODS = ("coco", "voc", "voc07")
# pycocotools Params.setDetParams builds these with linspace ("np.arange causes trouble"); we use
# the very same floats so that an IoU or a recall that sits exactly on a threshold is compared
# the same way.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
# VOC devkit (voc_eval.voc_ap, use_07_metric): np.arange(0., 1.1, 0.1), 11 recall levels.
VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)
# pycocotools' areaRng, in pixels²; a bound belongs to both ranges that share it
COCO_AREA_RANGES = {"all": (0.0, 1e5**2), "small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2),
                    "large": (96.0**2, 1e5**2)}
STATISTICS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
              "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")
_EPS = np.spacing(1)  # pycocotools' precision: TP / (TP + FP + eps)
_COCO_MAX_IOU = MAX_IOU  # (kept for older imports)
_REAL = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
         torch.int32, torch.int64)
_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_INT = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_CURVE_ELEMENTS = 1 << 22  # precision curves are built for chunks of classes of at most this many entries


# --- checks ---------------------------------------------------------------------------------


def _check_image_lists(preds, targets) -> None:
    """``preds`` and ``targets`` must be lists (sequences) of the same length, one dict per image."""
    for name, value in (("preds", preds), ("targets", targets)):
        if isinstance(value, (Mapping, str, Tensor)) or not isinstance(value, Sequence):
            raise TypeError(f"{name} must be a list with one dict per image, got {type(value).__name__}")
    if len(preds) != len(targets):
        raise ValueError(
            f"preds and targets must have the same length (one dict per image), "
            f"got {len(preds)} preds and {len(targets)} targets"
        )


def _check_keys(d, where: str, keys: Sequence[str]) -> None:
    """``d`` must be a dict (mapping) holding every key in ``keys``."""
    if not isinstance(d, Mapping):
        raise TypeError(f"{where} must be a dict with keys {list(keys)}, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ValueError(f"{where} is missing key(s) {missing}: expected keys {list(keys)}, got {list(d)}")


def _check_vector(v, where: str, n: int, kind: str) -> None:
    """``v`` must be a Tensor[n] of the given kind: "float", "int", "real" or "flag" (bool or 0/1 ints)."""
    if not isinstance(v, Tensor):
        raise TypeError(f"{where} must be a torch.Tensor of shape [{n}], got {type(v).__name__}")
    if v.shape != (n,):
        raise ValueError(f"{where} must have shape [N] with N = {n} (one per object), got {list(v.shape)}")
    allowed = {"float": _FLOAT, "int": _INT, "real": _REAL, "flag": (torch.bool, *_INT)}[kind]
    if v.dtype not in allowed:
        what = {"float": "floating-point numbers", "int": "integers", "real": "real numbers",
                "flag": "bools (or 0/1 integers)"}[kind]
        raise TypeError(f"{where} must hold {what}, got dtype {v.dtype}")


def _check_targets_extra(t, where: str, n: int) -> None:
    """The optional per-object keys of a target: ``difficult``, ``iscrowd`` and ``area``."""
    flag = t.get("difficult")
    if flag is not None and (not isinstance(flag, Tensor) or flag.dtype != torch.bool or flag.shape != (n,)):
        got = f"{flag.dtype} {list(flag.shape)}" if isinstance(flag, Tensor) else type(flag).__name__
        raise TypeError(f"{where}['difficult'] must be a bool tensor of shape [{n}], got {got}")
    if t.get("iscrowd") is not None:
        _check_vector(t["iscrowd"], f"{where}['iscrowd']", n, "flag")
    if t.get("area") is not None:
        _check_vector(t["area"], f"{where}['area']", n, "real")


def _check_options(iou_thresholds, method, max_detections) -> np.ndarray:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if max_detections is not None and (
        isinstance(max_detections, bool) or not isinstance(max_detections, int) or max_detections < 1
    ):
        raise ValueError(f"max_detections must be a positive int or None, got {max_detections!r}")
    if iou_thresholds is None:
        return COCO_IOU_THRESHOLDS.copy() if method == "coco" else np.array([0.5])
    if isinstance(iou_thresholds, (int, float)):
        raise TypeError(f"iou_thresholds must be a sequence of floats, got the number {iou_thresholds!r}")
    if isinstance(iou_thresholds, Tensor):
        iou_thresholds = iou_thresholds.tolist()
    values = np.asarray(iou_thresholds, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"iou_thresholds must be a non-empty 1-D sequence, got shape {list(values.shape)}")
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"iou_thresholds must lie in [0, 1], got {values.tolist()}")
    return values


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_curve(recall, precision) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, value in (("recall", recall), ("precision", precision)):
        a = np.asarray(value.detach().cpu().numpy() if isinstance(value, Tensor) else value, dtype=np.float64)
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one value per ranked detection), got shape {list(a.shape)}")
        if not np.all((a >= 0) & (a <= 1)):
            raise ValueError(f"{name} values must lie in [0, 1], got {a.tolist()}")
        arrays.append(a)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"recall and precision must have the same length, got {arrays[0].size} and {arrays[1].size}"
        )
    if np.any(np.diff(arrays[0]) < 0):
        raise ValueError("recall must be non-decreasing down the ranked list")
    return arrays[0], arrays[1]


# --- a ranked list: precision, recall, AP ----------------------------------------------------


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


# --- matching, the readable version ----------------------------------------------------------


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


# --- the data set: inputs ---------------------------------------------------------------------


def _cat(tensors: list, dtype, empty_shape=(0,)) -> Tensor:
    """Concatenate per-image tensors on the CPU as ``dtype`` (one copy from a GPU, not one per image)."""
    if not tensors:
        return torch.zeros(empty_shape, dtype=dtype)
    try:
        flat = torch.cat(tensors)
    except (RuntimeError, TypeError):  # mixed devices or dtypes that do not concatenate
        flat = torch.cat([t.cpu().to(dtype) for t in tensors])
    return flat.cpu().to(dtype)


def _explain_pred(p, where: str) -> None:
    """Raise the precise error for a prediction dict that failed the fast checks."""
    _check_keys(p, where, ("boxes", "scores", "labels"))
    _check_boxes(p["boxes"], f"{where}['boxes']", xyxy=False)
    n = p["boxes"].shape[0]
    _check_vector(p["scores"], f"{where}['scores']", n, "float")
    _check_vector(p["labels"], f"{where}['labels']", n, "int")


def _explain_target(t, where: str) -> None:
    _check_keys(t, where, ("boxes", "labels"))
    _check_boxes(t["boxes"], f"{where}['boxes']", xyxy=False)
    n = t["boxes"].shape[0]
    _check_vector(t["labels"], f"{where}['labels']", n, "int")
    _check_targets_extra(t, where, n)


def _targets_extra(targets, counts: list) -> dict:
    """Flat ``difficult``, ``iscrowd`` and ``area`` of all objects, checked (defaults where an image
    has none: not difficult, not a crowd, NaN area, i.e. the box's)."""
    keys = {"difficult": torch.bool, "iscrowd": torch.bool, "area": torch.float64}
    parts = {key: [] for key in keys}
    for i, (t, n) in enumerate(zip(targets, counts)):
        if len(t) > 2:
            _check_targets_extra(t, f"targets[{i}]", n)
        for key, values in parts.items():
            v = t.get(key)
            values.append(v.cpu() if v is not None else None)
    out = {}
    for key, dtype in keys.items():
        if all(v is None for v in parts[key]):
            out[key] = None
            continue
        filled = [(torch.full((n,), math.nan, dtype=torch.float64) if key == "area" else torch.zeros(n, dtype=dtype))
                  if v is None else (v.to(torch.float64) if key == "area" else v) for v, n in zip(parts[key], counts)]
        values = torch.cat(filled)
        if key == "iscrowd" and values.dtype != torch.bool:
            bad = (values != 0) & (values != 1)
            if bool(bad.any()):
                i = int(_image_of(counts)[bad.nonzero()[0, 0]])
                raise ValueError(f"targets[{i}]['iscrowd'] must hold 0 or 1, got {targets[i]['iscrowd'].tolist()}")
            values = values != 0
        out[key] = values.to(dtype)
    return out


def _image_of(counts: list) -> Tensor:
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.int64))


def _check_areas(area: Tensor | None, image: Tensor, targets) -> None:
    if area is None:
        return
    bad = ~(area >= 0) & ~torch.isnan(area) | torch.isinf(area)
    if bool(bad.any()):
        i = int(image[int(bad.nonzero()[0, 0])])
        raise ValueError(f"targets[{i}]['area'] must hold finite areas >= 0 (pixels²), "
                         f"got {targets[i]['area'].tolist()}")


def _flatten_boxes(preds, targets, plus_one: bool) -> tuple[dict, dict, Tensor, Tensor]:
    """Validate ``preds`` / ``targets`` and concatenate them: (detections, objects, det boxes,
    gt boxes), all on the CPU, boxes and scores in float64 (pycocotools computes in double)."""
    _check_image_lists(preds, targets)
    det_boxes, scores, det_labels, det_counts = [], [], [], []
    for i, p in enumerate(preds):
        try:  # the common case, quickly; the slow path below says what is wrong
            b, s, c = p["boxes"], p["scores"], p["labels"]
            n = b.shape[0]
            ok = (b.dim() == 2 and b.shape[1] == 4 and s.shape == (n,) and c.shape == (n,) and b.dtype in _REAL
                  and s.dtype in _FLOAT and c.dtype in _INT)
        except (TypeError, KeyError, AttributeError, IndexError):
            ok = False
        if not ok:
            _explain_pred(p, f"preds[{i}]")
        det_boxes.append(b)
        scores.append(s)
        det_labels.append(c)
        det_counts.append(n)
    gt_boxes, gt_labels, gt_counts = [], [], []
    extra = False
    for i, t in enumerate(targets):
        try:
            b, c = t["boxes"], t["labels"]
            n = b.shape[0]
            ok = b.dim() == 2 and b.shape[1] == 4 and c.shape == (n,) and b.dtype in _REAL and c.dtype in _INT
            extra = extra or len(t) > 2  # difficult / iscrowd / area: checked with their concatenation
        except (TypeError, KeyError, AttributeError, IndexError):
            ok = False
        if not ok:
            _explain_target(t, f"targets[{i}]")
        gt_boxes.append(b)
        gt_labels.append(c)
        gt_counts.append(n)
    det = {"image": _image_of(det_counts), "label": _cat(det_labels, torch.int64),
           "score": _cat(scores, torch.float64)}
    gt = {"image": _image_of(gt_counts), "label": _cat(gt_labels, torch.int64)}
    boxes = {"preds": _cat(det_boxes, torch.float64, (0, 4)), "targets": _cat(gt_boxes, torch.float64, (0, 4))}
    for name, dicts, image in (("preds", preds, det["image"]), ("targets", targets, gt["image"])):
        x1, y1, x2, y2 = boxes[name].unbind(1)
        bad = ~torch.isfinite(boxes[name]).all(1) | (x2 < x1) | (y2 < y1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            i = int(image[row])
            _check_boxes(dicts[i]["boxes"], f"{name}[{i}]['boxes']")
            raise ValueError(f"{name}[{i}]['boxes'] must hold finite numbers, got {boxes[name][row].tolist()}")
    if not bool(torch.isfinite(det["score"]).all()):
        i = int(det["image"][int((~torch.isfinite(det["score"])).nonzero()[0, 0])])
        raise ValueError(f"preds[{i}]['scores'] must be finite, got {preds[i]['scores'].tolist()}")
    flags = _targets_extra(targets, gt_counts) if extra else {"difficult": None, "iscrowd": None, "area": None}
    _check_areas(flags["area"], gt["image"], targets)
    num_gt = len(gt["label"])
    gt["crowd"] = flags["iscrowd"] if flags["iscrowd"] is not None else torch.zeros(num_gt, dtype=torch.bool)
    gt["ignore"] = gt["crowd"] | (flags["difficult"] if flags["difficult"] is not None
                                  else torch.zeros(num_gt, dtype=torch.bool))
    gt["area"] = _box_area(boxes["targets"], plus_one)
    if flags["area"] is not None:  # the annotation's area where given (COCO: the object's, not its box's)
        gt["area"] = torch.where(torch.isnan(flags["area"]), gt["area"], flags["area"])
    det["area"] = _box_area(boxes["preds"], plus_one)
    return det, gt, boxes["preds"], boxes["targets"]


# --- the data set: evaluation -----------------------------------------------------------------


def _detection_limits(max_detections: int | None) -> list:
    """The detection limits of the recall statistics: 1, 10 and ``max_detections`` (those up to it)."""
    if max_detections is None:
        return [1, 10, None]
    return sorted({m for m in (1, 10) if m < max_detections} | {max_detections})


def _limit_name(limit) -> str:
    return "all" if limit is None else str(limit)


def _mean_valid(values: np.ndarray) -> float:
    """pycocotools' summarize: the mean of the entries > -1, or -1 when there are none."""
    values = values[values > -1]
    return float(np.mean(values)) if values.size else -1.0


def _threshold_row(thresholds: np.ndarray, value: float) -> int | None:
    """Index of ``value`` among the IoU thresholds (the first, compared to 1e-12), or None when it
    is not evaluated (map_50 / map_75 are then NaN)."""
    hits = np.nonzero(np.isclose(thresholds, value, rtol=0, atol=1e-12))[0]
    return int(hits[0]) if len(hits) else None


@contextmanager
def _one_thread():
    # The evaluation is a few hundred small tensor operations: on a busy machine OpenMP's thread
    # hand-offs cost more than they bring (benchmark, 5000 images on 2 shared cores: 1.8 s on
    # one thread, 6 to 23 s on two), so we run it on one thread and restore the setting.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _argsort_unique(keys: Tensor) -> Tensor:
    """argsort of distinct int64 keys (NumPy's introsort: no stability needed, faster than torch's)."""
    return torch.from_numpy(np.argsort(keys.numpy()))


def _class_ids(det_labels: Tensor, gt_labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The classes present (sorted) and each label's index among them."""
    labels = torch.cat([det_labels, gt_labels])
    if len(labels) == 0:
        return torch.zeros(0, dtype=torch.long), det_labels.clone(), gt_labels.clone()
    low, high = int(labels.min()), int(labels.max())
    if high - low < 1 << 22:  # a lookup table instead of a sort
        present = torch.bincount(labels - low, minlength=high - low + 1) > 0
        classes = present.nonzero()[:, 0] + low
        lookup = torch.cumsum(present, 0) - 1
        return classes, lookup[det_labels - low], lookup[gt_labels - low]
    classes, ids = torch.unique(labels, return_inverse=True)
    return classes, ids[:len(det_labels)], ids[len(det_labels):]


def _first_reaching(levels: np.ndarray, num_pos: Tensor) -> Tensor:
    """For curves whose k-th point has recall ``k / num_pos`` (float64 division, as pycocotools),
    the first k whose recall reaches each level: Tensor[S, len(levels)] (``np.searchsorted``
    on the recalls, computed without them)."""
    levels_t = torch.as_tensor(np.asarray(levels, dtype=np.float64))[None]
    n = num_pos.to(torch.float64)[:, None]
    k = (torch.ceil(levels_t * n) - 2).clamp(min=1)  # at most three below the answer (k >= 1)
    for _ in range(4):
        k = k + ((k / n) < levels_t).to(k.dtype)
    return k.long()


def _curves_ap(envelope: Tensor, length: Tensor, num_pos: Tensor, method: str) -> tuple[Tensor, Tensor]:
    """AP of curves built from their TPs: row s holds, reversed, the envelope at its k-th TP in
    column L - k, ``length[s]`` TPs of ``num_pos[s]`` objects. Returns (interpolated precision at
    COCO's 101 levels [S, 101], AP by ``method`` [S]), as ``_ap_of_curves`` on the full curves."""
    width = envelope.shape[1]

    def read(levels):
        k = _first_reaching(levels, num_pos)
        value = envelope.gather(1, (width - k).clamp(0, width - 1))
        return torch.where((k >= 1) & (k <= length[:, None]), value, torch.zeros((), dtype=value.dtype))

    q = read(COCO_RECALL_THRESHOLDS)
    if method == "coco":
        return q, q.mean(1)
    if method == "voc07":
        return q, read(VOC07_RECALL_THRESHOLDS).mean(1)
    k = torch.arange(1, width + 1, dtype=torch.float64)[None]
    n = num_pos.to(torch.float64)[:, None]
    step = k / n - (k - 1) / n  # the recall gained at the k-th TP
    values = torch.flip(envelope, [1])
    return q, torch.where(k <= length[:, None], step * values, torch.zeros((), dtype=values.dtype)).sum(1)


def _evaluate(det: dict, gt: dict, pair_iou, num_images: int, thresholds: np.ndarray, method: str,
              max_detections: int | None, class_metrics: bool = False, extended: bool = False) -> dict:
    """The twelve statistics of a data set, for boxes and masks alike.

    Args:
        det: per detection (flat over the images) ``image``, ``label``, ``score``, ``area``.
        gt: per object ``image``, ``label``, ``ignore`` (difficult or crowd), ``crowd``, ``area``.
        pair_iou: ``f(det_index, gt_index) -> Tensor[P] float64``, the IoU of (detection, object)
            pairs given by their indices in ``det`` / ``gt`` (crowd regions as pycocotools).
    """
    coco = method == "coco"
    classes, det_cls, gt_cls = _class_ids(det["label"], gt["label"])
    num_classes, num_t = len(classes), len(thresholds)
    ranges = torch.tensor(list(COCO_AREA_RANGES.values()), dtype=torch.float64)  # [A, 2]
    num_a = len(ranges)
    limits = _detection_limits(max_detections)

    # 1. Detections in *class order*: by class, then by score with a stable sort, so that equal
    #    scores stay in image order and, inside an image, in input order (pycocotools sorts each
    #    image's detections with np.argsort(-score, kind="mergesort"), then a class's detections
    #    of all images the same way). Inside one image and class this is the ranking too.
    num_det = len(det["score"])
    by_score = torch.argsort(-det["score"], stable=True)
    score_rank = torch.empty_like(by_score)
    score_rank[by_score] = torch.arange(num_det)
    order = _argsort_unique(det_cls * max(num_det, 1) + score_rank)
    d_cls = det_cls[order]
    group = d_cls * num_images + det["image"][order]  # (class, image)
    # rank inside the group, and the cut at max_detections (pycocotools' maxDets)
    num_groups = num_classes * num_images
    group_size = torch.bincount(group, minlength=num_groups)
    by_group = _argsort_unique(group * max(num_det, 1) + torch.arange(num_det))
    rank = torch.empty_like(by_group)
    rank[by_group] = torch.arange(num_det) - (torch.cumsum(group_size, 0) - group_size)[group[by_group]]
    if max_detections is not None and num_det and int(group_size.max()) > max_detections:
        keep = rank < max_detections
        order, d_cls, group, rank = order[keep], d_cls[keep], group[keep], rank[keep]
    d_area = det["area"][order]
    d_outside = (d_area[None] < ranges[:, :1]) | (d_area[None] > ranges[:, 1:])  # [A, D]
    gt_group = gt_cls * num_images + gt["image"]
    gt_order = torch.argsort(gt_group, stable=True)  # objects by group, in annotation order
    g_group, g_cls = gt_group[gt_order], gt_cls[gt_order]
    g_area = gt["area"][gt_order]
    g_ignore = gt["ignore"][gt_order][None] | (g_area[None] < ranges[:, :1]) | (g_area[None] > ranges[:, 1:])
    g_crowd = gt["crowd"][gt_order]

    # 2. Match, every area range (its own ignored objects) and threshold at once.
    pair_det, pair_gt = pairs_in_groups(group, g_group)
    iou = pair_iou(order[pair_det], gt_order[pair_gt])
    found = match_ranked(pair_det, pair_gt, iou, group, g_group, g_ignore, g_crowd, thresholds,
                         "coco" if coco else "voc")
    cand, hit = found.det, found.hit  # [C] (in class order), [A, T, C]
    tp = hit & ~found.on_ignored
    counted = tp | (~hit & ~d_outside[:, cand][:, None])  # a TP or a FP, i.e. not ignored

    # 3. Per class, its ranked list over all images. Only true positives move the curve, so it is
    #    built from them: the k-th TP of a class has recall k / (objects) and precision
    #    k / (detections counted down to it); detections that match nothing count as FPs unless
    #    outside the area range.
    class_start = torch.searchsorted(d_cls, torch.arange(num_classes + 1))
    other = torch.ones(len(order), dtype=torch.bool)
    other[cand] = False
    others = torch.cat([torch.zeros(num_a, 1, dtype=torch.int32),
                        torch.cumsum(other[None] & ~d_outside, 1, dtype=torch.int32)], 1)  # [A, D + 1]
    c_cls = d_cls[cand]
    c_start = torch.searchsorted(c_cls, c_cls, side="left")  # the class's first candidate
    zero = torch.zeros(num_a, num_t, 1, dtype=torch.int32)
    tp_sum = torch.cat([zero, torch.cumsum(tp, 2, dtype=torch.int32)], 2)
    seen = torch.cat([zero, torch.cumsum(counted, 2, dtype=torch.int32)], 2)
    a_i, t_i, c_i = tp.nonzero(as_tuple=True)  # every TP entry of every curve
    start_i = c_start[c_i]
    tp_index = (tp_sum[a_i, t_i, c_i + 1] - tp_sum[a_i, t_i, start_i]).long()  # k of the k-th TP
    seen_i = (seen[a_i, t_i, c_i + 1] - seen[a_i, t_i, start_i]
              + others[a_i, cand[c_i] + 1] - others[a_i, class_start[c_cls[c_i]]])
    tp_cls = c_cls[c_i]
    num_pos = torch.zeros(num_a, num_classes, dtype=torch.long)  # objects that count, per range and class
    for a in range(num_a):
        num_pos[a] = torch.bincount(g_cls[~g_ignore[a]], minlength=num_classes)

    # recall with at most 1, 10, max_detections per image and class: pycocotools' eval["recall"]
    bucket = torch.searchsorted(torch.tensor([m if m is not None else len(order) + 1 for m in limits]),
                                rank[cand[c_i]], right=True)  # counts for the limits from this index on
    slot = ((a_i * num_t + t_i) * num_classes + tp_cls) * len(limits) + bucket
    hits = torch.bincount(slot, minlength=num_a * num_t * num_classes * len(limits))
    hits = torch.cumsum(hits.view(num_a, num_t, num_classes, len(limits)), 3)
    valid = num_pos > 0  # [A, K]
    recall = torch.where(valid[:, None, :, None], hits.double() / num_pos.clamp(min=1)[:, None, :, None].double(),
                         torch.tensor(-1.0, dtype=torch.float64))
    recall = recall.permute(1, 2, 0, 3).numpy()  # [T, K, A, M] as pycocotools

    # precision curves at the largest limit, per chunk of classes: one row per (range,
    # threshold, class), the k-th TP's precision in column L - k (reversed, so that a running
    # maximum along the row is the envelope)
    precision = -np.ones((num_t, len(COCO_RECALL_THRESHOLDS), num_classes, num_a))  # [T, R, K, A]
    ap = -np.ones((num_t, num_classes, num_a))  # for "voc" / "voc07"
    value = _precision(tp_index, seen_i)
    by_size = torch.argsort(num_pos[0], descending=True, stable=True).tolist()
    start = 0
    while start < num_classes:
        width = max(int(num_pos[0, by_size[start]]), 1)  # the most TPs a curve of the chunk can have
        size = max(1, _CURVE_ELEMENTS // (num_a * num_t * width))
        chunk = torch.tensor(by_size[start:start + size])
        start += size
        local = torch.full((num_classes,), -1, dtype=torch.long)
        local[chunk] = torch.arange(len(chunk))
        sel = local[tp_cls] >= 0
        row = (a_i[sel] * num_t + t_i[sel]) * len(chunk) + local[tp_cls[sel]]
        curves = torch.zeros(num_a * num_t * len(chunk), width, dtype=torch.float64)
        curves[row, width - tp_index[sel]] = value[sel]
        envelope = torch.cummax(curves, 1).values
        length = torch.bincount(row, minlength=len(curves))
        n_pos = num_pos[:, chunk].clamp(min=1)[:, None, :].expand(num_a, num_t, -1).reshape(-1)
        q, ap_chunk = _curves_ap(envelope, length, n_pos, method)
        q = q.view(num_a, num_t, len(chunk), -1).permute(1, 3, 2, 0).numpy()  # [T, R, k, A]
        ap_chunk = ap_chunk.view(num_a, num_t, len(chunk)).permute(1, 2, 0).numpy()
        ok = valid[:, chunk].T.numpy()  # [k, A]
        idx = chunk.numpy()
        precision[:, :, idx, :] = np.where(ok[None, None], q, -1.0)
        ap[:, idx, :] = np.where(ok[None], ap_chunk, -1.0)

    # 4. The statistics, as pycocotools' summarize() reads them off precision and recall.
    source = precision if coco else ap[:, None]  # [T, R or 1, K, A]

    result = _statistics_of(source, recall, thresholds, limits)
    labels = classes.tolist()
    has_objects = valid[0].tolist()
    result["map_per_class"] = {labels[k]: _mean_valid(source[:, :, k, 0]) for k in range(num_classes)
                               if has_objects[k]}
    if class_metrics:
        result[f"mar_{_limit_name(limits[-1])}_per_class"] = {
            labels[k]: _mean_valid(recall[:, k, 0, -1]) for k in range(num_classes) if has_objects[k]}
        result["per_class"] = {labels[k]: _statistics_of(source[:, :, k:k + 1], recall[:, k:k + 1], thresholds, limits)
                               for k in range(num_classes) if has_objects[k]}
    if extended:
        result.update({"precision": torch.from_numpy(precision), "recall": torch.from_numpy(recall),
                       "classes": labels, "iou_thresholds": thresholds.tolist(),
                       "area_ranges": list(COCO_AREA_RANGES), "max_detections": limits})
    return result


def _statistics_of(source: np.ndarray, recall: np.ndarray, thresholds: np.ndarray, limits: list) -> dict:
    """The twelve numbers from AP / precision [T, R, K, A] and recall [T, K, A, M] arrays."""
    out = {}

    def at(threshold):
        row = _threshold_row(thresholds, threshold)
        return _mean_valid(source[row:row + 1, :, :, 0]) if row is not None else math.nan

    out["map"], out["map_50"], out["map_75"] = _mean_valid(source[:, :, :, 0]), at(0.5), at(0.75)
    for a, size_name in enumerate(("small", "medium", "large"), start=1):
        out[f"map_{size_name}"] = _mean_valid(source[:, :, :, a])
    for m, limit in enumerate(limits):
        out[f"mar_{_limit_name(limit)}"] = _mean_valid(recall[:, :, 0, m])
    for a, size_name in enumerate(("small", "medium", "large"), start=1):
        out[f"mar_{size_name}"] = _mean_valid(recall[:, :, a, -1])
    return out


def mean_average_precision(preds: list, targets: list, iou_thresholds=None, method: str = "coco",
                           max_detections: int | None = 100, *, class_metrics: bool = False,
                           plus_one: bool = False, extended_summary: bool = False) -> dict:
    """COCO's twelve statistics (mAP, AP by size, average recall) of a detector on a data set.

    Args:
        preds (list of dict, one per image): ``"boxes"`` (Tensor[N, 4], x1 y1 x2 y2),
            ``"scores"`` (Tensor[N]), ``"labels"`` (Tensor[N] int).
        targets (list of dict, same order): ``"boxes"`` (Tensor[M, 4]), ``"labels"``
            (Tensor[M] int); optional ``"iscrowd"`` (Tensor[M] bool or 0/1: crowd regions, as
            COCO annotates them), ``"area"`` (Tensor[M]: the object's area in pixels² for the
            size ranges; NaN or absent: the box's area) and ``"difficult"`` (Tensor[M] bool,
            ignored objects as in VOC).
        iou_thresholds (sequence of floats in [0, 1], optional): default 0.50:0.05:0.95 for
            "coco", [0.5] for "voc"/"voc07".
        method: "coco" (== pycocotools), "voc" (VOC2010+ all-point AP) or "voc07" (11-point).
        max_detections: keep the ``max_detections`` highest-scoring detections per image and
            class (pycocotools' maxDets, 100); None keeps all (the VOC devkit has no limit).
        class_metrics: also return the twelve statistics per class (``"per_class"``) and
            ``"mar_100_per_class"`` (torchmetrics' name).
        plus_one: measure boxes in integer pixels, ``x2 - x1 + 1`` wide, in every IoU and area
            (the VOC devkit's convention; COCO measures ``x2 - x1``).
        extended_summary: also return the curves: ``"precision"`` (Tensor[T, 101, K, 4], the
            interpolated precision at COCO's 101 recall levels per threshold, class and area
            range; -1 for a class without objects), ``"recall"`` (Tensor[T, K, 4, 3]), and
            ``"classes"``, ``"iou_thresholds"``, ``"area_ranges"``, ``"max_detections"``.

    Returns:
        dict with the twelve ``STATISTICS`` (floats): ``"map"`` (mean over thresholds and
        classes), ``"map_50"`` / ``"map_75"`` (at IoU 0.5 / 0.75; NaN when that threshold is not
        evaluated), ``"map_small"`` / ``"map_medium"`` / ``"map_large"`` (objects of area
        < 32², 32²..96², > 96²), ``"mar_1"`` / ``"mar_10"`` / ``"mar_100"`` (recall averaged
        over thresholds and classes with at most 1 / 10 / 100 detections per image and class;
        the last one is named after ``max_detections``, ``"mar_all"`` for None), ``"mar_small"``
        / ``"mar_medium"`` / ``"mar_large"``; and ``"map_per_class"`` ({label: AP averaged over
        the thresholds}) for the classes with ground truth. As in pycocotools, a value that
        has nothing to average (no class with objects, or none of that size) is -1.
    """
    thresholds = _check_options(iou_thresholds, method, max_detections)
    class_metrics = _check_flag(class_metrics, "class_metrics")
    plus_one = _check_flag(plus_one, "plus_one")
    extended_summary = _check_flag(extended_summary, "extended_summary")
    with _one_thread():
        det, gt, det_boxes, gt_boxes = _flatten_boxes(preds, targets, plus_one)

        def pair_iou(d, g):
            return _box_pair_iou(det_boxes[d], gt_boxes[g], gt["crowd"][g], plus_one)

        return _evaluate(det, gt, pair_iou, len(preds), thresholds, method, max_detections, class_metrics,
                         extended_summary)


def summarize(result: dict, iou_thresholds=None) -> str:
    """The statistics of ``mean_average_precision`` laid out as pycocotools' ``COCOeval.summarize()``
    prints them (twelve lines)."""
    if not isinstance(result, Mapping) or "map" not in result:
        raise TypeError(f"result must be the dict mean_average_precision returns, got {type(result).__name__}")
    thresholds = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, dtype=np.float64)
    recall_keys = [k for k in result if k.startswith("mar_") and k.split("_")[1] not in ("small", "medium", "large")
                   and not k.endswith("_per_class")]
    top = recall_keys[-1].split("_")[1] if recall_keys else "100"
    line = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3s} ] = {:0.3f}"
    span = f"{thresholds[0]:0.2f}:{thresholds[-1]:0.2f}"
    rows = [("Average Precision", "(AP)", span, "all", top, "map"),
            ("Average Precision", "(AP)", "0.50", "all", top, "map_50"),
            ("Average Precision", "(AP)", "0.75", "all", top, "map_75"),
            ("Average Precision", "(AP)", span, "small", top, "map_small"),
            ("Average Precision", "(AP)", span, "medium", top, "map_medium"),
            ("Average Precision", "(AP)", span, "large", top, "map_large")]
    rows += [("Average Recall", "(AR)", span, "all", k.split("_")[1], k) for k in recall_keys]
    rows += [("Average Recall", "(AR)", span, size, top, f"mar_{size}") for size in ("small", "medium", "large")]
    return "\n".join(line.format(title, kind, iou, area, limit, float(result[key]))
                     for title, kind, iou, area, limit, key in rows)

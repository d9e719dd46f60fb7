"""Evaluating detectors: precision and recall over a ranked list, AP and mAP.

A detector returns, for every image, boxes with a class label and a confidence score. To score
it we (1) *match* detections to ground-truth boxes: going down the detections of one class in
order of decreasing score, a detection is a true positive (TP) when it overlaps a ground-truth
box of its class enough (IoU threshold) that no higher-scoring detection has taken already,
and a false positive (FP) otherwise; (2) read the ranked list as a **precision/recall curve**;
(3) summarise the curve by its area, the **average precision** (AP); (4) average AP over the
classes (and, COCO style, over the IoU thresholds 0.50:0.05:0.95): the **mAP**.

Two conventions are implemented, each reproducing its reference exactly:

- ``method="coco"`` == pycocotools' ``COCOeval`` (``stats[0:3]``, area range "all"): IoU >= t;
  each detection takes the *best still-unmatched* ground truth (ties: the later one, as
  pycocotools' loop does); at most ``max_detections`` per image and class; precision
  interpolated at 101 recall points.
- ``method="voc"`` / ``"voc07"`` == the PASCAL VOC devkit (``voc_eval``, without the "+1" pixel
  convention): IoU > t with the *highest-IoU* ground truth, matched or not (a second hit on it
  is a duplicate, i.e. FP); AP as the area under the precision envelope (VOC2010+, all points)
  or the 11-point mean of VOC2007.

Ground truth flagged ``difficult`` is ignored by both: a detection that matches it counts
neither as TP nor FP, and it does not count towards recall (for "coco" it is what pycocotools
calls an *ignore* region; pycocotools also ignores boxes with area outside [0, 1e10], the "all"
area range, and we do too). Classes without (non-ignored) ground truth are excluded from the
mean; when no class has any, every value is -1, as pycocotools reports.

The readable version of each step (``precision_recall``, ``match_detections``) is a loop over
a short list, as on the slides; ``mean_average_precision`` is the fast one: the matching runs
for every (image, class) group and every IoU threshold at once, looping only over the rank of
a detection inside its group (at most ``max_detections`` steps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from lecture_lib.boxes import _check_boxes, box_iou

__all__ = [
    "METHODS",
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_THRESHOLDS",
    "VOC07_RECALL_THRESHOLDS",
    "precision_recall",
    "average_precision",
    "interpolated_precision",
    "MatchStep",
    "MatchResult",
    "match_detections",
    "mean_average_precision",
]

METHODS = ("coco", "voc", "voc07")
# pycocotools Params.setDetParams builds these with linspace ("np.arange causes trouble"); we use
# the very same floats so that an IoU or a recall that sits exactly on a threshold is compared
# the same way.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
# VOC devkit (voc_eval.voc_ap, use_07_metric): np.arange(0., 1.1, 0.1), 11 recall levels.
VOC07_RECALL_THRESHOLDS = np.arange(0.0, 1.1, 0.1)
_COCO_AREA_ALL = (0.0, 1e5**2)  # pycocotools areaRng "all"
_COCO_MAX_IOU = 1 - 1e-10  # pycocotools: iou = min([t, 1 - 1e-10])
_CHUNK_ELEMENTS = 1 << 24  # matching state per chunk of groups: T x groups x max GT <= this


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


def _check_inputs(preds, targets) -> dict:
    """Validate ``preds`` / ``targets`` and concatenate them into flat float64 / int64 tensors."""
    _check_image_lists(preds, targets)
    specs = (("preds", preds, ("boxes", "scores", "labels")), ("targets", targets, ("boxes", "labels")))
    flat = {}
    for name, dicts, keys in specs:
        boxes, vectors, counts = [], {k: [] for k in keys[1:]}, []
        difficult = []
        for i, d in enumerate(dicts):
            where = f"{name}[{i}]"
            _check_keys(d, where, keys)
            b = d["boxes"]
            _check_boxes(b, f"{where}['boxes']", xyxy=False)  # type and shape; x1 <= x2 checked below
            n = b.shape[0]
            for k in keys[1:]:
                v = d[k]
                if not isinstance(v, Tensor):
                    raise TypeError(f"{where}['{k}'] must be a torch.Tensor of shape [{n}], got {type(v).__name__}")
                if v.shape != (n,):
                    raise ValueError(
                        f"{where}['{k}'] must have shape [N] with N = {n} (one per box), got {list(v.shape)}"
                    )
                integer = k == "labels"
                if integer and (v.is_floating_point() or v.is_complex() or v.dtype == torch.bool):
                    raise TypeError(f"{where}['labels'] must hold integers, got dtype {v.dtype}")
                if not integer and not v.is_floating_point():
                    raise TypeError(f"{where}['scores'] must hold floating-point numbers, got dtype {v.dtype}")
                vectors[k].append(v)
            if name == "targets":
                flag = d.get("difficult")
                if flag is None:
                    flag = torch.zeros(n, dtype=torch.bool)
                elif not isinstance(flag, Tensor) or flag.dtype != torch.bool or flag.shape != (n,):
                    got = f"{flag.dtype} {list(flag.shape)}" if isinstance(flag, Tensor) else type(flag).__name__
                    raise TypeError(f"{where}['difficult'] must be a bool tensor of shape [{n}], got {got}")
                difficult.append(flag)
            boxes.append(b)
            counts.append(n)
        prefix = "det" if name == "preds" else "gt"
        # evaluation runs on the CPU in float64 (pycocotools computes IoU in double precision)
        all_boxes = torch.cat([b.cpu() for b in boxes]).double() if boxes else torch.zeros(0, 4, dtype=torch.float64)
        counts_t = torch.tensor(counts, dtype=torch.int64)
        image = torch.repeat_interleave(torch.arange(len(counts)), counts_t)
        # Value checks once on the concatenation (fast); name the image when one fails.
        x1, y1, x2, y2 = all_boxes.unbind(1)
        bad = ~torch.isfinite(all_boxes).all(1) | (x2 < x1) | (y2 < y1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            i = int(image[row])
            _check_boxes(dicts[i]["boxes"], f"{name}[{i}]['boxes']")
            raise ValueError(f"{name}[{i}]['boxes'] must hold finite numbers, got {all_boxes[row].tolist()}")
        flat[f"{prefix}_boxes"] = all_boxes
        flat[f"{prefix}_image"] = image
        flat[f"{prefix}_labels"] = (torch.cat([v.cpu() for v in vectors["labels"]]).long() if boxes
                                    else torch.zeros(0, dtype=torch.long))
        if name == "preds":
            scores = (torch.cat([v.cpu() for v in vectors["scores"]]).double() if boxes
                      else torch.zeros(0, dtype=torch.float64))
            if not bool(torch.isfinite(scores).all()):
                i = int(image[int((~torch.isfinite(scores)).nonzero()[0, 0])])
                raise ValueError(f"preds[{i}]['scores'] must be finite, got {dicts[i]['scores'].tolist()}")
            flat["det_scores"] = scores
        else:
            flat["gt_difficult"] = (torch.cat([v.cpu() for v in difficult]) if boxes
                                    else torch.zeros(0, dtype=torch.bool))
    flat["num_images"] = len(preds)
    return flat


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
    detections = torch.arange(1, len(tp) + 1, dtype=torch.float64)
    return true_positives / detections, true_positives / num_gt


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
    levels = np.asarray(recall_levels, dtype=np.float64)
    q = _coco_interpolate(torch.from_numpy(recall)[None], torch.from_numpy(precision)[None], levels)
    return q[0].numpy()


def _coco_interpolate(recall: Tensor, precision: Tensor, levels: np.ndarray = COCO_RECALL_THRESHOLDS) -> Tensor:
    """pycocotools COCOeval.accumulate for T curves at once: recall, precision (Tensor[T, n])."""
    num_curves, n = recall.shape
    if n == 0:
        return torch.zeros(num_curves, len(levels), dtype=torch.float64)
    # The precision envelope: for i from the end, pr[i-1] = max(pr[i-1], pr[i]).
    envelope = torch.flip(torch.cummax(torch.flip(precision, [1]), dim=1).values, [1])
    levels_t = torch.from_numpy(levels).to(recall.dtype).expand(num_curves, -1).contiguous()
    index = torch.searchsorted(recall.contiguous(), levels_t, side="left")
    value = envelope.gather(1, index.clamp(max=n - 1))
    return torch.where(index < n, value, torch.zeros((), dtype=value.dtype))


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
    if method == "coco":
        return float(np.mean(interpolated_precision(recall, precision)))
    if method == "voc07":
        # VOC devkit voc_ap(use_07_metric=True), summed in the same order.
        ap = 0.0
        for level in VOC07_RECALL_THRESHOLDS:
            reached = recall >= level
            ap = ap + (float(np.max(precision[reached])) if reached.any() else 0.0) / 11.0
        return float(ap)
    # VOC devkit voc_ap: sentinels, the precision envelope, sum of (delta recall) * precision
    # where recall changes.
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


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


def match_detections(boxes: Tensor, scores: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5,
                     method: str = "coco", gt_ignore: Tensor | None = None) -> MatchResult:
    """Greedy matching of one image's detections of one class to its ground truth.

    Go down the detections by decreasing score (stable: equal scores keep input order):

    - ``"coco"``: take the still-unmatched ground truth with the highest IoU >= threshold
      (ties: the later box, as pycocotools' loop does; non-ignored boxes first);
    - ``"voc"`` / ``"voc07"``: look at the ground truth with the highest IoU (matched or not);
      if IoU > threshold it is a TP when that box is still free, a duplicate (FP) otherwise.

    A detection that lands on an ignored (difficult) box is "ignored": neither TP nor FP.

    Args:
        boxes (Tensor[N, 4]): detections (x1, y1, x2, y2).
        scores (Tensor[N]): their confidences.
        gt_boxes (Tensor[M, 4]): ground-truth boxes of the same class.
        iou_threshold: in [0, 1].
        method: "coco", "voc" or "voc07".
        gt_ignore (Tensor[M] bool, optional): ground truth to ignore (VOC "difficult").

    Returns:
        MatchResult, with the list of ``MatchStep`` for a step-through.
    """
    _check_boxes(boxes, "boxes")
    _check_boxes(gt_boxes, "gt_boxes")
    (threshold,) = _check_options([iou_threshold], method, None)
    if not isinstance(scores, Tensor) or scores.shape != (boxes.shape[0],):
        raise ValueError(f"scores must be a Tensor of shape [{boxes.shape[0]}], got {getattr(scores, 'shape', scores)}")
    num_gt = gt_boxes.shape[0]
    ignore = torch.zeros(num_gt, dtype=torch.bool) if gt_ignore is None else gt_ignore.cpu()
    if ignore.shape != (num_gt,) or ignore.dtype != torch.bool:
        raise ValueError(
            f"gt_ignore must be a bool tensor of shape [{num_gt}], got {ignore.dtype} {list(ignore.shape)}"
        )
    boxes, scores, gt_boxes = boxes.cpu(), scores.cpu(), gt_boxes.cpu()
    ious = box_iou(boxes.double(), gt_boxes.double()).nan_to_num(0.0)  # two empty boxes: IoU 0
    order = torch.sort(-scores.double(), stable=True).indices
    matched = torch.full((boxes.shape[0],), -1, dtype=torch.long)
    status = ["fp"] * boxes.shape[0]
    taken = torch.zeros(num_gt, dtype=torch.bool)
    steps = []
    for rank, d in enumerate(order.tolist()):
        row = ious[d]
        if method == "coco":
            candidates = ~taken & (row >= min(threshold, _COCO_MAX_IOU))
            j = -1
            for pool in (candidates & ~ignore, candidates & ignore):  # real boxes before ignored ones
                if pool.any():
                    j = max(pool.nonzero()[:, 0].tolist(), key=lambda g: (float(row[g]), g))
                    break
        else:
            j = int(row.argmax()) if num_gt else -1
            candidates = torch.zeros(num_gt, dtype=torch.bool)
            if j >= 0 and row[j] > threshold:
                candidates[j] = True
                if taken[j] and not ignore[j]:
                    j = -1  # a duplicate: the best box was found already
            else:
                j = -1
        if j >= 0:
            matched[d] = j
            status[d] = "ignored" if ignore[j] else "tp"
            taken[j] = True
        steps.append(MatchStep(rank, d, float(scores[d]), row.clone(), candidates, j, status[d], taken.clone()))
    return MatchResult(order, matched, status, taken, steps)


# --- matching, the fast version --------------------------------------------------------------


def _paired_iou(boxes: Tensor, gt_boxes: Tensor) -> Tensor:
    """IoU of ``boxes[i]`` (Tensor[n, 4]) with each of ``gt_boxes[i]`` (Tensor[n, M, 4]) -> [n, M].

    ``box_iou`` batched over groups, with the same operations in the same order (and so the same
    floats as pycocotools' bbox IoU); two empty boxes get 0 instead of NaN.
    """
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    gt_area = (gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])
    top_left = torch.max(boxes[:, None, :2], gt_boxes[..., :2])
    bottom_right = torch.min(boxes[:, None, 2:], gt_boxes[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    intersection = wh[..., 0] * wh[..., 1]
    return (intersection / (area[:, None] + gt_area - intersection)).nan_to_num(0.0)


def _last_argmax(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Index of the largest ``values[..., j]`` with ``mask`` (the last one on ties) and whether any."""
    masked = torch.where(mask, values, torch.tensor(-math.inf, dtype=values.dtype))
    last = values.shape[-1] - 1 - torch.flip(masked, [-1]).argmax(-1)
    return last, mask.any(-1)


def _match_groups(det_slot, det_rank, det_boxes, gt_slot, gt_rank, gt_boxes, gt_ignore,
                  n_det, n_gt, thresholds, method):
    """Match every (image, class) group that has detections and ground truth.

    Groups are numbered 0..G-1 (``*_slot``), detections and ground truth carry their rank inside
    their group. Returns, per detection, ``(matched, on_ignored)``, both Tensor[T, N] bool.
    For "voc" it is the devkit rule; for "coco" the greedy pycocotools rule, run for all groups
    and thresholds at once, one detection rank after the other.
    """
    num_t, num_det = len(thresholds), det_slot.shape[0]
    matched = torch.zeros(num_t, num_det, dtype=torch.bool)
    on_ignored = torch.zeros(num_t, num_det, dtype=torch.bool)
    if num_det == 0 or n_gt.numel() == 0:
        return matched, on_ignored
    thr = torch.from_numpy(thresholds)
    coco = method == "coco"
    if coco:
        thr = thr.clamp(max=_COCO_MAX_IOU)
    # Chunks of groups, the ones with the most ground truth first, so the padded state
    # [T, groups, max GT] stays bounded.
    by_gt = torch.argsort(n_gt, descending=True, stable=True)
    start = 0
    det_index = torch.arange(num_det)
    best_gt = torch.full((num_det,), -1, dtype=torch.long)  # voc: the highest-IoU box
    best_iou = torch.full((num_det,), -math.inf, dtype=torch.float64)
    while start < len(by_gt):
        width = int(n_gt[by_gt[start]])
        size = max(1, _CHUNK_ELEMENTS // (num_t * width))
        chunk = by_gt[start:start + size]
        start += size
        # inside the chunk, most detections first: at rank d only a prefix is still active
        chunk = chunk[torch.argsort(n_det[chunk], descending=True, stable=True)]
        local = torch.full((len(n_gt),), -1, dtype=torch.long)
        local[chunk] = torch.arange(len(chunk))
        depth = int(n_det[chunk[0]])
        d_local = local[det_slot]
        d_sel = d_local >= 0
        g_local = local[gt_slot]
        g_sel = g_local >= 0
        dets = torch.zeros(len(chunk), depth, 4, dtype=torch.float64)
        dets[d_local[d_sel], det_rank[d_sel]] = det_boxes[d_sel]
        det_at = torch.full((len(chunk), depth), -1, dtype=torch.long)  # detection index per slot
        det_at[d_local[d_sel], det_rank[d_sel]] = det_index[d_sel]
        gts = torch.zeros(len(chunk), width, 4, dtype=torch.float64)
        gts[g_local[g_sel], gt_rank[g_sel]] = gt_boxes[g_sel]
        valid = torch.zeros(len(chunk), width, dtype=torch.bool)
        valid[g_local[g_sel], gt_rank[g_sel]] = True
        ignore = torch.zeros(len(chunk), width, dtype=torch.bool)
        ignore[g_local[g_sel], gt_rank[g_sel]] = gt_ignore[g_sel]
        regular = valid & ~ignore
        any_ignore = bool(ignore.any())
        # an extra column that absorbs "no match" writes
        taken = torch.zeros(num_t, len(chunk), width + 1, dtype=torch.bool)
        active_counts = n_det[chunk]
        for d in range(depth):
            n = int((active_counts > d).sum())
            iou = torch.where(valid[:n], _paired_iou(dets[:n, d], gts[:n]), torch.tensor(-1.0, dtype=torch.float64))
            ids = det_at[:n, d]
            if not coco:
                # VOC devkit: the highest-IoU box (the first on ties), taken or not
                j = iou.argmax(-1)
                best_gt[ids] = j
                best_iou[ids] = iou.gather(1, j[:, None])[:, 0]
                continue
            free = ~taken[:, :n, :width]
            candidates = (iou[None] >= thr[:, None, None]) & free  # [T, n, width]
            j, found = _last_argmax(iou[None], candidates & regular[:n])
            hit_ignored = torch.zeros_like(found)
            if any_ignore:
                j_ig, found_ig = _last_argmax(iou[None], candidates & ignore[:n])
                hit_ignored = ~found & found_ig
                j = torch.where(found, j, j_ig)
                found = found | found_ig
            taken[:, :n].scatter_(2, torch.where(found, j, width)[..., None], True)
            matched[:, ids] = found
            on_ignored[:, ids] = hit_ignored
    if coco:
        return matched, on_ignored
    # VOC: over the threshold, the first detection (in rank order) on a box is a TP, later ones
    # are duplicates; on a difficult box it is ignored.
    has = best_gt >= 0
    hit = has[None] & (best_iou[None] > thr[:, None])  # [T, N]
    box_ignored = torch.zeros(num_det, dtype=torch.bool)
    key = torch.full((num_det,), -1, dtype=torch.long)
    width = int(n_gt.max())
    # identify the box: ground-truth index in the flat arrays
    gt_lookup = torch.full((len(n_gt), width), -1, dtype=torch.long)
    gt_lookup[gt_slot, gt_rank] = torch.arange(len(gt_slot))
    key[has] = gt_lookup[det_slot[has], best_gt[has]]
    box_ignored[has] = gt_ignore[key[has]]
    on_ignored = hit & box_ignored[None]
    claims = hit & ~box_ignored[None]
    for t in range(num_t):
        idx = claims[t].nonzero()[:, 0]  # detections sorted by (group, rank) already
        k = key[idx]
        order = torch.argsort(k, stable=True)
        first = torch.ones(len(idx), dtype=torch.bool)
        first[1:] = k[order][1:] != k[order][:-1]
        matched[t, idx[order[first]]] = True
    return matched | on_ignored, on_ignored


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


def mean_average_precision(preds: list, targets: list, iou_thresholds=None, method: str = "coco",
                           max_detections: int | None = 100) -> dict:
    """Mean average precision over classes (and IoU thresholds) of a detector on a data set.

    Args:
        preds (list of dict, one per image): ``"boxes"`` (Tensor[N, 4], x1 y1 x2 y2),
            ``"scores"`` (Tensor[N]), ``"labels"`` (Tensor[N] int).
        targets (list of dict, same order): ``"boxes"`` (Tensor[M, 4]), ``"labels"``
            (Tensor[M] int), optional ``"difficult"`` (Tensor[M] bool, ignored ground truth).
        iou_thresholds (sequence of floats in [0, 1], optional): default 0.50:0.05:0.95 for
            "coco", [0.5] for "voc"/"voc07".
        method: "coco" (== pycocotools), "voc" (VOC2010+ all-point AP) or "voc07" (11-point).
        max_detections: keep the ``max_detections`` highest-scoring detections per image and
            class (pycocotools' maxDets, 100); None keeps all (the VOC devkit has no limit).

    Returns:
        dict with ``"map"`` (mean over thresholds and classes), ``"map_50"`` / ``"map_75"``
        (at IoU 0.5 / 0.75; NaN when that threshold is not evaluated) and ``"map_per_class"``
        ({label: AP averaged over the thresholds}) for the classes with ground truth. Every
        value is -1 when no class has ground truth.
    """
    thresholds = _check_options(iou_thresholds, method, max_detections)
    with _one_thread():
        flat = _check_inputs(preds, targets)
        return _evaluate(flat, thresholds, method, max_detections)


def _evaluate(flat: dict, thresholds: np.ndarray, method: str, max_detections: int | None) -> dict:
    """mean_average_precision on the validated, concatenated inputs."""
    num_images = flat["num_images"]
    coco = method == "coco"

    # 1. (image, class) groups; inside a group, detections ranked by score with a stable sort
    #    (pycocotools: np.argsort(-score, kind="mergesort")) and cut at max_detections.
    classes = torch.unique(torch.cat([flat["det_labels"], flat["gt_labels"]]))
    num_classes = len(classes)
    det_cls = torch.searchsorted(classes, flat["det_labels"])
    gt_cls = torch.searchsorted(classes, flat["gt_labels"])
    det_group = det_cls * num_images + flat["det_image"]
    gt_group = gt_cls * num_images + flat["gt_image"]
    order = torch.argsort(-flat["det_scores"], stable=True)
    order = order[torch.argsort(det_group[order], stable=True)]
    group_sorted = det_group[order]
    rank = torch.arange(len(order)) - torch.searchsorted(group_sorted, group_sorted, side="left")
    if max_detections is not None:
        order, rank = order[rank < max_detections], rank[rank < max_detections]
    det_group = det_group[order]
    det_boxes = flat["det_boxes"][order]
    det_scores = flat["det_scores"][order]
    det_cls = det_cls[order]
    gt_order = torch.argsort(gt_group, stable=True)
    gt_group = gt_group[gt_order]
    gt_rank = torch.arange(len(gt_order)) - torch.searchsorted(gt_group, gt_group, side="left")
    gt_boxes = flat["gt_boxes"][gt_order]
    gt_cls = gt_cls[gt_order]
    gt_ignore = flat["gt_difficult"][gt_order]
    det_outside = torch.zeros(len(order), dtype=torch.bool)
    if coco:  # pycocotools area range "all": boxes outside [0, 1e10] are ignored
        def outside(b):
            area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            return (area < _COCO_AREA_ALL[0]) | (area > _COCO_AREA_ALL[1])
        gt_ignore = gt_ignore | outside(gt_boxes)
        det_outside = outside(det_boxes)

    # 2. match inside the groups that have both detections and ground truth
    num_groups = num_classes * num_images
    n_det_all = torch.bincount(det_group, minlength=num_groups)
    n_gt_all = torch.bincount(gt_group, minlength=num_groups)
    both = ((n_det_all > 0) & (n_gt_all > 0)).nonzero()[:, 0]
    slot = torch.full((num_groups,), -1, dtype=torch.long)
    slot[both] = torch.arange(len(both))
    det_slot, gt_slot = slot[det_group], slot[gt_group]
    d_in, g_in = det_slot >= 0, gt_slot >= 0
    matched = torch.zeros(len(thresholds), len(order), dtype=torch.bool)
    on_ignored = torch.zeros_like(matched)
    if len(both):
        m, ig = _match_groups(det_slot[d_in], rank[d_in], det_boxes[d_in], gt_slot[g_in], gt_rank[g_in],
                              gt_boxes[g_in], gt_ignore[g_in], n_det_all[both], n_gt_all[both], thresholds, method)
        matched[:, d_in], on_ignored[:, d_in] = m, ig
    ignored = on_ignored | (~matched & det_outside[None])
    tp = matched & ~ignored
    fp = ~matched & ~ignored

    # 3. per class: all its detections ranked by score (stable, ties in image order), the
    #    precision/recall curve, AP.
    by_score = torch.argsort(-det_scores, stable=True)
    by_score = by_score[torch.argsort(det_cls[by_score], stable=True)]
    tp, fp = tp[:, by_score], fp[:, by_score]
    bounds = torch.searchsorted(det_cls[by_score], torch.arange(num_classes + 1)).tolist()
    num_pos = torch.bincount(gt_cls[~gt_ignore], minlength=num_classes).tolist()
    num_t, levels = len(thresholds), len(COCO_RECALL_THRESHOLDS)
    precision = -np.ones((num_t, levels, num_classes))  # pycocotools' eval["precision"][:, :, :, 0, -1]
    ap = -np.ones((num_t, num_classes))
    for k in range(num_classes):
        if num_pos[k] == 0:
            continue  # no ground truth: excluded, as in pycocotools and the VOC devkit
        s, e = bounds[k], bounds[k + 1]
        tp_sum = torch.cumsum(tp[:, s:e], 1).to(torch.float64)
        fp_sum = torch.cumsum(fp[:, s:e], 1).to(torch.float64)
        recall = tp_sum / num_pos[k]
        if coco:
            prec = tp_sum / (fp_sum + tp_sum + np.spacing(1))
            q = _coco_interpolate(recall, prec).numpy()
            precision[:, :, k] = q
            ap[:, k] = q.mean(1)
        else:
            prec = tp_sum / torch.clamp(tp_sum + fp_sum, min=np.finfo(np.float64).eps)
            for t in range(num_t):
                ap[t, k] = average_precision(recall[t], prec[t], method)

    def mean(values):  # pycocotools summarize: mean over the entries > -1, else -1
        values = values[values > -1]
        return float(np.mean(values)) if values.size else -1.0

    source = precision if coco else ap

    def at(threshold):
        row = _threshold_row(thresholds, threshold)
        return mean(source[row:row + 1]) if row is not None else math.nan

    labels = classes.tolist()
    per_class = {
        labels[k]: mean(source[..., k]) for k in range(num_classes) if num_pos[k] > 0
    }
    return {"map": mean(source), "map_50": at(0.5), "map_75": at(0.75), "map_per_class": per_class}

"""Evaluating instance segmentation: mask IoU and COCO-style mask mAP.

Mask AP is box AP (``metrics/detection.py``) with one change: a detection and a ground-truth
object are compared by the IoU of their **masks**, ``|A and B| / |A or B|`` counted in pixels,
instead of the IoU of their boxes. Everything else is the same recipe: per image and class,
go down the detections by decreasing score and let each take the still-unmatched object it
overlaps most (IoU >= t); read the ranked list of each class as a precision/recall curve; AP
is the mean interpolated precision at 101 recall levels; mAP averages over the classes and the
IoU thresholds 0.50:0.05:0.95. That is what pycocotools' ``COCOeval(iouType="segm")`` computes,
and ``mask_mean_average_precision`` reproduces its ``stats[0:3]`` (``tests/test_metrics_masks.py``).

Predicted masks are probabilities: they are binarized with ``probability > 0.5`` before
anything is compared, as torchvision's COCO evaluation (``references/detection/coco_eval.py``)
does before it encodes them for pycocotools.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lecture_lib.metrics.detection import (
    _COCO_MAX_IOU,
    _check_image_lists,
    _check_keys,
    _check_options,
    _threshold_row,
    average_precision,
    precision_recall,
)

__all__ = ["MASK_THRESHOLD", "mask_iou", "mask_mean_average_precision"]

MASK_THRESHOLD = 0.5  # a pixel belongs to a predicted mask when its probability is > 0.5 (torchvision)


def _check_masks(masks, name: str, count: int | None = None, size: tuple[int, int] | None = None) -> None:
    """Raise unless ``masks`` is a Tensor[N, H, W] with N == count and (H, W) == size (when given)."""
    if not isinstance(masks, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, H, W], got {type(masks).__name__}")
    if masks.dim() != 3:
        raise ValueError(f"{name} must have shape [N, H, W], got {list(masks.shape)}")
    if count is not None and masks.shape[0] != count:
        raise ValueError(f"{name} must have one mask per box: shape [{count}, H, W], got {list(masks.shape)}")
    if size is not None and tuple(masks.shape[1:]) != tuple(size):
        raise ValueError(f"{name} must match the image size {list(size)}, got masks of size {list(masks.shape[1:])}")


def _check_binary(masks: Tensor, name: str) -> Tensor:
    """``masks`` as bool; numbers must be 0 or 1 (probabilities must be thresholded first)."""
    if masks.dtype == torch.bool:
        return masks
    if masks.numel() and not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError(f"{name} must be bool or hold only 0 and 1 (threshold probabilities first, "
                         f"e.g. masks > 0.5), got values in [{masks.min().item():g}, {masks.max().item():g}]")
    return masks != 0


def _pixel_iou(masks1: Tensor, masks2: Tensor) -> Tensor:
    """IoU of bool masks (Tensor[N, P] and Tensor[M, P], flattened) -> Tensor[N, M] float64.

    Pixel counts are exact integers, divided once in double precision: the same float as
    pycocotools' ``rleIou`` (``(double) i / (double) u``), so IoUs that sit exactly on a threshold
    compare the same way. Two empty masks have IoU 0, as in pycocotools.
    """
    a, b = masks1.double(), masks2.double()
    inter = a @ b.T  # counts below 2**53: exact
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros((), dtype=torch.float64))


def mask_iou(masks1: Tensor, masks2: Tensor) -> Tensor:
    """IoU of every pair of binary masks: ``|A and B| / |A or B|`` (0 when both are empty).

    Args:
        masks1 (Tensor[N, H, W]), masks2 (Tensor[M, H, W]): bool (or 0/1) masks.

    Returns:
        Tensor[N, M] float32 (pycocotools' ``mask.iou`` with ``iscrowd = 0``).
    """
    _check_masks(masks1, "masks1")
    _check_masks(masks2, "masks2", size=tuple(masks1.shape[1:]))
    a = _check_binary(masks1, "masks1").flatten(1).cpu()
    b = _check_binary(masks2, "masks2").flatten(1).cpu()
    return _pixel_iou(a, b).float().to(masks1.device)


# --- mask mAP ------------------------------------------------------------------------------------


def _check_inputs(preds, targets) -> list[dict]:
    """Validate ``preds`` / ``targets``; per image, flattened bool masks and numpy scores/labels."""
    _check_image_lists(preds, targets)
    images = []
    for i, (pred, target) in enumerate(zip(preds, targets)):
        image = {}
        for name, d, keys in (("preds", pred, ("masks", "scores", "labels")), ("targets", target, ("masks", "labels"))):
            where = f"{name}[{i}]"
            _check_keys(d, where, keys)
            masks = d["masks"]
            if name == "preds" and isinstance(masks, Tensor) and masks.dim() == 4:
                if masks.shape[1] != 1:  # torchvision's [N, 1, H, W]
                    raise ValueError(f"{where}['masks'] must have shape [N, 1, H, W] or [N, H, W], "
                                     f"got {list(masks.shape)}")
                masks = masks[:, 0]
            size = tuple(image["pred_masks"].shape[1:]) if "pred_masks" in image else None
            _check_masks(masks, f"{where}['masks']", size=size)
            n = masks.shape[0]
            for k in keys[1:]:
                v = d[k]
                if not isinstance(v, Tensor):
                    raise TypeError(f"{where}['{k}'] must be a torch.Tensor of shape [{n}], got {type(v).__name__}")
                if v.shape != (n,):
                    raise ValueError(f"{where}['{k}'] must have shape [N] with N = {n} (one per mask), "
                                     f"got {list(v.shape)}")
            labels = d["labels"]
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise TypeError(f"{where}['labels'] must hold integers, got dtype {labels.dtype}")
            masks = masks.cpu()
            if masks.is_floating_point():  # probabilities (preds) or 0/1 floats
                if masks.numel() and not bool(((masks >= 0) & (masks <= 1)).all()):
                    raise ValueError(f"{where}['masks'] must hold probabilities in [0, 1] (apply a sigmoid to "
                                     f"logits), got values in [{masks.min().item():g}, {masks.max().item():g}]")
                masks = masks > MASK_THRESHOLD
            else:
                masks = _check_binary(masks, f"{where}['masks']")
            prefix = "pred" if name == "preds" else "gt"
            image[f"{prefix}_masks"] = masks
            image[f"{prefix}_labels"] = labels.cpu().long().numpy()
        scores = pred["scores"]
        if not scores.is_floating_point():
            raise TypeError(f"preds[{i}]['scores'] must hold floating-point numbers, got dtype {scores.dtype}")
        if not bool(torch.isfinite(scores).all()):
            raise ValueError(f"preds[{i}]['scores'] must be finite, got {scores.tolist()}")
        image["scores"] = scores.detach().cpu().double().numpy()
        flag = target.get("difficult")
        m = len(image["gt_labels"])
        if flag is None:
            flag = torch.zeros(m, dtype=torch.bool)
        elif not isinstance(flag, Tensor) or flag.dtype != torch.bool or flag.shape != (m,):
            got = f"{flag.dtype} {list(flag.shape)}" if isinstance(flag, Tensor) else type(flag).__name__
            raise TypeError(f"targets[{i}]['difficult'] must be a bool tensor of shape [{m}], got {got}")
        image["gt_ignore"] = flag.cpu().numpy()
        images.append(image)
    return images


def _match_coco(ious: np.ndarray, gt_ignore: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools ``evaluateImg`` for one image, class and threshold.

    Args:
        ious (ndarray[D, G]): IoU of the ranked detections (best first) with the ground truth.
        gt_ignore (ndarray[G] bool): ignored ground truth ("difficult").

    Returns:
        (matched, ignored), ndarray[D] bool each: found an object / landed on an ignored one.
    """
    # non-ignored objects first (stable), so that a real match is preferred to an ignored one
    gt_order = np.argsort(gt_ignore, kind="mergesort")
    threshold = min(threshold, _COCO_MAX_IOU)  # pycocotools: an IoU of 1 still matches at t = 1
    taken = np.zeros(len(gt_order), dtype=bool)
    matched = np.zeros(len(ious), dtype=bool)
    ignored = np.zeros(len(ious), dtype=bool)
    for d in range(len(ious)):
        best, m = threshold, -1
        for j, g in enumerate(gt_order):
            if taken[j]:
                continue
            if m > -1 and not gt_ignore[gt_order[m]] and gt_ignore[g]:
                break  # a real object was found: ignored ones are not considered
            if ious[d, g] < best:
                continue
            best, m = ious[d, g], j  # ">=": on ties the later object wins, as in pycocotools
        if m > -1:
            taken[m] = True
            matched[d] = True
            ignored[d] = gt_ignore[gt_order[m]]
    return matched, ignored


def _match_voc(ious: np.ndarray, gt_ignore: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The VOC devkit's rule: the highest-IoU object (first on ties), IoU > t; a second hit is a FP."""
    taken = np.zeros(ious.shape[1], dtype=bool)
    matched = np.zeros(len(ious), dtype=bool)
    ignored = np.zeros(len(ious), dtype=bool)
    for d in range(len(ious)):
        if ious.shape[1] == 0:
            break
        g = int(np.argmax(ious[d]))
        if ious[d, g] > threshold:
            if gt_ignore[g]:
                matched[d] = ignored[d] = True
            elif not taken[g]:
                matched[d] = taken[g] = True
    return matched, ignored


def mask_mean_average_precision(preds: list, targets: list, iou_thresholds=None, method: str = "coco",
                                max_detections: int | None = 100) -> dict:
    """Mean average precision of an instance segmentation model, detections matched by mask IoU.

    The conventions are those of ``metrics.detection.mean_average_precision`` with mask IoU in
    place of box IoU; ``method="coco"`` equals pycocotools' ``COCOeval(iouType="segm")``
    ``stats[0:3]`` (to rounding, about 1e-16).

    Args:
        preds (list of dict, one per image): ``"masks"`` (Tensor[N, 1, H, W] or Tensor[N, H, W]:
            float probabilities, binarized with ``> 0.5``, or bool), ``"scores"`` (Tensor[N]),
            ``"labels"`` (Tensor[N] int). The output of ``MaskRCNN`` in eval mode fits.
        targets (list of dict, same order): ``"masks"`` (Tensor[M, H, W] bool or 0/1),
            ``"labels"`` (Tensor[M] int), optional ``"difficult"`` (Tensor[M] bool, ignored).
        iou_thresholds (sequence of floats in [0, 1], optional): default 0.50:0.05:0.95 for
            "coco", [0.5] for "voc"/"voc07".
        method: "coco" (greedy matching, IoU >= t, 101-point AP), "voc" (devkit matching,
            IoU > t, all-point AP) or "voc07" (11-point AP).
        max_detections: keep the ``max_detections`` highest-scoring detections per image and
            class (pycocotools' maxDets, applied per image and category); None keeps all.

    Returns:
        dict with ``"map"`` (mean over thresholds and classes), ``"map_50"`` / ``"map_75"``
        (at IoU 0.5 / 0.75; NaN when that threshold is not evaluated) and ``"map_per_class"``
        ({label: AP averaged over the thresholds}) for the classes with ground truth. Every
        value is -1 when no class has ground truth.
    """
    thresholds = _check_options(iou_thresholds, method, max_detections)
    images = _check_inputs(preds, targets)
    match = _match_coco if method == "coco" else _match_voc
    num_t = len(thresholds)

    # 1. per image and class: detections ranked by score (stable, as pycocotools' mergesort on
    #    -score), cut at max_detections, matched by mask IoU at every threshold.
    ranked = {}  # class -> list of (score, matched [T], ignored [T]) in image order, then rank
    num_gt = {}  # class -> number of non-ignored objects
    for image in images:
        ious = _pixel_iou(image["pred_masks"].flatten(1), image["gt_masks"].flatten(1)).numpy()
        classes = np.union1d(image["pred_labels"], image["gt_labels"])
        for c in classes.tolist():
            gt = np.nonzero(image["gt_labels"] == c)[0]
            det = np.nonzero(image["pred_labels"] == c)[0]
            det = det[np.argsort(-image["scores"][det], kind="mergesort")][:max_detections]
            num_gt[c] = num_gt.get(c, 0) + int((~image["gt_ignore"][gt]).sum())
            group = ious[np.ix_(det, gt)]
            flags = [match(group, image["gt_ignore"][gt], float(t)) for t in thresholds]
            for r, d in enumerate(det.tolist()):
                ranked.setdefault(c, []).append(
                    (image["scores"][d], [f[0][r] for f in flags], [f[1][r] for f in flags]))

    # 2. per class: all its detections by score (stable: ties stay in image order), the
    #    precision/recall curve without the ignored detections, AP.
    ap = {}  # class -> ndarray[T]
    for c in sorted(num_gt):
        if num_gt[c] == 0:
            continue  # no ground truth: excluded, as in pycocotools and the VOC devkit
        dets = ranked.get(c, [])
        order = np.argsort([-s for s, _, _ in dets], kind="mergesort")
        ap[c] = np.zeros(num_t)
        for t in range(num_t):
            tp = [dets[k][1][t] for k in order if not dets[k][2][t]]
            precision, recall = precision_recall(torch.tensor(tp, dtype=torch.bool), num_gt[c])
            ap[c][t] = average_precision(recall, precision, method)

    if not ap:  # pycocotools: -1 when nothing can be evaluated
        return {"map": -1.0, "map_50": -1.0, "map_75": -1.0, "map_per_class": {}}
    table = np.stack([ap[c] for c in sorted(ap)], axis=1)  # [T, classes]

    def at(threshold):
        row = _threshold_row(thresholds, threshold)
        return float(np.mean(table[row])) if row is not None else math.nan

    return {"map": float(np.mean(table)), "map_50": at(0.5), "map_75": at(0.75),
            "map_per_class": {c: float(np.mean(ap[c])) for c in sorted(ap)}}

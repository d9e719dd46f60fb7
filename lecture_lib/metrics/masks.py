"""Evaluating instance segmentation: mask IoU and COCO-style mask mAP.

Mask AP is box AP (``metrics/detection.py``) with one change: a detection and a ground-truth
object are compared by the IoU of their **masks**, ``|A and B| / |A or B|`` counted in pixels,
instead of the IoU of their boxes (against a crowd region: ``|A and B| / |A|``), and an
object's size is its pixel count. Everything else is the same recipe and the same code: per
image and class, go down the detections by decreasing score and let each take the
still-unmatched object it overlaps most (IoU >= t, ``metrics/matching.py``); read the ranked
list of each class as a precision/recall curve; AP is the mean interpolated precision at 101
recall levels; mAP averages over the classes and the IoU thresholds 0.50:0.05:0.95. That is
what pycocotools' ``COCOeval(iouType="segm")`` computes, and ``mask_mean_average_precision``
reproduces its twelve ``stats`` (``tests/test_metrics_masks.py``).

Predicted masks are probabilities: they are binarized with ``probability > 0.5`` before
anything is compared, as torchvision's COCO evaluation (``references/detection/coco_eval.py``)
does before it encodes them for pycocotools.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lecture_lib.checks import check_masks as _check_masks
from lecture_lib.metrics._checks import (_check_flag, _check_image_lists, _check_keys, _check_options,
                                         _check_targets_extra)
from lecture_lib.metrics.evaluation import _evaluate, _one_thread

__all__ = ["MASK_THRESHOLD", "mask_iou", "mask_mean_average_precision"]

MASK_THRESHOLD = 0.5  # a pixel belongs to a predicted mask when its probability is > 0.5 (torchvision)


def _check_binary(masks: Tensor, name: str) -> Tensor:
    """``masks`` as bool; numbers must be 0 or 1 (probabilities must be thresholded first)."""
    if masks.dtype == torch.bool:
        return masks
    if masks.numel() and not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError(f"{name} must be bool or hold only 0 and 1 (threshold probabilities first, "
                         f"e.g. masks > 0.5), got values in [{masks.min().item():g}, {masks.max().item():g}]")
    return masks != 0


def _pixel_iou(masks1: Tensor, masks2: Tensor, crowd: Tensor | None = None) -> Tensor:
    """IoU of bool masks (Tensor[N, P] and Tensor[M, P], flattened) -> Tensor[N, M] float64.

    Pixel counts are exact integers, divided once in double precision: the same float as
    pycocotools' ``rleIou`` (``(double) i / (double) u``), so IoUs that sit exactly on a threshold
    compare the same way. Two empty masks have IoU 0, as in pycocotools. Against a crowd region
    (``crowd[j]``, Tensor[M] bool) the union is the detection's own area, as in pycocotools.
    """
    a, b = masks1.double(), masks2.double()
    inter = a @ b.T  # counts below 2**53: exact
    area = a.sum(1)[:, None]
    union = area + b.sum(1)[None, :] - inter
    if crowd is not None:
        union = torch.where(crowd[None], area.expand_as(union), union)
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


def _check_image_masks(d, where: str, keys: tuple, size) -> tuple[Tensor, Tensor]:
    """One dict's masks and per-mask values, checked: (bool masks flattened, Tensor[N, H * W];
    labels, Tensor[N] int64). Predicted probabilities are thresholded at ``MASK_THRESHOLD``."""
    _check_keys(d, where, keys)
    masks = d["masks"]
    if keys[1] == "scores" and isinstance(masks, Tensor) and masks.dim() == 4:
        if masks.shape[1] != 1:  # torchvision's [N, 1, H, W]
            raise ValueError(f"{where}['masks'] must have shape [N, 1, H, W] or [N, H, W], got {list(masks.shape)}")
        masks = masks[:, 0]
    _check_masks(masks, f"{where}['masks']", size=size)
    n = masks.shape[0]
    for k in keys[1:]:
        v = d[k]
        if not isinstance(v, Tensor):
            raise TypeError(f"{where}['{k}'] must be a torch.Tensor of shape [{n}], got {type(v).__name__}")
        if v.shape != (n,):
            raise ValueError(f"{where}['{k}'] must have shape [N] with N = {n} (one per mask), got {list(v.shape)}")
    labels = d["labels"]
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{where}['labels'] must hold integers, got dtype {labels.dtype}")
    masks = masks.cpu()
    if masks.is_floating_point():  # probabilities (preds) or 0/1 floats
        # bilinear pasting (torchvision's paste_masks_in_image too) can overshoot 1 by a rounding error
        tolerance = 16 * torch.finfo(masks.dtype).eps
        if masks.numel() and not bool(((masks >= -tolerance) & (masks <= 1 + tolerance)).all()):
            raise ValueError(f"{where}['masks'] must hold probabilities in [0, 1] (apply a sigmoid to "
                             f"logits), got values in [{masks.min().item():.9g}, {masks.max().item():.9g}]")
        masks = masks > MASK_THRESHOLD
    else:
        masks = _check_binary(masks, f"{where}['masks']")
    return masks.flatten(1), labels.cpu().long()


def _check_target_flags(target, where: str, gt_masks: Tensor) -> dict:
    """A target's crowd, ignore (crowd or difficult) and area per object (the mask's own area
    where no ``area`` is given)."""
    m = len(gt_masks)
    _check_targets_extra(target, where, m)
    crowd = target.get("iscrowd")
    if crowd is not None and crowd.dtype != torch.bool:
        if not bool(((crowd == 0) | (crowd == 1)).all()):
            raise ValueError(f"{where}['iscrowd'] must hold 0 or 1, got {crowd.tolist()}")
        crowd = crowd != 0
    crowd = torch.zeros(m, dtype=torch.bool) if crowd is None else crowd.cpu()
    difficult = target.get("difficult")
    flags = {"gt_crowd": crowd, "gt_ignore": crowd | (difficult.cpu() if difficult is not None else False),
             "gt_area": gt_masks.sum(1).double()}
    area = target.get("area")
    if area is not None:
        area = area.detach().cpu().double()
        if bool((~(area >= 0) & ~torch.isnan(area) | torch.isinf(area)).any()):
            raise ValueError(f"{where}['area'] must hold finite areas >= 0 (pixels²), got {area.tolist()}")
        flags["gt_area"] = torch.where(torch.isnan(area), flags["gt_area"], area)
    return flags


def _check_inputs(preds, targets) -> list[dict]:
    """Validate ``preds`` / ``targets``; per image, flattened bool masks and the per-object values."""
    _check_image_lists(preds, targets)
    images = []
    for i, (pred, target) in enumerate(zip(preds, targets)):
        image = {}
        image["pred_masks"], image["pred_labels"] = _check_image_masks(pred, f"preds[{i}]",
                                                                       ("masks", "scores", "labels"), None)
        size = tuple(pred["masks"].shape[-2:])
        image["gt_masks"], image["gt_labels"] = _check_image_masks(target, f"targets[{i}]", ("masks", "labels"), size)
        image["size"] = size
        scores = pred["scores"]
        if not scores.is_floating_point():
            raise TypeError(f"preds[{i}]['scores'] must hold floating-point numbers, got dtype {scores.dtype}")
        if not bool(torch.isfinite(scores).all()):
            raise ValueError(f"preds[{i}]['scores'] must be finite, got {scores.tolist()}")
        image["scores"] = scores.detach().cpu().double()
        image.update(_check_target_flags(target, f"targets[{i}]", image["gt_masks"]))
        images.append(image)
    return images


def mask_mean_average_precision(preds: list, targets: list, iou_thresholds=None, method: str = "coco",
                                max_detections: int | None = 100, *, class_metrics: bool = False,
                                extended_summary: bool = False) -> dict:
    """COCO's twelve statistics of an instance segmentation model, detections matched by mask IoU.

    The conventions are those of ``metrics.detection.mean_average_precision`` with mask IoU in
    place of box IoU and pixel counts as areas; ``method="coco"`` equals pycocotools'
    ``COCOeval(iouType="segm")`` (all twelve ``stats``, to rounding, about 1e-16).

    Args:
        preds (list of dict, one per image): ``"masks"`` (Tensor[N, 1, H, W] or Tensor[N, H, W]:
            float probabilities, binarized with ``> 0.5``, or bool), ``"scores"`` (Tensor[N]),
            ``"labels"`` (Tensor[N] int). The output of ``MaskRCNN`` in eval mode fits.
        targets (list of dict, same order): ``"masks"`` (Tensor[M, H, W] bool or 0/1),
            ``"labels"`` (Tensor[M] int); optional ``"iscrowd"`` (Tensor[M] bool or 0/1),
            ``"area"`` (Tensor[M], pixels²; NaN or absent: the mask's pixel count) and
            ``"difficult"`` (Tensor[M] bool, ignored).
        iou_thresholds (sequence of floats in [0, 1], optional): default 0.50:0.05:0.95 for
            "coco", [0.5] for "voc"/"voc07".
        method: "coco" (greedy matching, IoU >= t, 101-point AP), "voc" (devkit matching,
            IoU > t, all-point AP) or "voc07" (11-point AP).
        max_detections: keep the ``max_detections`` highest-scoring detections per image and
            class (pycocotools' maxDets, applied per image and category); None keeps all.
        class_metrics, extended_summary: as in ``mean_average_precision``.

    Returns:
        dict with the twelve statistics (``map``, ``map_50``, ``map_75``, ``map_small``, ...,
        ``mar_large``) and ``"map_per_class"``, as ``mean_average_precision`` returns them.
    """
    thresholds = _check_options(iou_thresholds, method, max_detections)
    class_metrics = _check_flag(class_metrics, "class_metrics")
    extended_summary = _check_flag(extended_summary, "extended_summary")
    with _one_thread():
        images = _check_inputs(preds, targets)
        det_counts = [len(im["scores"]) for im in images]
        gt_counts = [len(im["gt_labels"]) for im in images]
        det = {"image": torch.repeat_interleave(torch.arange(len(images)), torch.tensor(det_counts, dtype=torch.long)),
               "label": torch.cat([im["pred_labels"] for im in images]) if images else torch.zeros(0, dtype=torch.long),
               "score": torch.cat([im["scores"] for im in images]) if images else torch.zeros(0, dtype=torch.float64),
               "area": (torch.cat([im["pred_masks"].sum(1).double() for im in images]) if images
                        else torch.zeros(0, dtype=torch.float64))}
        gt = {"image": torch.repeat_interleave(torch.arange(len(images)), torch.tensor(gt_counts, dtype=torch.long))}
        for key, name in (("label", "gt_labels"), ("ignore", "gt_ignore"), ("crowd", "gt_crowd"), ("area", "gt_area")):
            empty = torch.zeros(0, dtype=torch.float64 if key == "area" else torch.bool if key in ("ignore", "crowd")
                                else torch.long)
            gt[key] = torch.cat([im[name] for im in images]) if images else empty
        # every image's IoU matrix (objects of a crowd region: the share of the detection it covers)
        blocks, offsets, total = [], [], 0
        for im in images:
            iou = _pixel_iou(im["pred_masks"], im["gt_masks"], im["gt_crowd"])
            blocks.append(iou.reshape(-1))
            offsets.append(total)
            total += iou.numel()
        flat = torch.cat(blocks) if blocks else torch.zeros(0, dtype=torch.float64)
        offsets = torch.tensor(offsets, dtype=torch.long)
        det_start = torch.cumsum(torch.tensor([0] + det_counts[:-1], dtype=torch.long), 0) if images else offsets
        gt_start = torch.cumsum(torch.tensor([0] + gt_counts[:-1], dtype=torch.long), 0) if images else offsets
        num_gt = torch.tensor(gt_counts, dtype=torch.long)

        def pair_iou(d, g):
            i = det["image"][d]
            return flat[offsets[i] + (d - det_start[i]) * num_gt[i] + (g - gt_start[i])]

        return _evaluate(det, gt, pair_iou, len(images), thresholds, method, max_detections, class_metrics,
                         extended_summary)

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

Where each step lives: ``conventions.py`` (the two conventions' numbers), ``ranked_list.py``
(precision, recall and AP of one ranked list), ``greedy_matching.py`` (the step-through of one
image), ``matching.py`` (the one vectorized matcher), ``evaluation.py`` (all of it for a data set
at once), ``_inputs.py`` / ``_checks.py`` (flattening and checking the input dicts). This module
holds the public entry points; every name of the metrics imports from here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lecture_lib.metrics._checks import _check_flag, _check_options
from lecture_lib.metrics._inputs import _flatten_boxes
from lecture_lib.metrics.conventions import (COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, METHODS,
                                             STATISTICS, VOC07_RECALL_THRESHOLDS)
from lecture_lib.metrics.evaluation import _evaluate, _one_thread
from lecture_lib.metrics.greedy_matching import MatchResult, MatchStep, _box_pair_iou, match_detections
from lecture_lib.metrics.matching import MAX_IOU
from lecture_lib.metrics.ranked_list import average_precision, interpolated_precision, precision_recall

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

_COCO_MAX_IOU = MAX_IOU  # (kept for older imports)


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

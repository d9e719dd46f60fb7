"""The whole data set at once: the twelve statistics of ``mean_average_precision`` (boxes) and
``mask_mean_average_precision`` (masks) from flat tensors of detections and objects.

``_evaluate`` runs the four steps of the module docstring of ``detection.py`` for every image,
class, area range and IoU threshold together, each step a function here:

1. ``_rank_detections``: detections in class order, ranked by score inside each (class, image)
   group and cut at ``max_detections``; ``_objects_by_group``: the objects in the same groups,
   with what each area range ignores;
2. ``metrics.matching.match_ranked``: the greedy matching, all ranges and thresholds at once;
3. ``_true_positives``: every TP of every curve with its rank among TPs and among counted
   detections; ``_recall`` and ``_precision_curves``: recall per detection limit, the
   interpolated precision at COCO's 101 levels and AP by the chosen method;
4. ``_statistics_of``: the numbers, read off those arrays as pycocotools' summarize() does.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from lecture_lib.metrics.conventions import COCO_AREA_RANGES, COCO_RECALL_THRESHOLDS, VOC07_RECALL_THRESHOLDS
from lecture_lib.metrics.matching import match_ranked, pairs_in_groups
from lecture_lib.metrics.ranked_list import _precision

_CURVE_ELEMENTS = 1 << 22  # precision curves are built for chunks of classes of at most this many entries


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


def _rank_detections(det: dict, det_cls: Tensor, num_images: int, num_classes: int,
                     max_detections: int | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Detections in *class order*: by class, then by score with a stable sort, so that equal
    scores stay in image order and, inside an image, in input order (pycocotools sorts each
    image's detections with np.argsort(-score, kind="mergesort"), then a class's detections of
    all images the same way). Inside one image and class this is the ranking too.

    Returns (order: detection indices, their class, their (class, image) group, their rank in
    the group), without the detections past ``max_detections`` of a group (pycocotools' maxDets).
    """
    num_det = len(det["score"])
    by_score = torch.argsort(-det["score"], stable=True)
    score_rank = torch.empty_like(by_score)
    score_rank[by_score] = torch.arange(num_det)
    order = _argsort_unique(det_cls * max(num_det, 1) + score_rank)
    d_cls = det_cls[order]
    group = d_cls * num_images + det["image"][order]  # (class, image)
    group_size = torch.bincount(group, minlength=num_classes * num_images)
    by_group = _argsort_unique(group * max(num_det, 1) + torch.arange(num_det))
    rank = torch.empty_like(by_group)
    rank[by_group] = torch.arange(num_det) - (torch.cumsum(group_size, 0) - group_size)[group[by_group]]
    if max_detections is not None and num_det and int(group_size.max()) > max_detections:
        keep = rank < max_detections
        order, d_cls, group, rank = order[keep], d_cls[keep], group[keep], rank[keep]
    return order, d_cls, group, rank


def _outside(area: Tensor, ranges: Tensor) -> Tensor:
    """Tensor[A, N] bool: ``area[n]`` lies outside area range ``a`` (a bound belongs to both ranges)."""
    return (area[None] < ranges[:, :1]) | (area[None] > ranges[:, 1:])


def _objects_by_group(gt: dict, gt_cls: Tensor, num_images: int, ranges: Tensor) -> dict:
    """The objects by (class, image) group, in annotation order inside a group: their indices
    (``order``), ``group``, ``cls``, what each area range ignores (``ignore``, Tensor[A, M]:
    difficult, crowd or outside the range) and the crowd regions (``crowd``)."""
    gt_group = gt_cls * num_images + gt["image"]
    order = torch.argsort(gt_group, stable=True)
    return {"order": order, "group": gt_group[order], "cls": gt_cls[order], "crowd": gt["crowd"][order],
            "ignore": gt["ignore"][order][None] | _outside(gt["area"][order], ranges)}


def _true_positives(tp: Tensor, counted: Tensor, cand: Tensor, d_cls: Tensor, d_outside: Tensor,
                    num_classes: int) -> tuple:
    """Every TP entry of every curve (area range a, threshold t, candidate c) with k, its rank
    among the class's TPs, and the number of detections counted (TP or FP) down to it.

    Only true positives move a class's curve, so it is built from them: the k-th TP has recall
    k / (objects) and precision k / (detections counted down to it); a detection that matched
    nothing counts as a FP unless it lies outside the area range.

    Returns (a_i, t_i, c_i, tp_index, seen_i, tp_cls), one entry per TP.
    """
    num_a, num_t = tp.shape[:2]
    class_start = torch.searchsorted(d_cls, torch.arange(num_classes + 1))
    other = torch.ones(len(d_cls), dtype=torch.bool)
    other[cand] = False
    others = torch.cat([torch.zeros(num_a, 1, dtype=torch.int32),
                        torch.cumsum(other[None] & ~d_outside, 1, dtype=torch.int32)], 1)  # [A, D + 1]
    c_cls = d_cls[cand]
    c_start = torch.searchsorted(c_cls, c_cls, side="left")  # the class's first candidate
    zero = torch.zeros(num_a, num_t, 1, dtype=torch.int32)
    tp_sum = torch.cat([zero, torch.cumsum(tp, 2, dtype=torch.int32)], 2)
    seen = torch.cat([zero, torch.cumsum(counted, 2, dtype=torch.int32)], 2)
    a_i, t_i, c_i = tp.nonzero(as_tuple=True)
    start_i = c_start[c_i]
    tp_index = (tp_sum[a_i, t_i, c_i + 1] - tp_sum[a_i, t_i, start_i]).long()  # k of the k-th TP
    seen_i = (seen[a_i, t_i, c_i + 1] - seen[a_i, t_i, start_i]
              + others[a_i, cand[c_i] + 1] - others[a_i, class_start[c_cls[c_i]]])
    return a_i, t_i, c_i, tp_index, seen_i, c_cls[c_i]


def _recall(a_i: Tensor, t_i: Tensor, tp_cls: Tensor, tp_rank: Tensor, num_pos: Tensor, num_t: int,
            limits: list, num_det: int) -> np.ndarray:
    """Recall with at most 1, 10, max_detections per image and class, pycocotools' eval["recall"]:
    np.ndarray[T, K, A, M], -1 for a class without objects in the range. ``tp_rank``: each TP's
    rank in its (class, image) group."""
    num_a, num_classes = num_pos.shape
    bucket = torch.searchsorted(torch.tensor([m if m is not None else num_det + 1 for m in limits]),
                                tp_rank, right=True)  # counts for the limits from this index on
    slot = ((a_i * num_t + t_i) * num_classes + tp_cls) * len(limits) + bucket
    hits = torch.bincount(slot, minlength=num_a * num_t * num_classes * len(limits))
    hits = torch.cumsum(hits.view(num_a, num_t, num_classes, len(limits)), 3)
    valid = num_pos > 0  # [A, K]
    recall = torch.where(valid[:, None, :, None], hits.double() / num_pos.clamp(min=1)[:, None, :, None].double(),
                         torch.tensor(-1.0, dtype=torch.float64))
    return recall.permute(1, 2, 0, 3).numpy()  # [T, K, A, M] as pycocotools


def _precision_curves(a_i: Tensor, t_i: Tensor, tp_cls: Tensor, tp_index: Tensor, seen_i: Tensor,
                      num_pos: Tensor, num_t: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Precision curves at the largest detection limit, per chunk of classes: one row per
    (range, threshold, class), the k-th TP's precision in column L - k (reversed, so that a
    running maximum along the row is the envelope).

    Returns (interpolated precision at COCO's 101 levels, np.ndarray[T, R, K, A], and AP by
    ``method``, np.ndarray[T, K, A]), -1 for a class without objects in the range.
    """
    num_a, num_classes = num_pos.shape
    valid = num_pos > 0
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
    return precision, ap


def _evaluate(det: dict, gt: dict, pair_iou, num_images: int, thresholds: np.ndarray, method: str,
              max_detections: int | None, class_metrics: bool = False, extended: bool = False) -> dict:
    """The twelve statistics of a data set, for boxes and masks alike.

    Args:
        det: per detection (flat over the images) ``image``, ``label``, ``score``, ``area``.
        gt: per object ``image``, ``label``, ``ignore`` (difficult or crowd), ``crowd``, ``area``.
        pair_iou: ``f(det_index, gt_index) -> Tensor[P] float64``, the IoU of (detection, object)
            pairs given by their indices in ``det`` / ``gt`` (crowd regions as pycocotools).
    """
    classes, det_cls, gt_cls = _class_ids(det["label"], gt["label"])
    num_classes, num_t = len(classes), len(thresholds)
    ranges = torch.tensor(list(COCO_AREA_RANGES.values()), dtype=torch.float64)  # [A, 2]
    limits = _detection_limits(max_detections)
    # 1. ranked detections and the objects, in (class, image) groups
    order, d_cls, group, rank = _rank_detections(det, det_cls, num_images, num_classes, max_detections)
    d_outside = _outside(det["area"][order], ranges)  # [A, D]
    objects = _objects_by_group(gt, gt_cls, num_images, ranges)
    # 2. match, every area range (its own ignored objects) and threshold at once
    pair_det, pair_gt = pairs_in_groups(group, objects["group"])
    iou = pair_iou(order[pair_det], objects["order"][pair_gt])
    found = match_ranked(pair_det, pair_gt, iou, group, objects["group"], objects["ignore"], objects["crowd"],
                         thresholds, "coco" if method == "coco" else "voc")
    cand, hit = found.det, found.hit  # [C] (in class order), [A, T, C]
    tp = hit & ~found.on_ignored
    counted = tp | (~hit & ~d_outside[:, cand][:, None])  # a TP or a FP, i.e. not ignored
    # 3. per class, its ranked list over all images: recall and precision curves
    a_i, t_i, c_i, tp_index, seen_i, tp_cls = _true_positives(tp, counted, cand, d_cls, d_outside, num_classes)
    num_pos = torch.stack([torch.bincount(objects["cls"][~ignore], minlength=num_classes)
                           for ignore in objects["ignore"]])  # objects that count, per range and class
    recall = _recall(a_i, t_i, tp_cls, rank[cand[c_i]], num_pos, num_t, limits, len(order))
    precision, ap = _precision_curves(a_i, t_i, tp_cls, tp_index, seen_i, num_pos, num_t, method)
    # 4. the statistics, as pycocotools' summarize() reads them off precision and recall
    source = precision if method == "coco" else ap[:, None]  # [T, R or 1, K, A]
    result = _statistics_of(source, recall, thresholds, limits)
    labels, has_objects = classes.tolist(), (num_pos[0] > 0).tolist()
    per_class = [k for k in range(num_classes) if has_objects[k]]
    result["map_per_class"] = {labels[k]: _mean_valid(source[:, :, k, 0]) for k in per_class}
    if class_metrics:
        result[f"mar_{_limit_name(limits[-1])}_per_class"] = {labels[k]: _mean_valid(recall[:, k, 0, -1])
                                                               for k in per_class}
        result["per_class"] = {labels[k]: _statistics_of(source[:, :, k:k + 1], recall[:, k:k + 1], thresholds, limits)
                               for k in per_class}
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

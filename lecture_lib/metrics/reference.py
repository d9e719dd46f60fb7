"""The reference for ``mean_average_precision`` and ``mask_mean_average_precision``: pycocotools'
``COCOeval`` (or faster-coco-eval's, its C++ port) run on the course's per-image dicts, built in
memory. The tests (tests/test_metrics_detection.py, tests/test_metrics_masks.py), the chapter on
mAP and the benchmark compare against this one place.

pycocotools is not a dependency of ``lecture_lib``: it is imported when a function here runs
(``pip install pycocotools``, or the ``test`` extra); ``HAS_PYCOCOTOOLS`` says whether it is there.

    gt, dt = coco_objects(preds, targets)                 # pycocotools' COCO objects
    evaluator = run_coco_eval(gt, dt)                     # COCOeval: evaluate, accumulate, summarize
    statistics(evaluator)                                  # {"map": ..., "map_50": ..., ...}: the twelve
    coco_statistics(preds, targets, iou_type="segm")      # all three in one call

Conventions (the same as ``lecture_lib.metrics``): targets may carry ``iscrowd`` (COCO's iscrowd),
``area`` (COCO's area; NaN: the box's or mask's own) and ``difficult`` (no COCO field: given an
area outside every range, which is how an object is ignored in every row of pycocotools'
statistics). ``plus_one``: boxes one pixel wider and taller (``x2 - x1 + 1``), the VOC devkit's
convention expressed in COCO's. Predicted masks are binarized as torchvision's COCO evaluation
does (probability > 0.5) and run-length encoded by pycocotools itself.

How this differs from ``lecture_lib.data.annotations.write_coco``: that writes a COCO *file*
for other tools; this feeds pycocotools directly, with the oracle's own choices (difficult
objects as out-of-range areas, mask results without a box so that pycocotools takes their
area from the mask, pycocotools' RLE encoder rather than the course's).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math

import numpy as np
import torch

__all__ = [
    "HAS_PYCOCOTOOLS",
    "HAS_FASTER_COCO_EVAL",
    "rle",
    "binary",
    "coco_objects",
    "run_coco_eval",
    "coco_eval",
    "statistics",
    "coco_statistics",
    "coco_reference",
]

HAS_PYCOCOTOOLS = importlib.util.find_spec("pycocotools") is not None
HAS_FASTER_COCO_EVAL = importlib.util.find_spec("faster_coco_eval") is not None
IOU_TYPES = ("bbox", "segm")


def rle(mask):
    """One binary mask (Tensor[H, W]) as pycocotools' compressed RLE."""
    import pycocotools.mask as mask_utils

    return mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))


def binary(masks):
    """Predicted masks as torchvision's COCO evaluation binarizes them: probability > 0.5."""
    if masks.dim() == 4:
        masks = masks[:, 0]
    return masks if masks.dtype == torch.bool else masks > 0.5


def _boxes(d, plus_one=False):
    """[{"bbox": [x, y, w, h], "area": w * h}, ...] of one image's boxes (+1 pixel when asked)."""
    one = 1.0 if plus_one else 0.0
    return [{"bbox": [x1, y1, x2 - x1 + one, y2 - y1 + one], "area": (x2 - x1 + one) * (y2 - y1 + one)}
            for x1, y1, x2, y2 in d["boxes"].double().tolist()]


def _masks(masks):
    return [{"segmentation": rle(m), "area": float(m.sum())} for m in masks]


def _backend(backend: str):
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    if backend != "pycocotools":
        raise ValueError(f"backend must be 'pycocotools' or 'faster', got {backend!r}")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return COCO, COCOeval


def _dataset(preds, targets, iou_type: str, plus_one: bool):
    """COCO's ground-truth dataset (images, categories, annotations) and result records."""
    images, labels = [], set()
    for i, t in enumerate(targets):
        # RLE masks need the image size; boxes do not
        height, width = (int(v) for v in t["masks"].shape[1:]) if iou_type == "segm" else (1000, 1000)
        images.append({"id": i + 1, "height": height, "width": width})
    for d in list(preds) + list(targets):
        labels.update(d["labels"].tolist())
    annotations = []
    for i, t in enumerate(targets):
        m = len(t["labels"])
        difficult = t.get("difficult", torch.zeros(m, dtype=torch.bool)).tolist()
        crowd = t.get("iscrowd", torch.zeros(m, dtype=torch.bool)).bool().tolist()
        area = t.get("area", torch.full((m,), math.nan)).double().tolist()
        shapes = _boxes(t, plus_one) if iou_type == "bbox" else _masks(t["masks"].bool())
        for k, (shape, label) in enumerate(zip(shapes, t["labels"].tolist())):
            given = shape["area"] if math.isnan(area[k]) else area[k]
            annotations.append({**shape, "id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label),
                                "iscrowd": int(crowd[k]), "area": 2e10 if difficult[k] else given})
    results = []
    for i, p in enumerate(preds):
        shapes = _boxes(p, plus_one) if iou_type == "bbox" else _masks(binary(p["masks"]))
        for shape, score, label in zip(shapes, p["scores"].double().tolist(), p["labels"].tolist()):
            shape.pop("area")  # loadRes computes it
            results.append({**shape, "image_id": i + 1, "category_id": int(label), "score": score})
    dataset = {"images": images, "categories": [{"id": int(c)} for c in sorted(labels)], "annotations": annotations}
    return dataset, results


def coco_objects(preds, targets, *, iou_type: str = "bbox", plus_one: bool = False, backend: str = "pycocotools"):
    """pycocotools' (or faster-coco-eval's) ``COCO`` objects for the ground truth and the
    detections: ``(gt, dt)``. ``preds`` / ``targets``: lists of dicts, one per image."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    coco, _ = _backend(backend)
    dataset, results = _dataset(preds, targets, iou_type, plus_one)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = coco()
        gt.dataset = dataset
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list
            dt = coco()
            dt.dataset = {**dataset, "annotations": []}
            dt.createIndex()
    return gt, dt


def run_coco_eval(gt, dt, max_det: int = 100, iou_thresholds=None, *, iou_type: str = "bbox",
                  backend: str = "pycocotools"):
    """Evaluate and accumulate (and, with COCO's own settings, summarize): the ``COCOeval``."""
    _, evaluator = _backend(backend)
    quiet = {"print_function": lambda *args: None} if backend == "faster" else {}
    with contextlib.redirect_stdout(io.StringIO()):
        ev = evaluator(gt, dt, iouType=iou_type, **quiet)
        ev.params.maxDets = sorted({1, 10, max_det})
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        if max_det == 100 and iou_thresholds is None:
            ev.summarize()
    return ev


def coco_eval(preds, targets, max_det: int = 100, iou_thresholds=None, *, iou_type: str = "bbox",
              plus_one: bool = False, backend: str = "pycocotools"):
    """``run_coco_eval`` on ``coco_objects(preds, targets)``: the evaluated ``COCOeval``."""
    gt, dt = coco_objects(preds, targets, iou_type=iou_type, plus_one=plus_one, backend=backend)
    return run_coco_eval(gt, dt, max_det, iou_thresholds, iou_type=iou_type, backend=backend)


def _mean(a):
    return float(np.mean(a[a > -1])) if (a > -1).any() else -1.0


def statistics(ev, max_det: int = 100) -> dict:
    """The twelve numbers of ``summarize()`` with ``max_det`` detections, keyed as
    ``mean_average_precision`` keys them (pycocotools hard-codes maxDets=100 for some of them;
    this reads its ``eval`` arrays the way summarize() does, at ``max_det``)."""
    names = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
             "mar_1", "mar_10", f"mar_{max_det}", "mar_small", "mar_medium", "mar_large")
    if max_det == 100 and len(ev.params.iouThrs) == 10 and hasattr(ev, "stats") and len(ev.stats) >= 12:
        return dict(zip(names, (float(x) for x in ev.stats[:12])))
    p = ev.params
    m = p.maxDets.index(max_det)
    precision, recall = ev.eval["precision"], ev.eval["recall"]
    out = {"map": _mean(precision[:, :, :, 0, m])}
    for name, thr in (("map_50", 0.5), ("map_75", 0.75)):
        t = np.where(np.isclose(p.iouThrs, thr, rtol=0, atol=1e-12))[0]
        out[name] = _mean(precision[t][:, :, :, 0, m]) if len(t) else math.nan
    for a, size in enumerate(("small", "medium", "large"), start=1):
        out[f"map_{size}"] = _mean(precision[:, :, :, a, m])
    for k, limit in enumerate(p.maxDets):
        if limit <= max_det:
            out[f"mar_{limit}"] = _mean(recall[:, :, 0, k])
    for a, size in enumerate(("small", "medium", "large"), start=1):
        out[f"mar_{size}"] = _mean(recall[:, :, a, m])
    return out


def coco_statistics(preds, targets, max_det: int = 100, *, iou_type: str = "bbox", plus_one: bool = False,
                    backend: str = "pycocotools") -> dict:
    """The twelve statistics as pycocotools (or faster-coco-eval) computes them, as a dict."""
    return statistics(coco_eval(preds, targets, max_det, iou_type=iou_type, plus_one=plus_one, backend=backend),
                      max_det)


def coco_reference(preds, targets, max_det: int = 100, *, iou_type: str = "bbox") -> tuple:
    """(map, map_50, map_75) as pycocotools computes them."""
    s = coco_statistics(preds, targets, max_det, iou_type=iou_type)
    return s["map"], s["map_50"], s["map_75"]

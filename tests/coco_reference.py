"""pycocotools' COCOeval (and faster-coco-eval's, where installed) run on the course's dicts,
built in memory: the reference for box mAP (``iou_type="bbox"``, tests/test_metrics_detection.py)
and mask mAP (``"segm"``, tests/test_metrics_masks.py), all twelve statistics.

Targets may carry ``iscrowd`` (passed on as COCO's iscrowd), ``area`` (COCO's area; NaN: the
box's or mask's own) and ``difficult`` (no COCO field: given an area outside every range, which
is how an object is ignored in every row of pycocotools' statistics)."""

import contextlib
import importlib.util
import io
import math

import numpy as np
import pycocotools.mask as mask_utils
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

HAS_FASTER_COCO_EVAL = importlib.util.find_spec("faster_coco_eval") is not None


def rle(mask):
    """One binary mask (Tensor[H, W]) as pycocotools' compressed RLE."""
    return mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))


def binary(masks):
    """Predicted masks as torchvision's COCO evaluation binarizes them: probability > 0.5."""
    if masks.dim() == 4:
        masks = masks[:, 0]
    return masks if masks.dtype == torch.bool else masks > 0.5


def _boxes(d, plus_one=False):
    """[{"bbox": [x, y, w, h], "area": w * h}, ...] of one image's boxes (+1 pixel when asked)."""
    out = []
    one = 1.0 if plus_one else 0.0
    for x1, y1, x2, y2 in d["boxes"].double().tolist():
        w, h = (x2 - x1 + one, y2 - y1 + one) if plus_one else (x2 - x1, y2 - y1)
        out.append({"bbox": [x1, y1, w, h], "area": w * h})
    return out


def _masks(masks):
    return [{"segmentation": rle(m), "area": float(m.sum())} for m in masks]


def coco_eval(preds, targets, max_det=100, iou_thresholds=None, *, iou_type="bbox", plus_one=False,
              backend="pycocotools"):
    """Run pycocotools (or faster-coco-eval: ``backend="faster"``) on ``preds`` / ``targets``
    (lists of dicts, one per image) and return the evaluated ``COCOeval``. ``plus_one``: boxes one
    pixel wider and taller (``x2 - x1 + 1``), the VOC devkit's convention expressed in COCO's."""
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if backend == "faster":
        from faster_coco_eval import COCO as Coco
        from faster_coco_eval import COCOeval_faster as Evaluator
    else:
        Coco, Evaluator = COCO, COCOeval
    images, labels = [], set()
    for i, t in enumerate(targets):
        image = {"id": i + 1}
        if iou_type == "segm":  # RLE masks need the image size
            image["height"], image["width"] = (int(v) for v in t["masks"].shape[1:])
        else:
            image["height"], image["width"] = 1000, 1000
        images.append(image)
    for d in list(preds) + list(targets):
        labels.update(d["labels"].tolist())
    categories = [{"id": int(c)} for c in sorted(labels)]
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
    quiet = {"print_function": lambda *args: None} if backend == "faster" else {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = Coco()
        gt.dataset = {"images": images, "categories": categories, "annotations": annotations}
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list
            dt = Coco()
            dt.dataset = {"images": images, "categories": categories, "annotations": []}
            dt.createIndex()
        ev = Evaluator(gt, dt, iouType=iou_type, **quiet)
        ev.params.maxDets = sorted({1, 10, max_det})
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        if max_det == 100 and iou_thresholds is None:
            ev.summarize()
    return ev


def _mean(a):
    return float(np.mean(a[a > -1])) if (a > -1).any() else -1.0


def statistics(ev, max_det=100):
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


def coco_statistics(preds, targets, max_det=100, *, iou_type="bbox", plus_one=False, backend="pycocotools"):
    """The twelve statistics as pycocotools (or faster-coco-eval) computes them, as a dict."""
    return statistics(coco_eval(preds, targets, max_det, iou_type=iou_type, plus_one=plus_one, backend=backend),
                      max_det)


def coco_reference(preds, targets, max_det=100, *, iou_type="bbox"):
    """(map, map_50, map_75) as pycocotools computes them."""
    s = coco_statistics(preds, targets, max_det, iou_type=iou_type)
    return s["map"], s["map_50"], s["map_75"]

"""pycocotools' COCOeval run on the course's dicts, built in memory: the reference for box mAP
(``iou_type="bbox"``, tests/test_metrics_detection.py) and mask mAP (``"segm"``,
tests/test_metrics_masks.py)."""

import contextlib
import io

import numpy as np
import pycocotools.mask as mask_utils
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def rle(mask):
    """One binary mask (Tensor[H, W]) as pycocotools' compressed RLE."""
    return mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))


def binary(masks):
    """Predicted masks as torchvision's COCO evaluation binarizes them: probability > 0.5."""
    if masks.dim() == 4:
        masks = masks[:, 0]
    return masks if masks.dtype == torch.bool else masks > 0.5


def _boxes(d):
    """[{"bbox": [x, y, w, h], "area": w * h}, ...] of one image's boxes."""
    out = []
    for x1, y1, x2, y2 in d["boxes"].double().tolist():
        out.append({"bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    return out


def _masks(masks):
    return [{"segmentation": rle(m), "area": float(m.sum())} for m in masks]


def coco_eval(preds, targets, max_det=100, iou_thresholds=None, *, iou_type="bbox"):
    """Run pycocotools on ``preds`` / ``targets`` (lists of dicts, one per image) and return the
    evaluated ``COCOeval``. Objects marked ``"difficult"`` get an area outside pycocotools' "all"
    range [0, 1e10]: that is how an ignore region is expressed to it."""
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    images, labels = [], set()
    for i, t in enumerate(targets):
        image = {"id": i + 1}
        if iou_type == "segm":  # RLE masks need the image size
            image["height"], image["width"] = (int(v) for v in t["masks"].shape[1:])
        images.append(image)
    for d in list(preds) + list(targets):
        labels.update(d["labels"].tolist())
    categories = [{"id": int(c)} for c in sorted(labels)]
    annotations = []
    for i, t in enumerate(targets):
        difficult = t.get("difficult", torch.zeros(len(t["labels"]), dtype=torch.bool))
        shapes = _boxes(t) if iou_type == "bbox" else _masks(t["masks"].bool())
        for shape, label, diff in zip(shapes, t["labels"].tolist(), difficult.tolist()):
            annotations.append({**shape, "id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label),
                                "iscrowd": 0, "area": 2e10 if diff else shape["area"]})
    results = []
    for i, p in enumerate(preds):
        shapes = _boxes(p) if iou_type == "bbox" else _masks(binary(p["masks"]))
        for shape, score, label in zip(shapes, p["scores"].double().tolist(), p["labels"].tolist()):
            shape.pop("area")  # loadRes computes it
            results.append({**shape, "image_id": i + 1, "category_id": int(label), "score": score})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "categories": categories, "annotations": annotations}
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list
            dt = COCO()
            dt.dataset = {"images": images, "categories": categories, "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, iouType=iou_type)
        ev.params.maxDets = sorted({1, 10, max_det})
        if iou_thresholds is not None:
            ev.params.iouThrs = np.asarray(iou_thresholds, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        if max_det == 100 and iou_thresholds is None:
            ev.summarize()
    return ev


def coco_reference(preds, targets, max_det=100, *, iou_type="bbox"):
    """(map, map_50, map_75) as pycocotools computes them."""
    ev = coco_eval(preds, targets, max_det, iou_type=iou_type)
    if max_det == 100:
        return tuple(float(x) for x in ev.stats[:3])
    # summarize() hard-codes maxDets=100 for stats[0]; do what it does at our max_det
    s = ev.eval["precision"][:, :, :, 0, ev.params.maxDets.index(max_det)]

    def mean(a):
        return float(np.mean(a[a > -1])) if (a > -1).any() else -1.0

    return mean(s), mean(s[[0]]), mean(s[[5]])

"""A data set's detections and objects, checked and flattened into a few long tensors (the form
the evaluation works on): ``_flatten_boxes`` for boxes; the helpers serve masks too."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecture_lib.boxes import _check_boxes
from lecture_lib.metrics._checks import (_FLOAT, _INT, _REAL, _check_image_lists, _check_keys, _check_targets_extra,
                                         _check_vector)
from lecture_lib.metrics.greedy_matching import _box_area


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

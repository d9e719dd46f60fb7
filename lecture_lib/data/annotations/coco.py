"""COCO JSON: instances files (boxes, crowd regions, areas, polygon or RLE masks) and results
files, read into and written from the per-image dicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from lecture_lib.data.annotations.common import AnnotationError, Annotations, _fail, _number, _prediction, _target
from lecture_lib.data.annotations.masks import polygons_to_mask, rle_decode, rle_encode


def _load_json(path):
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise AnnotationError(f"{path}: line {error.lineno}, column {error.colno}: not valid JSON: {error.msg}") \
            from None


def _image_order(ids: list) -> list:
    """pycocotools evaluates images in sorted id order (ties in score go to the lower id)."""
    try:
        return sorted(range(len(ids)), key=lambda i: ids[i])
    except TypeError:  # ids of mixed types: keep the file's order
        return list(range(len(ids)))


def read_coco(path, masks: bool = False) -> Annotations:
    """A COCO instances file (``{"images", "annotations", "categories"}``).

    Labels are the category ids; ``iscrowd`` and ``area`` are kept. With ``masks=True`` every
    object also gets its ``segmentation`` (polygons or RLE) as a boolean mask (``"masks"``,
    Tensor[M, H, W]; the image needs ``height`` and ``width``).
    """
    data = _load_json(path)
    if not isinstance(data, dict):
        _fail(path, "", f"expected a JSON object with 'images', 'annotations' and 'categories', got "
                        f"{type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            _fail(path, key, f"expected a list, got {type(data.get(key)).__name__ if key in data else 'nothing'}")
    classes = {}
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or isinstance(c.get("id"), bool) or not isinstance(c.get("id"), int):
            got = c.get("id") if isinstance(c, dict) else c
            _fail(path, f"categories[{i}].id", f"expected an integer id, got {got!r}")
        classes[c["id"]] = str(c.get("name", c["id"]))
    images, index = [], {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im:
            _fail(path, f"images[{i}]", "expected an object with an 'id'")
        if im["id"] in index:
            _fail(path, f"images[{i}].id", f"image id {im['id']!r} appears twice")
        size = {}
        for key in ("width", "height"):
            if im.get(key) is not None:
                value = _number(im[key], path, f"images[{i}].{key}", minimum=1)
                if not value.is_integer():
                    _fail(path, f"images[{i}].{key}", f"expected a whole number of pixels, got {im[key]!r}")
                size[key] = int(value)
        index[im["id"]] = len(images)
        images.append({"id": im["id"], "file_name": im.get("file_name", str(im["id"])),
                       "width": size.get("width"), "height": size.get("height")})
    rows = [[] for _ in images]
    for i, a in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(a, dict):
            _fail(path, where, f"expected an object, got {a!r}")
        for key in ("image_id", "category_id", "bbox"):
            if key not in a:
                _fail(path, where, f"missing field '{key}'")
        if a["image_id"] not in index:
            _fail(path, f"{where}.image_id", f"{a['image_id']!r} is not the id of an image in 'images'")
        if a["category_id"] not in classes:
            _fail(path, f"{where}.category_id", f"{a['category_id']!r} is not the id of a category in 'categories'")
        box = _coco_box(a["bbox"], path, f"{where}.bbox")
        crowd = a.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            _fail(path, f"{where}.iscrowd", f"expected 0 or 1, got {crowd!r}")
        area = _number(a["area"], path, f"{where}.area", minimum=0) if a.get("area") is not None else math.nan
        rows[index[a["image_id"]]].append((box, a["category_id"], bool(crowd), area, a.get("segmentation"), where))
    targets = []
    for image, objects in zip(images, rows):
        t = _target([o[0] for o in objects], [o[1] for o in objects], iscrowd=torch.tensor([o[2] for o in objects],
                    dtype=torch.bool), area=torch.tensor([o[3] for o in objects], dtype=torch.float64))
        if masks:
            t["masks"] = _masks_of(image, [(o[4], o[5]) for o in objects], path)
        targets.append(t)
    order = _image_order([im["id"] for im in images])
    return Annotations([images[i] for i in order], [targets[i] for i in order], dict(sorted(classes.items())))


def _coco_box(bbox, path, where) -> list:
    if not isinstance(bbox, list) or len(bbox) != 4:
        _fail(path, where, f"expected [x, y, width, height], got {bbox!r}")
    x, y, w, h = (_number(v, path, where) for v in bbox)
    if w < 0 or h < 0:
        _fail(path, where, f"expected a width and height >= 0, got {bbox!r}")
    return [x, y, x + w, y + h]


def _masks_of(image: dict, segmentations: list, path) -> Tensor:
    height, width = image.get("height"), image.get("width")
    if height is None or width is None:
        _fail(path, f"image {image['id']!r}", "masks need the image's 'height' and 'width'")
    out = torch.zeros(len(segmentations), height, width, dtype=torch.bool)
    for k, (segmentation, where) in enumerate(segmentations):
        out[k] = _segmentation_to_mask(segmentation, height, width, path, f"{where}.segmentation")
    return out


def _segmentation_to_mask(segmentation, height: int, width: int, path, where) -> Tensor:
    if isinstance(segmentation, list):
        polygons = []
        for j, polygon in enumerate(segmentation):
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                _fail(path, f"{where}[{j}]", f"expected a polygon [x1, y1, x2, y2, ...] of at least 3 points, "
                                             f"got {polygon!r}"[:200])
            polygons.append([_number(v, path, f"{where}[{j}]") for v in polygon])
        return polygons_to_mask(polygons, height, width)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size")
        if size != [height, width]:
            _fail(path, f"{where}.size", f"expected the image size [{height}, {width}], got {size!r}")
        try:
            return rle_decode(segmentation["counts"], height, width)
        except ValueError as error:
            _fail(path, f"{where}.counts", str(error))
    _fail(path, where, f"expected polygons or an RLE {{'size', 'counts'}}, got {type(segmentation).__name__}")


def write_coco(path, annotations: Annotations) -> None:
    """Write ``annotations`` as a COCO instances file (masks as compressed RLE when present)."""
    images = [{k: v for k, v in im.items() if v is not None} for im in annotations.images]
    out = {"images": images, "categories": [{"id": int(c), "name": n} for c, n in annotations.classes.items()],
           "annotations": []}
    for image, t in zip(annotations.images, annotations.targets):
        m = len(t["labels"])
        crowd = t.get("iscrowd", torch.zeros(m, dtype=torch.bool)).tolist()
        area = t.get("area", torch.full((m,), math.nan)).double().tolist()
        for k, ((x1, y1, x2, y2), label) in enumerate(zip(t["boxes"].double().tolist(), t["labels"].tolist())):
            box_area = (x2 - x1) * (y2 - y1)
            record = {"id": len(out["annotations"]) + 1, "image_id": image["id"], "category_id": int(label),
                      "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": int(crowd[k]),
                      "area": box_area if math.isnan(area[k]) else area[k]}
            if "masks" in t:
                record["segmentation"] = rle_encode(t["masks"][k])
            out["annotations"].append(record)
    Path(path).write_text(json.dumps(out))


def read_coco_results(path, images: list, masks: bool = False) -> list:
    """A COCO results file (a list of ``{"image_id", "category_id", "bbox", "score"}``), one
    prediction dict per image of ``images`` (the ground truth's), in the same order."""
    data = _load_json(path)
    if not isinstance(data, list):
        _fail(path, "", f"expected a JSON list of detections, got {type(data).__name__}")
    index = {im["id"]: i for i, im in enumerate(images)}
    rows = [[] for _ in images]
    for i, r in enumerate(data):
        where = f"[{i}]"
        if not isinstance(r, dict):
            _fail(path, where, f"expected an object, got {r!r}")
        keys = ("image_id", "category_id", "score") + (("segmentation",) if masks else ("bbox",))
        for key in keys:
            if key not in r:
                _fail(path, where, f"missing field '{key}'")
        if r["image_id"] not in index:
            _fail(path, f"{where}.image_id", f"{r['image_id']!r} is not an image of the ground truth")
        if isinstance(r["category_id"], bool) or not isinstance(r["category_id"], int):
            _fail(path, f"{where}.category_id", f"expected an integer, got {r['category_id']!r}")
        score = _number(r["score"], path, f"{where}.score")
        box = _coco_box(r["bbox"], path, f"{where}.bbox") if "bbox" in r else [0.0, 0.0, 0.0, 0.0]
        rows[index[r["image_id"]]].append((box, score, r["category_id"], r.get("segmentation"), where))
    preds = []
    for image, found in zip(images, rows):
        mask = _masks_of(image, [(f[3], f[4]) for f in found], path) if masks else None
        preds.append(_prediction([f[0] for f in found], [f[1] for f in found], [f[2] for f in found], mask))
    return preds


def write_coco_results(path, preds: list, images: list) -> None:
    """Write predictions as a COCO results file (masks as compressed RLE when present)."""
    out = []
    for image, p in zip(images, preds):
        for k, ((x1, y1, x2, y2), score, label) in enumerate(zip(p["boxes"].double().tolist(),
                                                                  p["scores"].double().tolist(),
                                                                  p["labels"].tolist())):
            record = {"image_id": image["id"], "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1],
                      "score": score}
            if "masks" in p:
                record["segmentation"] = rle_encode(p["masks"][k])
            out.append(record)
    Path(path).write_text(json.dumps(out))

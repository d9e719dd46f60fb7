"""Reading and writing the annotation files detection tools write: COCO JSON, PASCAL VOC XML and
YOLO txt, to and from the per-image dicts ``mean_average_precision`` takes.

One image is one dict: ground truth ``{"boxes": Tensor[M, 4] (x1, y1, x2, y2, float64),
"labels": Tensor[M] int64}`` plus, where the format has them, ``"iscrowd"``, ``"area"``,
``"difficult"`` and ``"masks"``; predictions ``{"boxes", "scores", "labels"}`` (and ``"masks"``).
``read_*`` returns an ``Annotations``: the images (id, file name, size), one target dict per
image, and the class names. Predictions are read *against* the ground truth's images, so that
the two lists line up and a prediction for an image the ground truth does not have is an error.

Coordinates are kept as the file writes them: COCO's ``[x, y, w, h]`` becomes
``(x, y, x + w, y + h)``; VOC's 1-based pixel indices (``xmax`` included) stay as they are
(evaluate with ``plus_one=True`` to follow the VOC devkit); YOLO's relative ``cx cy w h`` are
multiplied by the image size when it is known (``images_dir``), else kept relative.

Every malformed file raises ``AnnotationError`` (a ``ValueError``) naming the file, the line or
field, what was expected and what was found.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from xml.parsers import expat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "AnnotationError",
    "Annotations",
    "read_class_list",
    "read_coco",
    "read_coco_results",
    "write_coco",
    "write_coco_results",
    "read_voc",
    "read_voc_results",
    "write_voc",
    "write_voc_results",
    "read_yolo",
    "read_yolo_results",
    "write_yolo",
    "write_yolo_results",
    "rle_decode",
    "rle_encode",
    "polygons_to_mask",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class AnnotationError(ValueError):
    """A malformed annotation file: the message names the file, the place and what was expected."""


@dataclass
class Annotations:
    """Ground truth read from files: ``images[i]`` (``{"id", "file_name", "width", "height"}``,
    sizes None when unknown) goes with ``targets[i]``; ``classes`` maps each label to its name."""

    images: list
    targets: list
    classes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def _fail(path, where: str, message: str):
    raise AnnotationError(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def _number(value, path, where: str, minimum=None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(path, where, f"expected a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        _fail(path, where, f"expected a number >= {minimum:g}, got {value!r}")
    return float(value)


def _parse_number(text, path, where: str, minimum=None, maximum=None) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        _fail(path, where, f"expected a number, got {text!r}")
    if not math.isfinite(value):
        _fail(path, where, f"expected a finite number, got {text!r}")
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        bounds = f"in [{minimum:g}, {maximum:g}]" if maximum is not None else f">= {minimum:g}"
        _fail(path, where, f"expected a number {bounds}, got {text!r}")
    return value


def _target(boxes, labels, **extra) -> dict:
    out = {"boxes": torch.tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)),
           "labels": torch.tensor(np.asarray(labels, dtype=np.int64))}
    for key, values in extra.items():
        if values is not None:
            out[key] = values if isinstance(values, Tensor) else torch.tensor(values)
    return out


def _prediction(boxes, scores, labels, masks=None) -> dict:
    out = {"boxes": torch.tensor(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)),
           "scores": torch.tensor(np.asarray(scores, dtype=np.float64)),
           "labels": torch.tensor(np.asarray(labels, dtype=np.int64))}
    if masks is not None:
        out["masks"] = masks
    return out


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def read_class_list(path) -> list[str]:
    """Class names, one per line (``classes.txt``, darknet's ``obj.names``) or the ``names`` of an
    Ultralytics ``data.yaml`` (a list, or a dict from class index to name)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: no such class list file")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise AnnotationError(f"{path}: not valid YAML: {error}") from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            if sorted(names) != list(range(len(names))):
                _fail(path, "names", f"expected class indices 0..{len(names) - 1}, got {sorted(names)}")
            names = [names[k] for k in range(len(names))]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            _fail(path, "names", f"expected a list of class names, got {names!r}")
        return names
    names = [line.strip() for line in path.read_text().splitlines()]
    while names and not names[-1]:
        names.pop()
    for i, name in enumerate(names, start=1):
        if not name:
            _fail(path, f"line {i}", "expected a class name, got an empty line")
    return names


# --- COCO ------------------------------------------------------------------------------------------


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


# --- COCO's masks: run-length encoding and polygons (pycocotools' maskApi.c, in Python) --------------


def rle_decode(counts, height: int, width: int) -> Tensor:
    """A COCO run-length encoding (a list of counts, or the compressed string) as Tensor[H, W] bool.

    Runs alternate background / foreground, starting with background, down the columns (column
    major order, as pycocotools stores masks)."""
    if isinstance(counts, str):
        counts = _rle_from_string(counts)
    if not isinstance(counts, list) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                               for c in counts):
        raise ValueError(f"expected a list of run lengths >= 0 or a compressed RLE string, got {str(counts)[:80]}")
    if sum(counts) != height * width:
        raise ValueError(f"expected run lengths summing to height x width = {height * width}, got {sum(counts)}")
    values = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return torch.from_numpy(values.reshape(width, height).T.copy())


def _rle_from_string(text: str) -> list:
    """pycocotools' rleFrString: 5 bits a character (offset 48), a continuation bit, differences
    to the count two places back from the third count on."""
    counts, p = [], 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            if p >= len(text):
                raise ValueError("expected a complete compressed RLE string, it ends inside a number")
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: Tensor) -> dict:
    """A boolean mask (Tensor[H, W]) as COCO's compressed RLE ``{"size": [H, W], "counts": str}``."""
    height, width = mask.shape
    flat = mask.bool().T.reshape(-1).numpy()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    text = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            text.append(chr(c + 48))
    return {"size": [int(height), int(width)], "counts": "".join(text)}


def polygons_to_mask(polygons: list, height: int, width: int) -> Tensor:
    """The union of polygons ``[x1, y1, x2, y2, ...]`` (pixel coordinates) as Tensor[H, W] bool,
    rasterized as pycocotools' rleFrPoly does (edges traced at 5x resolution; a pixel is inside
    when its centre is)."""
    mask = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        mask |= _polygon_mask(np.asarray(polygon, dtype=np.float64), height, width)
    return torch.from_numpy(mask)


def _polygon_mask(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    scale = 5.0
    x = (scale * xy[0::2] + 0.5).astype(np.int64)  # C's (int) cast truncates toward zero
    y = (scale * xy[1::2] + 0.5).astype(np.int64)
    x, y = np.append(x, x[0]), np.append(y, y[0])
    u, v = [], []
    for j in range(len(x) - 1):
        xs, xe, ys, ye = int(x[j]), int(x[j + 1]), int(y[j]), int(y[j + 1])
        dx, dy = abs(xe - xs), abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe, ys, ye = xe, xs, ye, ys
        if dx >= dy:
            s = (ye - ys) / dx if dx else 0.0
            for d in range(dx + 1):
                t = dx - d if flip else d
                u.append(t + xs)
                v.append(int(ys + s * t + 0.5))
        else:
            s = (xe - xs) / dy
            for d in range(dy + 1):
                t = dy - d if flip else d
                v.append(t + ys)
                u.append(int(xs + s * t + 0.5))
    # points where the traced boundary crosses a pixel column's centre, down-sampled
    starts = []
    for j in range(1, len(u)):
        if u[j] == u[j - 1]:
            continue
        xd = float(u[j] if u[j] < u[j - 1] else u[j] - 1)
        xd = (xd + 0.5) / scale - 0.5
        if math.floor(xd) != xd or xd < 0 or xd > width - 1:
            continue
        yd = float(v[j] if v[j] < v[j - 1] else v[j - 1])
        yd = (yd + 0.5) / scale - 0.5
        yd = math.ceil(min(max(yd, 0.0), float(height)))
        starts.append(int(xd) * height + yd)
    # each crossing toggles inside / outside from there on, down the columns
    toggles = np.zeros(height * width + 1, dtype=np.int64)
    np.add.at(toggles, np.asarray(starts, dtype=np.int64), 1)
    inside = (np.cumsum(toggles)[:-1] % 2).astype(bool)
    return inside.reshape(width, height).T


# --- PASCAL VOC ------------------------------------------------------------------------------------


def _parse_xml(path):
    """ElementTree with the line of every element (for error messages)."""
    lines = {}
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()

    def start(tag, attrs):
        lines[builder.start(tag, attrs)] = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(Path(path).read_bytes(), True)
    except expat.ExpatError as error:
        raise AnnotationError(f"{path}: line {error.lineno}: not well-formed XML: "
                              f"{expat.ErrorString(error.code)}") from None
    return builder.close(), lines


def _xml_files(path) -> list:
    if isinstance(path, (list, tuple)):
        return [Path(p) for p in path]
    path = Path(path)
    if path.is_dir():
        return sorted(path.glob("*.xml"))
    if path.is_file():
        return [path]
    raise AnnotationError(f"{path}: no such file or folder")


def read_voc(path, classes: list | None = None) -> Annotations:
    """PASCAL VOC XML files (a folder of them, one file, or a list), one image each.

    Labels index ``classes`` (a list of names); without it, the sorted names found in the files.
    ``difficult`` is kept. Coordinates stay as written (1-based pixel indices, ``xmax``
    included): evaluate with ``plus_one=True`` for the VOC devkit's convention.
    """
    files = _xml_files(path)
    parsed = []
    for file in files:
        root, lines = _parse_xml(file)
        if root.tag != "annotation":
            _fail(file, f"line {lines[root]}", f"expected an <annotation> root element, got <{root.tag}>")
        size = root.find("size")
        dims = {}
        if size is not None:
            for key in ("width", "height"):
                element = size.find(key)
                if element is not None:
                    dims[key] = int(_parse_number(element.text, file, f"line {lines[element]}: <size><{key}>",
                                                  minimum=1))
        objects = []
        for k, obj in enumerate(root.findall("object")):
            where = f"line {lines[obj]}: <object> {k + 1}"
            name = obj.find("name")
            if name is None or not (name.text or "").strip():
                _fail(file, where, "missing <name>")
            box = obj.find("bndbox")
            if box is None:
                _fail(file, where, "missing <bndbox>")
            coords = []
            for key in ("xmin", "ymin", "xmax", "ymax"):
                element = box.find(key)
                if element is None:
                    _fail(file, f"line {lines[box]}: <bndbox>", f"missing <{key}>")
                coords.append(_parse_number(element.text, file, f"line {lines[element]}: <{key}>"))
            if coords[2] < coords[0] or coords[3] < coords[1]:
                _fail(file, f"line {lines[box]}: <bndbox>", f"expected xmin <= xmax and ymin <= ymax, got {coords}")
            flag = obj.find("difficult")
            difficult = False
            if flag is not None:
                if (flag.text or "").strip() not in ("0", "1"):
                    _fail(file, f"line {lines[flag]}: <difficult>", f"expected 0 or 1, got {flag.text!r}")
                difficult = flag.text.strip() == "1"
            objects.append((name.text.strip(), coords, difficult, lines[name]))
        filename = root.find("filename")
        parsed.append((file, filename.text.strip() if filename is not None and filename.text else file.stem + ".jpg",
                       dims, objects))
    names = list(classes) if classes is not None else sorted({o[0] for _, _, _, objs in parsed for o in objs})
    lookup = {name: i for i, name in enumerate(names)}
    images, targets = [], []
    for file, filename, dims, objects in parsed:
        for name, _, _, line in objects:
            if name not in lookup:
                _fail(file, f"line {line}: <name>", f"unknown class {name!r}: expected one of {names}")
        images.append({"id": file.stem, "file_name": filename, "width": dims.get("width"),
                       "height": dims.get("height")})
        targets.append(_target([o[1] for o in objects], [lookup[o[0]] for o in objects],
                               difficult=torch.tensor([o[2] for o in objects], dtype=torch.bool)))
    return Annotations(images, targets, dict(enumerate(names)))


def write_voc(folder, annotations: Annotations) -> None:
    """One VOC XML file per image, ``<id>.xml``, in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for image, t in zip(annotations.images, annotations.targets):
        root = ET.Element("annotation")
        ET.SubElement(root, "filename").text = image.get("file_name") or f"{image['id']}.jpg"
        if image.get("width") is not None:
            size = ET.SubElement(root, "size")
            ET.SubElement(size, "width").text = str(image["width"])
            ET.SubElement(size, "height").text = str(image["height"])
            ET.SubElement(size, "depth").text = "3"
        difficult = t.get("difficult", torch.zeros(len(t["labels"]), dtype=torch.bool)).tolist()
        for box, label, hard in zip(t["boxes"].double().tolist(), t["labels"].tolist(), difficult):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = annotations.classes[label]
            ET.SubElement(obj, "difficult").text = str(int(hard))
            bndbox = ET.SubElement(obj, "bndbox")
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
                ET.SubElement(bndbox, key).text = _format_number(value)
        ET.indent(root)
        ET.ElementTree(root).write(folder / f"{image['id']}.xml", encoding="unicode")


def _class_of_file(file: Path, names: list) -> str:
    # the devkit names them <prefix><class>.txt, e.g. comp4_det_test_aeroplane.txt
    matches = [n for n in names if file.stem == n or file.stem.endswith("_" + n)]
    if not matches:
        _fail(file, "file name", f"expected it to end with a class name ({', '.join(names)})")
    return max(matches, key=len)


def read_voc_results(path, images: list, classes: dict) -> list:
    """The VOC devkit's result files (one per class, ``<prefix><class>.txt``, lines
    ``image_id score xmin ymin xmax ymax``), one prediction dict per image of ``images``."""
    path = Path(path)
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not path.exists():
        raise AnnotationError(f"{path}: no such file or folder")
    names = list(classes.values())
    label_of = {n: label for label, n in classes.items()}
    index = {str(im["id"]): i for i, im in enumerate(images)}
    rows = [[] for _ in images]
    for file in files:
        label = label_of[_class_of_file(file, names)]
        for n, line in enumerate(file.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                _fail(file, f"line {n}", f"expected 'image_id score xmin ymin xmax ymax', got {line.strip()!r}")
            if fields[0] not in index:
                _fail(file, f"line {n}", f"image {fields[0]!r} is not an image of the ground truth")
            score = _parse_number(fields[1], file, f"line {n}: score")
            box = [_parse_number(v, file, f"line {n}: {k}")
                   for k, v in zip(("xmin", "ymin", "xmax", "ymax"), fields[2:])]
            if box[2] < box[0] or box[3] < box[1]:
                _fail(file, f"line {n}", f"expected xmin <= xmax and ymin <= ymax, got {box}")
            rows[index[fields[0]]].append((box, score, label))
    return [_prediction([r[0] for r in row], [r[1] for r in row], [r[2] for r in row]) for row in rows]


def write_voc_results(folder, preds: list, images: list, classes: dict, prefix: str = "comp4_det_test_") -> None:
    """The VOC devkit's result files: ``<prefix><class>.txt`` per class in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = {label: [] for label in classes}
    for image, p in zip(images, preds):
        for box, score, label in zip(p["boxes"].double().tolist(), p["scores"].double().tolist(), p["labels"].tolist()):
            lines[label].append(" ".join([str(image["id"]), repr(score), *(_format_number(v) for v in box)]))
    for label, name in classes.items():
        (folder / f"{prefix}{name}.txt").write_text("".join(line + "\n" for line in lines[label]))


# --- YOLO ------------------------------------------------------------------------------------------


def _label_files(path) -> list:
    path = Path(path)
    if not path.is_dir():
        raise AnnotationError(f"{path}: expected a folder of YOLO label files (<image>.txt)")
    return sorted(f for f in path.glob("*.txt") if f.name != "classes.txt")


def _image_sizes(images_dir, stems) -> dict:
    if images_dir is None:
        return {}
    from PIL import Image

    images_dir = Path(images_dir)
    files = {f.stem: f for f in images_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES}
    sizes = {}
    for stem in stems:
        if stem not in files:
            raise AnnotationError(f"{images_dir}: no image for label file {stem}.txt (expected {stem}.jpg, .png, ...)")
        with Image.open(files[stem]) as image:
            sizes[stem] = image.size  # (width, height)
    return sizes


def _read_yolo_lines(file: Path, num_fields: int, num_classes: int | None, size):
    boxes, labels, scores = [], [], []
    what = "class cx cy w h" + (" confidence" if num_fields == 6 else "")
    for n, line in enumerate(file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != num_fields:
            _fail(file, f"line {n}", f"expected {num_fields} numbers '{what}', got {line.strip()!r}")
        try:
            label = int(fields[0])
        except ValueError:
            _fail(file, f"line {n}", f"expected an integer class index, got {fields[0]!r}")
        if label < 0 or num_classes is not None and label >= num_classes:
            _fail(file, f"line {n}", f"class {label} is not in the class list (0..{num_classes - 1})"
                  if num_classes is not None else f"expected a class index >= 0, got {label}")
        cx, cy, w, h = (_parse_number(v, file, f"line {n}: {k}", minimum=0.0, maximum=1.0)
                        for k, v in zip(("cx", "cy", "w", "h"), fields[1:5]))
        sx, sy = size if size is not None else (1.0, 1.0)
        boxes.append([(cx - w / 2) * sx, (cy - h / 2) * sy, (cx + w / 2) * sx, (cy + h / 2) * sy])
        labels.append(label)
        if num_fields == 6:
            scores.append(_parse_number(fields[5], file, f"line {n}: confidence"))
    return boxes, labels, scores


def read_yolo(path, classes: list | None = None, images_dir=None) -> Annotations:
    """YOLO label files: a folder with one ``<image>.txt`` per image, lines ``class cx cy w h``
    relative to the image size. ``classes``: the class names (``read_class_list``); labels must
    index them. ``images_dir``: where the images are (their sizes turn relative coordinates into
    pixels); without it boxes stay relative and sizes unknown."""
    files = _label_files(path)
    sizes = _image_sizes(images_dir, [f.stem for f in files])
    images, targets = [], []
    for file in files:
        size = sizes.get(file.stem)
        boxes, labels, _ = _read_yolo_lines(file, 5, len(classes) if classes is not None else None, size)
        images.append({"id": file.stem, "file_name": file.stem, "width": size[0] if size else None,
                       "height": size[1] if size else None})
        targets.append(_target(boxes, labels))
    if classes is not None:
        names = dict(enumerate(classes))
    else:
        names = {c: str(c) for c in sorted({int(c) for t in targets for c in t["labels"].tolist()})}
    return Annotations(images, targets, names)


def read_yolo_results(path, images: list, classes: dict | None = None) -> list:
    """YOLO prediction files (lines ``class cx cy w h confidence``, as ``save_txt`` with
    ``save_conf`` writes them), one prediction dict per image of ``images``; an image without a
    file has no detections."""
    files = _label_files(path)
    index = {str(im["id"]): i for i, im in enumerate(images)}
    preds = [_prediction([], [], []) for _ in images]
    for file in files:
        if file.stem not in index:
            _fail(file, "file name", f"image {file.stem!r} is not an image of the ground truth")
        image = images[index[file.stem]]
        size = (image["width"], image["height"]) if image.get("width") is not None else None
        boxes, labels, scores = _read_yolo_lines(file, 6, len(classes) if classes else None, size)
        preds[index[file.stem]] = _prediction(boxes, scores, labels)
    return preds


def _yolo_line(box, label, image, score=None) -> str:
    sx, sy = (image["width"], image["height"]) if image.get("width") is not None else (1.0, 1.0)
    x1, y1, x2, y2 = box
    values = [(x1 + x2) / 2 / sx, (y1 + y2) / 2 / sy, (x2 - x1) / sx, (y2 - y1) / sy]
    text = " ".join([str(int(label)), *(repr(v) for v in values)])
    return text + (f" {score!r}" if score is not None else "")


def write_yolo(folder, annotations: Annotations) -> None:
    """One ``<id>.txt`` per image and ``classes.txt`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for image, t in zip(annotations.images, annotations.targets):
        lines = [_yolo_line(b, c, image) for b, c in zip(t["boxes"].double().tolist(), t["labels"].tolist())]
        (folder / f"{image['id']}.txt").write_text("".join(line + "\n" for line in lines))
    if annotations.classes:
        top = max(annotations.classes) + 1
        (folder / "classes.txt").write_text("".join(annotations.classes.get(k, str(k)) + "\n" for k in range(top)))


def write_yolo_results(folder, preds: list, images: list) -> None:
    """One ``<id>.txt`` per image with ``class cx cy w h confidence`` lines."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for image, p in zip(images, preds):
        lines = [_yolo_line(b, c, image, s) for b, c, s in zip(p["boxes"].double().tolist(), p["labels"].tolist(),
                                                               p["scores"].double().tolist())]
        (folder / f"{image['id']}.txt").write_text("".join(line + "\n" for line in lines))

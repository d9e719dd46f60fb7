"""PASCAL VOC on disk: read it as tensors (segmentation and detection), or write a data set in its layout.

**Reading** (the real-data path of the segmentation and detection chapters). A thin wrapper around
``torchvision.datasets.VOCSegmentation`` (never downloading: the course runs offline, so you
fetch VOC yourself and point ``root`` at it) that turns its PIL images into

- ``image (Tensor[3, H, W] float32)`` in [0, 1], and
- ``mask (Tensor[H, W] int64)``: class ids 0 (background) .. 20 as in ``VOC_CLASSES``, and
  ``VOC_IGNORE_INDEX = 255`` on the thin "void" borders drawn around objects, which the
  metrics and the loss skip (``ignore_index=255``).

Expected layout under ``root`` (VOC's own)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png      (palette PNG: pixel value = class id)
    VOCdevkit/VOC2012/SegmentationObject/<id>.png     (palette PNG: pixel value = object number)
    VOCdevkit/VOC2012/Annotations/<id>.xml            (boxes: <object><name>, <bndbox>...)
    VOCdevkit/VOC2012/ImageSets/Segmentation/<image_set>.txt   (one <id> per line)
    VOCdevkit/VOC2012/ImageSets/Main/<image_set>.txt  (and <class>_<image_set>.txt: <id> 1 / -1)

:class:`VOCDetectionDataset` reads the boxes as ``(image, {"boxes", "labels", "difficult"})``,
the format of the detectors and of ``lecture_lib.metrics.detection``.

**Writing**: :func:`write_voc` exports scenes (e.g. the synthetic shapes of
``lecture_lib.data.shapes``) in the same layout, so that any VOC tool -- an annotation viewer,
the devkit's evaluation, torchvision's ``VOCDetection`` / ``VOCSegmentation`` -- can open them.

Box convention: VOC's ``<bndbox>`` holds 1-based, inclusive pixel indices (``xmin = 1`` is the
first column, ``xmax = W`` the last). Our boxes are continuous coordinates (pixel ``c`` covers
``[c, c + 1)``), so ``xmin = x1 + 1`` and ``xmax = x2``, and back ``x1 = xmin - 1``,
``x2 = xmax``: a box around whole pixels survives the round trip exactly.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["VOC_CLASSES", "VOC_IGNORE_INDEX", "voc_palette", "VOCSegmentationDataset", "read_voc_annotation",
           "VOCDetectionDataset", "write_voc"]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOC_IGNORE_INDEX = 255


def _check_voc_root(root: Path, year: str, image_set: str) -> None:
    """Raise ``FileNotFoundError`` naming the missing piece when VOC is not where expected."""
    base = root / "VOCdevkit" / f"VOC{year}"
    needed = [base / "JPEGImages", base / "SegmentationClass",
              base / "ImageSets" / "Segmentation" / f"{image_set}.txt"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"PASCAL VOC {year} segmentation data not found under {str(root)!r}: missing "
            f"{', '.join(missing)}. This course never downloads it; get VOCtrainval "
            f"(VOCdevkit/VOC{year}/...) yourself and pass its parent folder as root."
        )


class VOCSegmentationDataset(Dataset):
    """PASCAL VOC semantic segmentation as ``(image [3, H, W] float32, mask [H, W] int64)``.

    Args:
        root: folder that holds ``VOCdevkit/``.
        year: "2007" .. "2012".
        image_set: "train", "trainval" or "val" (the name of the list file).
        image_size: optional ``(H, W)`` (or an int): resize the image bilinearly and the mask
            with nearest neighbour (never interpolate class ids), so that items can be batched.
    """

    classes = VOC_CLASSES
    num_classes = len(VOC_CLASSES)
    ignore_index = VOC_IGNORE_INDEX

    def __init__(self, root: str | os.PathLike, year: str = "2012", image_set: str = "train",
                 image_size: int | tuple[int, int] | None = None) -> None:
        from torchvision.datasets import VOCSegmentation

        if not isinstance(year, str) or year not in {str(y) for y in range(2007, 2013)}:
            raise ValueError(f"year must be a string from '2007' to '2012', got {year!r}")
        if isinstance(image_size, int) and not isinstance(image_size, bool):
            image_size = (image_size, image_size)
        if image_size is not None and not (
            isinstance(image_size, (tuple, list)) and len(image_size) == 2
            and all(isinstance(s, int) and s > 0 for s in image_size)
        ):
            raise ValueError(f"image_size must be None, an int or (height, width) > 0, got {image_size!r}")
        _check_voc_root(Path(root), year, image_set)
        self.image_size = None if image_size is None else tuple(image_size)
        self.voc = VOCSegmentation(str(root), year=year, image_set=image_set, download=False)

    def __len__(self) -> int:
        return len(self.voc)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, target = self.voc[index]  # PIL RGB image, PIL palette ("P") image
        image = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        # A palette PNG stores the class id as the pixel's palette index: np.array gives it.
        if target.mode not in ("P", "L"):
            raise ValueError(f"segmentation target must be a palette or grey PNG, got mode {target.mode!r}")
        mask = torch.from_numpy(np.array(target, dtype=np.int64))
        if self.image_size is not None:
            image = F.interpolate(image[None], size=self.image_size, mode="bilinear", align_corners=False)[0]
            mask = F.interpolate(mask[None, None].float(), size=self.image_size, mode="nearest")[0, 0].long()
        return image.contiguous(), mask


def voc_palette() -> list[int]:
    """VOC's colour map as a flat ``[r, g, b] * 256`` list for ``PIL.Image.putpalette``.

    Colour of index ``i``: the bits of ``i`` interleaved into the high bits of r, g, b (the
    devkit's ``labelcolormap.m``): 1 -> dark red, 2 -> dark green, 255 -> the cream of the void
    borders.
    """
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


# --- detection: the Annotations XML ------------------------------------------------------------

def read_voc_annotation(path: str | os.PathLike) -> dict:
    """One ``Annotations/<id>.xml`` as plain Python values.

    Returns:
        ``{"filename": str, "size": (height, width, depth), "segmented": bool, "objects":
        [{"name", "bndbox": (xmin, ymin, xmax, ymax) ints (1-based, inclusive), "difficult",
        "truncated": bool, "pose": str}, ...]}``.
    """
    root = ET.parse(path).getroot()
    if root.tag != "annotation":
        raise ValueError(f"{path} is not a VOC annotation: root element <{root.tag}>, expected <annotation>")

    def text(node, tag, default=None):
        child = node.find(tag)
        if child is None or child.text is None:
            if default is None:
                raise ValueError(f"{path}: <{node.tag}> has no <{tag}>")
            return default
        return child.text.strip()

    size = root.find("size")
    objects = []
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{path}: an <object> has no <bndbox>")
        objects.append({
            "name": text(obj, "name"),
            # VOC stores some coordinates as "273.5" (a few 2012 files): round like the devkit
            "bndbox": tuple(int(round(float(text(box, k)))) for k in ("xmin", "ymin", "xmax", "ymax")),
            "difficult": text(obj, "difficult", "0") == "1",
            "truncated": text(obj, "truncated", "0") == "1",
            "pose": text(obj, "pose", "Unspecified"),
        })
    return {"filename": text(root, "filename"),
            "size": tuple(int(text(size, k)) for k in ("height", "width", "depth")) if size is not None else None,
            "segmented": text(root, "segmented", "0") == "1",
            "objects": objects}


def _read_ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


class VOCDetectionDataset(Dataset):
    """PASCAL VOC boxes as ``(image [3, H, W] float32, {"boxes" [N, 4], "labels" [N], "difficult" [N]})``.

    Boxes in continuous coordinates (``x1 = xmin - 1``, ``x2 = xmax``), labels the index of the
    object's name in ``classes`` (0 is the background), ``difficult`` as bool (VOC's mAP ignores
    those objects; ``lecture_lib.metrics.detection`` does too).

    Args:
        root: folder that holds ``VOCdevkit/``.
        year: "2007" .. "2012".
        image_set: name of the list file in ``ImageSets/Main``.
        classes: class names, background first (default ``VOC_CLASSES``; for scenes written by
            :func:`write_voc` pass the same names).
    """

    def __init__(self, root: str | os.PathLike, year: str = "2012", image_set: str = "train",
                 classes: tuple[str, ...] = VOC_CLASSES) -> None:
        if not isinstance(year, str) or year not in {str(y) for y in range(2007, 2013)}:
            raise ValueError(f"year must be a string from '2007' to '2012', got {year!r}")
        self.base = Path(root) / "VOCdevkit" / f"VOC{year}"
        listing = self.base / "ImageSets" / "Main" / f"{image_set}.txt"
        missing = [str(p) for p in (self.base / "JPEGImages", self.base / "Annotations", listing) if not p.exists()]
        if missing:
            raise FileNotFoundError(f"PASCAL VOC {year} detection data not found under {str(root)!r}: missing "
                                    f"{', '.join(missing)}. This course never downloads it.")
        self.classes = tuple(classes)
        self.ids = _read_ids(listing)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Tensor, dict]:
        from PIL import Image

        name = self.ids[index]
        annotation = read_voc_annotation(self.base / "Annotations" / f"{name}.xml")
        unknown = sorted({o["name"] for o in annotation["objects"]} - set(self.classes))
        if unknown:
            raise ValueError(f"{name}.xml has objects of classes {unknown} that are not in classes {self.classes}")
        image = Image.open(self.base / "JPEGImages" / f"{name}.jpg").convert("RGB")
        image = torch.from_numpy(np.array(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        boxes = torch.tensor([o["bndbox"] for o in annotation["objects"]], dtype=torch.float32).reshape(-1, 4)
        boxes[:, :2] -= 1  # 1-based inclusive pixel indices -> continuous coordinates
        return image, {"boxes": boxes,
                       "labels": torch.tensor([self.classes.index(o["name"]) for o in annotation["objects"]],
                                              dtype=torch.int64),
                       "difficult": torch.tensor([o["difficult"] for o in annotation["objects"]], dtype=torch.bool)}


# --- writing -----------------------------------------------------------------------------------

def _annotation_xml(name: str, folder: str, size: tuple[int, int], boxes: Tensor, labels: Tensor,
                    classes: tuple[str, ...], segmented: bool) -> ET.ElementTree:
    height, width = size
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = f"{name}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "lecture_lib"
    ET.SubElement(source, "annotation").text = "lecture_lib.data.voc.write_voc"
    ET.SubElement(source, "image").text = "synthetic"
    size_node = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size_node, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1" if segmented else "0"
    for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
        # continuous -> VOC's 1-based inclusive pixel indices (whole-pixel boxes stay exact)
        xmin, ymin, xmax, ymax = int(round(x1)) + 1, int(round(y1)) + 1, int(round(x2)), int(round(y2))
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = classes[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "1" if xmin <= 1 or ymin <= 1 or xmax >= width or ymax >= height else "0"
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
            ET.SubElement(box, tag).text = str(value)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


def _palette_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    png = Image.fromarray(array.astype(np.uint8), mode="P")
    png.putpalette(voc_palette())
    png.save(path)


def write_voc(root: str | os.PathLike, scenes, image_set: str = "train", year: str = "2012",
              classes: tuple[str, ...] | None = None, prefix: str | None = None,
              jpeg_quality: int = 95) -> list[str]:
    """Write scenes in PASCAL VOC's layout under ``root/VOCdevkit/VOC<year>/``.

    For every scene: ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml`` (one ``<object>`` per box,
    name from ``classes``, ``<bndbox>`` in VOC's 1-based inclusive pixels; ``truncated`` when
    the box touches the border, ``difficult`` 0) and, when the scene has masks,
    ``SegmentationClass/<id>.png`` (class id per pixel) and ``SegmentationObject/<id>.png``
    (object number 1..N per pixel, in box order), both palette PNGs with VOC's colours. The lists:
    ``ImageSets/Main/<image_set>.txt``, ``ImageSets/Main/<class>_<image_set>.txt`` (``<id>  1``
    when the image holds the class, ``<id> -1`` otherwise) and, with masks,
    ``ImageSets/Segmentation/<image_set>.txt``. Existing list files of the same image set are
    replaced; other image sets and files stay.

    Args:
        root: folder to create ``VOCdevkit/`` in.
        scenes: a ``ShapesDataset`` (its ``scene(i)``: image, boxes, labels, mask,
            instance_masks) or a sequence of objects with those attributes (``mask`` and
            ``instance_masks`` optional) -- e.g. ``lecture_lib.data.shapes.Scene``.
        image_set: name of the list ("train", "val", "test", ...).
        year: "2007" .. "2012", the folder name ``VOC<year>``.
        classes: names by label, background first; default the data set's ``classes`` or the
            shapes' ``CLASS_NAMES``.
        prefix: image ids are ``<prefix><index:06d>``; default ``"<image_set>_"``.
        jpeg_quality: JPEG quality of the images (VOC stores JPEG: the pixels come back close,
            not equal).

    Returns:
        The image ids written, in order.
    """
    if not isinstance(year, str) or year not in {str(y) for y in range(2007, 2013)}:
        raise ValueError(f"year must be a string from '2007' to '2012', got {year!r}")
    if not isinstance(image_set, str) or not image_set or any(c in image_set for c in "/\\ "):
        raise ValueError(f"image_set must be a plain name like 'train', got {image_set!r}")
    if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) or not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be an int in [1, 100], got {jpeg_quality!r}")
    if classes is None:
        from lecture_lib.data.shapes import CLASS_NAMES

        classes = tuple(getattr(scenes, "classes", CLASS_NAMES))
    classes = tuple(classes)
    if len(classes) < 2 or not all(isinstance(c, str) and c and " " not in c for c in classes):
        raise ValueError(f"classes must be names without spaces, background first, got {classes!r}")
    items = [scenes.scene(i) for i in range(len(scenes))] if hasattr(scenes, "scene") else list(scenes)
    prefix = f"{image_set}_" if prefix is None else prefix
    base = Path(root) / "VOCdevkit" / f"VOC{year}"
    for folder in (base / "JPEGImages", base / "Annotations", base / "ImageSets" / "Main"):
        folder.mkdir(parents=True, exist_ok=True)
    ids, present, segmented_ids = [], [], []
    for index, scene in enumerate(items):
        name = f"{prefix}{index:06d}"
        if _write_scene(base, name, index, scene, classes, jpeg_quality):
            segmented_ids.append(name)
        ids.append(name)
        present.append(set(scene.labels.tolist()))
    main = base / "ImageSets" / "Main"
    (main / f"{image_set}.txt").write_text("".join(f"{n}\n" for n in ids))
    for label, class_name in enumerate(classes[1:], start=1):
        (main / f"{class_name}_{image_set}.txt").write_text(
            "".join(f"{n} {' 1' if label in p else '-1'}\n" for n, p in zip(ids, present)))
    if segmented_ids:
        (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (base / "ImageSets" / "Segmentation" / f"{image_set}.txt").write_text("".join(f"{n}\n" for n in segmented_ids))
    return ids


def _write_scene(base: Path, name: str, index: int, scene, classes: tuple[str, ...], jpeg_quality: int) -> bool:
    """One scene of ``write_voc``: its JPEG, its XML and (with a mask) its two PNGs; whether it has masks."""
    from PIL import Image

    for attribute in ("image", "boxes", "labels"):
        if not hasattr(scene, attribute):
            raise TypeError(f"scenes[{index}] must have image, boxes and labels (like a Scene), "
                            f"missing {attribute!r}")
    image, boxes, labels = scene.image, scene.boxes, scene.labels
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"scenes[{index}].image must be a Tensor[3, H, W], got {getattr(image, 'shape', image)!r}")
    if labels.numel() and (labels.min() < 1 or labels.max() >= len(classes)):
        raise ValueError(f"scenes[{index}].labels must be in [1, {len(classes) - 1}] to name them with "
                         f"classes, got {labels.tolist()}")
    size = tuple(image.shape[-2:])
    pixels = (image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    Image.fromarray(pixels).save(base / "JPEGImages" / f"{name}.jpg", quality=jpeg_quality,
                                 subsampling=0)  # no chroma subsampling: the shapes keep their colours
    mask = getattr(scene, "mask", None)
    instances = getattr(scene, "instance_masks", None)
    if mask is not None:
        (base / "SegmentationClass").mkdir(exist_ok=True)
        _palette_png(mask.cpu().numpy(), base / "SegmentationClass" / f"{name}.png")
        if instances is not None:
            objects = np.zeros(size, dtype=np.uint8)
            for k, m in enumerate(instances.cpu().numpy()):
                objects[m] = k + 1
            (base / "SegmentationObject").mkdir(exist_ok=True)
            _palette_png(objects, base / "SegmentationObject" / f"{name}.png")
    _annotation_xml(name, base.name, size, boxes, labels, classes, mask is not None).write(
        base / "Annotations" / f"{name}.xml", encoding="utf-8")
    return mask is not None

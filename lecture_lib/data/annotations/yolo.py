"""YOLO txt: one file per image, ``class cx cy w h`` relative to the image size (multiplied out
when the image sizes are known), and the same with a score for results."""

from __future__ import annotations

from pathlib import Path



from lecture_lib.data.annotations.common import AnnotationError, Annotations, IMAGE_SUFFIXES, _fail, _parse_number, _prediction, _target


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

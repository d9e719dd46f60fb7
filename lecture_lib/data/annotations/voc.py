"""PASCAL VOC: one XML file per image (1-based pixel boxes, ``difficult`` flags) and the devkit's
results files (one text file per class)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.parsers import expat

import torch

from lecture_lib.data.annotations.common import AnnotationError, Annotations, _fail, _format_number, _parse_number, _prediction, _target


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

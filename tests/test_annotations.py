"""lecture_lib.data.annotations: round trips through COCO JSON, VOC XML and YOLO txt, COCO's masks
against pycocotools' RLE and polygons, and an error naming file, place and expectation for every
malformed file."""

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from lecture_lib.data.annotations import (
    AnnotationError,
    Annotations,
    polygons_to_mask,
    read_class_list,
    read_coco,
    read_coco_results,
    read_voc,
    read_voc_results,
    read_yolo,
    read_yolo_results,
    rle_decode,
    rle_encode,
    write_coco,
    write_coco_results,
    write_voc,
    write_voc_results,
    write_yolo,
    write_yolo_results,
)


def sample(rng, num_images=4, num_classes=3, integer=False, size=(60, 80)):
    """Ground truth and predictions on images of ``size`` (height, width)."""
    height, width = size
    images, targets, preds = [], [], []
    for i in range(num_images):
        m, n = int(rng.integers(0, 5)), int(rng.integers(0, 6))
        images.append({"id": i + 1, "file_name": f"im{i}.jpg", "width": width, "height": height})
        targets.append(_boxes(rng, m, num_classes, integer, width, height))
        p = _boxes(rng, n, num_classes, integer, width, height)
        p["scores"] = torch.tensor(rng.random(n))
        preds.append(p)
    return Annotations(images, targets, {c: f"class{c}" for c in range(num_classes)}), preds


def _boxes(rng, m, num_classes, integer, width, height):
    if integer:
        xy = rng.integers(1, width // 2, (m, 2))
        wh = rng.integers(0, width // 2, (m, 2))
    else:
        xy = rng.uniform(0, width / 2, (m, 2))
        wh = rng.uniform(0, width / 2, (m, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [width, height])], 1).astype(np.float64)
    return {"boxes": torch.tensor(boxes.reshape(-1, 4)), "labels": torch.tensor(rng.integers(0, num_classes, m))}


def assert_same_boxes(got, expected, atol=1e-9):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g["boxes"], e["boxes"].double(), rtol=0, atol=atol)
        assert g["labels"].tolist() == e["labels"].tolist()
        if "scores" in e:
            torch.testing.assert_close(g["scores"], e["scores"].double(), rtol=0, atol=0)


# --- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_coco_round_trip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    gt, preds = sample(rng)
    gt.targets[0]["iscrowd"] = torch.ones(len(gt.targets[0]["labels"]), dtype=torch.bool)
    write_coco(tmp_path / "gt.json", gt)
    write_coco_results(tmp_path / "dt.json", preds, gt.images)
    back = read_coco(tmp_path / "gt.json")
    assert back.images == gt.images and back.classes == gt.classes
    assert_same_boxes(back.targets, gt.targets)
    assert back.targets[0]["iscrowd"].all() and not any(t["iscrowd"].any() for t in back.targets[1:])
    assert_same_boxes(read_coco_results(tmp_path / "dt.json", back.images), preds)


def test_coco_matches_pycocotools_loading(tmp_path):
    from pycocotools.coco import COCO

    rng = np.random.default_rng(3)
    gt, _ = sample(rng, num_images=6)
    write_coco(tmp_path / "gt.json", gt)
    back = read_coco(tmp_path / "gt.json")
    coco = COCO(str(tmp_path / "gt.json"))
    for image, t in zip(back.images, back.targets):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert [a["category_id"] for a in anns] == t["labels"].tolist()
        assert [a["area"] for a in anns] == pytest.approx(t["area"].tolist())


@pytest.mark.parametrize("seed", range(5))
def test_voc_round_trip(tmp_path, seed):
    rng = np.random.default_rng(10 + seed)
    gt, preds = sample(rng, integer=True)
    for t in gt.targets:
        t["difficult"] = torch.tensor(rng.random(len(t["labels"])) < 0.3)
    gt.images = [{**im, "id": f"2007_{i:06d}", "file_name": f"2007_{i:06d}.jpg"} for i, im in enumerate(gt.images)]
    write_voc(tmp_path / "Annotations", gt)
    write_voc_results(tmp_path / "results", preds, gt.images, gt.classes)
    back = read_voc(tmp_path / "Annotations", classes=list(gt.classes.values()))
    assert back.images == gt.images and back.classes == gt.classes
    assert_same_boxes(back.targets, gt.targets, atol=0)
    assert [t["difficult"].tolist() for t in back.targets] == [t["difficult"].tolist() for t in gt.targets]
    # result files group by class: compare each image's detections as sets
    got = read_voc_results(tmp_path / "results", back.images, back.classes)
    for g, p in zip(got, preds):
        assert _rows(g) == _rows(p)


def _rows(d):
    return sorted(zip(d["labels"].tolist(), d["scores"].double().tolist(), d["boxes"].double().tolist()))


@pytest.mark.parametrize("seed", range(5))
def test_yolo_round_trip(tmp_path, seed):
    from PIL import Image

    rng = np.random.default_rng(20 + seed)
    gt, preds = sample(rng)
    gt.images = [{**im, "id": f"im{i}", "file_name": f"im{i}"} for i, im in enumerate(gt.images)]
    (tmp_path / "images").mkdir()
    for im in gt.images:
        Image.new("RGB", (im["width"], im["height"])).save(tmp_path / "images" / f"{im['id']}.png")
    write_yolo(tmp_path / "labels", gt)
    write_yolo_results(tmp_path / "predictions", preds, gt.images)
    names = read_class_list(tmp_path / "labels" / "classes.txt")
    assert names == list(gt.classes.values())
    back = read_yolo(tmp_path / "labels", names, images_dir=tmp_path / "images")
    assert back.images == gt.images and back.classes == gt.classes
    assert_same_boxes(back.targets, gt.targets)
    assert_same_boxes(read_yolo_results(tmp_path / "predictions", back.images, back.classes), preds)
    # without the images, boxes stay relative to the image size
    relative = read_yolo(tmp_path / "labels", names)
    assert relative.images[0]["width"] is None
    scale = torch.tensor([80.0, 60.0, 80.0, 60.0], dtype=torch.float64)
    assert_same_boxes([{**t, "boxes": t["boxes"] * scale} for t in relative.targets], gt.targets)


def test_class_list_from_yaml(tmp_path):
    (tmp_path / "data.yaml").write_text("names:\n  0: person\n  1: car\n")
    assert read_class_list(tmp_path / "data.yaml") == ["person", "car"]
    (tmp_path / "list.yaml").write_text("names: [a, b, c]\n")
    assert read_class_list(tmp_path / "list.yaml") == ["a", "b", "c"]


# --- COCO masks against pycocotools ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_rle_equals_pycocotools(seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(int(torch.randint(1, 30, (1,), generator=g)), int(torch.randint(1, 30, (1,), generator=g)),
                      generator=g) > 0.6
    if seed == 0:
        mask[:] = True  # starts with a run of foreground: a first count of 0
    theirs = mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
    ours = rle_encode(mask)
    assert ours["counts"] == theirs["counts"].decode() and ours["size"] == list(theirs["size"])
    assert torch.equal(rle_decode(ours["counts"], *mask.shape), mask)
    uncompressed = mask_utils.frPyObjects({"size": list(mask.shape), "counts": _counts(mask)}, *mask.shape)
    assert torch.equal(rle_decode(_counts(mask), *mask.shape), torch.from_numpy(mask_utils.decode(uncompressed) > 0))


def _counts(mask):
    flat = mask.T.reshape(-1).int().tolist()
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return counts


@pytest.mark.parametrize("seed", range(15))
def test_polygons_equal_pycocotools(seed):
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(10, 50)), int(rng.integers(10, 50))
    polygons = []
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(3, 9))
        centre = rng.uniform(0, [width, height])
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radius = rng.uniform(2, 15, k)
        points = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None]
        if seed % 3 == 0:
            points = np.round(points)  # vertices on pixel corners
        polygons.append(points.reshape(-1).tolist())
    theirs = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))) > 0
    assert torch.equal(polygons_to_mask(polygons, height, width), torch.from_numpy(theirs))


def test_coco_segmentations_become_masks(tmp_path):
    mask = torch.zeros(20, 30, dtype=torch.bool)
    mask[5:12, 3:9] = True
    data = {"images": [{"id": 1, "width": 30, "height": 20}], "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [3, 5, 6, 7], "iscrowd": 1,
                             "segmentation": rle_encode(mask)},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [3, 5, 6, 7],
                             "segmentation": [[3, 5, 9, 5, 9, 12, 3, 12]]}]}
    (tmp_path / "gt.json").write_text(json.dumps(data))
    t = read_coco(tmp_path / "gt.json", masks=True).targets[0]
    assert torch.equal(t["masks"][0], mask)
    assert torch.equal(t["masks"][1], mask)  # pycocotools' rasterization of the same rectangle


# --- malformed files ---------------------------------------------------------------------------------


def coco_file(tmp_path, **changes):
    data = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 3, "name": "cat"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4]}]}
    for key, value in changes.items():
        if key == "annotation":
            data["annotations"][0].update(value)
        else:
            data[key] = value
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_errors_name_file_field_and_expectation(tmp_path):
    path = coco_file(tmp_path, annotation={"bbox": [1, 1, -4, 4]})
    with pytest.raises(AnnotationError, match=r"gt\.json: annotations\[0\]\.bbox: expected a width and height >= 0, "
                                              r"got \[1, 1, -4, 4\]"):
        read_coco(path)
    with pytest.raises(AnnotationError, match=r"annotations\[0\]: missing field 'bbox'"):
        data = json.loads(coco_file(tmp_path).read_text())
        del data["annotations"][0]["bbox"]
        path.write_text(json.dumps(data))
        read_coco(path)
    with pytest.raises(AnnotationError, match=r"annotations\[0\]\.category_id: 7 is not the id of a category"):
        read_coco(coco_file(tmp_path, annotation={"category_id": 7}))
    with pytest.raises(AnnotationError, match=r"annotations\[0\]\.image_id: 9 is not the id of an image"):
        read_coco(coco_file(tmp_path, annotation={"image_id": 9}))
    with pytest.raises(AnnotationError, match=r"annotations\[0\]\.iscrowd: expected 0 or 1, got 2"):
        read_coco(coco_file(tmp_path, annotation={"iscrowd": 2}))
    with pytest.raises(AnnotationError, match=r"annotations\[0\]\.bbox: expected a finite number, got 'x'"):
        read_coco(coco_file(tmp_path, annotation={"bbox": [1, "x", 4, 4]}))
    with pytest.raises(AnnotationError, match=r"gt\.json: images: expected a list, got nothing"):
        data = json.loads(coco_file(tmp_path).read_text())
        del data["images"]
        path.write_text(json.dumps(data))
        read_coco(path)
    path.write_text('{"images": [}')
    with pytest.raises(AnnotationError, match=r"gt\.json: line 1, column 13: not valid JSON"):
        read_coco(path)
    with pytest.raises(AnnotationError, match=r"nothing\.json: no such file"):
        read_coco(tmp_path / "nothing.json")


def test_coco_results_errors(tmp_path):
    images = read_coco(coco_file(tmp_path)).images
    path = tmp_path / "dt.json"
    path.write_text(json.dumps([{"image_id": 5, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}]))
    with pytest.raises(AnnotationError, match=r"dt\.json: \[0\]\.image_id: 5 is not an image of the ground truth"):
        read_coco_results(path, images)
    path.write_text(json.dumps([{"image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}]))
    with pytest.raises(AnnotationError, match=r"dt\.json: \[0\]: missing field 'score'"):
        read_coco_results(path, images)
    path.write_text(json.dumps({"image_id": 1}))
    with pytest.raises(AnnotationError, match=r"expected a JSON list of detections, got dict"):
        read_coco_results(path, images)


VOC = """<annotation>
  <filename>a.jpg</filename>
  <size><width>100</width><height>80</height><depth>3</depth></size>
  <object>
    <name>dog</name>
    <difficult>0</difficult>
    <bndbox><xmin>10</xmin><ymin>12</ymin><xmax>40</xmax><ymax>50</ymax></bndbox>
  </object>
</annotation>
"""


def test_voc_errors_name_file_line_and_expectation(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(VOC.replace("<xmax>40</xmax>", "<xmax>4</xmax>"))
    with pytest.raises(AnnotationError, match=r"a\.xml: line 7: <bndbox>: expected xmin <= xmax and ymin <= ymax"):
        read_voc(tmp_path)
    path.write_text(VOC.replace("<ymin>12</ymin>", ""))
    with pytest.raises(AnnotationError, match=r"a\.xml: line 7: <bndbox>: missing <ymin>"):
        read_voc(tmp_path)
    path.write_text(VOC.replace("<xmin>10</xmin>", "<xmin>ten</xmin>"))
    with pytest.raises(AnnotationError, match=r"a\.xml: line 7: <xmin>: expected a number, got 'ten'"):
        read_voc(tmp_path)
    path.write_text(VOC)
    with pytest.raises(AnnotationError, match=r"a\.xml: line 5: <name>: unknown class 'dog': expected one of "
                                              r"\['cat', 'car'\]"):
        read_voc(tmp_path, classes=["cat", "car"])
    path.write_text(VOC.replace("<difficult>0</difficult>", "<difficult>yes</difficult>"))
    with pytest.raises(AnnotationError, match=r"line 6: <difficult>: expected 0 or 1, got 'yes'"):
        read_voc(tmp_path)
    path.write_text(VOC.replace("</object>", ""))
    with pytest.raises(AnnotationError, match=r"a\.xml: line 9: not well-formed XML: mismatched tag"):
        read_voc(tmp_path)
    path.write_text(VOC)
    images = read_voc(tmp_path).images
    results = tmp_path / "results"
    results.mkdir()
    (results / "comp4_det_test_dog.txt").write_text("a 0.9 1 2 3 4\nb 0.8 1 2 3 4\n")
    with pytest.raises(AnnotationError, match=r"comp4_det_test_dog\.txt: line 2: image 'b' is not an image of the "
                                              r"ground truth"):
        read_voc_results(results, images, {0: "dog"})
    (results / "comp4_det_test_dog.txt").write_text("a 0.9 1 2 3\n")
    with pytest.raises(AnnotationError,
                       match=r"line 1: expected 'image_id score xmin ymin xmax ymax', got 'a 0.9 1 2 3'"):
        read_voc_results(results, images, {0: "dog"})
    (results / "comp4_det_test_dog.txt").unlink()
    (results / "comp4_det_test_horse.txt").write_text("a 0.9 1 2 3 4\n")
    with pytest.raises(AnnotationError, match=r"comp4_det_test_horse\.txt: file name: expected it to end with a class "
                                              r"name \(dog\)"):
        read_voc_results(results, images, {0: "dog"})


def test_yolo_errors_name_file_line_and_expectation(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n")
    with pytest.raises(AnnotationError, match=r"a\.txt: line 2: class 3 is not in the class list \(0\.\.1\)"):
        read_yolo(labels, ["cat", "dog"])
    (labels / "a.txt").write_text("0 0.5 1.5 0.2 0.2\n")
    with pytest.raises(AnnotationError, match=r"a\.txt: line 1: cy: expected a number in \[0, 1\], got '1.5'"):
        read_yolo(labels)
    (labels / "a.txt").write_text("0 0.5 0.5 0.2\n")
    with pytest.raises(AnnotationError, match=r"a\.txt: line 1: expected 5 numbers 'class cx cy w h', got "
                                              r"'0 0.5 0.5 0.2'"):
        read_yolo(labels)
    (labels / "a.txt").write_text("cat 0.5 0.5 0.2 0.2\n")
    with pytest.raises(AnnotationError, match=r"a\.txt: line 1: expected an integer class index, got 'cat'"):
        read_yolo(labels)
    (labels / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    images = read_yolo(labels).images
    preds = tmp_path / "preds"
    preds.mkdir()
    (preds / "zzz.txt").write_text("0 0.5 0.5 0.2 0.2 0.9\n")
    with pytest.raises(AnnotationError, match=r"zzz\.txt: file name: image 'zzz' is not an image of the ground truth"):
        read_yolo_results(preds, images)
    with pytest.raises(AnnotationError, match=r"no image for label file a\.txt"):
        read_yolo(labels, images_dir=preds)
    (tmp_path / "classes.txt").write_text("cat\n\ndog\n")
    with pytest.raises(AnnotationError, match=r"classes\.txt: line 2: expected a class name, got an empty line"):
        read_class_list(tmp_path / "classes.txt")


def test_rle_errors():
    with pytest.raises(ValueError, match=r"expected run lengths summing to height x width = 6, got 5"):
        rle_decode([2, 3], 2, 3)
    with pytest.raises(ValueError, match="it ends inside a number"):
        rle_decode("P", 2, 3)  # a continuation bit and then nothing

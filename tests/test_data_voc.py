"""Tests for lecture_lib.data.voc: the readers on a tiny fake VOC folder written in VOC's on-disk
layout, and the writer by round trips through our readers, torchvision's VOC datasets and
xml.etree."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import VOCDetection, VOCSegmentation

from lecture_lib.data.shapes import CLASS_NAMES, Scene, ShapesDataset, preset_dataset
from lecture_lib.data.voc import (
    VOC_CLASSES,
    VOC_IGNORE_INDEX,
    VOCDetectionDataset,
    VOCSegmentationDataset,
    read_voc_annotation,
    voc_palette,
    write_voc,
)


def _voc_palette() -> list[int]:
    # VOC's colour map (bit-interleaving of the class id), as in the devkit's labelcolormap.m
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


@pytest.fixture
def fake_voc(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    (base / "JPEGImages").mkdir(parents=True)
    (base / "SegmentationClass").mkdir()
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = ["2007_000032", "2007_000039", "2007_000063"]
    masks = {}
    for k, name in enumerate(ids):
        h, w = 20 + k, 30
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(base / "JPEGImages" / f"{name}.jpg")
        mask = np.zeros((h, w), np.uint8)
        mask[5:15, 4:12] = 15  # person
        mask[2:8, 20:28] = 7  # car
        mask[4, 3:13] = VOC_IGNORE_INDEX  # the void border
        png = Image.fromarray(mask, mode="P")
        png.putpalette(_voc_palette())
        png.save(base / "SegmentationClass" / f"{name}.png")
        masks[name] = mask
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids[:2]) + "\n")
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text(ids[2] + "\n")
    return tmp_path, ids, masks


def test_items_are_tensors_with_class_ids(fake_voc):
    root, ids, masks = fake_voc
    ds = VOCSegmentationDataset(root, image_set="train")
    assert len(ds) == 2 and ds.num_classes == 21 == len(VOC_CLASSES)
    image, mask = ds[1]
    assert image.shape == (3, 21, 30) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert mask.dtype == torch.int64
    # The palette PNG's colours must not leak in: we get the class ids back exactly.
    np.testing.assert_array_equal(mask.numpy(), masks[ids[1]].astype(np.int64))
    assert set(mask.unique().tolist()) == {0, 7, 15, 255}
    assert len(VOCSegmentationDataset(root, image_set="val")) == 1


def test_resize_keeps_class_ids(fake_voc):
    root, _, _ = fake_voc
    image, mask = VOCSegmentationDataset(root, image_size=(40, 60))[0]
    assert image.shape == (3, 40, 60) and mask.shape == (40, 60)
    # nearest-neighbour resizing: no new (interpolated) class ids appear
    assert set(mask.unique().tolist()) <= {0, 7, 15, 255}


def test_missing_data_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        VOCSegmentationDataset(tmp_path)


def test_missing_split_file(fake_voc):
    root, _, _ = fake_voc
    with pytest.raises(FileNotFoundError, match="trainval.txt"):
        VOCSegmentationDataset(root, image_set="trainval")


@pytest.mark.parametrize("kwargs,match", [
    (dict(year=2012), "year must be a string"),
    (dict(year="2013"), "year must be a string"),
    (dict(image_size=(0, 10)), "image_size must be"),
])
def test_bad_arguments(fake_voc, kwargs, match):
    root, _, _ = fake_voc
    with pytest.raises(ValueError, match=match):
        VOCSegmentationDataset(root, **kwargs)


# --- the writer ------------------------------------------------------------------------------


def test_palette_is_vocs_colour_map():
    palette = voc_palette()
    assert palette == _voc_palette() and len(palette) == 768
    # the devkit's colours of a few classes: aeroplane, person, and the void border
    assert palette[3:6] == [128, 0, 0]
    assert palette[15 * 3:16 * 3] == [192, 128, 128]
    assert palette[255 * 3:] == [224, 224, 192]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc_out")
    data = ShapesDataset(4, image_size=48, n_objects=(1, 3), seed=5, split="val")
    ids = write_voc(root, data, image_set="val")
    return root, data, ids


def test_writer_layout_and_lists(written):
    root, data, ids = written
    base = root / "VOCdevkit" / "VOC2012"
    assert ids == [f"val_{i:06d}" for i in range(4)]
    for folder, ext in (("JPEGImages", "jpg"), ("Annotations", "xml"), ("SegmentationClass", "png"),
                        ("SegmentationObject", "png")):
        assert sorted(p.name for p in (base / folder).iterdir()) == [f"{i}.{ext}" for i in ids]
    assert (base / "ImageSets" / "Main" / "val.txt").read_text().split() == ids
    assert (base / "ImageSets" / "Segmentation" / "val.txt").read_text().split() == ids
    # one list per class: "<id>  1" when the image holds the class, "<id> -1" otherwise
    for label, name in enumerate(CLASS_NAMES[1:], start=1):
        lines = (base / "ImageSets" / "Main" / f"{name}_val.txt").read_text().splitlines()
        assert [line.split()[0] for line in lines] == ids
        expected = [1 if label in data.scene(i).labels.tolist() else -1 for i in range(4)]
        assert [int(line.split()[1]) for line in lines] == expected


def test_annotations_parse_with_xml_etree(written):
    root, data, ids = written
    for i, name in enumerate(ids):
        tree = ET.parse(root / "VOCdevkit" / "VOC2012" / "Annotations" / f"{name}.xml").getroot()
        assert tree.tag == "annotation" and tree.findtext("filename") == f"{name}.jpg"
        assert (tree.findtext("size/width"), tree.findtext("size/height"), tree.findtext("size/depth")) == ("48", "48", "3")
        assert tree.findtext("segmented") == "1"
        objects = tree.findall("object")
        scene = data.scene(i)
        assert [o.findtext("name") for o in objects] == [CLASS_NAMES[c] for c in scene.labels]
        for o, (x1, y1, x2, y2) in zip(objects, scene.boxes.tolist()):
            # VOC: 1-based inclusive pixel indices; our boxes: continuous pixel edges
            box = [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            assert box == [int(x1) + 1, int(y1) + 1, int(x2), int(y2)]
            assert o.findtext("difficult") == "0"


def test_round_trip_through_our_readers(written):
    root, data, ids = written
    boxes = VOCDetectionDataset(root, image_set="val", classes=CLASS_NAMES)
    masks = VOCSegmentationDataset(root, image_set="val")
    assert len(boxes) == len(masks) == 4
    for i in range(4):
        scene = data.scene(i)
        image, target = boxes[i]
        torch.testing.assert_close(target["boxes"], scene.boxes)  # exact: boxes around whole pixels
        assert torch.equal(target["labels"], scene.labels)
        assert not target["difficult"].any()
        # JPEG is lossy: the pixels come back close, not equal
        assert image.shape == scene.image.shape and (image - scene.image).abs().mean() < 0.03
        image2, mask = masks[i]
        assert torch.equal(mask, scene.mask)
        torch.testing.assert_close(image2, image)


def test_round_trip_through_torchvision(written):
    root, data, ids = written
    detection = VOCDetection(str(root), year="2012", image_set="val")
    annotation = detection[2][1]["annotation"]
    scene = data.scene(2)
    objects = annotation["object"]
    assert annotation["filename"] == f"{ids[2]}.jpg" and annotation["size"]["width"] == "48"
    assert [o["name"] for o in objects] == [CLASS_NAMES[c] for c in scene.labels]
    assert [[int(o["bndbox"][k]) for k in ("xmin", "ymin", "xmax", "ymax")] for o in objects] == \
        [[int(x1) + 1, int(y1) + 1, int(x2), int(y2)] for x1, y1, x2, y2 in scene.boxes.tolist()]
    _, png = VOCSegmentation(str(root), year="2012", image_set="val")[2]
    assert png.mode == "P" and np.array_equal(np.array(png), scene.mask.numpy().astype(np.uint8))
    objects_png = Image.open(root / "VOCdevkit" / "VOC2012" / "SegmentationObject" / f"{ids[2]}.png")
    instance = np.array(objects_png)
    for k, m in enumerate(scene.instance_masks.numpy()):
        assert (instance[m] == k + 1).all()
    assert ((instance > 0) == scene.instance_masks.any(0).numpy()).all()


def test_read_voc_annotation_fields(written):
    root, data, ids = written
    annotation = read_voc_annotation(root / "VOCdevkit" / "VOC2012" / "Annotations" / f"{ids[0]}.xml")
    assert annotation["filename"] == f"{ids[0]}.jpg" and annotation["size"] == (48, 48, 3) and annotation["segmented"]
    assert len(annotation["objects"]) == len(data.scene(0).labels)
    assert annotation["objects"][0]["pose"] == "Unspecified"


def test_writer_accepts_scenes_without_masks_and_other_names(tmp_path):
    scenes = [Scene(image=torch.rand(3, 20, 30), mask=None, boxes=torch.tensor([[0.0, 2.0, 10.0, 12.0]]),
                    labels=torch.tensor([1]), instance_masks=None)]
    ids = write_voc(tmp_path, scenes, image_set="train", year="2007", classes=("background", "thing"), prefix="x")
    assert ids == ["x000000"]
    base = tmp_path / "VOCdevkit" / "VOC2007"
    assert not (base / "ImageSets" / "Segmentation").exists()
    image, target = VOCDetectionDataset(tmp_path, year="2007", classes=("background", "thing"))[0]
    assert image.shape == (3, 20, 30)
    assert target["boxes"].tolist() == [[0.0, 2.0, 10.0, 12.0]] and target["labels"].tolist() == [1]
    tree = ET.parse(base / "Annotations" / "x000000.xml").getroot()
    assert tree.findtext("object/truncated") == "1"  # touches the left border
    assert tree.findtext("segmented") == "0"


def test_writer_exports_the_scene_preset(tmp_path):
    ids = write_voc(tmp_path, preset_dataset("scenes128", 2, split="test"), image_set="test")
    image, target = VOCDetectionDataset(tmp_path, image_set="test", classes=CLASS_NAMES)[1]
    assert len(ids) == 2 and image.shape == (3, 128, 128)
    torch.testing.assert_close(target["boxes"], preset_dataset("scenes128", 2, split="test").scene(1).boxes)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(year="1999"), ValueError, "year must be a string"),
    (dict(image_set="a/b"), ValueError, "image_set must be a plain name"),
    (dict(jpeg_quality=0), ValueError, r"jpeg_quality must be an int in \[1, 100\]"),
    (dict(classes=("background",)), ValueError, "classes must be names"),
    (dict(classes=("background", "two words")), ValueError, "classes must be names"),
])
def test_writer_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_voc(tmp_path, ShapesDataset(1, image_size=32), **kwargs)


def test_writer_bad_scenes(tmp_path):
    with pytest.raises(TypeError, match="must have image, boxes and labels"):
        write_voc(tmp_path, [object()])
    scene = ShapesDataset(1, image_size=32, n_objects=1).scene(0)
    with pytest.raises(ValueError, match=r"labels must be in \[1, 1\]"):
        write_voc(tmp_path, [scene], classes=("background", "only"))
    with pytest.raises(ValueError, match=r"image must be a Tensor\[3, H, W\]"):
        write_voc(tmp_path, [Scene(torch.rand(20, 30), None, scene.boxes, scene.labels, None)])


def test_detection_reader_errors(tmp_path, written):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        VOCDetectionDataset(tmp_path)
    root, _, _ = written
    with pytest.raises(ValueError, match="not in classes"):
        VOCDetectionDataset(root, image_set="val")[0]  # the shapes are not VOC's classes
    bad = tmp_path / "bad.xml"
    bad.write_text("<notvoc/>")
    with pytest.raises(ValueError, match="not a VOC annotation"):
        read_voc_annotation(bad)

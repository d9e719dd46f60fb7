"""Tests for lecture_lib.data.voc on a tiny fake VOC folder written in VOC's on-disk layout."""

import numpy as np
import pytest
import torch
from PIL import Image

from lecture_lib.data.voc import VOC_CLASSES, VOC_IGNORE_INDEX, VOCSegmentationDataset


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

"""Tests for lecture_lib.data.shapes: determinism, tight boxes, consistent masks, disjoint splits."""

import math
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.draw
import torch
from torchvision.ops import masks_to_boxes

from lecture_lib.data.shapes import (
    CLASS_NAMES,
    NUM_CLASSES,
    TEXTURE_NAMES,
    ShapesDataset,
    collate_detection,
    make_scene,
    preset_dataset,
    shape_mask,
)


def test_textures_are_shipped_with_scikit_image():
    # No pooch download: the PNG must be inside the installed package.
    data_dir = Path(skimage.data.__file__).parent
    for name in TEXTURE_NAMES:
        assert (data_dir / f"{name}.png").is_file(), name


def test_class_names():
    assert CLASS_NAMES[0] == "background"
    assert NUM_CLASSES == len(CLASS_NAMES) >= 4


def test_same_seed_same_scene_different_seed_different_scene():
    a, b, c = make_scene(7), make_scene(7), make_scene(8)
    for name in ("image", "mask", "boxes", "labels", "instance_masks"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.image, c.image)


def test_dataset_is_deterministic():
    ds1 = ShapesDataset(5, seed=3)
    ds2 = ShapesDataset(5, seed=3)
    forward = [ds2[i] for i in range(5)]
    for i in reversed(range(5)):  # access order must not matter
        torch.testing.assert_close(ds1[i][0], forward[i][0])
        torch.testing.assert_close(ds1[i][1], forward[i][1])
    assert not torch.equal(ShapesDataset(1, seed=4)[0][0], ds1[0][0])


def test_splits_differ():
    n = 20
    images = {split: torch.stack([ShapesDataset(n, split=split)[i][0] for i in range(n)])
              for split in ("train", "val", "test")}
    for s1, s2 in (("train", "val"), ("train", "test"), ("val", "test")):
        # no scene of one split equals any scene of another
        diff = (images[s1][:, None] - images[s2][None]).abs().flatten(2).amax(-1)
        assert diff.min() > 0.05, (s1, s2)


@pytest.mark.parametrize("index", range(12))
def test_item_formats_and_ranges(index):
    scene = ShapesDataset(12, image_size=(48, 64), n_objects=(1, 3), seed=1).scene(index)
    assert scene.image.shape == (3, 48, 64) and scene.image.dtype == torch.float32
    assert 0.0 <= scene.image.min() and scene.image.max() <= 1.0
    assert scene.mask.shape == (48, 64) and scene.mask.dtype == torch.int64
    assert 0 <= scene.mask.min() and scene.mask.max() < NUM_CLASSES
    n = len(scene.labels)
    assert 1 <= n <= 3
    assert scene.boxes.shape == (n, 4) and scene.boxes.dtype == torch.float32
    assert scene.labels.dtype == torch.int64 and ((scene.labels >= 1) & (scene.labels < NUM_CLASSES)).all()
    assert scene.instance_masks.shape == (n, 48, 64) and scene.instance_masks.dtype == torch.bool


@pytest.mark.parametrize("seed", range(15))
def test_boxes_tight_around_visible_masks(seed):
    scene = make_scene(seed, image_size=64, n_objects=(2, 4))
    # torchvision's masks_to_boxes gives the inclusive last pixel index; our continuous
    # coordinates put the right/bottom edge one pixel further.
    expected = masks_to_boxes(scene.instance_masks) + torch.tensor([0.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(scene.boxes, expected)


@pytest.mark.parametrize("seed", range(15))
def test_masks_and_labels_consistent(seed):
    scene = make_scene(seed, image_size=64, n_objects=(2, 4))
    inst = scene.instance_masks
    # instance masks are disjoint and together cover exactly the foreground of the mask
    assert (inst.sum(0) <= 1).all()
    assert torch.equal(inst.any(0), scene.mask > 0)
    for m, label in zip(inst, scene.labels):
        assert m.sum() > 0  # every object is visible
        assert (scene.mask[m] == label).all()
    assert set(scene.mask.unique().tolist()) - {0} == set(scene.labels.tolist())


def test_occluded_objects_stay_at_least_half_visible():
    # With many objects placement has to fight for space; every visible area must still be
    # comparable to the area of its shape (~ 0.8 * pi * r^2 at least a few pixels).
    for seed in range(10):
        scene = make_scene(seed, image_size=64, n_objects=(5, 5))
        areas = scene.instance_masks.flatten(1).sum(1)
        assert (areas >= 0.5 * math.pi * (0.12 * 64) ** 2 * 0.5).all()


def test_circle_matches_skimage_disk():
    cx, cy, r = 20.3, 30.7, 9.37
    ours = shape_mask("circle", (64, 64), (cx, cy), r)
    # skimage puts pixel centres at integer coordinates, ours at +0.5
    rows, cols = skimage.draw.disk((cy - 0.5, cx - 0.5), r, shape=(64, 64))
    ref = np.zeros((64, 64), bool)
    ref[rows, cols] = True
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("shape,area", [
    ("circle", math.pi), ("square", 1.6 ** 2), ("triangle", 3 * math.sqrt(3) / 4),
    ("cross", 2 * (2 * 0.7) - 0.7 ** 2),  # two 2r x 0.7r bars minus their overlap
])
def test_shape_areas(shape, area):
    r = 40.0
    mask = shape_mask(shape, (200, 200), (100.0, 100.0), r, angle=0.3)
    assert mask.sum() == pytest.approx(area * r * r, rel=0.03)


def test_rotation_of_square_by_quarter_turn_is_identity():
    a = shape_mask("square", (64, 64), (32.0, 32.0), 10.0, angle=0.2)
    b = shape_mask("square", (64, 64), (32.0, 32.0), 10.0, angle=0.2 + math.pi / 2)
    assert (a != b).sum() <= 2  # floating point ties only


def test_detection_task_and_collate():
    ds = ShapesDataset(4, task="detection", seed=2)
    image, target = ds[0]
    assert image.shape == (3, 64, 64)
    assert set(target) == {"boxes", "labels"}
    torch.testing.assert_close(target["boxes"], ds.scene(0).boxes)
    images, targets = collate_detection([ds[i] for i in range(4)])
    assert images.shape == (4, 3, 64, 64) and len(targets) == 4


def test_transform_and_empty_dataset():
    ds = ShapesDataset(2, transform=lambda image, mask: (image * 0, mask + 1))
    image, mask = ds[1]
    assert image.abs().max() == 0 and mask.min() >= 1
    assert len(ShapesDataset(0)) == 0
    with pytest.raises(IndexError, match="out of range"):
        ShapesDataset(0)[0]


def test_single_object_scenes():
    ds = ShapesDataset(10, n_objects=1, task="detection")
    assert all(len(ds[i][1]["labels"]) == 1 for i in range(10))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(split="dev"), ValueError, "split must be one of"),
    (dict(task="classification"), ValueError, "task must be one of"),
    (dict(n_images=-1), ValueError, "n_images must be >= 0"),
    (dict(n_images=2.5), TypeError, "n_images must be an int"),
    (dict(image_size=8), ValueError, "at least 16"),
    (dict(image_size=(64, 64, 3)), TypeError, "image_size must be"),
    (dict(n_objects=(3, 1)), ValueError, "1 <= min <= max"),
    (dict(n_objects=0), ValueError, "1 <= min <= max"),
    (dict(seed=-1), ValueError, "seed must be"),
])
def test_bad_arguments_raise(kwargs, error, match):
    args = dict(n_images=3) | kwargs
    with pytest.raises(error, match=match):
        ShapesDataset(**args)


def test_bad_scene_arguments_raise():
    with pytest.raises(ValueError, match="shape must be one of"):
        shape_mask("hexagon", (16, 16), (8.0, 8.0), 3.0)
    with pytest.raises(ValueError, match="radius must be > 0"):
        shape_mask("circle", (16, 16), (8.0, 8.0), 0.0)
    with pytest.raises(TypeError, match="seed must be"):
        make_scene("zero")
    with pytest.raises(ValueError, match="radius must be a range"):
        make_scene(0, radius=(0.3, 0.1))


def test_rotate_false_gives_upright_shapes_and_otherwise_the_same_scene():
    rotated, upright = make_scene(3, n_objects=1), make_scene(3, n_objects=1, rotate=False)
    torch.testing.assert_close(rotated.labels, upright.labels)  # same draws apart from the angle
    ds = ShapesDataset(30, n_objects=1, rotate=False, task="detection")
    squares = [ds.scene(i) for i in range(30) if CLASS_NAMES[int(ds.scene(i).labels[0])] == "square"]
    assert squares
    for scene in squares:
        # an axis-aligned square fills its tight box exactly
        x1, y1, x2, y2 = scene.boxes[0].tolist()
        assert scene.instance_masks[0].sum() == (x2 - x1) * (y2 - y1)


def test_presets_draw_the_stated_scenes():
    small = preset_dataset("scenes64", 3, split="val")
    assert small.image_size == (64, 64) and small.n_objects == (1, 3)
    hard = preset_dataset("scenes128", 40, seed=1, split="test", task="detection")
    assert hard.image_size == (128, 128) and hard.n_objects == (1, 6)
    # the same scenes as the ShapesDataset the preset names
    direct = ShapesDataset(40, 128, (1, 6), seed=1, split="test", task="detection", radius=(0.06, 0.25))
    counts, widths = [], []
    for i in range(len(hard)):
        image, target = hard[i]
        assert image.shape == (3, 128, 128)
        assert torch.equal(target["boxes"], direct[i][1]["boxes"])
        counts.append(len(target["labels"]))
        widths += (target["boxes"][:, 2] - target["boxes"][:, 0]).tolist()
    assert min(counts) >= 1 and max(counts) <= 6 and max(counts) >= 4
    # small objects included: circumradius 6 % of 128 px is about 8 px, so boxes of ~10-16 px
    assert min(widths) < 16 and max(widths) > 40


def test_unknown_preset_raises():
    with pytest.raises(ValueError, match="scenes128"):
        preset_dataset("scenes256", 3)


@pytest.mark.parametrize("seed, kwargs, expected", [
    (0, {}, "ef4de6df6645dd20"),
    (7, {"image_size": (40, 72), "n_objects": 5, "radius": (0.15, 0.3)}, "73f220ebdd948029"),
    (3, {"image_size": 128, "n_objects": (1, 6), "radius": (0.06, 0.25)}, "92fc13c20f649649"),
    (11, {"image_size": 32, "n_objects": 1, "radius": (0.2, 0.4), "rotate": False}, "c9c2bc2703ff225b"),
])
def test_scenes_are_bit_identical_to_the_recorded_ones(seed, kwargs, expected):
    # Pages, benchmarks and stored models depend on the exact scenes: a speed-up of make_scene
    # must not change one bit. Digests recorded with the generator before its speed-up (Dec 2026).
    import hashlib

    scene = make_scene(seed, **kwargs)
    digest = hashlib.sha256()
    for tensor in (scene.image, scene.mask, scene.boxes, scene.labels, scene.instance_masks):
        digest.update(tensor.numpy().tobytes())
    assert digest.hexdigest()[:16] == expected


def test_pixel_centres_are_cached_read_only():
    from lecture_lib.data.shapes import _pixel_centres

    ys, xs = _pixel_centres(3, 5)
    assert np.array_equal(xs[0], np.arange(5, dtype=np.float32) + 0.5) and np.array_equal(ys[:, 0], [0.5, 1.5, 2.5])
    assert not xs.flags.writeable
    shape_mask("circle", (3, 5), (2.5, 1.5), 1.0)
    assert np.array_equal(_pixel_centres(3, 5)[1][0], np.arange(5, dtype=np.float32) + 0.5)

"""lecture_lib.data.classification: the synthetic shapes set and the CIFAR-10 path (on a local fake)."""

import math

import numpy as np
import pytest
import torch

from fake_data import write_fake_cifar
from lecture_lib.data.classification import (CIFAR10_CLASSES, CLASS_NAMES, ShapeClassConfig, ShapeClassification,
                                             cifar10_splits, load_cifar10_split, make_shape_images, render_shape,
                                             shape_classification_splits)

# --- synthetic shapes ---------------------------------------------------------------------------


def test_images_shape_dtype_and_balanced_labels():
    images, labels = make_shape_images(40, seed=3)
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (40,) and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == [4] * 10
    assert len(CLASS_NAMES) == 10


def test_deterministic_from_seed_and_splits_differ():
    a, la = make_shape_images(12, seed=5, split="train")
    b, lb = make_shape_images(12, seed=5, split="train")
    assert torch.equal(a, b) and torch.equal(la, lb)
    c, _ = make_shape_images(12, seed=5, split="test")
    d, _ = make_shape_images(12, seed=6, split="train")
    assert not torch.equal(a, c) and not torch.equal(a, d)


def test_images_are_not_trivial():
    images, _ = make_shape_images(20, seed=0)
    x = images.float()
    assert x.std(dim=(1, 2, 3)).min() > 5  # texture, shape and noise: no flat images
    assert x.min() >= 0 and x.max() <= 255


def test_empty():
    images, labels = make_shape_images(0)
    assert images.shape == (0, 3, 32, 32) and labels.shape == (0,)


def test_other_image_size():
    images, _ = make_shape_images(3, config=ShapeClassConfig(image_size=48, radius=(10.0, 20.0)))
    assert images.shape == (3, 3, 48, 48)


@pytest.mark.parametrize("name,area", [
    ("circle", math.pi),
    ("square", 1.6 ** 2),
    ("triangle", 3 * math.sqrt(3) / 4),  # equilateral, circumradius 1
    ("pentagon", 5 / 2 * math.sin(2 * math.pi / 5)),
    ("hexagon", 3 * math.sqrt(3) / 2),
    ("ring", math.pi * (1 - 0.55 ** 2)),
    ("plus", 2 * (2 * 0.66) - 0.66 ** 2),  # two 2 x 0.66 bars minus their overlap
])
def test_render_shape_areas_hand_computed(name, area):
    r = 40.0
    s = np.arange(-50, 50, 0.25) + 0.125
    u, v = np.meshgrid(s, s)
    measured = render_shape(name, u, v, r).sum() * 0.25 ** 2
    assert measured == pytest.approx(area * r * r, rel=0.02)


def test_every_class_renders_something_inside_its_radius():
    s = np.linspace(-12, 12, 97)
    u, v = np.meshgrid(s, s)
    for name in CLASS_NAMES:
        inside = render_shape(name, u, v, 10.0)
        assert inside.any(), name
        # within 1.14 r (the square's corners, 0.8 r * sqrt(2), stick out of the circle of radius r)
        assert not inside[(u * u + v * v) > 11.4 ** 2].any(), name


def test_dataset_items_and_splits():
    splits = shape_classification_splits(20, 10, 10, seed=1)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [20, 10, 10]
    image, label = splits["train"][3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert isinstance(label, int) and 0 <= label < 10
    x, y = splits["train"].tensors()
    torch.testing.assert_close(x[3], image)
    assert y[3].item() == label
    flipped = ShapeClassification("train", 20, seed=1, transform=lambda t: t.flip(-1))
    torch.testing.assert_close(flipped[3][0], image.flip(-1))


def test_errors():
    with pytest.raises(ValueError, match="split must be one of"):
        make_shape_images(3, split="dev")
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        make_shape_images(-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        make_shape_images(3, seed=1.5)
    with pytest.raises(ValueError, match="image_size must be >= 16"):
        make_shape_images(3, config=ShapeClassConfig(image_size=8))
    with pytest.raises(ValueError, match="radius must be"):
        make_shape_images(3, config=ShapeClassConfig(radius=(5.0, 2.0)))
    with pytest.raises(ValueError, match="name must be one of"):
        render_shape("heart", np.zeros(2), np.zeros(2), 1.0)


# --- CIFAR-10 on a local fake in the on-disk format --------------------------------------------


def test_cifar10_splits_on_a_local_fake(tmp_path):
    arrays = write_fake_cifar(tmp_path)
    splits = cifar10_splits(tmp_path, val_size=8, seed=0, verify_checksums=False)
    assert len(splits["train"]) == 22 and len(splits["val"]) == 8 and len(splits["test"]) == 5
    assert set(splits["train"].indices).isdisjoint(splits["val"].indices)
    # the test image 2 is the pickled row, reshaped to [3, 32, 32] and scaled to [0, 1]
    image, label = splits["test"][2]
    data, labels = arrays["test_batch"]
    torch.testing.assert_close(image, torch.from_numpy(data[2].reshape(3, 32, 32)).float() / 255)
    assert label == labels[2]
    # training image k of the full set comes from batch k // 6, row k % 6
    k = splits["train"].indices[0]
    image, label = splits["train"][0]
    data, labels = arrays[f"data_batch_{k // 6 + 1}"]
    torch.testing.assert_close(image, torch.from_numpy(data[k % 6].reshape(3, 32, 32)).float() / 255)
    assert label == labels[k % 6]
    assert splits["test"].classes == list(CIFAR10_CLASSES)


def test_cifar10_checksums_reject_the_fake(tmp_path):
    write_fake_cifar(tmp_path)
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        cifar10_splits(tmp_path)  # real MD5 sums are checked by default


def test_cifar10_missing_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found.*missing data_batch_1"):
        cifar10_splits(tmp_path)
    write_fake_cifar(tmp_path)
    with pytest.raises(ValueError, match=r"val_size must be in \[0, 30\)"):
        cifar10_splits(tmp_path, val_size=30, verify_checksums=False)


def test_load_cifar10_split_flat_pixels_in_cs231n_order(tmp_path):
    arrays = write_fake_cifar(tmp_path)
    split = load_cifar10_split(tmp_path, val_size=8, n_train=10, seed=0, verify_checksums=False)
    assert split.x_train.shape == (10, 3072) and split.x_val.shape == (8, 3072) and split.x_test.shape == (5, 3072)
    assert split.x_train.dtype == torch.float32 and split.y_train.dtype == torch.int64
    # test row 3: the pickled R, G, B planes, reordered to (row, column, channel) and flattened
    data, labels = arrays["test_batch"]
    expected = data[3].reshape(3, 32, 32).transpose(1, 2, 0).reshape(-1).astype(np.float32)
    np.testing.assert_array_equal(split.x_test[3].numpy(), expected)
    assert split.y_test.tolist() == labels
    # validation = the same images as cifar10_splits' validation subset; train drawn from the rest
    splits = cifar10_splits(tmp_path, val_size=8, seed=0, verify_checksums=False)
    all_train = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)])
    val_rows = all_train[splits["val"].indices].reshape(8, 3, 32, 32).transpose(0, 2, 3, 1).reshape(8, -1)
    np.testing.assert_array_equal(split.x_val.numpy(), val_rows.astype(np.float32))
    train_rows = {row.tobytes() for row in all_train[splits["train"].indices].reshape(-1, 3, 32, 32)
                  .transpose(0, 2, 3, 1).reshape(-1, 3072).astype(np.float32)}
    assert all(row.numpy().tobytes() in train_rows for row in split.x_train)
    with pytest.raises(ValueError, match=r"n_train must be in \[1, 22\], got 23"):
        load_cifar10_split(tmp_path, val_size=8, n_train=23, verify_checksums=False)

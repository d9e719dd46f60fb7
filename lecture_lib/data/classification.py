"""Small image-classification sets: offline synthetic shapes (10 classes, 32x32 RGB) and CIFAR-10.

The ensemble experiments of the lecture were run on CIFAR-10 (VGG, 0.837 accuracy for one
model). CIFAR-10 cannot be downloaded at run time here, so :class:`ShapeClassification` makes a
stand-in of the same format -- 10 classes, 32x32 RGB -- that is hard enough for a small CNN to
stay well below 100 % (so that ensemble gains are visible): one shape per image, random size,
rotation, colour and transparency, on a tinted crop of a scikit-image texture (shipped in the
scikit-image wheel, nothing is downloaded), partly hidden by clutter (strokes and blobs), with
Gaussian noise. Every image is a pure function of ``(seed, split, index)``.

When the real data set is on disk (``<root>/cifar-10-batches-py``), :func:`cifar10_splits`
loads it through ``torchvision.datasets.CIFAR10(download=False)``; otherwise it says where it
looked and how to get the files. :func:`load_cifar10_split` gives the same images as flat
pixel vectors, the input of the lecture's 2-layer network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

__all__ = [
    "CLASS_NAMES",
    "CIFAR10_CLASSES",
    "SPLITS",
    "ShapeClassConfig",
    "render_shape",
    "make_shape_images",
    "ShapeClassification",
    "shape_classification_splits",
    "cifar10_splits",
    "load_cifar10_split",
]

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "pentagon", "hexagon",
                                "star", "plus", "ring", "crescent", "arrow")
CIFAR10_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer",
                                    "dog", "frog", "horse", "ship", "truck")
SPLITS: tuple[str, ...] = ("train", "val", "test")
# grey-level textures inside the scikit-image wheel (no pooch download)
_TEXTURES: tuple[str, ...] = ("brick", "grass", "gravel", "moon", "camera", "coins", "page")
_SUPERSAMPLE = 3  # 3x3 samples per pixel: soft (anti-aliased) edges like a photographed object


@dataclass(frozen=True)
class ShapeClassConfig:
    """How hard the synthetic set is (the defaults give a small CNN roughly 70-90 %).

    Attributes:
        image_size: side of the square images in pixels.
        radius: (min, max) circumradius of the shape in pixels.
        opacity: (min, max) alpha of the shape over the background.
        noise: (min, max) standard deviation of the additive Gaussian noise (images in [0, 1]).
        clutter: (min, max) number of distracting strokes and blobs, drawn over the shape.
        min_contrast: least colour distance between the shape and the mean background.
    """

    image_size: int = 32
    radius: tuple[float, float] = (8.0, 14.0)
    opacity: tuple[float, float] = (0.8, 1.0)
    noise: tuple[float, float] = (0.02, 0.06)
    clutter: tuple[int, int] = (0, 2)
    min_contrast: float = 0.35


def _check_args(n: int, seed: int, config: ShapeClassConfig) -> None:
    """Raise a clear error for a bad count, seed or config."""
    for name, value in (("n", n), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if not isinstance(config, ShapeClassConfig):
        raise TypeError(f"config must be a ShapeClassConfig, got {type(config).__name__}")
    if config.image_size < 16:
        raise ValueError(f"config.image_size must be >= 16, got {config.image_size}")
    if not 0 < config.radius[0] <= config.radius[1]:
        raise ValueError(f"config.radius must be (min, max) with 0 < min <= max, got {config.radius}")


@lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    """A grey-level texture from skimage.data, float32 in [0, 1], normalized to mean 0, std 1."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1)
    return (image - image.mean()) / (image.std() + 1e-6)


def _polygon_inside(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon test for points (u, v) (any shape) against [K, 2] vertices."""
    inside = np.zeros(u.shape, dtype=bool)
    x0, y0 = vertices[-1]
    for x1, y1 in vertices:
        # the edge (x0, y0)-(x1, y1) crosses the horizontal ray to the right of the point
        crosses = ((y1 > v) != (y0 > v)) & (u < (x0 - x1) * (v - y1) / (y0 - y1 + 1e-12) + x1)
        inside ^= crosses
        x0, y0 = x1, y1
    return inside


def _regular(k: int, r: float, start: float = math.pi / 2) -> np.ndarray:
    angles = start + 2 * math.pi * np.arange(k) / k
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


def _star(r: float) -> np.ndarray:
    outer, inner = _regular(5, r), _regular(5, 0.45 * r, math.pi / 2 + math.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(10, 2)


def render_shape(name: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Which points (u, v) of the shape's own frame (centre 0, upright) lie inside it.

    Args:
        name: one of ``CLASS_NAMES``.
        u, v (np.ndarray[*]): coordinates in pixels, v upwards.
        r: size in pixels: the circumradius, except for the square (half side ``0.8 r``, so
            that areas are similar) and the plus (arms of length ``r``, half width ``0.33 r``).

    Returns:
        np.ndarray[*] bool.
    """
    d2 = u * u + v * v
    if name == "circle":
        return d2 <= r * r
    if name == "square":
        return (np.abs(u) <= 0.8 * r) & (np.abs(v) <= 0.8 * r)
    if name == "triangle":
        return _polygon_inside(u, v, _regular(3, r))
    if name == "pentagon":
        return _polygon_inside(u, v, _regular(5, r))
    if name == "hexagon":
        return _polygon_inside(u, v, _regular(6, r))
    if name == "star":
        return _polygon_inside(u, v, _star(r))
    if name == "plus":
        arm = 0.33 * r
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    if name == "ring":
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if name == "crescent":
        return (d2 <= r * r) & ((u - 0.5 * r) ** 2 + v * v > (0.85 * r) ** 2)
    if name == "arrow":
        arrow = np.array([(-1, -0.22), (0.15, -0.22), (0.15, -0.6), (1, 0), (0.15, 0.6), (0.15, 0.22),
                          (-1, 0.22)]) * r
        return _polygon_inside(u, v, arrow)
    raise ValueError(f"name must be one of {CLASS_NAMES}, got {name!r}")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample positions: [size * S, size * S] x and y in continuous pixel coordinates."""
    s = (np.arange(size * _SUPERSAMPLE, dtype=np.float32) + 0.5) / _SUPERSAMPLE
    return np.meshgrid(s, s)  # x (columns), y (rows)


def _coverage(inside: np.ndarray, size: int) -> np.ndarray:
    """Fraction of each pixel's sub-samples inside: [size * S, size * S] bool -> [size, size]."""
    return inside.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3), dtype=np.float32)


def _hsv_colour(rng: np.random.Generator) -> np.ndarray:
    hue, saturation, value = rng.random(), rng.uniform(0.2, 1.0), rng.uniform(0.15, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    return (value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


def _one_image(rng: np.random.Generator, label: int, config: ShapeClassConfig) -> np.ndarray:
    """One float32 [H, W, 3] image in [0, 1] showing class ``label``."""
    size = config.image_size
    xs, ys = _grid(size)
    # background: tinted crop of a texture, random zoom and contrast
    texture = _texture(_TEXTURES[rng.integers(len(_TEXTURES))])
    step = int(rng.integers(1, 4))
    top = int(rng.integers(0, texture.shape[0] - step * size + 1))
    left = int(rng.integers(0, texture.shape[1] - step * size + 1))
    crop = texture[top:top + step * size:step, left:left + step * size:step]
    base = _hsv_colour(rng) * 0.8 + 0.1
    image = np.clip(base + rng.uniform(0.05, 0.2) * crop[..., None] * rng.uniform(0.5, 1.0, 3), 0, 1)

    # the shape: random radius, rotation, position (fully inside the image), colour, opacity
    r = rng.uniform(*config.radius)
    margin = min(r, size / 2)
    cx, cy = rng.uniform(margin, size - margin, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    cos, sin = math.cos(angle), math.sin(angle)
    dx, dy = xs - cx, ys - cy
    inside = render_shape(CLASS_NAMES[label], cos * dx - sin * dy, -(sin * dx + cos * dy), r)
    colour = _hsv_colour(rng)
    for _ in range(20):  # a shape the colour of its background would be invisible: redraw
        if np.abs(colour - base).max() >= config.min_contrast:
            break
        colour = _hsv_colour(rng)
    alpha = _coverage(inside, size)[..., None] * rng.uniform(*config.opacity)
    image = image * (1 - alpha) + colour * alpha

    # clutter over the shape: thick strokes and small blobs in random colours
    for _ in range(int(rng.integers(config.clutter[0], config.clutter[1] + 1))):
        if rng.random() < 0.5:
            (x0, y0), (x1, y1) = rng.uniform(0, size, size=(2, 2))
            width = rng.uniform(0.5, 1.8)
            ex, ey = x1 - x0, y1 - y0
            t = np.clip(((xs - x0) * ex + (ys - y0) * ey) / (ex * ex + ey * ey + 1e-9), 0, 1)
            hit = (xs - x0 - t * ex) ** 2 + (ys - y0 - t * ey) ** 2 <= width * width
        else:
            bx, by = rng.uniform(0, size, size=2)
            a, b = rng.uniform(1.0, 3.5, size=2)
            hit = ((xs - bx) / a) ** 2 + ((ys - by) / b) ** 2 <= 1
        alpha = _coverage(hit, size)[..., None] * rng.uniform(0.5, 1.0)
        image = image * (1 - alpha) + _hsv_colour(rng) * alpha

    image = image + rng.normal(0, rng.uniform(*config.noise), size=image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def make_shape_images(n: int, seed: int = 0, config: ShapeClassConfig = ShapeClassConfig(),
                      split: str = "train") -> tuple[Tensor, Tensor]:
    """Draw ``n`` labelled images; the labels cycle through the 10 classes (balanced).

    Args:
        n: number of images (0 gives empty tensors).
        seed: same seed, split and config -> same images.
        config: difficulty knobs.
        split: "train", "val" or "test": each split has its own random stream.

    Returns:
        (images (Tensor[n, 3, H, W] uint8), labels (Tensor[n] int64))
    """
    _check_args(n, seed, config)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
    size = config.image_size
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = np.round(_one_image(rng, int(label), config) * 255).astype(np.uint8)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long()


@lru_cache(maxsize=8)
def _cached(n: int, seed: int, config: ShapeClassConfig, split: str) -> tuple[Tensor, Tensor]:
    return make_shape_images(n, seed, config, split)


class ShapeClassification(Dataset):
    """The synthetic 10-class set as a ``Dataset`` of ``(image, label)`` pairs.

    Images are generated once (cached per process) and kept as uint8; ``__getitem__`` returns
    ``image (Tensor[3, H, W] float32)`` in [0, 1] (after ``transform``, if any) and
    ``label (int)``. ``.images`` / ``.labels`` give the whole split as tensors.

    Args:
        split: "train", "val" or "test".
        n: number of images in this split.
        seed: base seed (splits never share images).
        config: difficulty knobs.
        transform: callable applied to each float image.
    """

    classes = CLASS_NAMES

    def __init__(self, split: str = "train", n: int = 10_000, seed: int = 0,
                 config: ShapeClassConfig = ShapeClassConfig(), transform=None) -> None:
        self.split, self.seed, self.config, self.transform = split, seed, config, transform
        self.images, self.labels = _cached(n, seed, config, split)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image = self.images[index].float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def tensors(self) -> tuple[Tensor, Tensor]:
        """The whole split: (Tensor[N, 3, H, W] float32 in [0, 1], Tensor[N] int64)."""
        return self.images.float() / 255.0, self.labels


def shape_classification_splits(n_train: int = 10_000, n_val: int = 2_000, n_test: int = 5_000,
                                seed: int = 0, config: ShapeClassConfig = ShapeClassConfig(),
                                transform=None) -> dict[str, ShapeClassification]:
    """``{"train": ..., "val": ..., "test": ...}`` synthetic datasets of the given sizes."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    return {split: ShapeClassification(split, n, seed, config, transform) for split, n in sizes.items()}


# --- real CIFAR-10 ----------------------------------------------------------------------------


def cifar10_splits(root: str | Path, val_size: int = 5_000, seed: int = 0, transform=None,
                   verify_checksums: bool = True) -> dict[str, Dataset]:
    """CIFAR-10 from ``<root>/cifar-10-batches-py`` (never downloaded here), split 3 ways.

    Args:
        root: folder that holds ``cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``,
            ``batches.meta``) -- e.g. the folder ``torchvision.datasets.CIFAR10(root,
            download=True)`` was given on a machine with internet access.
        val_size: images taken out of the 50 000 training images (a fixed random subset given
            ``seed``) for validation; the test split is CIFAR-10's test batch.
        transform: applied to each PIL image (default: ``ToTensor()``, float [0, 1], [3, 32, 32]).
        verify_checksums: check the files' MD5 sums against the official ones (turn off only
            for test fixtures).

    Returns:
        ``{"train": Subset, "val": Subset, "test": CIFAR10}`` of ``(image, label)`` pairs.
    """
    from torchvision import datasets, transforms

    folder = Path(root) / "cifar-10-batches-py"
    needed = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 not found: expected {', '.join(needed)} in {folder}, missing {', '.join(missing)}. "
            "Download it once where there is internet (torchvision.datasets.CIFAR10(root, download=True)) "
            "and copy the folder here, or use ShapeClassification, the offline stand-in."
        )
    cls = datasets.CIFAR10
    if not verify_checksums:
        # torchvision checks each file's MD5; md5=None means "the file exists" to its checker
        cls = type("CIFAR10Unverified", (datasets.CIFAR10,), {
            "train_list": [[name, None] for name, _ in datasets.CIFAR10.train_list],
            "test_list": [[name, None] for name, _ in datasets.CIFAR10.test_list],
            "meta": {**datasets.CIFAR10.meta, "md5": None},
        })
    transform = transforms.ToTensor() if transform is None else transform
    train_full = cls(str(root), train=True, transform=transform, download=False)
    test = cls(str(root), train=False, transform=transform, download=False)
    if not 0 <= val_size < len(train_full):
        raise ValueError(f"val_size must be in [0, {len(train_full)}), got {val_size}")
    order = torch.randperm(len(train_full), generator=torch.Generator().manual_seed(seed)).tolist()
    return {"train": Subset(train_full, sorted(order[val_size:])),
            "val": Subset(train_full, sorted(order[:val_size])), "test": test}


def load_cifar10_split(root: str | Path, val_size: int = 1_000, n_train: int | None = None, seed: int = 0,
                       verify_checksums: bool = True):
    """CIFAR-10 as flat pixel vectors, the CS231n way: ``x_*`` float32 [N, 3072] raw 0..255
    values in (row, column, channel) order, ``y_*`` int64 [N].

    Validation: ``val_size`` training images chosen with ``seed`` (1000, as CS231n's 49 000 /
    1 000 split); ``n_train`` keeps a random subset of the remaining training images (None: all);
    test: CIFAR-10's test batch. No mean is subtracted (do it with the training mean, as
    ``TwoLayerNetObjective`` does).

    Returns:
        ``lecture_lib.data.tabular.Split``
    """
    from lecture_lib.data.tabular import Split

    splits = cifar10_splits(root, val_size=val_size, seed=seed, verify_checksums=verify_checksums)
    train_indices = np.asarray(splits["train"].indices)
    if n_train is not None:
        if not 1 <= n_train <= len(train_indices):
            raise ValueError(f"n_train must be in [1, {len(train_indices)}], got {n_train}")
        pick = np.random.default_rng(seed).permutation(len(train_indices))[:n_train]
        train_indices = np.sort(train_indices[pick])
    full, test = splits["train"].dataset, splits["test"]  # torchvision keeps .data uint8 [N, 32, 32, 3]

    def flat(dataset, indices=None) -> tuple[Tensor, Tensor]:
        data, labels = dataset.data, np.asarray(dataset.targets, dtype=np.int64)
        if indices is not None:
            data, labels = data[indices], labels[indices]
        return (torch.from_numpy(data.reshape(len(data), -1).astype(np.float32)), torch.from_numpy(labels))

    return Split(*flat(full, train_indices), *flat(full, np.asarray(splits["val"].indices)), *flat(test))

"""Synthetic shapes on real textures: an offline data set for segmentation and detection.

Every scene is a random crop of a scikit-image texture (brick, grass, gravel, the moon's
surface; all shipped inside the scikit-image wheel, so nothing is downloaded), tinted, with one
to a few coloured shapes pasted on top and Gaussian noise added. Because we draw the scene
ourselves we know the ground truth exactly:

- ``mask (Tensor[H, W] int64)``: the class of every pixel, ``0`` = background, ``1..K`` = the
  shape classes of ``CLASS_NAMES`` (semantic segmentation),
- ``boxes (Tensor[N, 4] float32)``: one box per object, ``(x1, y1, x2, y2)`` in continuous pixel
  coordinates (pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``), tight around
  the *visible* part of the object (later shapes occlude earlier ones),
- ``labels (Tensor[N] int64)``: the class of each box, in ``1..K``,
- ``instance_masks (Tensor[N, H, W] bool)``: the visible pixels of each object.

A scene is a pure function of its seed: ``make_scene(seed)`` returns the same tensors on
every machine. :class:`ShapesDataset` derives the seed of item ``i`` from ``(seed, split, i)``
so that the train, val and test splits never share a scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "CLASS_NAMES",
    "NUM_CLASSES",
    "SHAPES",
    "TEXTURE_NAMES",
    "SPLITS",
    "Scene",
    "shape_mask",
    "make_scene",
    "ShapesDataset",
    "SCENE_PRESETS",
    "preset_dataset",
    "collate_detection",
]

# Index = class id used in masks and labels; 0 is the background (torchvision's convention).
CLASS_NAMES: tuple[str, ...] = ("background", "circle", "square", "triangle", "cross")
NUM_CLASSES: int = len(CLASS_NAMES)
SHAPES: tuple[str, ...] = CLASS_NAMES[1:]
# scikit-image ships these images in its wheel (skimage/data/*.png); the other textures of
# skimage.data (e.g. "rough-wall") are fetched with pooch on first use, so we never touch them.
TEXTURE_NAMES: tuple[str, ...] = ("brick", "grass", "gravel", "moon")
SPLITS: tuple[str, ...] = ("train", "val", "test")
TASKS: tuple[str, ...] = ("segmentation", "detection")

# Objects may overlap, but every object keeps at least this fraction of its area visible:
# an object hidden behind others is invisible to any model and only adds label noise.
_MIN_VISIBLE_FRACTION = 0.5
_PLACEMENT_TRIES = 50


def _int_pair(value, name: str, pair: str) -> tuple[int, int]:
    """An int or a pair of ints (``pair`` names its parts) as a tuple of two ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or {pair}, got {value!r}")


def _check_scene_args(image_size, n_objects) -> tuple[tuple[int, int], tuple[int, int]]:
    """Validate ``image_size`` and ``n_objects``; return them as ``(H, W)`` and ``(lo, hi)``."""
    size = _int_pair(image_size, "image_size", "(height, width)")
    if min(size) < 16:
        raise ValueError(f"image_size must be at least 16 pixels on each side, got {size}")
    count = _int_pair(n_objects, "n_objects", "(min, max)")
    if count[0] < 1 or count[1] < count[0]:
        raise ValueError(f"n_objects must satisfy 1 <= min <= max, got {count}")
    return size, count


@lru_cache(maxsize=None)
def _texture(name: str) -> np.ndarray:
    """A grey-level texture from skimage.data as float32 in [0, 1] (loaded once, cached)."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
    if image.ndim == 3:  # none of TEXTURE_NAMES is in colour today; keep it robust anyway
        image = image[..., :3].mean(axis=-1)
    return image


@lru_cache(maxsize=64)
def _pixel_centres(height: int, width: int) -> np.ndarray:
    """``(ys, xs)``: the pixel centres ``row + 0.5``, ``col + 0.5`` as float32 [H, W] (read-only, cached)."""
    centres = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    centres.setflags(write=False)
    return centres


def shape_mask(shape: str, size: tuple[int, int], center: tuple[float, float], radius: float,
               angle: float = 0.0) -> np.ndarray:
    """Rasterize one shape: which pixel centres lie inside it.

    Args:
        shape: one of ``SHAPES`` ("circle", "square", "triangle", "cross").
        size: ``(height, width)`` of the image.
        center: ``(x, y)`` of the shape's centre in continuous pixel coordinates.
        radius: circumradius in pixels (the square's half side is ``0.8 * radius`` so that the
            shapes have similar areas).
        angle: rotation in radians (counter-clockwise on screen).

    Returns:
        np.ndarray[H, W] bool.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    height, width = size
    # Test the pixel centres (col + 0.5, row + 0.5): hard 0/1 masks, no anti-aliasing, so the
    # mask is exactly the set of pixels the image paints.
    ys, xs = _pixel_centres(height, width)
    dx, dy = xs - center[0], ys - center[1]
    # Rotate the pixel into the shape's own frame (u to the right, v upwards on screen).
    cos, sin = math.cos(angle), math.sin(angle)
    u = cos * dx - sin * dy
    v = -sin * dx - cos * dy
    if shape == "circle":
        return u * u + v * v <= radius * radius
    if shape == "square":
        half = 0.8 * radius
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == "triangle":
        # Equilateral triangle with circumradius r has inradius r / 2: a point is inside iff
        # its projection on each of the three outward edge normals is at most r / 2.
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            theta = -math.pi / 2 + 2 * math.pi * k / 3
            inside &= u * math.cos(theta) + v * math.sin(theta) <= radius / 2
        return inside
    # cross: the union of a horizontal and a vertical bar
    arm = 0.35 * radius
    return ((np.abs(u) <= arm) & (np.abs(v) <= radius)) | ((np.abs(v) <= arm) & (np.abs(u) <= radius))


@dataclass
class Scene:
    """One generated scene (see the module docstring for conventions).

    Attributes:
        image (Tensor[3, H, W] float32): RGB in [0, 1].
        mask (Tensor[H, W] int64): class id per pixel, 0 = background.
        boxes (Tensor[N, 4] float32): (x1, y1, x2, y2), tight around each visible object.
        labels (Tensor[N] int64): class id (1..K) of each object.
        instance_masks (Tensor[N, H, W] bool): visible pixels of each object.
    """

    image: Tensor
    mask: Tensor
    boxes: Tensor
    labels: Tensor
    instance_masks: Tensor


def _tight_box(mask: np.ndarray) -> list[float]:
    """(x1, y1, x2, y2) of the smallest box holding every True pixel (pixels are unit squares)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A tinted, randomly scaled crop of a texture: float32 [H, W, 3] in about [0.05, 0.6]."""
    height, width = size
    texture = _texture(TEXTURE_NAMES[rng.integers(len(TEXTURE_NAMES))])
    # Taking every step-th pixel zooms out; step is bounded so the crop fits in the texture.
    max_step = max(1, min(3, texture.shape[0] // height, texture.shape[1] // width))
    step = int(rng.integers(1, max_step + 1))
    top = int(rng.integers(0, texture.shape[0] - step * height + 1))
    left = int(rng.integers(0, texture.shape[1] - step * width + 1))
    crop = texture[top:top + step * height:step, left:left + step * width:step]
    if rng.random() < 0.5:
        crop = crop.T if height == width else crop[:, ::-1]
    crop = (crop - crop.mean()) / (crop.std() + 1e-6)  # same contrast for every texture
    # Muted colours and limited brightness keep the (saturated, bright) shapes findable, but a
    # bright texture patch can still look like a shape: the model has to use shape, not colour.
    tint = rng.uniform(0.3, 1.0, size=3).astype(np.float32)
    level = rng.uniform(0.2, 0.4)
    contrast = rng.uniform(0.06, 0.14)
    return (level + contrast * crop)[..., None] * tint


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated, bright RGB colour (random hue)."""
    hue = rng.random()
    saturation = rng.uniform(0.5, 1.0)
    value = rng.uniform(0.65, 1.0)
    # HSV -> RGB for one colour (colorsys, vectorized by hand to stay in numpy)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    rgb = value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb.astype(np.float32)


def make_scene(seed: int | np.random.Generator = 0, image_size: int | tuple[int, int] = 64,
               n_objects: int | tuple[int, int] = (1, 3), noise: tuple[float, float] = (0.02, 0.06),
               radius: tuple[float, float] = (0.12, 0.25), rotate: bool = True) -> Scene:
    """Draw one scene: texture background, ``n_objects`` random shapes, noise.

    Args:
        seed: an int (same int, same scene) or a ``np.random.Generator`` to draw from.
        image_size: ``H = W`` as an int, or ``(H, W)``; at least 16.
        n_objects: exact count or inclusive range ``(min, max)``. An object is dropped, rarely,
            when no placement among 50 tries keeps every object at least half visible; the
            first object always stays, so there is at least one.
        noise: range of the standard deviation of the additive Gaussian pixel noise.
        radius: range of the shapes' circumradius as a fraction of ``min(H, W)``.
        rotate: rotate each shape by a random angle; with False squares and crosses are
            axis-aligned and triangles point up (an easier task: one template per class).

    Returns:
        Scene: image [3, H, W], mask [H, W], boxes [N, 4], labels [N], instance_masks [N, H, W].
    """
    size, (lo, hi) = _check_scene_args(image_size, n_objects)
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        rng = np.random.default_rng(int(seed))
    else:
        raise TypeError(f"seed must be a non-negative int or a numpy Generator, got {seed!r}")
    if not 0 < radius[0] <= radius[1] <= 0.5:
        raise ValueError(f"radius must be a range (lo, hi) with 0 < lo <= hi <= 0.5, got {radius}")
    height, width = size
    image = _background(rng, size)
    count = int(rng.integers(lo, hi + 1))

    # owner[r, c] = index of the object painted last at this pixel, -1 for background.
    owner = np.full(size, -1, dtype=np.int64)
    full_areas: list[int] = []
    labels: list[int] = []
    for _ in range(count):
        label = int(rng.integers(1, NUM_CLASSES))
        r = float(rng.uniform(*radius)) * min(size)
        angle = float(rng.uniform(0, 2 * math.pi))  # drawn either way: same scenes otherwise
        if not rotate:
            angle = 0.0
        colour = _random_colour(rng)
        for _try in range(_PLACEMENT_TRIES):
            # centre far enough inside that the whole shape is in the image
            cx = float(rng.uniform(r, width - r))
            cy = float(rng.uniform(r, height - r))
            inside = shape_mask(SHAPES[label - 1], size, (cx, cy), r, angle)
            new_owner = np.where(inside, len(labels), owner)
            visible = np.bincount(new_owner[new_owner >= 0].ravel(), minlength=len(labels) + 1)
            areas = np.array(full_areas + [int(inside.sum())])
            if (visible >= _MIN_VISIBLE_FRACTION * areas).all():
                break
        else:
            continue  # no good placement: drop this object (its random draws are spent)
        owner = new_owner
        full_areas.append(int(inside.sum()))
        labels.append(label)
        # A slight brightness ramp across the shape: flat colour would be too easy a cue.
        # (computed on the shape's pixels only: the same numbers as on the whole grid, less work)
        columns = np.nonzero(inside)[1]
        shade = 1.0 + 0.15 * ((columns - cx) / max(r, 1.0)).clip(-1, 1)
        image[inside] = (colour[None, :] * shade[:, None]).astype(np.float32)

    sigma = rng.uniform(*noise)
    image = np.clip(image + rng.normal(0.0, sigma, size=image.shape).astype(np.float32), 0.0, 1.0)

    label_of_owner = np.array([0] + labels, dtype=np.int64)
    mask = label_of_owner[owner + 1]
    instance = np.stack([owner == i for i in range(len(labels))]) if labels else np.zeros((0, *size), bool)
    boxes = [_tight_box(m) for m in instance]
    return Scene(
        image=torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
        mask=torch.from_numpy(mask),
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        instance_masks=torch.from_numpy(instance),
    )


class ShapesDataset(Dataset):
    """``n_images`` deterministic scenes for segmentation or detection.

    Item ``i`` of a split is ``make_scene(np.random.default_rng([seed, split_id, i]))``: a pure
    function of ``(seed, split, i)``, so splits never share a scene and every run sees the
    same data. Scenes are generated on first access and then cached.

    Args:
        n_images: number of scenes (>= 0).
        image_size: ``H = W`` or ``(H, W)``.
        n_objects: objects per scene, an int or an inclusive range ``(min, max)``.
        seed: base seed (>= 0).
        split: "train", "val" or "test".
        task: "segmentation" -> items are ``(image [3, H, W] float32, mask [H, W] int64)``;
            "detection" -> items are ``(image, {"boxes": [N, 4] float32, "labels": [N] int64})``
            as torchvision's detection models expect (batch them with :func:`collate_detection`).
        transform: optional callable applied to the item tuple ``(image, target)``.
        **scene_kwargs: passed to :func:`make_scene` (``noise``, ``radius``, ``rotate``).

    Attributes:
        classes: ``CLASS_NAMES``; ``num_classes`` counts the background too.
    """

    classes = CLASS_NAMES
    num_classes = NUM_CLASSES

    def __init__(self, n_images: int, image_size: int | tuple[int, int] = 64,
                 n_objects: int | tuple[int, int] = (1, 3), seed: int = 0, split: str = "train",
                 task: str = "segmentation", transform=None, **scene_kwargs) -> None:
        if not isinstance(n_images, (int, np.integer)) or isinstance(n_images, bool):
            raise TypeError(f"n_images must be an int, got {type(n_images).__name__}")
        if n_images < 0:
            raise ValueError(f"n_images must be >= 0, got {n_images}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.image_size, self.n_objects = _check_scene_args(image_size, n_objects)
        self.n_images = int(n_images)
        self.seed = int(seed)
        self.split = split
        self.task = task
        self.transform = transform
        self.scene_kwargs = scene_kwargs
        self._cache: dict[int, Scene] = {}

    def __len__(self) -> int:
        return self.n_images

    def scene(self, index: int) -> Scene:
        """The full :class:`Scene` of item ``index`` (with boxes, labels and instance masks)."""
        if not -self.n_images <= index < self.n_images:
            raise IndexError(f"index {index} out of range for a data set of {self.n_images} images")
        index = index % self.n_images
        if index not in self._cache:
            rng = np.random.default_rng([self.seed, SPLITS.index(self.split), index])
            self._cache[index] = make_scene(rng, self.image_size, self.n_objects, **self.scene_kwargs)
        return self._cache[index]

    def __getitem__(self, index: int):
        scene = self.scene(index)
        if self.task == "segmentation":
            item = (scene.image, scene.mask)
        else:
            item = (scene.image, {"boxes": scene.boxes, "labels": scene.labels})
        return self.transform(*item) if self.transform is not None else item

    def __repr__(self) -> str:
        return (f"ShapesDataset(n_images={self.n_images}, image_size={self.image_size}, "
                f"n_objects={self.n_objects}, seed={self.seed}, split={self.split!r}, task={self.task!r})")


# The chapters' scene sets, by name, so that a chapter, its benchmark and its stored model all
# draw the same scenes. "scenes64": the 64 x 64 scenes of the earlier chapters and of quick
# mode (1-3 large shapes). "scenes128": the harder set of the segmentation and detection
# chapters: 128 x 128, 1-6 objects, circumradii from 6 % to 25 % of the side (small objects
# of about 8 px included), occlusion, all four textures, tint and noise as in every scene.
SCENE_PRESETS: dict[str, dict] = {
    "scenes64": {"image_size": 64, "n_objects": (1, 3), "radius": (0.12, 0.25)},
    "scenes128": {"image_size": 128, "n_objects": (1, 6), "radius": (0.06, 0.25)},
}


def preset_dataset(name: str, n_images: int, *, seed: int = 0, split: str = "train",
                   task: str = "segmentation", transform=None) -> ShapesDataset:
    """``ShapesDataset`` of the named scene set of :data:`SCENE_PRESETS`.

    ``preset_dataset("scenes128", 300, split="test", task="detection")`` gives the detection
    chapter's 300 test scenes; the other arguments are those of :class:`ShapesDataset`.
    """
    if name not in SCENE_PRESETS:
        raise ValueError(f"name must be one of {sorted(SCENE_PRESETS)}, got {name!r}")
    preset = dict(SCENE_PRESETS[name])
    return ShapesDataset(n_images, preset.pop("image_size"), preset.pop("n_objects"), seed=seed,
                         split=split, task=task, transform=transform, **preset)


def collate_detection(batch: list) -> tuple[Tensor, list[dict]]:
    """Batch detection items: images stacked to ``Tensor[B, 3, H, W]``, targets kept as a list
    (each image has its own number of boxes)."""
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)

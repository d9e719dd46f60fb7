"""Classification + localization data: the synthetic shapes scenes with a fixed number of boxes.

Thin adapters over :class:`lecture_lib.data.shapes.ShapesDataset` (task="detection") whose items
batch with PyTorch's default collate, so that ``DataLoader`` and ``lecture_lib.train.fit`` work
unchanged:

* :class:`SingleObjectDataset` -- exactly one object per image (the lecture's "classification +
  localization" setting): ``(image, {"label": int64 scalar in 0..3, "box": Tensor[4]})``, the label
  indexing ``SHAPES = ("circle", "square", "triangle", "cross")``.
* :class:`MultiObjectDataset` -- up to ``max_objects`` objects and a **fixed** number of output
  slots: ``(image, {"labels": Tensor[K] int64, "boxes": Tensor[K, 4]})`` with the objects sorted
  left to right and empty slots marked by label 0 ("no object", ``CLASS_NAMES[0]``).

Boxes are divided by the image width and height, so coordinates lie in [0, 1] whatever the image
size (the IoU is unchanged by that scaling).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lecture_lib.data.shapes import CLASS_NAMES, SHAPES, ShapesDataset

__all__ = ["SingleObjectDataset", "MultiObjectDataset", "normalize_boxes", "denormalize_boxes"]


def _scale(image_size: tuple[int, int], like: Tensor) -> Tensor:
    height, width = image_size
    return torch.tensor([width, height, width, height], dtype=like.dtype, device=like.device)


def _item_index(index: int, n_images: int) -> int:
    if not -n_images <= index < n_images:
        raise IndexError(f"index {index} out of range for a data set of {n_images} images")
    return index % n_images


def normalize_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Pixel boxes ``Tensor[..., 4]`` -> fractions of ``image_size = (height, width)``."""
    return boxes / _scale(image_size, boxes)


def denormalize_boxes(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Fractions of ``image_size = (height, width)`` -> pixel boxes ``Tensor[..., 4]``."""
    return boxes * _scale(image_size, boxes)


class SingleObjectDataset(Dataset):
    """Images with exactly one shape: ``(image [3, H, W], {"label": int64, "box": Tensor[4]})``.

    Args:
        n_images, image_size, seed, split: as for ``ShapesDataset``.
        **scene_kwargs: passed to ``make_scene``, e.g. ``radius=(0.2, 0.4)`` for larger shapes.

    Attributes:
        classes: ``SHAPES``; ``label`` indexes it (``num_classes = 4``).
    """

    classes = SHAPES
    num_classes = len(SHAPES)

    def __init__(self, n_images: int, image_size: int | tuple[int, int] = 64, seed: int = 0,
                 split: str = "train", **scene_kwargs) -> None:
        self.scenes = ShapesDataset(n_images, image_size=image_size, n_objects=1, seed=seed,
                                    split=split, task="detection", **scene_kwargs)
        self.image_size = self.scenes.image_size
        # items are built once and kept (the scenes are, too): an epoch then costs no Python
        # work per image beyond the DataLoader's collation
        self._items: dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int):
        index = _item_index(index, len(self))
        if index not in self._items:
            self._items[index] = self._item(index)
        return self._items[index]

    def _item(self, index: int):
        image, target = self.scenes[index]
        # ShapesDataset never returns fewer objects than n_objects = 1 (an object that would be
        # hidden is redrawn), so there is always exactly one box.
        label = target["labels"][0] - 1  # 1..4 in CLASS_NAMES -> 0..3 in SHAPES
        box = normalize_boxes(target["boxes"][0], self.image_size)
        return image, {"label": label, "box": box}


class MultiObjectDataset(Dataset):
    """Images with 1..``max_objects`` shapes and ``max_objects`` fixed output slots.

    Args:
        n_images, image_size, seed, split: as for ``ShapesDataset``.
        max_objects: ``K``, the number of slots.
        n_objects: objects drawn per image, an int or ``(min, max)`` with ``max <= K``;
            default ``(1, K)``.
        **scene_kwargs: passed to ``make_scene`` (``radius``, ``noise``).

    Items:
        ``(image [3, H, W], {"labels": Tensor[K] int64, "boxes": Tensor[K, 4]})``: slot ``k`` holds
        the ``k``-th object from the left (by box centre), label in ``1..4`` (``CLASS_NAMES``);
        unused slots have label 0 and box ``(0, 0, 0, 0)``.
    """

    classes = CLASS_NAMES
    num_classes = len(CLASS_NAMES)  # "no object" + the 4 shapes

    def __init__(self, n_images: int, max_objects: int, image_size: int | tuple[int, int] = 64,
                 n_objects: int | tuple[int, int] | None = None, seed: int = 0,
                 split: str = "train", **scene_kwargs) -> None:
        if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 1:
            raise ValueError(f"max_objects must be a positive int, got {max_objects!r}")
        n_objects = (1, max_objects) if n_objects is None else n_objects
        self.scenes = ShapesDataset(n_images, image_size=image_size, n_objects=n_objects, seed=seed,
                                    split=split, task="detection", **scene_kwargs)
        if self.scenes.n_objects[1] > max_objects:
            raise ValueError(f"n_objects must not exceed max_objects = {max_objects}, got {n_objects!r}")
        self.max_objects = max_objects
        self.image_size = self.scenes.image_size
        self._items: dict[int, tuple] = {}  # built once and kept, as in SingleObjectDataset

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int):
        index = _item_index(index, len(self))
        if index not in self._items:
            self._items[index] = self._item(index)
        return self._items[index]

    def _item(self, index: int):
        image, target = self.scenes[index]
        boxes = normalize_boxes(target["boxes"], self.image_size)
        # A fixed set of outputs needs a rule saying which object goes to which slot: left to right.
        order = torch.argsort((boxes[:, 0] + boxes[:, 2]) / 2, stable=True)
        n = len(order)
        labels = torch.zeros(self.max_objects, dtype=torch.int64)
        slot_boxes = torch.zeros(self.max_objects, 4, dtype=boxes.dtype)
        labels[:n] = target["labels"][order]
        slot_boxes[:n] = boxes[order]
        return image, {"labels": labels, "boxes": slot_boxes}

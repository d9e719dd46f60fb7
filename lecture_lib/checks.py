"""Input checks shared by the models: one place for "expected ..., got ..." errors.

Every public function of the detection family validates what a reader passes in before doing any
work, so that a wrong shape fails at the call with a message that says what was expected and what
was given -- not three layers down in a matrix multiplication. The checks are written once here
and imported by the models (``lecture_lib.models.*``), the proposals and the training recipes.

Each function returns ``None`` (or the normalised value where it says so) and raises
``TypeError`` for a wrong type and ``ValueError`` for a wrong value; nothing is clamped or
broadcast silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "check_positive_int",
    "check_positive_ints",
    "check_fraction",
    "check_positive_number",
    "check_image_size",
    "check_boxes",
    "check_masks",
    "check_images",
    "check_detection_targets",
    "check_detection_inputs",
]


def check_positive_int(value, name: str) -> None:
    """``value`` must be an int >= 1 (``True`` is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_positive_ints(values, name: str) -> None:
    """``values`` must be a non-empty tuple or list of ints >= 1 (e.g. channel widths)."""
    if (not isinstance(values, (tuple, list)) or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)):
        raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {values!r}")


def check_fraction(value, name: str, low: float = 0.0, high: float = 1.0) -> None:
    """``value`` must be a real number in ``[low, high]`` (thresholds, fractions)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not low <= value <= high):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")


def check_positive_number(value, name: str) -> None:
    """``value`` must be a finite real number > 0 (a learning rate, a time budget)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def check_image_size(size, name: str = "image_size") -> tuple[int, int]:
    """``size`` must be ``(height, width)`` of positive ints; returns it as a tuple."""
    if (not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"{name} must be (height, width) of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def check_scene_config_args(image_size, num_classes) -> None:
    """The arguments of the segmenters' ``scene_config``: an int side >= 16, >= 2 classes."""
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise TypeError(f"image_size must be an int, got {type(image_size).__name__}")
    if image_size < 16:
        raise ValueError(f"image_size must be an int >= 16, got {image_size}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2 (background included), got {num_classes!r}")


def check_boxes(boxes, name: str = "boxes", xyxy: bool = True) -> None:
    """``boxes`` must be a real ``Tensor[N, 4]``; with ``xyxy`` also ``x1 <= x2`` and ``y1 <= y2``."""
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, 4], got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {list(boxes.shape)}")
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {boxes.dtype}")
    if xyxy and boxes.numel():
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"{name} must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2, "
                             f"got {boxes[i].tolist()} at row {i}")


def check_masks(masks, name: str, count: int | None = None, size: Sequence[int] | None = None) -> None:
    """``masks`` must be a ``Tensor[N, H, W]`` with ``N == count`` and ``(H, W) == size`` when given."""
    if not isinstance(masks, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, H, W], got {type(masks).__name__}")
    if masks.dim() != 3:
        raise ValueError(f"{name} must have shape [N, H, W], got {list(masks.shape)}")
    if count is not None and masks.shape[0] != count:
        raise ValueError(f"{name} must have one mask per box: shape [{count}, H, W], got {list(masks.shape)}")
    if size is not None and tuple(masks.shape[1:]) != tuple(size):
        raise ValueError(f"{name} must match the image size {list(size)}, got masks of size {list(masks.shape[1:])}")


def check_images(images, name: str = "images") -> None:
    """``images`` must be a floating point ``Tensor[B, 3, H, W]``."""
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, 3, H, W], got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape [B, 3, H, W], got {list(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {images.dtype}")


def check_detection_targets(targets, num_images: int, num_classes: int | None = None) -> None:
    """``targets`` must be a list of ``num_images`` dicts with ``"boxes"`` Tensor[N, 4] and
    ``"labels"`` Tensor[N] int64 in ``1 .. num_classes - 1`` (0 is the background)."""
    if not isinstance(targets, (list, tuple)) or len(targets) != num_images:
        got = f"{len(targets)} entries" if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"targets must be a list of {num_images} dicts (one per image), got {got}")
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise ValueError(f"targets[{i}] must be a dict with 'boxes' and 'labels', got {t!r}")
        check_boxes(t["boxes"], f"targets[{i}]['boxes']")
        labels = t["labels"]
        if not isinstance(labels, Tensor) or labels.shape != (t["boxes"].shape[0],):
            raise ValueError(f"targets[{i}]['labels'] must have shape [{t['boxes'].shape[0]}], "
                             f"got {getattr(labels, 'shape', type(labels).__name__)}")
        if labels.dtype != torch.int64:
            raise TypeError(f"targets[{i}]['labels'] must be int64, got {labels.dtype}")
        if num_classes is not None and labels.numel() and (labels.min() < 1 or labels.max() >= num_classes):
            raise ValueError(f"targets[{i}]['labels'] must be in [1, {num_classes - 1}] "
                             f"(0 is background), got {labels.tolist()}")


def check_detection_inputs(images, targets, num_classes: int, training: bool) -> None:
    """A detector's ``forward`` arguments: images Tensor[B, 3, H, W] and (needed in training
    mode) a list of B target dicts with labels in ``1 .. num_classes - 1``."""
    check_images(images)
    if targets is None:
        if training:
            raise ValueError("targets must be given in training mode (one dict per image)")
        return
    check_detection_targets(targets, images.shape[0], num_classes)

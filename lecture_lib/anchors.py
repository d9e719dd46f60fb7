"""Anchor boxes of a region proposal network (Ren et al. 2015, Faster R-CNN).

At every cell of a backbone feature map the RPN predicts, for each of ``A`` reference boxes
(anchors) of a few sizes and aspect ratios, "is there an object?" and four deltas that move the
anchor onto it (``lecture_lib.boxes.decode_boxes``). The anchors are fixed: a small set of boxes
centred on the origin, copied to every cell, ``stride`` pixels apart in the image.

``generate_anchors`` returns the same boxes in the same order as torchvision's
``AnchorGenerator`` for one feature map:

* aspect ratio = height / width; a ratio ``r`` and size ``s`` give ``w = s / sqrt(r)``,
  ``h = s * sqrt(r)`` (so the area stays ``s**2``), rounded to whole pixels as
  ``round(+-w / 2), round(+-h / 2)``;
* the A anchors of a cell go ratio by ratio, and inside a ratio size by size;
* cells go row by row (y outer, x inner); cell ``(i, j)`` puts the anchor centre at
  ``(j * stride_w, i * stride_h)`` -- the cell's top-left pixel, not its centre.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["generate_anchors", "cell_anchors"]


def _check_positive_numbers(values, name: str) -> list[float]:
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of positive numbers, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be positive numbers, got {tuple(values)}")
    return list(values)


def _check_pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each >= minimum."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(pair, (tuple, list, torch.Size)) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair)):
        raise ValueError(f"{name} must be an int or (height, width) of ints >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float],
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``A = len(aspect_ratios) * len(sizes)`` anchors of one cell, centred on (0, 0).

    Args:
        sizes: anchor sizes in pixels (square root of the area), e.g. ``(32, 64, 128)``.
        aspect_ratios: height / width ratios, e.g. ``(0.5, 1.0, 2.0)``.

    Returns:
        Tensor[A, 4]: ``(-w/2, -h/2, w/2, h/2)`` rounded, ratio-major then size.
    """
    sizes = _check_positive_numbers(sizes, "sizes")
    aspect_ratios = _check_positive_numbers(aspect_ratios, "aspect_ratios")
    scales = torch.as_tensor(sizes, dtype=dtype)
    ratios = torch.as_tensor(aspect_ratios, dtype=dtype)
    # Keep the area s**2 and set h / w = r: h = s sqrt(r), w = s / sqrt(r).
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    widths = (w_ratios[:, None] * scales[None, :]).reshape(-1)  # [A], ratio-major
    heights = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return (torch.stack([-widths, -heights, widths, heights], dim=1) / 2).round()


def generate_anchors(feature_size: tuple[int, int], stride: int | tuple[int, int],
                     sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """All anchors of one feature map, as torchvision's ``AnchorGenerator`` makes them.

    Args:
        feature_size: ``(H, W)`` of the feature map.
        stride: pixels in the image between two neighbouring cells, an int or
            ``(stride_h, stride_w)`` (torchvision uses ``image_size // feature_size``).
        sizes: anchor sizes in pixels, e.g. ``(32, 64, 128)``.
        aspect_ratios: height / width ratios, e.g. ``(0.5, 1.0, 2.0)``.

    Returns:
        Tensor[H * W * A, 4] (float32): anchors in (x1, y1, x2, y2) image coordinates; row
        ``(i * W + j) * A + a`` is anchor ``a`` of cell ``(i, j)``.
    """
    height, width = _check_pair(feature_size, "feature_size", minimum=0)
    stride_h, stride_w = _check_pair(stride, "stride", minimum=1)
    base = cell_anchors(sizes, aspect_ratios)  # [A, 4]
    # Anchor centres: one per cell, on the cell's top-left pixel (torchvision's convention).
    shifts_x = torch.arange(width, dtype=torch.int32) * stride_w
    shifts_y = torch.arange(height, dtype=torch.int32) * stride_h
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")  # [H, W], y outer
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=1)  # [H*W, 4]
    # every (cell, base anchor) pair: [H*W, 1, 4] + [1, A, 4] -> [H*W, A, 4]
    return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)

"""RoI pooling (Fast R-CNN) and RoI align (Mask R-CNN): a fixed-size feature per region.

A detector's head needs the same input size for every proposal, whatever the proposal's size.
Both operators cut the proposal's window out of the backbone's feature map, split it into an
``h x w`` grid of bins and summarise each bin by one number per channel:

* **RoI pooling** (Girshick 2015): snap the box to whole feature-map cells (``round``), split it
  into bins with ``floor`` / ``ceil`` and take the **max** of each bin. The two quantisations
  shift the features by up to a cell, i.e. ``1 / spatial_scale`` image pixels.
* **RoI align** (He et al. 2017): no rounding at all. Put ``sampling_ratio x sampling_ratio``
  regularly spaced points in each bin, read the feature map at those real-valued points by
  **bilinear interpolation**, and **average** them.

Both return what ``torchvision.ops.roi_pool`` / ``roi_align`` return on the CPU (exactly for
roi_pool; to float rounding for roi_align, which sums in another order).

Boxes are ``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` or a list with one
``Tensor[L, 4]`` per image, in image coordinates; ``spatial_scale`` (e.g. 1/16) maps them to
feature-map coordinates.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecture_lib.boxes import _check_boxes

__all__ = ["roi_pool", "roi_align", "boxes_to_rois"]


def _check_roi_inputs(input, boxes, output_size, spatial_scale) -> tuple[Tensor, int, int]:
    """Validate the arguments; return rois as Tensor[K, 5] and the output size (h, w)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a torch.Tensor of shape [N, C, H, W], got {type(input).__name__}")
    if input.dim() != 4:
        raise ValueError(f"input must have shape [N, C, H, W], got {list(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating point tensor, got dtype {input.dtype}")
    size = (output_size, output_size) if isinstance(output_size, int) else output_size
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"output_size must be a positive int or (height, width), got {output_size!r}")
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float)):
        raise TypeError(f"spatial_scale must be a number, got {type(spatial_scale).__name__}")
    if not (math.isfinite(spatial_scale) and spatial_scale > 0):
        raise ValueError(f"spatial_scale must be positive, got {spatial_scale}")
    rois = boxes_to_rois(boxes)
    if rois.dtype != input.dtype:
        raise TypeError(f"boxes must have the dtype of input ({input.dtype}), got {rois.dtype}")
    if rois.numel():
        batch_index = rois[:, 0]
        bad = (batch_index != batch_index.floor()) | (batch_index < 0) | (batch_index >= input.shape[0])
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"batch indices (boxes[:, 0]) must be integers in [0, {input.shape[0] - 1}], "
                f"got {batch_index[i].item()} at row {i}"
            )
    return rois, int(size[0]), int(size[1])


def boxes_to_rois(boxes: Tensor | list[Tensor]) -> Tensor:
    """``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` from either accepted box format.

    Args:
        boxes: ``Tensor[K, 5]`` (returned as is, after checks) or a list of ``Tensor[L_i, 4]``,
            the boxes of image ``i``.
    """
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"boxes must have shape [K, 5] (batch_index, x1, y1, x2, y2), got {list(boxes.shape)}")
        if not boxes.is_floating_point():
            raise TypeError(f"boxes must be a floating point tensor, got dtype {boxes.dtype}")
        _check_boxes(boxes[:, 1:], "boxes[:, 1:]")
        return boxes
    if not isinstance(boxes, (list, tuple)) or len(boxes) == 0:
        raise TypeError(f"boxes must be a Tensor[K, 5] or a non-empty list of Tensor[L, 4], got {boxes!r}")
    for i, b in enumerate(boxes):
        _check_boxes(b, f"boxes[{i}]")
        if not b.is_floating_point():
            raise TypeError(f"boxes[{i}] must be a floating point tensor, got dtype {b.dtype}")
    batch_index = torch.cat([torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)])
    return torch.cat([batch_index, torch.cat(list(boxes))], dim=1)


def _round_half_away_from_zero(x: Tensor) -> Tensor:
    # C's round() (used by the Fast R-CNN code) sends 2.5 to 3; torch.round sends it to 2.
    truncated = torch.trunc(x)
    is_half = (x - truncated).abs() == 0.5
    return torch.where(is_half, truncated + torch.sign(x), torch.round(x))


def roi_pool(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
             spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling (Girshick 2015, Fast R-CNN).

    Args:
        input (Tensor[N, C, H, W]): feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L, 4]): regions in image coordinates.
        output_size: ``(h, w)`` bins per region (an int means square).
        spatial_scale: feature-map cells per image pixel, e.g. ``1 / 16`` for a VGG conv5.

    Returns:
        Tensor[K, C, h, w]: the max of each bin (0 for a bin that falls outside the map);
        == ``torchvision.ops.roi_pool``.
    """
    rois, pooled_h, pooled_w = _check_roi_inputs(input, boxes, output_size, spatial_scale)
    num_rois, channels = rois.shape[0], input.shape[1]
    height, width = input.shape[-2:]
    if num_rois == 0 or input.numel() == 0:
        return input.new_zeros(num_rois, channels, pooled_h, pooled_w)
    # Quantisation 1: snap the box to whole cells. A box always covers at least one cell
    # (the + 1: x1 = x2 = 3 is the cell 3).
    start_x, start_y, end_x, end_y = _round_half_away_from_zero(rois[:, 1:] * spatial_scale).long().unbind(1)
    roi_w = (end_x - start_x + 1).clamp(min=1).to(input.dtype)
    roi_h = (end_y - start_y + 1).clamp(min=1).to(input.dtype)

    def bin_edges(roi_size: Tensor, start: Tensor, n_bins: int, limit: int) -> tuple[Tensor, Tensor]:
        # Quantisation 2: bin b covers cells [floor(b * size / n), ceil((b + 1) * size / n)),
        # so neighbouring bins may share a cell; clipped to the feature map.
        bin_size = roi_size / n_bins  # [K]
        b = torch.arange(n_bins, dtype=input.dtype, device=input.device)
        lo = torch.floor(b[None, :] * bin_size[:, None]).long() + start[:, None]
        hi = torch.ceil((b[None, :] + 1) * bin_size[:, None]).long() + start[:, None]
        return lo.clamp(0, limit), hi.clamp(0, limit)  # [K, n_bins] each

    y_lo, y_hi = bin_edges(roi_h, start_y, pooled_h, height)
    x_lo, x_hi = bin_edges(roi_w, start_x, pooled_w, width)
    # Which rows / columns of the map belong to each bin: [K, bins, H] and [K, bins, W].
    rows = torch.arange(height, device=input.device)
    cols = torch.arange(width, device=input.device)
    in_row = (rows >= y_lo[..., None]) & (rows < y_hi[..., None])
    in_col = (cols >= x_lo[..., None]) & (cols < x_hi[..., None])
    # A bin is a rectangle, so its max is the max over its rows of the max over its columns.
    features = input[rois[:, 0].long()]  # [K, C, H, W]
    neg_inf = torch.tensor(-math.inf, dtype=input.dtype, device=input.device)
    col_max = torch.where(in_col[:, None, None], features[:, :, :, None, :], neg_inf).amax(-1)  # [K, C, H, w]
    pooled = torch.where(in_row[:, None, :, :, None], col_max[:, :, None], neg_inf).amax(3)  # [K, C, h, w]
    empty = (y_hi <= y_lo)[:, :, None] | (x_hi <= x_lo)[:, None, :]  # [K, h, w]
    return pooled.masked_fill(empty[:, None], 0)


def _bilinear_weights(coords: Tensor, valid: Tensor, size: int) -> Tensor:
    """Weights that read a 1-D signal of length ``size`` at real positions by linear interpolation.

    Args:
        coords (Tensor[...]): sample positions in cells (cell i has its centre at i here).
        valid (Tensor[...] bool): samples that count; the others get all-zero weights.

    Returns:
        Tensor[..., size]: row ``r`` has ``1 - frac`` at ``floor(c)`` and ``frac`` at
        ``floor(c) + 1``; a sample further than one cell outside the map reads 0, and one
        within a cell of the border reads the border value (as in the Mask R-CNN code).
    """
    valid = valid & (coords >= -1.0) & (coords <= size)
    c = coords.clamp(min=0)
    low = c.long()  # floor for c >= 0
    at_end = low >= size - 1
    low = torch.where(at_end, size - 1, low)
    c = torch.where(at_end, low.to(c.dtype), c)
    high = torch.where(at_end, low, low + 1)
    frac = c - low
    weights = coords.new_zeros(*coords.shape, size)
    weights.scatter_add_(-1, low[..., None], (1 - frac)[..., None])
    weights.scatter_add_(-1, high[..., None], frac[..., None])
    return weights * valid[..., None]


def roi_align(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """RoI align (He et al. 2017, Mask R-CNN): bilinear samples averaged per bin, no rounding.

    Args:
        input (Tensor[N, C, H, W]): feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L, 4]): regions in image coordinates.
        output_size: ``(h, w)`` bins per region (an int means square).
        spatial_scale: feature-map cells per image pixel.
        sampling_ratio: sample points per bin in each direction; ``<= 0`` means adaptive,
            ``ceil(roi_size / output_size)`` per region.
        aligned: if True, shift the box by -0.5 cell so that a feature-map value sits at its
            cell's centre (the fix of Detectron2); False is the original Mask R-CNN behaviour.

    Returns:
        Tensor[K, C, h, w]: == ``torchvision.ops.roi_align`` (up to float rounding).
    """
    rois, pooled_h, pooled_w = _check_roi_inputs(input, boxes, output_size, spatial_scale)
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
        raise TypeError(f"sampling_ratio must be an int, got {type(sampling_ratio).__name__}")
    if not isinstance(aligned, bool):
        raise TypeError(f"aligned must be a bool, got {type(aligned).__name__}")
    num_rois, channels = rois.shape[0], input.shape[1]
    height, width = input.shape[-2:]
    if num_rois == 0 or input.numel() == 0:
        return input.new_zeros(num_rois, channels, pooled_h, pooled_w)
    offset = 0.5 if aligned else 0.0
    start_x, start_y, end_x, end_y = (rois[:, 1:] * spatial_scale - offset).unbind(1)
    roi_w, roi_h = end_x - start_x, end_y - start_y
    if not aligned:  # the original code makes tiny boxes at least one cell wide
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)

    def averaging_matrix(start: Tensor, roi_size: Tensor, n_bins: int, size: int) -> tuple[Tensor, Tensor]:
        # The sample points of bin b: start + b * bin + (i + 0.5) * bin / n, i = 0 .. n - 1.
        bin_size = roi_size / n_bins  # [K]
        if sampling_ratio > 0:
            n_samples = torch.full_like(roi_size, sampling_ratio, dtype=torch.long)
        else:
            n_samples = torch.ceil(roi_size / n_bins).long()  # adaptive: about 1 sample per cell
        i = torch.arange(max(int(n_samples.max()), 1), device=input.device)  # up to the largest n
        b = torch.arange(n_bins, device=input.device, dtype=input.dtype)
        points = (start[:, None, None] + b[None, :, None] * bin_size[:, None, None]
                  + (i[None, None, :] + 0.5).to(input.dtype) * bin_size[:, None, None]
                  / n_samples.clamp(min=1)[:, None, None].to(input.dtype))  # [K, bins, n]
        valid = (i[None, None, :] < n_samples[:, None, None]).expand_as(points)
        # Summing the interpolation weights of a bin's samples gives one row per bin: [K, bins, size].
        return _bilinear_weights(points, valid, size).sum(2), n_samples

    rows, n_y = averaging_matrix(start_y, roi_h, pooled_h, height)  # [K, h, H]
    cols, n_x = averaging_matrix(start_x, roi_w, pooled_w, width)   # [K, w, W]
    # Bilinear interpolation is separable (weight = row weight x column weight), so the sum of all
    # samples of every bin is rows @ feature map @ cols^T; dividing by the count averages them.
    features = input[rois[:, 0].long()]  # [K, C, H, W]
    summed = torch.einsum("kyh,kchw,kxw->kcyx", rows, features, cols)
    count = (n_y * n_x).clamp(min=1).to(input.dtype)
    return summed / count[:, None, None, None]

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

Each comes twice, proven equal in ``tests/test_roi.py``: ``roi_pool_loop`` / ``roi_align_loop``
walk over the regions and bins as the papers describe them; ``roi_pool`` / ``roi_align`` compute
all regions and bins at once, on one CPU thread like torchvision's kernels, and are what the
detectors use with ``ops="lecture_lib"``. All four return what
``torchvision.ops.roi_pool`` / ``roi_align`` return on the CPU (exactly for RoI pooling; to float
rounding for RoI align, which sums in another order), and the gradients with respect to
``input`` are torchvision's too, so a detector trains through them alike. Like torchvision's,
they are not differentiable with respect to the boxes.

Boxes are ``Tensor[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` or a list with one
``Tensor[L, 4]`` per image, in image coordinates; ``spatial_scale`` (e.g. 1/16) maps them to
feature-map coordinates.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lecture_lib._single_thread import one_cpu_thread_with_backward
from lecture_lib.boxes import _check_boxes

__all__ = ["roi_pool", "roi_pool_loop", "roi_align", "roi_align_loop", "boxes_to_rois"]


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


# --- RoI pooling ------------------------------------------------------------------------------


def _pool_bin_edges(rois: Tensor, pooled_h: int, pooled_w: int, spatial_scale: float,
                    height: int, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rows ``[y_lo, y_hi)`` (Tensor[K, h]) and columns ``[x_lo, x_hi)`` (Tensor[K, w]) of each bin.

    Quantisation 1: snap the box to whole cells (a box covers at least one cell: x1 = x2 = 3 is
    the cell 3). Quantisation 2: bin b covers cells ``[floor(b * size / n), ceil((b + 1) * size / n))``
    of the box, so neighbouring bins may share a cell; clipped to the feature map.
    """
    start_x, start_y, end_x, end_y = _round_half_away_from_zero(rois[:, 1:] * spatial_scale).long().unbind(1)

    def edges(start: Tensor, end: Tensor, n_bins: int, limit: int) -> tuple[Tensor, Tensor]:
        bin_size = (end - start + 1).clamp(min=1).to(rois.dtype) / n_bins  # [K]
        b = torch.arange(n_bins, dtype=rois.dtype, device=rois.device)
        lo = torch.floor(b * bin_size[:, None]).long() + start[:, None]
        hi = torch.ceil((b + 1) * bin_size[:, None]).long() + start[:, None]
        return lo.clamp(0, limit), hi.clamp(0, limit)

    y_lo, y_hi = edges(start_y, end_y, pooled_h, height)
    x_lo, x_hi = edges(start_x, end_x, pooled_w, width)
    return y_lo, y_hi, x_lo, x_hi


def roi_pool_loop(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
                  spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling, one region and one bin at a time (the readable version of :func:`roi_pool`).

    Same arguments and result as :func:`roi_pool`.
    """
    rois, pooled_h, pooled_w = _check_roi_inputs(input, boxes, output_size, spatial_scale)
    rois = rois.detach()
    y_lo, y_hi, x_lo, x_hi = (e.tolist() for e in _pool_bin_edges(rois, pooled_h, pooled_w, spatial_scale,
                                                                     *input.shape[-2:]))
    channels = input.shape[1]
    regions = []
    for k, image in enumerate(rois[:, 0].long().tolist()):
        bins = []
        for i in range(pooled_h):
            for j in range(pooled_w):
                window = input[image, :, y_lo[k][i]:y_hi[k][i], x_lo[k][j]:x_hi[k][j]].reshape(channels, -1)
                # max(dim) picks the first maximum in row-major order, as the Fast R-CNN kernel
                # does; its gradient goes to that one cell. A bin outside the map is 0.
                bins.append(window.max(dim=1).values if window.shape[1] else input.new_zeros(channels))
        regions.append(torch.stack(bins, dim=1).reshape(channels, pooled_h, pooled_w))
    if not regions:
        return input.new_zeros(0, channels, pooled_h, pooled_w)
    return torch.stack(regions)


@one_cpu_thread_with_backward
def roi_pool(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
             spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling (Girshick 2015, Fast R-CNN).

    Every bin is a rectangle of whole cells, so its maximum is what a max pooling with a window
    of the bin's size, stride 1, reads at the bin's top-left cell. Few window sizes occur (the
    bins of one box differ by at most a cell), so we max-pool the feature maps once per size and
    read every bin of that size with one index operation. ``F.max_pool2d`` keeps the first
    maximum in row-major order, as the Fast R-CNN kernel does, so the gradient goes to the same
    cell.

    Args:
        input (Tensor[N, C, H, W]): feature maps.
        boxes (Tensor[K, 5] or list of Tensor[L, 4]): regions in image coordinates.
        output_size: ``(h, w)`` bins per region (an int means square).
        spatial_scale: feature-map cells per image pixel, e.g. ``1 / 16`` for a VGG conv5.

    Returns:
        Tensor[K, C, h, w]: the max of each bin (0 for a bin that falls outside the map);
        == ``torchvision.ops.roi_pool`` and :func:`roi_pool_loop`, gradients included.
    """
    rois, pooled_h, pooled_w = _check_roi_inputs(input, boxes, output_size, spatial_scale)
    rois = rois.detach()
    num_rois, channels = rois.shape[0], input.shape[1]
    height, width = input.shape[-2:]
    if num_rois == 0 or input.numel() == 0:
        return input.new_zeros(num_rois, channels, pooled_h, pooled_w)
    y_lo, y_hi, x_lo, x_hi = _pool_bin_edges(rois, pooled_h, pooled_w, spatial_scale, height, width)
    # One row per bin (region-major, then bin row, then bin column): image, top-left cell, size.
    shape = (num_rois, pooled_h, pooled_w)
    image = rois[:, 0].long()[:, None, None].expand(shape).reshape(-1)
    top, left = y_lo[:, :, None].expand(shape).reshape(-1), x_lo[:, None, :].expand(shape).reshape(-1)
    bin_h = (y_hi - y_lo)[:, :, None].expand(shape).reshape(-1)
    bin_w = (x_hi - x_lo)[:, None, :].expand(shape).reshape(-1)
    size_key = torch.where((bin_h > 0) & (bin_w > 0), bin_h * (width + 1) + bin_w, -1)  # -1: empty bin
    features = input.contiguous(memory_format=torch.channels_last)  # a cell's channels side by side
    bins, maxima = [], []
    for key in torch.unique(size_key).tolist():
        if key < 0:
            continue
        h, w = divmod(key, width + 1)
        window_maxima = F.max_pool2d(features, (h, w), stride=1)  # [N, C, H - h + 1, W - w + 1]
        bins.append(torch.where(size_key == key)[0])
        maxima.append(window_maxima[image[bins[-1]], :, top[bins[-1]], left[bins[-1]]])  # [bins of that size, C]
    # every bin's row at once (one write, so that the backward pass copies the gradient once)
    out = input.new_zeros(num_rois * pooled_h * pooled_w, channels)  # empty bins stay 0
    if bins:
        out = out.index_put((torch.cat(bins),), torch.cat(maxima))
    return out.reshape(num_rois, pooled_h, pooled_w, channels).permute(0, 3, 1, 2)


# --- RoI align ----------------------------------------------------------------------------------


def _check_align_options(sampling_ratio, aligned) -> None:
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int):
        raise TypeError(f"sampling_ratio must be an int, got {type(sampling_ratio).__name__}")
    if not isinstance(aligned, bool):
        raise TypeError(f"aligned must be a bool, got {type(aligned).__name__}")


def _align_geometry(rois: Tensor, pooled_h: int, pooled_w: int, spatial_scale: float,
                    sampling_ratio: int, aligned: bool):
    """Per region: top-left corner, bin size and sample points per bin (y and x), in cells."""
    offset = 0.5 if aligned else 0.0  # aligned: a cell's value sits at its centre
    start_x, start_y, end_x, end_y = (rois[:, 1:] * spatial_scale - offset).unbind(1)
    roi_w, roi_h = end_x - start_x, end_y - start_y
    if not aligned:  # the original code makes tiny boxes at least one cell wide
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        n_y = n_x = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
    else:  # adaptive: about one sample per cell
        n_y, n_x = torch.ceil(roi_h / pooled_h).long(), torch.ceil(roi_w / pooled_w).long()
    return start_y, start_x, roi_h / pooled_h, roi_w / pooled_w, n_y, n_x


def _linear_interpolation(coords: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Read a signal of length ``size`` at real positions: ``w_low * s[low] + w_high * s[high]``.

    Cell i has its value at position i. A position further than one cell outside the signal
    reads 0 (both weights 0); one within a cell of the border reads the border value, as in the
    Mask R-CNN code. Returns ``low, high`` (long) and ``w_low, w_high``, each shaped like coords.
    """
    inside = (coords >= -1.0) & (coords <= size)
    c = coords.clamp(min=0)
    low = c.long()  # floor, for c >= 0
    at_end = low >= size - 1
    low = torch.where(at_end, size - 1, low)
    c = torch.where(at_end, low.to(c.dtype), c)
    high = torch.where(at_end, low, low + 1)
    frac = c - low
    return low, high, (1 - frac) * inside, frac * inside


def _bilinear_point(c: float, size: int) -> tuple[int, int, float, float]:
    """One position of :func:`_linear_interpolation`, in plain Python: ``low, high, w_low, w_high``."""
    if c < -1.0 or c > size:  # further than one cell outside: reads 0
        return 0, 0, 0.0, 0.0
    c = max(c, 0.0)
    low = int(c)
    if low >= size - 1:  # within the last cell: reads the border value
        return size - 1, size - 1, 1.0, 0.0
    return low, low + 1, 1.0 - (c - low), c - low


def roi_align_loop(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
                   spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """RoI align, one region, bin and sample point at a time (the readable :func:`roi_align`).

    Same arguments and result as :func:`roi_align`.
    """
    rois, pooled_h, pooled_w = _check_roi_inputs(input, boxes, output_size, spatial_scale)
    _check_align_options(sampling_ratio, aligned)
    rois = rois.detach()
    height, width = input.shape[-2:]
    geometry = _align_geometry(rois, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned)
    regions = []
    for image, y0, x0, bin_h, bin_w, n_y, n_x in zip(rois[:, 0].long().tolist(), *(g.tolist() for g in geometry)):
        feature = input[image]  # [C, H, W]
        bins = []
        for i in range(pooled_h):
            for j in range(pooled_w):
                total = input.new_zeros(input.shape[1])
                for a in range(n_y):  # n_y x n_x sample points spread evenly over the bin
                    for b in range(n_x):
                        y = y0 + i * bin_h + (a + 0.5) * bin_h / n_y
                        x = x0 + j * bin_w + (b + 0.5) * bin_w / n_x
                        ly, hy, wly, why = _bilinear_point(y, height)
                        lx, hx, wlx, whx = _bilinear_point(x, width)
                        # bilinear = linear in y of linear in x
                        total = total + (wly * (wlx * feature[:, ly, lx] + whx * feature[:, ly, hx])
                                         + why * (wlx * feature[:, hy, lx] + whx * feature[:, hy, hx]))
                bins.append(total / max(n_y * n_x, 1))  # the average of the samples
        regions.append(torch.stack(bins, dim=1).reshape(-1, pooled_h, pooled_w))
    if not regions:
        return input.new_zeros(0, input.shape[1], pooled_h, pooled_w)
    return torch.stack(regions)


@one_cpu_thread_with_backward
def roi_align(input: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """RoI align (He et al. 2017, Mask R-CNN): bilinear samples averaged per bin, no rounding.

    Every output value is a weighted sum of feature-map cells: 4 cells (bilinear weights) per
    sample point, ``n_y x n_x`` sample points per bin, each divided by their number. We list, for
    all regions, bins and sample points at once, the 4 cells and their weights, and let
    ``F.embedding_bag`` (a gather and weighted sum of rows) add them up, one bag per bin, over the
    feature map laid out as one row of C channels per cell. Regions may have different numbers of
    sample points (``sampling_ratio <= 0``): bags may have different sizes.

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
        Tensor[K, C, h, w]: == ``torchvision.ops.roi_align`` and :func:`roi_align_loop` (up to
        float rounding), gradients with respect to ``input`` included.
    """
    rois, pooled_h, pooled_w = _check_roi_inputs(input, boxes, output_size, spatial_scale)
    _check_align_options(sampling_ratio, aligned)
    rois = rois.detach()
    num_rois, channels, height, width = rois.shape[0], *input.shape[1:]
    if num_rois == 0 or input.numel() == 0:
        return input.new_zeros(num_rois, channels, pooled_h, pooled_w)
    start_y, start_x, bin_h, bin_w, n_y, n_x = _align_geometry(rois, pooled_h, pooled_w, spatial_scale,
                                                               sampling_ratio, aligned)
    # Enumerate every sample point: region k has h * w bins of n_y[k] * n_x[k] points, numbered
    # bin by bin (so that each bin's points are consecutive), then row by row inside the bin.
    points_per_bin = n_y * n_x  # [K]
    region = torch.repeat_interleave(torch.arange(num_rois, device=input.device), points_per_bin * pooled_h * pooled_w)
    first = torch.cumsum(points_per_bin * pooled_h * pooled_w, 0) - points_per_bin * pooled_h * pooled_w
    number = torch.arange(len(region), device=input.device) - first[region]
    n_y, n_x = n_y[region], n_x[region]
    b, rest = number % n_x, number // n_x  # point (a, b) of bin (i, j)
    a, rest = rest % n_y, rest // n_y
    j, i = rest % pooled_w, rest // pooled_w
    y = start_y[region] + i * bin_h[region] + (a + 0.5) * bin_h[region] / n_y  # [P]
    x = start_x[region] + j * bin_w[region] + (b + 0.5) * bin_w[region] / n_x
    low_y, high_y, w_low_y, w_high_y = _linear_interpolation(y, height)
    low_x, high_x, w_low_x, w_high_x = _linear_interpolation(x, width)
    # the 4 cells of each point, as rows of the [N * H * W, C] table, and their weights / count
    cell = rois[:, 0].long()[region] * (height * width)
    cells = torch.stack([cell + low_y * width + low_x, cell + low_y * width + high_x,
                         cell + high_y * width + low_x, cell + high_y * width + high_x], dim=1)
    weights = torch.stack([w_low_y * w_low_x, w_low_y * w_high_x, w_high_y * w_low_x, w_high_y * w_high_x], dim=1)
    weights = weights / (n_y * n_x).clamp(min=1).to(input.dtype)[:, None]
    bag_sizes = (4 * points_per_bin).repeat_interleave(pooled_h * pooled_w)  # one bag per bin
    table = input.permute(0, 2, 3, 1).reshape(-1, channels)
    pooled = F.embedding_bag(cells.reshape(-1), table, torch.cumsum(bag_sizes, 0) - bag_sizes,
                             mode="sum", per_sample_weights=weights.reshape(-1))  # [K * h * w, C]
    return pooled.reshape(num_rois, pooled_h, pooled_w, channels).permute(0, 3, 1, 2)

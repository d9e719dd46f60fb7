"""Region proposals: where a detector should look (R-CNN's first step).

A detector that classifies regions needs a list of candidate boxes. Two ways of making one, both
class-agnostic and without learning:

* :func:`sliding_window_proposals`: every window of a few sizes and aspect ratios, a fixed stride
  apart -- exhaustive and cheap to make, but thousands of windows, almost all on background;
* :func:`selective_search` (Uijlings et al. 2013, simplified): group pixels into regions by
  colour and merge neighbours bottom-up; every region ever formed gives its bounding box. A few
  hundred boxes that follow the image's structure, at a cost of a second or more per image.

Faster R-CNN's region proposal network (``lecture_lib.models.faster_rcnn``) replaces both with a
learned, nearly free step. :func:`default_proposals` is what R-CNN and Fast R-CNN use when they
are called without proposals: the sliding windows of their configuration.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lecture_lib.checks import check_images, check_positive_int

__all__ = ["sliding_window_proposals", "selective_search", "default_proposals"]


def sliding_window_proposals(image_size: tuple[int, int], sizes: tuple[float, ...] = (16, 32),
                             aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
                             stride: int = 8) -> Tensor:
    """Every window of a few sizes and aspect ratios that fits in the image, ``stride`` apart.

    Args:
        image_size: ``(height, width)`` in pixels.
        sizes: window sizes (square root of the area) in pixels.
        aspect_ratios: height / width, as for anchors (``w = s / sqrt(r)``, ``h = s sqrt(r)``).
        stride: pixels between two neighbouring windows.

    Returns:
        Tensor[N, 4] (float32): windows in (x1, y1, x2, y2), size by size, ratio by ratio, rows
        top to bottom. ``N`` grows with ``(H / stride) * (W / stride) * len(sizes) * len(ratios)``.
    """
    if not isinstance(image_size, (tuple, list, torch.Size)) or len(image_size) != 2:
        raise ValueError(f"image_size must be (height, width), got {image_size!r}")
    check_positive_int(stride, "stride")
    height, width = image_size
    windows = []
    for size in sizes:
        for ratio in aspect_ratios:
            if size <= 0 or ratio <= 0:
                raise ValueError(f"sizes and aspect_ratios must be positive, got {sizes}, {aspect_ratios}")
            w, h = size / math.sqrt(ratio), size * math.sqrt(ratio)
            if w > width or h > height:
                continue  # this window does not fit in the image
            xs = torch.arange(0, width - w + 1e-6, stride, dtype=torch.float32)
            ys = torch.arange(0, height - h + 1e-6, stride, dtype=torch.float32)
            y1, x1 = torch.meshgrid(ys, xs, indexing="ij")
            x1, y1 = x1.reshape(-1), y1.reshape(-1)
            windows.append(torch.stack([x1, y1, x1 + w, y1 + h], dim=1))
    return torch.cat(windows) if windows else torch.zeros(0, 4)


def _colour_histogram(pixels: np.ndarray, bins: int) -> np.ndarray:
    """L1-normalised histogram of each colour channel, concatenated: [3 * bins]."""
    hist = np.concatenate([np.histogram(pixels[:, c], bins=bins, range=(0.0, 1.0))[0] for c in range(3)])
    return hist / max(hist.sum(), 1)


def selective_search(image: Tensor, scales: tuple[float, ...] = (100.0, 300.0), sigma: float = 0.8,
                     min_size: int = 20, colour_bins: int = 16) -> Tensor:
    """Class-agnostic region proposals by hierarchical grouping (Uijlings et al. 2013, simplified).

    1. Over-segment the image into small regions (Felzenszwalb & Huttenlocher's graph-based
       segmentation, ``skimage.segmentation.felzenszwalb``), once per ``scale``.
    2. Repeatedly merge the two most similar *neighbouring* regions; every region ever formed
       (the initial ones too) gives one proposal: its bounding box. Similarity =
       colour (histogram intersection) + size (small regions merge first) + fill (the merged
       box should be filled by the two regions). The paper's texture term is left out.

    Args:
        image (Tensor[3, H, W]): RGB in [0, 1].
        scales: Felzenszwalb ``scale`` values (larger: fewer, larger initial regions).
        sigma, min_size: Felzenszwalb's smoothing and minimum region size in pixels.
        colour_bins: histogram bins per channel.

    Returns:
        Tensor[N, 4] (float32): unique proposals (x1, y1, x2, y2) in pixel edges, in the order
        they were formed (small regions first).
    """
    from skimage.segmentation import felzenszwalb  # imported here: only this function needs it

    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a Tensor[3, H, W], got {getattr(image, 'shape', type(image).__name__)}")
    pixels = image.detach().cpu().permute(1, 2, 0).double().numpy()
    height, width = pixels.shape[:2]
    image_area = float(height * width)
    boxes: list[tuple[float, float, float, float]] = []
    for scale in scales:
        segments = felzenszwalb(pixels, scale=scale, sigma=sigma, min_size=min_size)
        # Each region: its size, colour histogram and bounding box.
        regions = {}
        for r in np.unique(segments):
            ys, xs = np.nonzero(segments == r)
            regions[int(r)] = {"size": len(ys), "hist": _colour_histogram(pixels[ys, xs], colour_bins),
                               "box": (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)}
        # Neighbours: regions that touch horizontally or vertically.
        pairs = np.concatenate([np.stack([segments[:, :-1].ravel(), segments[:, 1:].ravel()], 1),
                                np.stack([segments[:-1].ravel(), segments[1:].ravel()], 1)])
        pairs = {(int(min(a, b)), int(max(a, b))) for a, b in pairs if a != b}

        def similarity(a: dict, b: dict) -> float:
            colour = np.minimum(a["hist"], b["hist"]).sum()
            size = 1.0 - (a["size"] + b["size"]) / image_area
            x1, y1 = min(a["box"][0], b["box"][0]), min(a["box"][1], b["box"][1])
            x2, y2 = max(a["box"][2], b["box"][2]), max(a["box"][3], b["box"][3])
            fill = 1.0 - ((x2 - x1) * (y2 - y1) - a["size"] - b["size"]) / image_area
            return colour + size + fill

        similarities = {p: similarity(regions[p[0]], regions[p[1]]) for p in pairs}
        boxes += [r["box"] for r in regions.values()]
        next_id = max(regions) + 1
        while similarities:
            i, j = max(similarities, key=similarities.get)
            a, b = regions[i], regions[j]
            merged = {"size": a["size"] + b["size"],
                      "hist": (a["hist"] * a["size"] + b["hist"] * b["size"]) / (a["size"] + b["size"]),
                      "box": (min(a["box"][0], b["box"][0]), min(a["box"][1], b["box"][1]),
                              max(a["box"][2], b["box"][2]), max(a["box"][3], b["box"][3]))}
            regions[next_id] = merged
            boxes.append(merged["box"])
            # The neighbours of i and j become neighbours of the merged region.
            neighbours = {n for p in similarities if i in p or j in p for n in p} - {i, j}
            similarities = {p: s for p, s in similarities.items() if i not in p and j not in p}
            for n in neighbours:
                similarities[(n, next_id)] = similarity(regions[n], merged)
            next_id += 1
    unique = list(dict.fromkeys(tuple(float(v) for v in b) for b in boxes))  # keeps first occurrence
    return torch.tensor(unique, dtype=torch.float32).reshape(-1, 4)


def default_proposals(images: Tensor, config) -> list[Tensor]:
    """The sliding windows of ``config`` (``window_sizes``, ``aspect_ratios``, ``window_stride``:
    an ``RCNNConfig`` or ``FastRCNNConfig``), the same list for every image of the batch.

    Args:
        images (Tensor[B, 3, H, W]): only their size is used.

    Returns:
        list of B Tensor[L, 4] on the images' device.
    """
    check_images(images)
    windows = sliding_window_proposals(tuple(images.shape[-2:]), config.window_sizes, config.aspect_ratios,
                                       config.window_stride).to(images.device)
    return [windows] * images.shape[0]

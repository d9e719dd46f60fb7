"""COCO's masks: run-length encoding and polygons, as pycocotools' maskApi.c computes them,
in Python (tests/test_annotations.py holds them equal to pycocotools)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def rle_decode(counts, height: int, width: int) -> Tensor:
    """A COCO run-length encoding (a list of counts, or the compressed string) as Tensor[H, W] bool.

    Runs alternate background / foreground, starting with background, down the columns (column
    major order, as pycocotools stores masks)."""
    if isinstance(counts, str):
        counts = _rle_from_string(counts)
    if not isinstance(counts, list) or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                               for c in counts):
        raise ValueError(f"expected a list of run lengths >= 0 or a compressed RLE string, got {str(counts)[:80]}")
    if sum(counts) != height * width:
        raise ValueError(f"expected run lengths summing to height x width = {height * width}, got {sum(counts)}")
    values = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return torch.from_numpy(values.reshape(width, height).T.copy())


def _rle_from_string(text: str) -> list:
    """pycocotools' rleFrString: 5 bits a character (offset 48), a continuation bit, differences
    to the count two places back from the third count on."""
    counts, p = [], 0
    while p < len(text):
        x, k, more = 0, 0, True
        while more:
            if p >= len(text):
                raise ValueError("expected a complete compressed RLE string, it ends inside a number")
            c = ord(text[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: Tensor) -> dict:
    """A boolean mask (Tensor[H, W]) as COCO's compressed RLE ``{"size": [H, W], "counts": str}``."""
    height, width = mask.shape
    flat = mask.bool().T.reshape(-1).numpy()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    text = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            text.append(chr(c + 48))
    return {"size": [int(height), int(width)], "counts": "".join(text)}


def polygons_to_mask(polygons: list, height: int, width: int) -> Tensor:
    """The union of polygons ``[x1, y1, x2, y2, ...]`` (pixel coordinates) as Tensor[H, W] bool,
    rasterized as pycocotools' rleFrPoly does (edges traced at 5x resolution; a pixel is inside
    when its centre is)."""
    mask = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        mask |= _polygon_mask(np.asarray(polygon, dtype=np.float64), height, width)
    return torch.from_numpy(mask)


def _polygon_mask(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    scale = 5.0
    x = (scale * xy[0::2] + 0.5).astype(np.int64)  # C's (int) cast truncates toward zero
    y = (scale * xy[1::2] + 0.5).astype(np.int64)
    x, y = np.append(x, x[0]), np.append(y, y[0])
    u, v = [], []
    for j in range(len(x) - 1):
        xs, xe, ys, ye = int(x[j]), int(x[j + 1]), int(y[j]), int(y[j + 1])
        dx, dy = abs(xe - xs), abs(ys - ye)
        flip = (dx >= dy and xs > xe) or (dx < dy and ys > ye)
        if flip:
            xs, xe, ys, ye = xe, xs, ye, ys
        if dx >= dy:
            s = (ye - ys) / dx if dx else 0.0
            for d in range(dx + 1):
                t = dx - d if flip else d
                u.append(t + xs)
                v.append(int(ys + s * t + 0.5))
        else:
            s = (xe - xs) / dy
            for d in range(dy + 1):
                t = dy - d if flip else d
                v.append(t + ys)
                u.append(int(xs + s * t + 0.5))
    # points where the traced boundary crosses a pixel column's centre, down-sampled
    starts = []
    for j in range(1, len(u)):
        if u[j] == u[j - 1]:
            continue
        xd = float(u[j] if u[j] < u[j - 1] else u[j] - 1)
        xd = (xd + 0.5) / scale - 0.5
        if math.floor(xd) != xd or xd < 0 or xd > width - 1:
            continue
        yd = float(v[j] if v[j] < v[j - 1] else v[j - 1])
        yd = (yd + 0.5) / scale - 0.5
        yd = math.ceil(min(max(yd, 0.0), float(height)))
        starts.append(int(xd) * height + yd)
    # each crossing toggles inside / outside from there on, down the columns
    toggles = np.zeros(height * width + 1, dtype=np.int64)
    np.add.at(toggles, np.asarray(starts, dtype=np.int64), 1)
    inside = (np.cumsum(toggles)[:-1] % 2).astype(bool)
    return inside.reshape(width, height).T

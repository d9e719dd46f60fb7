"""The HoG descriptor of :mod:`lecture_lib.models.hog`: its configuration and the features.

:func:`hog_blocks` is ``skimage.feature.hog``'s computation (same gradients, the channel with the
strongest gradient, single-precision cell sums in skimage's order, L2-Hys block normalisation)
done for all blocks, and for a batch of images, at once: skimage normalises block by block in a
Python loop. ``tests/test_models_hog.py`` checks it against ``skimage.feature.hog`` to 1e-12.
:class:`HogConfig` holds the descriptor's and the detector's settings (one object, as the
detector is configured in one place). Both are re-exported by :mod:`lecture_lib.models.hog`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from lecture_lib.checks import check_positive_int

__all__ = ["HogConfig", "hog_blocks", "hog_features"]


@dataclass
class HogConfig:
    """Features, windows and training of a :class:`HogDetector`.

    Attributes:
        window: side of the square window in pixels of a pyramid level (the classifier's input).
        margin: context pixels on each side of a window; the detected box is the inner square.
        cell: HoG cell side in pixels (``pixels_per_cell``); windows step by one cell.
        block: cells per normalisation block side (``cells_per_block``).
        orientations: orientation bins per cell.
        scales: the pyramid's resize factors of the image (> 0; > 1 upsamples for small objects).
        C: inverse regularisation strength of the linear SVM.
        ridge_alpha: regularisation of the linear box predictor.
        jitters: shifted / scaled copies of each training object (besides the exact window).
        negatives_per_image: random background windows per training image.
        hard_negatives_per_image: background windows scored as objects, per image and round.
        hard_negative_rounds: retraining rounds with hard negatives.
        negative_cache_per_image: further background windows per image kept (as float16) for
            the hard-negative rounds to choose from.
        score_threshold: windows whose best object class scores below this are dropped (the
            SVM's decision values; below 0 keeps windows the SVM calls background by a small
            margin, which raises the recall that average precision rewards).
        nms_threshold: IoU above which per-class NMS removes the weaker window.
        max_detections: kept per image, best first.
        seed: of the sampling of jitters and negatives.
    """

    window: int = 24
    margin: int = 4
    cell: int = 4
    block: int = 2
    orientations: int = 9
    scales: tuple[float, ...] = (1.4, 1.0, 0.7, 0.5)
    C: float = 0.01
    ridge_alpha: float = 10.0
    jitters: int = 2
    negatives_per_image: int = 10
    hard_negatives_per_image: int = 20
    hard_negative_rounds: int = 2
    negative_cache_per_image: int = 60
    score_threshold: float = -1.0
    nms_threshold: float = 0.5
    max_detections: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("window", "cell", "block", "orientations", "max_detections"):
            check_positive_int(getattr(self, name), name)
        for name in ("jitters", "negatives_per_image", "hard_negatives_per_image", "hard_negative_rounds",
                     "negative_cache_per_image", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.window % self.cell:
            raise ValueError(f"window must be a multiple of cell, got window {self.window}, cell {self.cell}")
        if self.window // self.cell < self.block:
            raise ValueError(f"window must hold at least block = {self.block} cells, got {self.window // self.cell}")
        if not isinstance(self.margin, int) or not 0 <= 2 * self.margin < self.window:
            raise ValueError(f"margin must be an int in [0, window / 2), got {self.margin!r}")
        if len(self.scales) == 0 or not all(s > 0 for s in self.scales):
            raise ValueError(f"scales must be positive numbers, got {self.scales!r}")
        if not self.C > 0 or not self.ridge_alpha >= 0:
            raise ValueError(f"C must be > 0 and ridge_alpha >= 0, got {self.C!r}, {self.ridge_alpha!r}")
        if not 0 <= self.nms_threshold <= 1:
            raise ValueError(f"nms_threshold must be in [0, 1], got {self.nms_threshold!r}")

    @property
    def blocks_per_window(self) -> int:
        """Blocks along a window side (blocks overlap: they step by one cell)."""
        return self.window // self.cell - self.block + 1

    @property
    def num_features(self) -> int:
        """Length of one window's HoG vector."""
        return self.blocks_per_window**2 * self.block**2 * self.orientations


def _check_image(image) -> None:
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a Tensor[3, H, W], got {shape}")


def hog_blocks(pixels: np.ndarray, config: HogConfig) -> np.ndarray:
    """HoG of images as normalised blocks, computed exactly as ``skimage.feature.hog`` computes them.

    Steps (Dalal & Triggs; skimage's choices): central-difference gradients (0 on the border
    rows / columns), at each pixel those of the colour channel with the largest magnitude; the
    orientation in [0, 180) degrees votes its magnitude into one of ``orientations`` equal bins
    (no interpolation between bins); each ``cell x cell`` cell averages its votes; each
    ``block x block`` group of cells (blocks overlap, stepping by one cell) is normalised with
    L2-Hys (L2, clip at 0.2, L2 again). skimage computes the histograms in C but normalises the
    blocks one at a time in a Python loop, which took most of a detector's training time here;
    this version does every step for all cells, blocks and images at once (NumPy), and adds the
    votes of a cell in skimage's order and single precision, so that the result is skimage's to
    float rounding (``tests/test_models_hog.py`` compares them).

    Args:
        pixels (np.ndarray[..., H, W, 3]): one image or a batch of images of one size, in [0, 1].

    Returns:
        np.ndarray[..., rows, cols, block, block, orientations] (float64): ``rows = H // cell -
        block + 1`` blocks down, ``cols`` across, as ``hog(..., feature_vector=False)``.
    """
    cell, block, bins = config.cell, config.block, config.orientations
    pixels = np.asarray(pixels, dtype=np.float64)
    height, width = pixels.shape[-3:-1]
    rows, cols = height // cell, width // cell
    if rows < block or cols < block:
        raise ValueError(f"images must be at least {block * cell} x {block * cell} pixels, got {height} x {width}")
    g_row, g_col = np.zeros_like(pixels), np.zeros_like(pixels)
    g_row[..., 1:-1, :, :] = pixels[..., 2:, :, :] - pixels[..., :-2, :, :]
    g_col[..., :, 1:-1, :] = pixels[..., :, 2:, :] - pixels[..., :, :-2, :]
    strongest = np.hypot(g_row, g_col).argmax(-1)[..., None]  # the channel with the largest gradient
    g_row = np.take_along_axis(g_row, strongest, -1)[..., 0]
    g_col = np.take_along_axis(g_col, strongest, -1)[..., 0]
    magnitude = np.hypot(g_col, g_row)
    orientation = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    # bin i takes bounds[i] <= orientation < bounds[i + 1], bounds in single precision as skimage's
    bounds = (np.float32(180.0 / bins) * np.arange(bins + 1, dtype=np.float32)).astype(np.float64)
    votes = np.searchsorted(bounds, orientation, side="right") - 1
    lead = pixels.shape[:-3]
    magnitude = magnitude[..., : rows * cell, : cols * cell].reshape(*lead, rows, cell, cols, cell)
    votes = votes[..., : rows * cell, : cols * cell].reshape(*lead, rows, cell, cols, cell)
    histogram = np.zeros((*lead, rows, cols, bins), np.float32)
    for dy in range(cell):  # the pixels of each cell in row-major order, summed in float32 (skimage's C loop)
        for dx in range(cell):
            vote = votes[..., dy, :, dx, None] == np.arange(bins)
            histogram = (histogram + np.where(vote, magnitude[..., dy, :, dx, None], 0.0)).astype(np.float32)
    histogram = (histogram / np.float32(cell * cell)).astype(np.float64)
    # [..., rows - block + 1, cols - block + 1, bins, block, block] -> [..., block, block, bins]
    blocks = np.lib.stride_tricks.sliding_window_view(histogram, (block, block), axis=(-3, -2))
    blocks = np.moveaxis(blocks, -3, -1)
    eps = 1e-5  # L2-Hys, skimage's constants
    blocks = blocks / np.sqrt((blocks**2).sum(axis=(-3, -2, -1), keepdims=True) + eps**2)
    blocks = np.minimum(blocks, 0.2)
    return blocks / np.sqrt((blocks**2).sum(axis=(-3, -2, -1), keepdims=True) + eps**2)


def hog_features(crops: Tensor, config: HogConfig) -> np.ndarray:
    """HoG vector of each window-sized crop.

    Args:
        crops (Tensor[N, 3, window, window]): images in [0, 1].

    Returns:
        np.ndarray[N, config.num_features] (float64), in the order of ``hog(..., feature_vector=True)``.
    """
    w = config.window
    if not isinstance(crops, Tensor) or crops.dim() != 4 or crops.shape[1:] != (3, w, w):
        shape = list(crops.shape) if isinstance(crops, Tensor) else type(crops).__name__
        raise ValueError(f"crops must have shape [N, 3, {w}, {w}], got {shape}")
    pixels = crops.detach().permute(0, 2, 3, 1).double().cpu().numpy()
    return hog_blocks(pixels, config).reshape(len(pixels), config.num_features)

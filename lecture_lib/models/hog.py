"""Detection before CNNs: HoG features, dense multi-scale sliding windows, a linear classifier.

The lecture's recap of object detection: "Before CNNs: dense multiscale sliding window (HoG,
DPM)". This file is that pipeline, small (Dalal & Triggs 2005; DPM, Felzenszwalb et al. 2010,
adds deformable parts, which we leave out):

* **HoG features** (:func:`hog_blocks`: ``skimage.feature.hog``'s, computed for all blocks and
  images at once): the image is cut into ``cell x cell`` pixel cells; each cell votes its
  gradient orientations into a histogram of ``orientations`` bins, and histograms are
  normalised over overlapping ``block x block`` cell blocks (L2-Hys).
* **dense multi-scale windows**: a *feature pyramid*, HoG computed once per rescaled copy of the
  image (``scales``); every window of ``window x window`` pixels at every cell position of every
  level is a slice of that level's block array, so no window is featurised twice. A window at
  scale ``s`` covers ``window / s`` image pixels: small scales find large objects.
* a **linear classifier** (``sklearn.svm.LinearSVC``, one-vs-rest over background + classes),
  trained on the object windows, random background windows and one round of *hard negatives*
  (background windows the first classifier scored as objects), as Dalal & Triggs did;
* a linear box predictor (``sklearn.linear_model.Ridge`` on the same features, DPM's "bounding
  box prediction"), regressing the object box relative to the window's inner box with
  ``lecture_lib.boxes.encode_boxes``;
* per-class NMS over all windows and scales (``lecture_lib.nms.batched_nms``).

Windows carry a context margin (``margin`` pixels on each side, as Dalal & Triggs' 64 x 128
person windows do): a window *detects* its inner ``(window - 2 * margin)`` square.

Output format = the course's detectors: ``{"boxes": [N, 4], "scores": [N], "labels": [N]}`` per
image, labels ``1..C`` (0 is the background), so ``lecture_lib.metrics.detection`` scores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lecture_lib.boxes import box_iou, clip_boxes_to_image, decode_boxes, encode_boxes
from lecture_lib.models.hog_descriptor import (
    HogConfig,
    _check_image,
    hog_blocks,
    hog_features,
)
from lecture_lib.nms import batched_nms

__all__ = ["HogConfig", "hog_blocks", "hog_features", "feature_pyramid", "window_boxes", "dense_windows",
           "window_features", "inner_boxes", "HogDetector"]




@dataclass
class PyramidLevel:
    """One level of a feature pyramid: the image resized by ``scale`` and its HoG blocks."""

    scale: float
    size: tuple[int, int]
    blocks: np.ndarray = field(repr=False)


def feature_pyramid(image: Tensor, config: HogConfig) -> list[PyramidLevel]:
    """HoG blocks of the image at every scale of ``config.scales`` (levels smaller than a window are skipped)."""
    _check_image(image)
    return [PyramidLevel(level.scale, level.size, level.blocks[0]) for level in _pyramids(image[None], config)]


def _pyramids(images: Tensor, config: HogConfig) -> list[PyramidLevel]:
    """:func:`feature_pyramid` of a batch ``Tensor[B, 3, H, W]``: each level's blocks have a leading B."""
    levels = []
    height, width = images.shape[-2:]
    for scale in config.scales:
        size = (round(height * scale), round(width * scale))
        if min(size) < config.window:
            continue
        resized = images.float()
        if size != (height, width):
            resized = F.interpolate(resized, size=size, mode="bilinear", align_corners=False,
                                    antialias=scale < 1)
        pixels = resized.clamp(0, 1).permute(0, 2, 3, 1).double().cpu().numpy()
        levels.append(PyramidLevel(scale, size, hog_blocks(pixels, config)))
    return levels


def window_boxes(image_size: tuple[int, int], config: HogConfig) -> Tensor:
    """The boxes of all windows of :func:`dense_windows` (level by level, row by row), without features.

    Args:
        image_size: ``(height, width)`` of the image.

    Returns:
        Tensor[M, 4]: window boxes in image pixels; the window at cell ``(i, j)`` of the level
        with scale ``s`` starts at ``(j, i) * cell / s`` and is ``window / s`` pixels wide.
    """
    height, width = image_size
    per_window = config.window // config.cell
    boxes = []
    for scale in config.scales:
        size = (round(height * scale), round(width * scale))
        if min(size) < config.window:
            continue
        rows, cols = size[0] // config.cell - per_window + 1, size[1] // config.cell - per_window + 1
        ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        x1 = xs.flatten().double() * config.cell / scale
        y1 = ys.flatten().double() * config.cell / scale
        side = config.window / scale
        boxes.append(torch.stack([x1, y1, x1 + side, y1 + side], 1).float())
    return torch.cat(boxes) if boxes else torch.empty(0, 4)


def dense_windows(image: Tensor, config: HogConfig) -> tuple[np.ndarray, Tensor]:
    """Every window of every pyramid level: HoG vectors and window boxes in image pixels.

    A window at block position ``(i, j)`` of a level with scale ``s`` starts at
    ``(j * cell, i * cell) / s`` and is ``window / s`` pixels wide.

    Returns:
        ``(features np.ndarray[M, D], boxes Tensor[M, 4])``: ``M`` windows over all levels.
    """
    _check_image(image)
    boxes = window_boxes(tuple(image.shape[1:]), config)
    return _dense_features(image[None], [np.arange(len(boxes))], config)[0], boxes


def _dense_features(images: Tensor, selected: list[np.ndarray], config: HogConfig) -> list[np.ndarray]:
    """HoG vectors of some of the dense windows of each image of a batch ``Tensor[B, 3, H, W]``.

    ``selected[i]`` holds indices into image i's windows (the order of :func:`window_boxes`);
    returns one ``np.ndarray[len(selected[i]), D]`` per image, rows in that order. A window is a
    slice of its level's blocks, copied only when it is selected.
    """
    nb = config.blocks_per_window
    image_index = np.concatenate([np.full(len(s), i) for i, s in enumerate(selected)]).astype(np.int64)
    window_index = np.concatenate([np.asarray(s, dtype=np.int64) for s in selected])
    out = np.empty((len(window_index), config.num_features))
    offset = 0
    for level in _pyramids(images, config):
        rows, cols = level.blocks.shape[1] - nb + 1, level.blocks.shape[2] - nb + 1
        # [B, rows, cols, b, b, o, nb, nb] -> [B, rows, cols, nb, nb, b, b, o]: the order of a crop's hog vector
        view = np.lib.stride_tricks.sliding_window_view(level.blocks, (nb, nb), axis=(1, 2))
        view = view.transpose(0, 1, 2, 6, 7, 3, 4, 5)
        here = (window_index >= offset) & (window_index < offset + rows * cols)
        local = window_index[here] - offset
        out[here] = view[image_index[here], local // cols, local % cols].reshape(-1, config.num_features)
        offset += rows * cols
    if len(window_index) and window_index.max() >= offset:
        raise ValueError(f"selected windows must be < {offset} (the windows of an image), got {window_index.max()}")
    return np.split(out, np.cumsum([len(s) for s in selected])[:-1])


def inner_boxes(windows: Tensor, config: HogConfig) -> Tensor:
    """The box a window detects: the window without its context margin (Tensor[M, 4])."""
    shrink = (windows[:, 2:] - windows[:, :2]) * (config.margin / config.window)
    return torch.cat([windows[:, :2] + shrink, windows[:, 2:] - shrink], 1)


def _windows_around(boxes: Tensor, config: HogConfig) -> Tensor:
    """The square window whose inner box is the square around each box (same centre, side = max(w, h))."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).max(1).values * config.window / (config.window - 2 * config.margin)
    half = torch.stack([side, side], 1) / 2
    return torch.cat([centre - half, centre + half], 1)


def _crop(images: Tensor, windows: list[Tensor], config: HogConfig, context: int = 0) -> Tensor:
    """Resample each window of each image of a batch ``Tensor[B, 3, H, W]`` (``windows[i]``: image
    i's) to ``window x window`` pixels, with ``context`` extra pixels (at that resolution) on each
    side; returns ``Tensor[sum M_i, 3, size, size]``, image by image.

    Bilinear, as RoI align on the image (R-CNN's warp, ``lecture_lib.models.rcnn.warp_regions``),
    with adaptive sampling: one sample per output pixel at scale 1 (an exact copy), more when shrinking.
    """
    from lecture_lib.models.rcnn import warp_regions

    size = config.window + 2 * context
    grown = []
    for w in windows:
        pad = (w[:, 2:] - w[:, :2]) * (context / config.window)
        grown.append(torch.cat([w[:, :2] - pad, w[:, 2:] + pad], 1).float())
    return warp_regions(images.float(), grown, size, sampling_ratio=-1).clamp(0, 1)


def window_features(image: Tensor, windows: Tensor, config: HogConfig) -> np.ndarray:
    """HoG vectors of arbitrary windows of one image, computed like :func:`dense_windows` computes them.

    Each window is resampled with one cell of context on every side and only its own blocks are
    kept, so the gradients at its border see the neighbouring pixels, as they do in a feature
    pyramid (a bare crop would see none, and a classifier could tell training crops from
    test windows by their borders alone).

    Args:
        image (Tensor[3, H, W]): the image.
        windows (Tensor[M, 4]): square windows ``(x1, y1, x2, y2)`` in image pixels.

    Returns:
        np.ndarray[M, config.num_features].
    """
    _check_image(image)
    return _window_features(image[None], [windows], config)


def _window_features(images: Tensor, windows: list[Tensor], config: HogConfig) -> np.ndarray:
    """:func:`window_features` of a batch: ``windows[i]`` of image i, all rows image by image."""
    crops = _crop(images, windows, config, context=config.cell)
    nb = config.blocks_per_window
    pixels = crops.permute(0, 2, 3, 1).double().cpu().numpy()
    return hog_blocks(pixels, config)[:, 1 : 1 + nb, 1 : 1 + nb].reshape(len(pixels), config.num_features)


class HogDetector:
    """HoG + linear SVM + linear box predictor over dense multi-scale windows.

    ``fit(dataset)`` trains on a detection dataset (items ``(image [3, H, W], {"boxes", "labels"})``,
    labels ``1..C``); ``predict(image)`` returns one detection dict, ``detector(images)`` a list.
    """

    def __init__(self, config: HogConfig | None = None) -> None:
        self.config = config or HogConfig()
        self.classifier = None
        self.box_predictor = None
        self.num_classes: int | None = None

    # --- training ---------------------------------------------------------------------------

    def _positives(self, image: Tensor, boxes: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """Windows around each object: the exact one plus ``jitters`` shifted / scaled copies."""
        exact = _windows_around(boxes, self.config)
        windows, owners = [exact], [torch.arange(len(boxes))]
        for _ in range(self.config.jitters):
            side = exact[:, 2:] - exact[:, :2]
            shift = torch.from_numpy(rng.uniform(-0.1, 0.1, (len(boxes), 2))).float() * side
            scale = torch.from_numpy(rng.uniform(0.9, 1.1, (len(boxes), 1))).float()
            centre = (exact[:, :2] + exact[:, 2:]) / 2 + shift
            windows.append(torch.cat([centre - side * scale / 2, centre + side * scale / 2], 1))
            owners.append(torch.arange(len(boxes)))
        return torch.cat(windows), torch.cat(owners)

    def _add_features(self, images: list[Tensor], positive_windows: list[Tensor], background: list[np.ndarray],
                      pos_features: list, pools: list) -> None:
        """Features of a batch of same-sized training images: their positive windows, and their
        chosen background windows as one float16 pool per image (memory)."""
        stacked = torch.stack(images)
        pos_features.append(_window_features(stacked, positive_windows, self.config))
        pools += [features.astype(np.float16) for features in _dense_features(stacked, background, self.config)]

    def fit(self, dataset) -> "HogDetector":
        """Train the SVM (with ``hard_negative_rounds`` rounds of hard negatives) and the box predictor.

        Negatives come from one dense pass over each training image: a random pool of
        background windows (inner box IoU < 0.3 with every object); ``negatives_per_image`` of
        them train the first SVM, and each round adds the ``hard_negatives_per_image`` that the
        current SVM scores highest as an object (data mining over a cache of negatives, as DPM's
        training does, instead of rescanning every image). A round that finds no new hard
        negative ends the mining: retraining would fit the same data.
        """
        from sklearn.linear_model import Ridge
        from sklearn.svm import LinearSVC

        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        pool_size = cfg.negatives_per_image + cfg.negative_cache_per_image
        # Image by image, what needs no features: the windows around the objects and the random
        # choice of background windows (by their geometry alone); then features for a batch of
        # images at a time (one feature pyramid and one crop-and-HoG call per batch).
        pos_features, pos_labels, pos_targets, pools = [], [], [], []
        batch, positive_windows, background = [], [], []
        for index in range(len(dataset)):
            image, target = dataset[index]
            _check_image(image)
            if batch and (image.shape != batch[0].shape or len(batch) == 32):
                self._add_features(batch, positive_windows, background, pos_features, pools)
                batch, positive_windows, background = [], [], []
            boxes, labels = target["boxes"].float(), target["labels"].long()
            windows, owners = self._positives(image, boxes, rng)
            pos_labels.append(labels[owners].numpy())
            pos_targets.append(encode_boxes(boxes[owners], inner_boxes(windows, cfg)).numpy())
            dense = window_boxes(tuple(image.shape[1:]), cfg)
            candidates = np.arange(len(dense))
            if len(boxes):
                candidates = candidates[(box_iou(inner_boxes(dense, cfg), boxes).max(1).values < 0.3).numpy()]
            batch.append(image)
            positive_windows.append(windows)
            background.append(candidates[rng.permutation(len(candidates))[:pool_size]])
        if not batch:
            raise ValueError("dataset must hold at least one image")
        self._add_features(batch, positive_windows, background, pos_features, pools)
        positives, labels = np.concatenate(pos_features), np.concatenate(pos_labels)
        self.num_classes = int(labels.max()) + 1
        used = [np.arange(min(cfg.negatives_per_image, len(pool))) for pool in pools]
        for round_ in range(cfg.hard_negative_rounds + 1):
            negatives = np.concatenate([pool[u] for pool, u in zip(pools, used)])
            x = np.concatenate([positives, negatives])
            y = np.concatenate([labels, np.zeros(len(negatives), dtype=labels.dtype)])
            self.classifier = LinearSVC(C=cfg.C, dual="auto", tol=1e-3, max_iter=5000, random_state=cfg.seed).fit(x, y)
            if round_ == cfg.hard_negative_rounds or cfg.hard_negatives_per_image == 0:
                break
            # the background windows the SVM now takes for objects, scored in one call for all images
            unused = [np.setdiff1d(np.arange(len(pool)), u) for pool, u in zip(pools, used)]
            scores = self.classifier.decision_function(np.concatenate([pool[u] for pool, u in zip(pools, unused)]))
            found = 0
            for k, part in enumerate(np.split(scores, np.cumsum([len(u) for u in unused])[:-1])):
                wrong = part.argmax(1) != 0  # column 0 is the background class
                most_confident = np.argsort(-part[wrong].max(1), kind="stable")
                hard = unused[k][wrong][most_confident][: cfg.hard_negatives_per_image]
                used[k] = np.concatenate([used[k], hard])
                found += len(hard)
            if found == 0:  # no new hard negative: another round would fit the same data again
                break
        self.box_predictor = Ridge(alpha=cfg.ridge_alpha).fit(positives, np.concatenate(pos_targets))
        return self

    # --- detection --------------------------------------------------------------------------

    def predict(self, image: Tensor) -> dict:
        """Detections of one image: ``{"boxes": [N, 4], "scores": [N], "labels": [N]}``, best first.

        Scores are the SVM's decision values (larger = more confident; not probabilities).
        """
        if self.classifier is None:
            raise RuntimeError("the detector is not trained: call fit(dataset) first")
        _check_image(image)
        cfg = self.config
        features, windows = dense_windows(image, cfg)
        empty = {"boxes": torch.empty(0, 4), "scores": torch.empty(0), "labels": torch.empty(0, dtype=torch.int64)}
        if len(features) == 0:
            return empty
        decision = self.classifier.decision_function(features)
        objects = self.classifier.classes_ != 0
        best = decision[:, objects].argmax(1)  # the best object class of each window
        scores = decision[:, objects][np.arange(len(decision)), best]
        keep = scores >= cfg.score_threshold
        if not keep.any():
            return empty
        labels = torch.from_numpy(self.classifier.classes_[objects][best][keep]).long()
        scores = torch.from_numpy(scores[keep]).float()
        deltas = torch.from_numpy(self.box_predictor.predict(features[keep])).float()
        boxes = decode_boxes(deltas, inner_boxes(windows[torch.from_numpy(keep)], cfg))
        boxes = clip_boxes_to_image(boxes, tuple(image.shape[1:]))
        kept = batched_nms(boxes, scores, labels, cfg.nms_threshold)[: cfg.max_detections]
        return {"boxes": boxes[kept], "scores": scores[kept], "labels": labels[kept]}

    def __call__(self, images) -> list[dict]:
        """``predict`` for each image of a list (or a ``Tensor[B, 3, H, W]``)."""
        return [self.predict(image) for image in images]

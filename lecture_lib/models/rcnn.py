"""R-CNN (Girshick et al. 2014): propose regions, warp each one, classify it with a CNN.

Detection as "classify many regions": instead of sliding a classifier over *every* window, R-CNN
asks a cheap, class-agnostic method for a few hundred to two thousand **region proposals**, warps
each one to the CNN's fixed input size and runs the CNN on every warped crop. Per proposal it
predicts ``C`` scores (the object classes **plus background**, class 0) and, per class, four
box-regression deltas that correct the proposal (``lecture_lib.boxes.encode_boxes``).
At test time: score, decode, per-class NMS.

This file holds the parts the whole R-CNN family shares:

* proposals: :func:`sliding_window_proposals` (every window at a few sizes and aspect ratios) and
  :func:`selective_search` (Uijlings et al. 2013, simplified: Felzenszwalb-Huttenlocher
  segments merged greedily by colour, size and fill similarity);
* :func:`warp_regions` (the crop-and-resize of each proposal);
* training targets: :func:`match_proposals` (IoU >= 0.5 -> the object's class, lower ->
  background), :func:`sample_proposals` (a minibatch with a fixed foreground fraction) and
  :func:`select_training_samples` (both plus the box-regression targets);
* :func:`detection_loss` (cross-entropy + smooth L1) and :func:`postprocess_detections`.

Simplification: the paper fine-tunes the CNN with a softmax, then trains one linear SVM per class
and separate ridge box regressors on its features. Here the CNN has both heads and is trained
end to end with Fast R-CNN's multi-task loss -- the same model family, one training stage.
Every function does what the matching torchvision component does (the tests check that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import torchvision.ops

import lecture_lib.nms
import lecture_lib.roi
from lecture_lib.boxes import _check_boxes, box_iou, clip_boxes_to_image, decode_boxes, encode_boxes

__all__ = [
    "OPS",
    "detection_ops",
    "sliding_window_proposals",
    "selective_search",
    "warp_regions",
    "match_proposals",
    "sample_proposals",
    "select_training_samples",
    "detection_loss",
    "postprocess_detections",
    "small_cnn",
    "RCNNConfig",
    "RCNN",
    "detection_forward",
]


# --- input checks ------------------------------------------------------------------------------

def _check_detection_inputs(images, targets, num_classes: int, training: bool) -> None:
    """Raise a clear error unless images is Tensor[B, 3, H, W] and targets a list of B dicts."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape [B, 3, H, W], got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape [B, 3, H, W], got {list(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating point tensor, got dtype {images.dtype}")
    if targets is None:
        if training:
            raise ValueError("targets must be given in training mode (one dict per image)")
        return
    if not isinstance(targets, (list, tuple)) or len(targets) != images.shape[0]:
        got = len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"targets must be a list of {images.shape[0]} dicts (one per image), got {got}")
    for i, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise ValueError(f"targets[{i}] must be a dict with 'boxes' and 'labels', got {t!r}")
        _check_boxes(t["boxes"], f"targets[{i}]['boxes']")
        labels = t["labels"]
        if not isinstance(labels, Tensor) or labels.shape != (t["boxes"].shape[0],):
            raise ValueError(f"targets[{i}]['labels'] must have shape [{t['boxes'].shape[0]}], "
                             f"got {getattr(labels, 'shape', type(labels).__name__)}")
        if labels.dtype != torch.int64:
            raise TypeError(f"targets[{i}]['labels'] must be int64, got {labels.dtype}")
        if labels.numel() and (labels.min() < 1 or labels.max() >= num_classes):
            raise ValueError(f"targets[{i}]['labels'] must be in [1, {num_classes - 1}] "
                             f"(0 is background), got {labels.tolist()}")


def _check_fraction(value, name: str, low: float = 0.0, high: float = 1.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")


def _check_positive_int(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


# --- which NMS / RoI kernels ------------------------------------------------------------------

#: Where the detectors take nms, batched_nms, roi_pool and roi_align from.
OPS = ("torchvision", "lecture_lib")


def detection_ops(ops: str = "torchvision") -> SimpleNamespace:
    """The four kernels the detectors call: ``nms``, ``batched_nms``, ``roi_pool``, ``roi_align``.

    ``"lecture_lib"``: the readable versions of ``lecture_lib.nms`` / ``lecture_lib.roi`` (proven
    equal to torchvision in ``tests/test_nms.py`` and ``tests/test_roi.py``); a Python loop per
    kept box and big masked tensors, 20-40x slower on a CPU. ``"torchvision"`` (default): the same
    operations as C++ kernels, so that the models train in minutes on two CPU cores. Both give
    the same detections (``tests/test_models_detection.py`` checks it).
    """
    if ops == "torchvision":
        return SimpleNamespace(nms=torchvision.ops.nms, batched_nms=torchvision.ops.batched_nms,
                               roi_pool=torchvision.ops.roi_pool, roi_align=torchvision.ops.roi_align)
    if ops == "lecture_lib":
        return SimpleNamespace(nms=lecture_lib.nms.nms, batched_nms=lecture_lib.nms.batched_nms,
                               roi_pool=lecture_lib.roi.roi_pool, roi_align=lecture_lib.roi.roi_align)
    raise ValueError(f"ops must be one of {OPS}, got {ops!r}")


# --- region proposals --------------------------------------------------------------------------

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
    _check_positive_int(stride, "stride")
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


def warp_regions(images: Tensor, boxes: list[Tensor], output_size: int, sampling_ratio: int = 2,
                 ops: str = "torchvision") -> Tensor:
    """Crop every box out of its image and resize it to ``output_size x output_size``.

    R-CNN's "warp": anisotropic scaling to the CNN's input size, whatever the box's aspect ratio.
    Implemented as RoI align on the image itself (``spatial_scale = 1``, ``aligned=True``): with
    ``sampling_ratio = 1`` it is exactly bilinear resizing (``F.interpolate(mode="bilinear")``
    of the crop); the default 2 averages 2 x 2 bilinear samples per output pixel, which blurs a
    little and aliases less when a large proposal shrinks.

    Args:
        images (Tensor[B, C, H, W]): the images.
        boxes (list of B Tensor[L_i, 4]): boxes of image i in pixel coordinates.
        output_size: side of the warped crops.
        sampling_ratio: bilinear samples per output pixel in each direction.
        ops: where RoI align comes from (:func:`detection_ops`).

    Returns:
        Tensor[sum L_i, C, output_size, output_size]: the crops, image by image.
    """
    _check_positive_int(output_size, "output_size")
    roi_align = detection_ops(ops).roi_align
    if not isinstance(boxes, (list, tuple)) or not isinstance(images, Tensor) or len(boxes) != images.shape[0]:
        raise ValueError(f"boxes must be a list with one Tensor[L, 4] per image "
                         f"({images.shape[0] if isinstance(images, Tensor) else '?'}), got {type(boxes).__name__}"
                         f"{'' if not isinstance(boxes, (list, tuple)) else f' of length {len(boxes)}'}")
    boxes = [b.to(images.dtype) for b in boxes]
    return roi_align(images, boxes, output_size, spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True)


# --- training targets --------------------------------------------------------------------------

def match_proposals(proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
                    fg_iou_threshold: float = 0.5, bg_iou_low: float = 0.0) -> tuple[Tensor, Tensor]:
    """Label each proposal with the class of its best-overlapping ground-truth box.

    * IoU >= ``fg_iou_threshold``: foreground, the class of that box (R-CNN / Fast R-CNN: 0.5);
    * ``bg_iou_low`` <= IoU < ``fg_iou_threshold``: background, class 0 (Fast R-CNN uses
      [0.1, 0.5): the near misses teach the classifier what is *almost* an object);
    * IoU < ``bg_iou_low``: ignored, label -1 (never with the default 0.0).

    Args:
        proposals (Tensor[N, 4]), gt_boxes (Tensor[M, 4]): boxes in (x1, y1, x2, y2).
        gt_labels (Tensor[M] int64): classes in 1..C-1.

    Returns:
        ``(labels, matched_gt_boxes)``: Tensor[N] int64 as above, Tensor[N, 4] the matched
        box of each proposal (zeros where there is no ground truth).
    """
    _check_boxes(proposals, "proposals")
    _check_boxes(gt_boxes, "gt_boxes")
    _check_fraction(fg_iou_threshold, "fg_iou_threshold")
    _check_fraction(bg_iou_low, "bg_iou_low", high=fg_iou_threshold)
    if gt_labels.shape != (gt_boxes.shape[0],):
        raise ValueError(f"gt_labels must have shape [{gt_boxes.shape[0]}], got {list(gt_labels.shape)}")
    n = proposals.shape[0]
    if gt_boxes.shape[0] == 0:  # no object in the image: every proposal is background
        return torch.zeros(n, dtype=torch.int64, device=proposals.device), proposals.new_zeros(n, 4)
    iou = box_iou(gt_boxes, proposals)  # [M, N]
    best_iou, best_gt = iou.max(dim=0)
    labels = gt_labels[best_gt].clone()
    labels[best_iou < fg_iou_threshold] = 0
    labels[best_iou < bg_iou_low] = -1
    return labels, gt_boxes[best_gt]


def sample_proposals(labels: Tensor, batch_size_per_image: int, positive_fraction: float,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A random minibatch with at most ``positive_fraction`` foreground examples.

    Takes ``min(#positives, int(batch_size * positive_fraction))`` positives (label >= 1) and
    fills the rest with negatives (label 0); labels -1 are never taken. Same counts as
    torchvision's ``BalancedPositiveNegativeSampler``. Without the cap, background would swamp
    the batch (R-CNN: 32 positive + 96 background windows per 128).

    Args:
        labels (Tensor[N] int): >= 1 positive, 0 negative, -1 ignored.

    Returns:
        ``(positive_index, negative_index)``: Tensor[P] and Tensor[Q] int64 indices into labels.
    """
    _check_positive_int(batch_size_per_image, "batch_size_per_image")
    _check_fraction(positive_fraction, "positive_fraction")
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        raise ValueError(f"labels must be a Tensor[N], got {getattr(labels, 'shape', type(labels).__name__)}")
    positive = torch.nonzero(labels >= 1).flatten()
    negative = torch.nonzero(labels == 0).flatten()
    num_pos = min(positive.numel(), int(batch_size_per_image * positive_fraction))
    num_neg = min(negative.numel(), batch_size_per_image - num_pos)
    pos = positive[torch.randperm(positive.numel(), generator=generator)[:num_pos].to(labels.device)]
    neg = negative[torch.randperm(negative.numel(), generator=generator)[:num_neg].to(labels.device)]
    return pos, neg


def select_training_samples(proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor, *,
                            fg_iou_threshold: float = 0.5, bg_iou_low: float = 0.0,
                            batch_size_per_image: int = 64, positive_fraction: float = 0.25,
                            box_weights: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0),
                            add_gt_boxes: bool = True,
                            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The regions one image contributes to a training minibatch, with their targets.

    Adds the ground-truth boxes to the proposals (so that every object has a perfect positive;
    Fast R-CNN's implementations do this), labels them (:func:`match_proposals`), samples
    (:func:`sample_proposals`) and computes the box-regression targets of the positives
    (``encode_boxes`` with ``box_weights``; zeros for background, which has no box loss).

    Returns:
        ``(rois, labels, regression_targets)``: Tensor[S, 4], Tensor[S] int64, Tensor[S, 4];
        positives first.
    """
    _check_boxes(proposals, "proposals")
    _check_boxes(gt_boxes, "gt_boxes")
    if add_gt_boxes:
        proposals = torch.cat([proposals, gt_boxes.to(proposals.dtype)])
    labels, matched = match_proposals(proposals, gt_boxes, gt_labels, fg_iou_threshold, bg_iou_low)
    pos, neg = sample_proposals(labels, batch_size_per_image, positive_fraction, generator)
    keep = torch.cat([pos, neg])
    rois, labels = proposals[keep], labels[keep]
    targets = rois.new_zeros(keep.numel(), 4)
    if pos.numel():
        targets[: pos.numel()] = encode_boxes(matched[pos], proposals[pos], box_weights)
    return rois, labels, targets


# --- loss and inference ------------------------------------------------------------------------

def detection_loss(class_logits: Tensor, box_deltas: Tensor, labels: Tensor,
                   regression_targets: Tensor, beta: float = 1.0 / 9) -> tuple[Tensor, Tensor]:
    """Fast R-CNN's multi-task loss: cross-entropy + smooth L1 on the box of the true class.

    Args:
        class_logits (Tensor[S, C]): scores, class 0 = background.
        box_deltas (Tensor[S, 4 C]): four deltas per class.
        labels (Tensor[S] int64): true class per sampled region.
        regression_targets (Tensor[S, 4]): ``encode_boxes`` targets (used where label >= 1).
        beta: the smooth L1 switches from quadratic to linear at ``|x| = beta`` (1/9 as in
            Detectron / torchvision; the paper uses 1).

    Returns:
        ``(classification_loss, box_loss)``; the box loss is summed over the positives and
        divided by ``S``, so background regions count as zero box loss -- the same numbers as
        ``torchvision.models.detection.roi_heads.fastrcnn_loss``.
    """
    if class_logits.dim() != 2 or box_deltas.shape != (class_logits.shape[0], 4 * class_logits.shape[1]):
        raise ValueError(f"box_deltas must have shape [S, 4 C] = [{class_logits.shape[0]}, "
                         f"{4 * class_logits.shape[1]}] for class_logits {list(class_logits.shape)}, "
                         f"got {list(box_deltas.shape)}")
    if labels.shape != (class_logits.shape[0],) or regression_targets.shape != (class_logits.shape[0], 4):
        raise ValueError(f"labels must be [S] and regression_targets [S, 4] with S = {class_logits.shape[0]}, "
                         f"got {list(labels.shape)} and {list(regression_targets.shape)}")
    if labels.numel() == 0:  # nothing sampled: zero loss that still depends on the parameters
        zero = class_logits.sum() * 0 + box_deltas.sum() * 0
        return zero, zero
    classification = F.cross_entropy(class_logits, labels)
    pos = torch.nonzero(labels > 0).flatten()
    deltas = box_deltas.reshape(box_deltas.shape[0], -1, 4)[pos, labels[pos]]  # the true class's box
    box = F.smooth_l1_loss(deltas, regression_targets[pos], beta=beta, reduction="sum") / labels.numel()
    return classification, box


def postprocess_detections(class_logits: Tensor, box_deltas: Tensor, proposals: Tensor,
                           image_size: tuple[int, int],
                           box_weights: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0),
                           score_threshold: float = 0.05, nms_threshold: float = 0.5,
                           detections_per_image: int = 100, min_size: float = 1e-2,
                           ops: str = "torchvision") -> dict[str, Tensor]:
    """Turn the head's outputs on one image's proposals into final detections.

    softmax -> one decoded, clipped box per (proposal, object class) -> drop background, scores
    <= ``score_threshold`` and boxes thinner than ``min_size`` -> NMS per class -> the best
    ``detections_per_image``. Same steps as torchvision's ``RoIHeads.postprocess_detections``.

    Args:
        class_logits (Tensor[K, C]), box_deltas (Tensor[K, 4 C]): head outputs.
        proposals (Tensor[K, 4]): the regions they were computed on.
        image_size: ``(height, width)`` to clip to.
        ops: where batched NMS comes from (:func:`detection_ops`).

    Returns:
        ``{"boxes": Tensor[D, 4], "scores": Tensor[D], "labels": Tensor[D] int64}``, best first.
    """
    _check_boxes(proposals, "proposals")
    k, num_classes = class_logits.shape
    if box_deltas.shape != (k, 4 * num_classes) or proposals.shape[0] != k:
        raise ValueError(f"expected box_deltas [{k}, {4 * num_classes}] and proposals [{k}, 4], "
                         f"got {list(box_deltas.shape)} and {list(proposals.shape)}")
    scores = F.softmax(class_logits, dim=-1)
    boxes = decode_boxes(box_deltas.reshape(-1, 4), proposals.repeat_interleave(num_classes, dim=0),
                         box_weights)
    boxes = clip_boxes_to_image(boxes, image_size).reshape(k, num_classes, 4)
    labels = torch.arange(num_classes, device=class_logits.device).expand(k, num_classes)
    # drop the background column, then one candidate per (proposal, class)
    boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
    keep = torch.nonzero(scores > score_threshold).flatten()
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    wide = (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
    boxes, scores, labels = boxes[wide], scores[wide], labels[wide]
    keep = detection_ops(ops).batched_nms(boxes, scores, labels, nms_threshold)[:detections_per_image]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


# --- the model ---------------------------------------------------------------------------------

def small_cnn(in_channels: int, widths: tuple[int, ...], pool_last: bool = True) -> nn.Sequential:
    """Conv 3x3 + BatchNorm + ReLU blocks, each followed by 2x2 max pooling (not the last one
    when ``pool_last`` is False); the output stride is ``2 ** (number of pools)``."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True)]
        if pool_last or i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        in_channels = width
    return nn.Sequential(*layers)


def _check_detector_config(config, positive_ints: tuple[str, ...]) -> None:
    """The checks of ``_DetectorConfig``, the settings the R-CNN family shares."""
    detection_ops(config.ops)  # raises for an unknown name
    for name in positive_ints:
        _check_positive_int(getattr(config, name), name)
    if config.num_classes < 2:
        raise ValueError("num_classes must count background plus at least one class (>= 2), "
                         f"got {config.num_classes}")
    if not config.widths or not all(isinstance(w, int) and w > 0 for w in config.widths):
        raise ValueError(f"widths must be positive ints, got {config.widths!r}")
    _check_fraction(config.fg_iou_threshold, "fg_iou_threshold")
    _check_fraction(config.bg_iou_low, "bg_iou_low", high=config.fg_iou_threshold)
    _check_fraction(config.positive_fraction, "positive_fraction")
    _check_fraction(config.nms_threshold, "nms_threshold")


@dataclass
class _DetectorConfig:
    """The settings the R-CNN family shares (``RCNNConfig``, ``FastRCNNConfig``).

    Attributes:
        num_classes: classes including background (class 0); 5 for the shapes data.
        widths: channels of the CNN's conv blocks.
        hidden: width of the fully connected layer(s).
        window_sizes, aspect_ratios, window_stride: the default sliding-window proposals, used
            when ``forward`` gets no proposals.
        fg_iou_threshold, bg_iou_low, batch_size_per_image, positive_fraction: training samples
            (IoU >= 0.5 is the object, background from ``bg_iou_low`` up, 25% positives).
        box_weights: ``encode_boxes`` weights of the regression targets.
        score_threshold, nms_threshold, detections_per_image: inference.
        ops: ``"torchvision"`` or ``"lecture_lib"`` kernels (:func:`detection_ops`).
    """

    num_classes: int = 5
    widths: tuple[int, ...] = (16, 32, 64)
    hidden: int = 128
    window_sizes: tuple[float, ...] = (16.0, 32.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    window_stride: int = 8
    fg_iou_threshold: float = 0.5
    bg_iou_low: float = 0.0
    batch_size_per_image: int = 64
    positive_fraction: float = 0.25
    box_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    detections_per_image: int = 100
    ops: str = "torchvision"

    def __post_init__(self) -> None:
        _check_detector_config(self, ("num_classes", "hidden", "window_stride", "batch_size_per_image",
                                      "detections_per_image"))


@dataclass
class RCNNConfig(_DetectorConfig):
    """An R-CNN for small images: the shared settings (``_DetectorConfig``; R-CNN fine-tuning
    takes all of IoU < 0.5 as background, ``bg_iou_low = 0``) plus

    Attributes:
        warp_size: side of the warped crops the CNN sees (the paper: 227); each of the CNN's
            conv blocks (``widths``) halves the crop.
    """

    warp_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(self.warp_size, "warp_size")
        if self.warp_size % 2 ** len(self.widths):
            raise ValueError(f"warp_size must be divisible by 2 ** len(widths) = {2 ** len(self.widths)}, "
                             f"got {self.warp_size}")


class _BoxPredictor(nn.Module):
    """Class scores (C) and per-class box deltas (4 C) from a feature vector."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, 4 * num_classes)
        # Small initial deltas (as in the Fast R-CNN code): start from the proposals themselves.
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class RCNN(nn.Module):
    """R-CNN: one CNN forward pass **per proposal** on its warped crop.

    ``forward(images, targets=None, proposals=None)``:

    * training mode: samples ``batch_size_per_image`` proposals per image, returns
      ``{"loss_classifier": ..., "loss_box_reg": ...}``;
    * eval mode: returns one ``{"boxes", "scores", "labels"}`` dict per image.

    ``proposals`` is a list with one Tensor[L_i, 4] per image (e.g. :func:`selective_search`);
    by default the sliding windows of the config.
    """

    def __init__(self, config: RCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RCNNConfig()
        self.features = small_cnn(3, config.widths)
        side = config.warp_size // 2 ** len(config.widths)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(config.widths[-1] * side * side, config.hidden),
                                nn.ReLU(inplace=True))
        self.predictor = _BoxPredictor(config.hidden, config.num_classes)

    def classify_crops(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """The CNN on warped crops Tensor[K, 3, s, s] -> (class_logits [K, C], box_deltas [K, 4 C])."""
        return self.predictor(self.fc(self.features(crops)))

    def default_proposals(self, images: Tensor) -> list[Tensor]:
        c = self.config
        windows = sliding_window_proposals(tuple(images.shape[-2:]), c.window_sizes, c.aspect_ratios,
                                           c.window_stride).to(images.device)
        return [windows] * images.shape[0]

    def forward(self, images: Tensor, targets: list[dict] | None = None,
                proposals: list[Tensor] | None = None):
        c = self.config
        _check_detection_inputs(images, targets, c.num_classes, self.training)
        proposals = self.default_proposals(images) if proposals is None else proposals
        if len(proposals) != images.shape[0]:
            raise ValueError(f"proposals must be a list of {images.shape[0]} Tensor[L, 4], got {len(proposals)}")
        if self.training:
            samples = [select_training_samples(
                p, t["boxes"], t["labels"], fg_iou_threshold=c.fg_iou_threshold, bg_iou_low=c.bg_iou_low,
                batch_size_per_image=c.batch_size_per_image, positive_fraction=c.positive_fraction,
                box_weights=c.box_weights) for p, t in zip(proposals, targets)]
            rois, labels, regression = (list(x) for x in zip(*samples))
            logits, deltas = self.classify_crops(warp_regions(images, rois, c.warp_size, ops=c.ops))
            loss_cls, loss_box = detection_loss(logits, deltas, torch.cat(labels), torch.cat(regression))
            return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}
        logits, deltas = self.classify_crops(warp_regions(images, list(proposals), c.warp_size, ops=c.ops))
        sizes = [p.shape[0] for p in proposals]
        return [postprocess_detections(lg, dl, p, tuple(images.shape[-2:]), c.box_weights, c.score_threshold,
                                       c.nms_threshold, c.detections_per_image, ops=c.ops)
                for lg, dl, p in zip(logits.split(sizes), deltas.split(sizes), proposals)]


def detection_forward(model: nn.Module, batch) -> tuple[Tensor, Tensor, list, dict]:
    """``forward_fn`` for ``lecture_lib.train.fit`` with any detector of this chapter.

    ``batch = (images, targets)`` as made by ``collate_detection``; the model must be in
    training mode (it returns its losses); the loss is their sum. Use ``metric=None``.
    """
    images, targets = batch
    losses = model(images, targets)
    return sum(losses.values()), images, targets, losses

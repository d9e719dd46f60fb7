"""What the R-CNN family shares: region sampling, the RoI head, the loss, the post-processing.

R-CNN, Fast R-CNN, Faster R-CNN and Mask R-CNN differ in where their regions and features come
from; what they do with a region is the same:

* training targets: :func:`match_proposals` (IoU >= 0.5 with a ground-truth box -> that box's
  class, lower -> background), :func:`sample_proposals` (a minibatch with a fixed foreground
  fraction) and :func:`select_training_samples` (both, plus the box-regression targets);
* :class:`BoxPredictor` (class scores and per-class box deltas from a feature vector) and
  :func:`detection_loss` (Fast R-CNN's multi-task loss: cross-entropy + smooth L1);
* :func:`postprocess_detections`: softmax, decode, clip, per-class NMS;
* :class:`RoIHead`: RoI pooling (or RoI align) on a feature map + two fully connected layers +
  :class:`BoxPredictor` -- Fast R-CNN's head, reused unchanged by Faster and Mask R-CNN;
* :func:`detection_ops`: which NMS / RoI kernels the models call (the course's own or
  torchvision's), and :class:`DetectorConfig`, the settings every member shares.

Every function does what the matching torchvision component does (``tests/test_roi_heads.py``
and ``tests/test_models_detection.py`` check it).

Length: sampling, the box head, its loss and the post-processing are the one RoI head the whole
family shares; a little over the guide.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import torchvision.ops

import lecture_lib.nms
import lecture_lib.roi
from lecture_lib.boxes import box_iou, clip_boxes_to_image, decode_boxes, encode_boxes
from lecture_lib.checks import check_boxes, check_fraction, check_positive_int, check_positive_ints

__all__ = [
    "OPS",
    "ROI_OPS",
    "detection_ops",
    "match_proposals",
    "sample_proposals",
    "select_training_samples",
    "detection_loss",
    "postprocess_detections",
    "DetectorConfig",
    "check_detector_config",
    "BoxPredictor",
    "RoIHead",
    "detection_forward",
]


# --- which NMS / RoI kernels ------------------------------------------------------------------

#: Where the detectors take nms, batched_nms, roi_pool and roi_align from.
OPS = ("lecture_lib", "torchvision")


def detection_ops(ops: str = "lecture_lib") -> SimpleNamespace:
    """The four kernels the detectors call: ``nms``, ``batched_nms``, ``roi_pool``, ``roi_align``.

    ``"lecture_lib"`` (default): the course's own ``lecture_lib.nms`` and ``lecture_lib.roi``,
    vectorized and proven equal to torchvision (``tests/test_nms.py``, ``tests/test_roi.py``,
    gradients included), fast enough that the chapter's detector trains within its budget on
    them. ``"torchvision"``: the same operations as torchvision's C++ kernels, one switch away
    (``FastRCNNConfig(ops="torchvision")``). Both give the same detections
    (``tests/test_models_detection.py`` checks it).
    """
    if ops == "torchvision":
        return SimpleNamespace(nms=torchvision.ops.nms, batched_nms=torchvision.ops.batched_nms,
                               roi_pool=torchvision.ops.roi_pool, roi_align=torchvision.ops.roi_align)
    if ops == "lecture_lib":
        return SimpleNamespace(nms=lecture_lib.nms.nms, batched_nms=lecture_lib.nms.batched_nms,
                               roi_pool=lecture_lib.roi.roi_pool, roi_align=lecture_lib.roi.roi_align)
    raise ValueError(f"ops must be one of {OPS}, got {ops!r}")


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
    check_boxes(proposals, "proposals")
    check_boxes(gt_boxes, "gt_boxes")
    check_fraction(fg_iou_threshold, "fg_iou_threshold")
    check_fraction(bg_iou_low, "bg_iou_low", high=fg_iou_threshold)
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
    check_positive_int(batch_size_per_image, "batch_size_per_image")
    check_fraction(positive_fraction, "positive_fraction")
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
    check_boxes(proposals, "proposals")
    check_boxes(gt_boxes, "gt_boxes")
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
                           ops: str = "lecture_lib") -> dict[str, Tensor]:
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
    check_boxes(proposals, "proposals")
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


# --- configuration and modules -----------------------------------------------------------------

def check_detector_config(config, positive_ints: tuple[str, ...]) -> None:
    """The checks of ``DetectorConfig``, the settings the R-CNN family shares."""
    detection_ops(config.ops)  # raises for an unknown name
    for name in positive_ints:
        check_positive_int(getattr(config, name), name)
    if config.num_classes < 2:
        raise ValueError("num_classes must count background plus at least one class (>= 2), "
                         f"got {config.num_classes}")
    check_positive_ints(config.widths, "widths")
    check_fraction(config.fg_iou_threshold, "fg_iou_threshold")
    check_fraction(config.bg_iou_low, "bg_iou_low", high=config.fg_iou_threshold)
    check_fraction(config.positive_fraction, "positive_fraction")
    check_fraction(config.nms_threshold, "nms_threshold")


@dataclass
class DetectorConfig:
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
        ops: ``"lecture_lib"`` (the course's kernels) or ``"torchvision"`` (:func:`detection_ops`).
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
    ops: str = "lecture_lib"

    def __post_init__(self) -> None:
        check_detector_config(self, ("num_classes", "hidden", "window_stride", "batch_size_per_image",
                                      "detections_per_image"))


class BoxPredictor(nn.Module):
    """Class scores (C) and per-class box deltas (4 C) from a feature vector.

    ``class_agnostic=True``: one set of 4 deltas for every class (repeated C times, so the output
    has the same shape): every positive RoI trains the same regressor, instead of a quarter of
    them each of four -- it learns faster from few examples (Cascade R-CNN's choice too).
    """

    def __init__(self, in_features: int, num_classes: int, class_agnostic: bool = False) -> None:
        super().__init__()
        self.num_classes, self.class_agnostic = num_classes, class_agnostic
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, 4 if class_agnostic else 4 * num_classes)
        # Small initial deltas (as in the Fast R-CNN code): start from the proposals themselves.
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        deltas = self.bbox_pred(x)
        if self.class_agnostic:
            deltas = deltas.repeat(1, self.num_classes)
        return self.cls_score(x), deltas


#: How the RoI head cuts a region out of the feature map: Fast R-CNN's RoI pooling (max over
#: whole cells) or Mask R-CNN's RoI align (bilinear samples at the exact box, averaged).
ROI_OPS = ("pool", "align")


class RoIHead(nn.Module):
    """RoI pooling (or align) + two FC layers + class scores and per-class box deltas.

    Fast R-CNN's head (Girshick 2015), shared by Fast, Faster and Mask R-CNN. The ``config`` (a
    ``FastRCNNConfig``) gives the feature map it reads (``feature_channels`` at ``stride``), the
    RoI grid (``roi_size``, ``roi_op``, ``sampling_ratio``), the FC width ``hidden``, and the
    training samples and inference settings of :class:`DetectorConfig`.

    ``forward(features, proposals, image_size, targets=None)``: training mode samples RoIs from
    the proposals and returns the two losses; eval mode returns one detection dict per image.
    """

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        in_features = config.feature_channels * config.roi_size ** 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_features, config.hidden), nn.ReLU(inplace=True),
                                nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True))
        self.predictor = BoxPredictor(config.hidden, config.num_classes, config.class_agnostic_boxes)

    def pool(self, features: Tensor, rois: list[Tensor]) -> Tensor:
        """Each image's boxes cut out of its feature map: Tensor[K, C, roi_size, roi_size]."""
        c = self.config
        rois = [r.to(features.dtype) for r in rois]
        ops = detection_ops(c.ops)
        if c.roi_op == "align":
            # He et al. 2017: bilinear samples at the exact box (aligned: pixel centres at +0.5)
            return ops.roi_align(features, rois, c.roi_size, spatial_scale=1.0 / c.stride,
                                 sampling_ratio=c.sampling_ratio, aligned=True)
        # Girshick 2015: max-pool each proposal's window into a fixed roi_size x roi_size grid.
        return ops.roi_pool(features, rois, c.roi_size, spatial_scale=1.0 / c.stride)

    def classify_rois(self, features: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Pool each image's boxes from its feature map and run the head.

        Returns ``(class_logits [K, C], box_deltas [K, 4 C])`` for the K = sum L_i boxes.
        """
        return self.predictor(self.fc(self.pool(features, rois)))

    def training_losses(self, features: Tensor, proposals: list[Tensor],
                        targets: list[dict]) -> tuple[dict[str, Tensor], list[Tensor], list[Tensor]]:
        """The training step of the head: sample RoIs, classify them, the two losses.

        Returns ``(losses, rois, labels)``: ``{"loss_classifier", "loss_box_reg"}`` and, per
        image, the sampled RoIs Tensor[S_i, 4] with their labels Tensor[S_i] (positives first).
        Mask R-CNN (``mask_rcnn.py``) trains its mask branch on the positives among them.
        """
        c = self.config
        samples = [select_training_samples(
            p.detach(), t["boxes"], t["labels"], fg_iou_threshold=c.fg_iou_threshold,
            bg_iou_low=c.bg_iou_low, batch_size_per_image=c.batch_size_per_image,
            positive_fraction=c.positive_fraction, box_weights=c.box_weights)
            for p, t in zip(proposals, targets)]
        rois, labels, regression = (list(x) for x in zip(*samples))
        logits, deltas = self.classify_rois(features, rois)
        loss_cls, loss_box = detection_loss(logits, deltas, torch.cat(labels), torch.cat(regression))
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}, rois, labels

    def forward(self, features: Tensor, proposals: list[Tensor], image_size: tuple[int, int],
                targets: list[dict] | None = None):
        c = self.config
        if self.training:
            if targets is None:
                raise ValueError("targets must be given in training mode (one dict per image)")
            return self.training_losses(features, proposals, targets)[0]
        logits, deltas = self.classify_rois(features, list(proposals))
        sizes = [p.shape[0] for p in proposals]
        return [postprocess_detections(lg, dl, p, image_size, c.box_weights, c.score_threshold,
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

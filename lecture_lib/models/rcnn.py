"""R-CNN (Girshick et al. 2014): propose regions, warp each one, classify it with a CNN.

Detection as "classify many regions": instead of sliding a classifier over *every* window, R-CNN
asks a cheap, class-agnostic method for a few hundred to two thousand **region proposals**
(``lecture_lib.proposals``), warps each one to the CNN's fixed input size
(:func:`warp_regions`) and runs the CNN on every warped crop. Per proposal it predicts ``C``
scores (the object classes **plus background**, class 0) and, per class, four box-regression
deltas that correct the proposal (``lecture_lib.boxes.encode_boxes``). At test time: score,
decode, per-class NMS.

This file holds R-CNN itself: :func:`warp_regions`, :class:`RCNNConfig` and :class:`RCNN`. What
the whole family shares lives in its own modules, and is re-exported here so that
``from lecture_lib.models.rcnn import ...`` keeps working:

* proposals (:func:`sliding_window_proposals`, :func:`selective_search`): ``lecture_lib.proposals``;
* training targets, loss, post-processing, the kernels switch (:func:`detection_ops`):
  ``lecture_lib.models.roi_heads``;
* the CNN (:func:`small_cnn`): ``lecture_lib.models.backbones``.

Simplification: the paper fine-tunes the CNN with a softmax, then trains one linear SVM per class
and separate ridge box regressors on its features. Here the CNN has both heads and is trained
end to end with Fast R-CNN's multi-task loss -- the same model family, one training stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lecture_lib.checks import check_detection_inputs, check_positive_int
from lecture_lib.models.backbones import small_cnn
from lecture_lib.models.roi_heads import (
    OPS,
    BoxPredictor,
    DetectorConfig,
    detection_forward,
    detection_loss,
    detection_ops,
    match_proposals,
    postprocess_detections,
    sample_proposals,
    select_training_samples,
)
from lecture_lib.proposals import default_proposals, selective_search, sliding_window_proposals

__all__ = [
    # R-CNN itself
    "warp_regions",
    "RCNNConfig",
    "RCNN",
    # re-exported from the family's modules (their home is named in the module docstring)
    "OPS",
    "detection_ops",
    "sliding_window_proposals",
    "selective_search",
    "match_proposals",
    "sample_proposals",
    "select_training_samples",
    "detection_loss",
    "postprocess_detections",
    "small_cnn",
    "detection_forward",
]


def warp_regions(images: Tensor, boxes: list[Tensor], output_size: int, sampling_ratio: int = 2,
                 ops: str = "lecture_lib") -> Tensor:
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
    check_positive_int(output_size, "output_size")
    roi_align = detection_ops(ops).roi_align
    if not isinstance(boxes, (list, tuple)) or not isinstance(images, Tensor) or len(boxes) != images.shape[0]:
        raise ValueError(f"boxes must be a list with one Tensor[L, 4] per image "
                         f"({images.shape[0] if isinstance(images, Tensor) else '?'}), got {type(boxes).__name__}"
                         f"{'' if not isinstance(boxes, (list, tuple)) else f' of length {len(boxes)}'}")
    boxes = [b.to(images.dtype) for b in boxes]
    return roi_align(images, boxes, output_size, spatial_scale=1.0, sampling_ratio=sampling_ratio, aligned=True)


@dataclass
class RCNNConfig(DetectorConfig):
    """An R-CNN for small images: the shared settings (``DetectorConfig``; R-CNN fine-tuning
    takes all of IoU < 0.5 as background, ``bg_iou_low = 0``) plus

    Attributes:
        warp_size: side of the warped crops the CNN sees (the paper: 227); each of the CNN's
            conv blocks (``widths``) halves the crop.
    """

    warp_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.warp_size, "warp_size")
        if self.warp_size % 2 ** len(self.widths):
            raise ValueError(f"warp_size must be divisible by 2 ** len(widths) = {2 ** len(self.widths)}, "
                             f"got {self.warp_size}")


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
        self.predictor = BoxPredictor(config.hidden, config.num_classes)

    def classify_crops(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """The CNN on warped crops Tensor[K, 3, s, s] -> (class_logits [K, C], box_deltas [K, 4 C])."""
        return self.predictor(self.fc(self.features(crops)))

    def forward(self, images: Tensor, targets: list[dict] | None = None,
                proposals: list[Tensor] | None = None):
        c = self.config
        check_detection_inputs(images, targets, c.num_classes, self.training)
        proposals = default_proposals(images, c) if proposals is None else proposals
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

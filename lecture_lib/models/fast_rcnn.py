"""Fast R-CNN (Girshick 2015): one CNN pass per image, then RoI pooling per proposal.

R-CNN runs the whole CNN once per proposal -- two thousand forward passes per image, most of them
on overlapping pixels. Fast R-CNN runs the convolutional **backbone once** on the whole image and
cuts every proposal's window out of the resulting feature map with **RoI pooling**
(``lecture_lib.roi.roi_pool``: a fixed ``h x w`` grid of max-pooled bins, whatever the
proposal's size). Only the small fully connected head runs per proposal.

Training (the paper's section 2.3): each image contributes ``batch_size_per_image`` RoIs,
25% foreground (IoU >= 0.5 with a ground-truth box) and the rest background with IoU in
[0.1, 0.5); the loss is the multi-task ``cross-entropy + smooth L1`` on the deltas of the true
class. The target selection, loss and inference steps are R-CNN's (``lecture_lib.models.rcnn``);
what is new here is *where* the features come from. The head is a module of its own,
:class:`FastRCNNHead`, because Faster R-CNN (``faster_rcnn.py``) reuses it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lecture_lib.models.rcnn import (
    _BoxPredictor,
    _check_detection_inputs,
    _check_positive_int,
    _DetectorConfig,
    detection_loss,
    detection_ops,
    postprocess_detections,
    select_training_samples,
    sliding_window_proposals,
    small_cnn,
)

__all__ = ["FastRCNNConfig", "FastRCNNHead", "FastRCNN"]


@dataclass
class FastRCNNConfig(_DetectorConfig):
    """A Fast R-CNN for small images: the shared settings of the R-CNN family
    (``rcnn._DetectorConfig``: classes, backbone ``widths``, fc width ``hidden`` -- the paper's
    fc6, fc7 --, sliding-window proposals, training samples, inference, ``ops`` for RoI pooling
    and NMS) plus

    Attributes:
        roi_size: RoI pooling output ``roi_size x roi_size`` (the paper: 7 x 7 on VGG's conv5).
        bg_iou_low: background RoIs have IoU in [0.1, 0.5) (the paper's 128 RoIs from 2 images,
            25% foreground).

    The backbone's conv blocks all but the last halve the resolution, so the feature stride is
    ``2 ** (len(widths) - 1)`` (4 by default).
    """

    roi_size: int = 5
    bg_iou_low: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(self.roi_size, "roi_size")

    @property
    def stride(self) -> int:
        """Image pixels per feature-map cell."""
        return 2 ** (len(self.widths) - 1)


def backbone(config: FastRCNNConfig) -> nn.Sequential:
    """The convolutional part: image Tensor[B, 3, H, W] -> features [B, widths[-1], H/s, W/s]."""
    return small_cnn(3, config.widths, pool_last=False)


class FastRCNNHead(nn.Module):
    """RoI pooling + two FC layers + class scores and per-class box deltas.

    ``forward(features, proposals, image_size, targets=None)``: training mode samples RoIs from
    the proposals and returns the two losses; eval mode returns one detection dict per image.
    """

    def __init__(self, config: FastRCNNConfig) -> None:
        super().__init__()
        self.config = config
        in_features = config.widths[-1] * config.roi_size ** 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_features, config.hidden), nn.ReLU(inplace=True),
                                nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True))
        self.predictor = _BoxPredictor(config.hidden, config.num_classes)

    def classify_rois(self, features: Tensor, rois: list[Tensor]) -> tuple[Tensor, Tensor]:
        """RoI-pool each image's boxes from its feature map and run the head.

        Returns ``(class_logits [K, C], box_deltas [K, 4 C])`` for the K = sum L_i boxes.
        """
        # Girshick 2015: max-pool each proposal's window into a fixed roi_size x roi_size grid.
        roi_pool = detection_ops(self.config.ops).roi_pool
        pooled = roi_pool(features, [r.to(features.dtype) for r in rois], self.config.roi_size,
                          spatial_scale=1.0 / self.config.stride)
        return self.predictor(self.fc(pooled))

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


class FastRCNN(nn.Module):
    """Backbone once per image + :class:`FastRCNNHead` on external proposals.

    ``forward(images, targets=None, proposals=None)`` behaves like ``RCNN.forward``: losses in
    training mode, detections in eval mode; ``proposals`` defaults to the config's sliding windows.
    """

    def __init__(self, config: FastRCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FastRCNNConfig()
        self.backbone = backbone(config)
        self.roi_head = FastRCNNHead(config)

    def default_proposals(self, images: Tensor) -> list[Tensor]:
        c = self.config
        windows = sliding_window_proposals(tuple(images.shape[-2:]), c.window_sizes, c.aspect_ratios,
                                           c.window_stride).to(images.device)
        return [windows] * images.shape[0]

    def forward(self, images: Tensor, targets: list[dict] | None = None,
                proposals: list[Tensor] | None = None):
        _check_detection_inputs(images, targets, self.config.num_classes, self.training)
        proposals = self.default_proposals(images) if proposals is None else proposals
        if not isinstance(proposals, (list, tuple)) or len(proposals) != images.shape[0]:
            raise ValueError(f"proposals must be a list of {images.shape[0]} Tensor[L, 4], "
                             f"got {type(proposals).__name__}")
        features = self.backbone(images)  # the one CNN pass per image
        return self.roi_head(features, list(proposals), tuple(images.shape[-2:]), targets)

"""Fast R-CNN (Girshick 2015): one CNN pass per image, then RoI pooling per proposal.

R-CNN runs the whole CNN once per proposal -- two thousand forward passes per image, most of them
on overlapping pixels. Fast R-CNN runs the convolutional **backbone once** on the whole image and
cuts every proposal's window out of the resulting feature map with **RoI pooling**
(``lecture_lib.roi.roi_pool``: a fixed ``h x w`` grid of max-pooled bins, whatever the
proposal's size). Only the small fully connected head runs per proposal.

Training (the paper's section 2.3): each image contributes ``batch_size_per_image`` RoIs,
25% foreground (IoU >= 0.5 with a ground-truth box) and the rest background with IoU in
[0.1, 0.5); the loss is the multi-task ``cross-entropy + smooth L1`` on the deltas of the true
class. The head -- target selection, RoI pooling, FC layers, loss and inference -- is the
family's shared :class:`~lecture_lib.models.roi_heads.RoIHead` (``FastRCNNHead`` here, under
the paper's name): Faster and Mask R-CNN reuse it unchanged. What is new here is *where* the
features come from: :func:`backbone`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from lecture_lib.checks import check_detection_inputs, check_positive_int
from lecture_lib.models.backbones import Backbone
from lecture_lib.models.roi_heads import ROI_OPS, DetectorConfig, RoIHead
from lecture_lib.proposals import default_proposals

__all__ = ["FastRCNNConfig", "FastRCNNHead", "FastRCNN", "backbone"]

#: Fast R-CNN's head under the paper's name: RoI pooling + two FC layers + class scores and
#: per-class box deltas (``lecture_lib.models.roi_heads.RoIHead``).
FastRCNNHead = RoIHead


@dataclass
class FastRCNNConfig(DetectorConfig):
    """A Fast R-CNN for small images: the shared settings of the R-CNN family
    (``roi_heads.DetectorConfig``: classes, backbone ``widths``, fc width ``hidden`` -- the
    paper's fc6, fc7 --, sliding-window proposals, training samples, inference, ``ops`` for RoI
    pooling and NMS) plus

    Attributes:
        roi_size: RoI pooling output ``roi_size x roi_size`` (the paper: 7 x 7 on VGG's conv5).
        bg_iou_low: background RoIs have IoU in [0.1, 0.5) (the paper's 128 RoIs from 2 images,
            25% foreground).
        roi_op: ``"pool"`` (RoI pooling, the paper) or ``"align"`` (RoI align, Mask R-CNN's
            bilinear version: no rounding of the box to whole cells, so tighter boxes).
        sampling_ratio: bilinear samples per bin and direction for ``roi_op="align"``.
        class_agnostic_boxes: one box regressor shared by the classes (``roi_heads.BoxPredictor``).
        convs_per_stage: convolutions in each stage of the backbone (default one each).
        top_down_channels, out_level: the backbone's top-down pathway
            (``backbones.Backbone``); 0 for none.

    The backbone (``backbones.Backbone``) has one stage per width, each after the first halving
    the resolution; the head reads the last stage (stride ``2 ** (len(widths) - 1)``, 4 by
    default) or, with a top-down pathway, stage ``out_level``.
    """

    roi_size: int = 5
    bg_iou_low: float = 0.1
    roi_op: str = "pool"
    sampling_ratio: int = 2
    class_agnostic_boxes: bool = False
    convs_per_stage: tuple[int, ...] | None = None
    top_down_channels: int = 0
    out_level: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int(self.roi_size, "roi_size")
        check_positive_int(self.sampling_ratio, "sampling_ratio")
        if self.roi_op not in ROI_OPS:
            raise ValueError(f"roi_op must be one of {ROI_OPS}, got {self.roi_op!r}")
        backbone(self)  # raises for inconsistent backbone settings

    @property
    def stride(self) -> int:
        """Image pixels per cell of the feature map the heads read."""
        return 2 ** (len(self.widths) - 1 if self.out_level is None else self.out_level)

    @property
    def feature_channels(self) -> int:
        """Channels of that feature map."""
        return self.top_down_channels or self.widths[-1]


def backbone(config: FastRCNNConfig) -> Backbone:
    """The convolutional part: image Tensor[B, 3, H, W] -> features [B, C, H/s, W/s] with
    ``C = config.feature_channels`` and ``s = config.stride``."""
    return Backbone(config.widths, config.convs_per_stage, config.top_down_channels, config.out_level)


class FastRCNN(nn.Module):
    """Backbone once per image + :class:`FastRCNNHead` on external proposals.

    ``forward(images, targets=None, proposals=None)`` behaves like ``RCNN.forward``: losses in
    training mode, detections in eval mode; ``proposals`` defaults to the config's sliding windows
    (``lecture_lib.proposals.default_proposals``).
    """

    def __init__(self, config: FastRCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FastRCNNConfig()
        self.backbone = backbone(config)
        self.roi_head = FastRCNNHead(config)

    def forward(self, images: Tensor, targets: list[dict] | None = None,
                proposals: list[Tensor] | None = None):
        check_detection_inputs(images, targets, self.config.num_classes, self.training)
        proposals = default_proposals(images, self.config) if proposals is None else proposals
        if not isinstance(proposals, (list, tuple)) or len(proposals) != images.shape[0]:
            raise ValueError(f"proposals must be a list of {images.shape[0]} Tensor[L, 4], "
                             f"got {type(proposals).__name__}")
        features = self.backbone(images)  # the one CNN pass per image
        return self.roi_head(features, list(proposals), tuple(images.shape[-2:]), targets)

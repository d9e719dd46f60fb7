"""Faster R-CNN (Ren et al. 2015): the network proposes its own regions.

Fast R-CNN made the detector fast; the proposals (selective search, seconds per image on a CPU)
became the bottleneck. Faster R-CNN adds a **region proposal network** (RPN) on the same
backbone features: a 3x3 conv slides over the feature map and, at every cell, for each of ``A``
**anchors** (``lecture_lib.anchors.generate_anchors``: fixed boxes of a few sizes and aspect
ratios centred on the cell) predicts

* an **objectness** logit: is this anchor on an object (of any class)?
* four **deltas** that move the anchor onto the object (``lecture_lib.boxes.decode_boxes``).

Training the RPN (section 3.1.2): an anchor is **positive** if its IoU with some ground-truth box
is >= 0.7, or if it is the best anchor of some ground-truth box (so that every object has one);
**negative** if its best IoU is < 0.3; otherwise ignored. 256 anchors per image are sampled,
up to half of them positive; the loss is binary cross-entropy on the objectness plus smooth L1 on
the deltas of the positives.

Proposals: decode every anchor, keep the ``pre_nms_top_n`` best by objectness, clip to the image,
drop tiny boxes, NMS at IoU 0.7, keep ``post_nms_top_n``. They go to the Fast R-CNN head
(``lecture_lib.models.fast_rcnn.FastRCNNHead``); the whole thing is trained end to end with the
sum of the four losses (the "approximate joint training" of the paper: no gradient flows
through the proposal coordinates).

Each step does what the torchvision component of the same name does (``Matcher``,
``BalancedPositiveNegativeSampler``, ``RegionProposalNetwork.filter_proposals``), checked in the
tests.

Length: the RPN (labels, loss, proposals, modules) and the chapter's recipe for the 128-pixel
scenes (``scene_config``, the torchvision twin, the stored result) stay together so that one file
reads as "Faster R-CNN, and how the course trains it"; the recipe (~150 lines) is the first thing
to move out if the file grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.anchors import generate_anchors
from lecture_lib.boxes import box_iou, clip_boxes_to_image, decode_boxes, encode_boxes
from lecture_lib.checks import check_boxes, check_detection_inputs, check_fraction, check_positive_int
from lecture_lib.models.fast_rcnn import FastRCNNConfig, FastRCNNHead, backbone
from lecture_lib.models.roi_heads import detection_ops, sample_proposals

__all__ = [
    "label_anchors",
    "rpn_loss",
    "generate_proposals",
    "RPNConfig",
    "RPNHead",
    "RegionProposalNetwork",
    "FasterRCNNConfig",
    "FasterRCNN",
    "scene_config",
    "torchvision_faster_rcnn",
    "SCENE_DATA",
    "scene_items",
    "train_on_scenes",
    "evaluate_on_scenes",
    "faster_rcnn_recipe",
]


# --- anchors -> training labels ----------------------------------------------------------------

def label_anchors(anchors: Tensor, gt_boxes: Tensor, positive_iou: float = 0.7, negative_iou: float = 0.3,
                  allow_low_quality_matches: bool = True) -> tuple[Tensor, Tensor]:
    """Positive / negative / ignored label and matched ground truth for every anchor.

    Args:
        anchors (Tensor[N, 4]), gt_boxes (Tensor[M, 4]): boxes in (x1, y1, x2, y2).
        positive_iou: best IoU >= this -> positive (1).
        negative_iou: best IoU < this -> negative (0); in between -> ignored (-1).
        allow_low_quality_matches: also make positive, for every ground-truth box, the anchor(s)
            with the highest IoU with it (ties included), even below ``positive_iou``: an object
            that no anchor covers well still gets one. As torchvision's ``Matcher``, such an
            anchor is matched to *its own* best box.

    Returns:
        ``(labels, matched_index)``: Tensor[N] float32 in {1, 0, -1} and Tensor[N] int64, the
        index of each anchor's best ground-truth box (0 when there is none).
    """
    check_boxes(anchors, "anchors")
    check_boxes(gt_boxes, "gt_boxes")
    check_fraction(positive_iou, "positive_iou")
    check_fraction(negative_iou, "negative_iou", high=positive_iou)
    n = anchors.shape[0]
    if gt_boxes.shape[0] == 0:  # an image without objects: every anchor is background
        return anchors.new_zeros(n), torch.zeros(n, dtype=torch.int64, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # [M, N]
    best_iou, matched = iou.max(dim=0)
    labels = anchors.new_full((n,), -1.0)
    labels[best_iou >= positive_iou] = 1.0
    labels[best_iou < negative_iou] = 0.0
    if allow_low_quality_matches:
        best_per_gt = iou.max(dim=1, keepdim=True).values  # [M, 1]
        labels[torch.nonzero(iou == best_per_gt)[:, 1]] = 1.0
    return labels, matched


def rpn_loss(objectness: Tensor, box_deltas: Tensor, anchors: Tensor, targets: list[dict],
             config: "RPNConfig", generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The RPN's two losses over a batch.

    Args:
        objectness (Tensor[B, N]): logits per anchor.
        box_deltas (Tensor[B, N, 4]): predicted deltas per anchor.
        anchors (Tensor[N, 4]): the anchors (the same for every image of the batch).
        targets: one dict with ``"boxes"`` per image.
        config: thresholds, sampled anchors per image, positive fraction.

    Returns:
        ``(loss_objectness, loss_rpn_box_reg)``: BCE over the sampled anchors; smooth L1
        (beta 1/9) summed over the sampled positives and divided by the number sampled, as in
        torchvision's ``RegionProposalNetwork.compute_loss``.
    """
    all_pos, all_neg, all_labels, all_targets = [], [], [], []
    for i, t in enumerate(targets):
        labels, matched = label_anchors(anchors, t["boxes"], config.positive_iou, config.negative_iou)
        pos, neg = sample_proposals(labels, config.batch_size_per_image, config.positive_fraction, generator)
        regression = anchors.new_zeros(anchors.shape[0], 4)
        if pos.numel():
            regression[pos] = encode_boxes(t["boxes"][matched[pos]].to(anchors.dtype), anchors[pos])
        offset = i * anchors.shape[0]  # index into the flattened [B * N] batch
        all_pos.append(pos + offset)
        all_neg.append(neg + offset)
        all_labels.append(labels)
        all_targets.append(regression)
    pos, neg = torch.cat(all_pos), torch.cat(all_neg)
    sampled = torch.cat([pos, neg])
    labels, regression = torch.cat(all_labels), torch.cat(all_targets)
    objectness, box_deltas = objectness.reshape(-1), box_deltas.reshape(-1, 4)
    box_loss = F.smooth_l1_loss(box_deltas[pos], regression[pos], beta=1.0 / 9, reduction="sum")
    box_loss = box_loss / max(sampled.numel(), 1)
    objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled].to(objectness.dtype))
    return objectness_loss, box_loss


# --- anchors -> proposals ----------------------------------------------------------------------

def generate_proposals(anchors: Tensor, objectness: Tensor, box_deltas: Tensor, image_size: tuple[int, int],
                       pre_nms_top_n: int = 1000, post_nms_top_n: int = 300, nms_threshold: float = 0.7,
                       min_size: float = 1e-3, score_threshold: float = 0.0,
                       ops: str = "lecture_lib") -> tuple[Tensor, Tensor]:
    """One image's proposals from the RPN outputs.

    decode every anchor -> keep the ``pre_nms_top_n`` highest objectness -> sigmoid -> clip
    to the image -> drop boxes thinner than ``min_size`` and scores below ``score_threshold``
    -> NMS at ``nms_threshold`` -> keep the first ``post_nms_top_n``.

    Args:
        anchors (Tensor[N, 4]), objectness (Tensor[N]) logits, box_deltas (Tensor[N, 4]).
        image_size: ``(height, width)``.
        ops: where NMS comes from (``lecture_lib.models.roi_heads.detection_ops``).

    Returns:
        ``(boxes, scores)``: Tensor[K, 4] and Tensor[K] (objectness probabilities), best first,
        K <= ``post_nms_top_n``. Not differentiable (the proposals are treated as given).
    """
    check_boxes(anchors, "anchors")
    if objectness.shape != (anchors.shape[0],) or box_deltas.shape != (anchors.shape[0], 4):
        raise ValueError(f"objectness must be [N] and box_deltas [N, 4] with N = {anchors.shape[0]} anchors, "
                         f"got {list(objectness.shape)} and {list(box_deltas.shape)}")
    check_positive_int(pre_nms_top_n, "pre_nms_top_n")
    check_positive_int(post_nms_top_n, "post_nms_top_n")
    objectness, box_deltas = objectness.detach(), box_deltas.detach()
    top = objectness.topk(min(pre_nms_top_n, objectness.numel())).indices
    boxes = decode_boxes(box_deltas[top], anchors[top])
    scores = torch.sigmoid(objectness[top])
    boxes = clip_boxes_to_image(boxes, image_size)
    keep = ((boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
            & (scores >= score_threshold))
    boxes, scores = boxes[keep], scores[keep]
    keep = detection_ops(ops).nms(boxes, scores, nms_threshold)[:post_nms_top_n]
    return boxes[keep], scores[keep]


# --- the modules -------------------------------------------------------------------------------

@dataclass
class RPNConfig:
    """Region proposal network settings (the paper's values, proposal counts scaled down for
    64 x 64 images).

    Attributes:
        anchor_sizes, aspect_ratios: the ``A = len(sizes) * len(ratios)`` anchors per cell.
        positive_iou, negative_iou: anchor labels (0.7 / 0.3).
        batch_size_per_image, positive_fraction: 256 sampled anchors, up to half positive.
        pre_nms_top_n, post_nms_top_n: proposals kept before / after NMS, (train, test).
        nms_threshold: NMS IoU among proposals (0.7).
    """

    anchor_sizes: tuple[float, ...] = (16.0, 32.0)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    positive_iou: float = 0.7
    negative_iou: float = 0.3
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    pre_nms_top_n: tuple[int, int] = (600, 300)
    post_nms_top_n: tuple[int, int] = (128, 64)
    nms_threshold: float = 0.7

    def __post_init__(self) -> None:
        check_fraction(self.positive_iou, "positive_iou")
        check_fraction(self.negative_iou, "negative_iou", high=self.positive_iou)
        check_fraction(self.positive_fraction, "positive_fraction")
        check_fraction(self.nms_threshold, "nms_threshold")
        check_positive_int(self.batch_size_per_image, "batch_size_per_image")
        for name in ("pre_nms_top_n", "post_nms_top_n"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ValueError(f"{name} must be a pair (train, test), got {value!r}")
            for v in value:
                check_positive_int(v, name)

    @property
    def num_anchors(self) -> int:
        return len(self.anchor_sizes) * len(self.aspect_ratios)


class RPNHead(nn.Module):
    """3x3 conv + ReLU, then 1x1 convs: ``A`` objectness logits and ``4 A`` deltas per cell."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):  # as in the paper: N(0, 0.01)
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """features [B, C, H, W] -> objectness [B, H*W*A], deltas [B, H*W*A, 4] in anchor order
        (cell by cell, row by row; the A anchors of a cell together), like ``generate_anchors``."""
        x = F.relu(self.conv(features))
        logits, deltas = self.cls_logits(x), self.bbox_pred(x)
        b, a, h, w = logits.shape
        objectness = logits.permute(0, 2, 3, 1).reshape(b, -1)
        deltas = deltas.view(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)
        return objectness, deltas


class RegionProposalNetwork(nn.Module):
    """Anchors + :class:`RPNHead` + :func:`generate_proposals` (+ :func:`rpn_loss` in training).

    ``forward(features, image_size, targets=None) -> (proposals, losses)``: one Tensor[K_i, 4]
    per image, and ``{"loss_objectness", "loss_rpn_box_reg"}`` in training mode (else empty).
    """

    def __init__(self, in_channels: int, stride: int, config: RPNConfig | None = None,
                 ops: str = "lecture_lib") -> None:
        super().__init__()
        self.config = config = config or RPNConfig()
        self.stride = stride
        self.ops = ops
        self.head = RPNHead(in_channels, config.num_anchors)

    def anchors(self, feature_size: tuple[int, int], device: torch.device | None = None) -> Tensor:
        """All anchors of a feature map of ``feature_size``: Tensor[H * W * A, 4]."""
        c = self.config
        return generate_anchors(feature_size, self.stride, c.anchor_sizes, c.aspect_ratios).to(device)

    def forward(self, features: Tensor, image_size: tuple[int, int],
                targets: list[dict] | None = None) -> tuple[list[Tensor], dict[str, Tensor]]:
        c = self.config
        objectness, deltas = self.head(features)
        anchors = self.anchors(tuple(features.shape[-2:]), features.device)
        mode = 0 if self.training else 1
        proposals = [generate_proposals(anchors, o, d, image_size, c.pre_nms_top_n[mode],
                                        c.post_nms_top_n[mode], c.nms_threshold, ops=self.ops)[0]
                     for o, d in zip(objectness, deltas)]
        losses: dict[str, Tensor] = {}
        if self.training:
            if targets is None:
                raise ValueError("targets must be given in training mode (one dict per image)")
            loss_obj, loss_box = rpn_loss(objectness, deltas, anchors, targets, c)
            losses = {"loss_objectness": loss_obj, "loss_rpn_box_reg": loss_box}
        return proposals, losses


@dataclass
class FasterRCNNConfig:
    """Faster R-CNN = the Fast R-CNN settings (backbone, RoI head) + the RPN settings.

    The RoI head samples background from IoU [0, 0.5) here (``bg_iou_low = 0``, as in the
    Faster R-CNN code and torchvision): the RPN's proposals include plain background too.
    """

    head: FastRCNNConfig = field(default_factory=lambda: FastRCNNConfig(bg_iou_low=0.0))
    rpn: RPNConfig = field(default_factory=RPNConfig)


class FasterRCNN(nn.Module):
    """Backbone -> RPN -> Fast R-CNN head, trained end to end.

    ``forward(images, targets=None)``: training mode returns the four losses
    ``{"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}``; eval mode
    returns one ``{"boxes", "scores", "labels"}`` dict per image.
    """

    def __init__(self, config: FasterRCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FasterRCNNConfig()
        self.backbone = backbone(config.head)
        self.rpn = RegionProposalNetwork(config.head.feature_channels, config.head.stride, config.rpn,
                                         ops=config.head.ops)
        self.roi_head = FastRCNNHead(config.head)

    def forward(self, images: Tensor, targets: list[dict] | None = None):
        check_detection_inputs(images, targets, self.config.head.num_classes, self.training)
        image_size = tuple(images.shape[-2:])
        features = self.backbone(images)
        proposals, rpn_losses = self.rpn(features, image_size, targets)
        result = self.roi_head(features, proposals, image_size, targets)
        return {**rpn_losses, **result} if self.training else result


# --- the chapter's recipe: Faster R-CNN for the 128-pixel scenes on a CPU --------------------------

def scene_config(image_size: int, num_classes: int) -> FasterRCNNConfig:
    """The chapter's Faster R-CNN for small images, trained from scratch on a CPU in minutes.

    Tuned on ``preset_dataset("scenes128")`` (objects of about 6 % to 50 % of the side); for an
    image of another size, the anchors scale with it. Each choice (the chapter explains them):

    * **backbone**: five stages of BatchNorm'ed 3x3 convolutions (16 to 128 channels, stride 1 to
      16) and a top-down pathway (``backbones.Backbone``) that brings the deep stages back to a
      **stride-4 map of 64 channels**: a 12-pixel shape covers 3 x 3 cells of it, while its cells
      see the context of a 64-pixel one;
    * **anchors fitted to the objects**: one square anchor per size, sizes 12, 18, 27, 40 and 60
      pixels for a 128-pixel image (a factor 1.5 apart, so that every object overlaps some anchor
      with IoU >= 0.7; the shapes' boxes are nearly square, other aspect ratios only add work);
    * **RoI align** (7 x 7, one bilinear sample per bin) instead of RoI pooling: no rounding of
      the proposal to whole cells, which at stride 4 is worth several pixels of box accuracy --
      the COCO mAP at IoU up to 0.95 needs them;
    * **sampling**: 32 RoIs per image, up to half of them positive (the paper: 128 with a
      quarter): with one to six objects per image, more RoIs are mostly duplicate background,
      and the head's cost, its backward pass above all, grows with their number; background
      from IoU 0 up; 300 proposals per image in training, 100 at test;
    * **class-agnostic box regression**: one regressor for the four shapes, so that every
      positive RoI trains it (per-class regressors each see a quarter of them);
    * **inference tuned for mAP**: score threshold 0.01 (a low-scoring true detection still adds
      recall at the end of the precision-recall curve), per-class NMS at IoU 0.5, at most 100
      detections.

    Args:
        image_size: side of the (square) images, >= 32.
        num_classes: classes **including the background** (5 for the shapes).

    Returns:
        FasterRCNNConfig (train it with ``lecture_lib.train.train_detector``).
    """
    check_positive_int(image_size, "image_size")
    check_positive_int(num_classes, "num_classes")
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {image_size}")
    scale = image_size / 128
    head = FastRCNNConfig(
        num_classes=num_classes, widths=(16, 32, 64, 128, 128), convs_per_stage=(1, 1, 2, 2, 1),
        top_down_channels=64, out_level=2, hidden=256, roi_size=7, roi_op="align", sampling_ratio=1,
        bg_iou_low=0.0, batch_size_per_image=32, positive_fraction=0.5, class_agnostic_boxes=True,
        score_threshold=0.01, nms_threshold=0.5, detections_per_image=100)
    rpn = RPNConfig(anchor_sizes=tuple(round(s * scale, 1) for s in (12.0, 18.0, 27.0, 40.0, 60.0)),
                    aspect_ratios=(1.0,), pre_nms_top_n=(1000, 600), post_nms_top_n=(300, 100))
    return FasterRCNNConfig(head=head, rpn=rpn)


def torchvision_faster_rcnn(config: FasterRCNNConfig, image_size: int = 128) -> nn.Module:
    """torchvision's ``FasterRCNN`` with the same backbone and comparable settings, for a fair race.

    Same :class:`~lecture_lib.models.backbones.Backbone` (one feature map), anchors of the same
    sizes and ratios, RoI align to ``roi_size``, a two-layer box head of ``hidden`` (256)
    features, 300 proposals per image (train and test), 128 RoIs per image in training, the same
    inference thresholds, and no resizing or normalisation of the images (``min_size`` =
    ``max_size`` = ``image_size``; mean 0, std 1). Everything else is torchvision's default
    (anchor IoU 0.7 / 0.3, 256 anchors per image, ...). Train it with ``train_detector``.
    """
    check_positive_int(image_size, "image_size")
    from collections import OrderedDict

    from torchvision.models.detection import FasterRCNN as TorchvisionFasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    class _OneMap(nn.Module):
        def __init__(self, body: nn.Module) -> None:
            super().__init__()
            self.body, self.out_channels = body, body.out_channels

        def forward(self, images: Tensor) -> "OrderedDict[str, Tensor]":
            return OrderedDict([("0", self.body(images))])

    head, rpn = config.head, config.rpn
    anchors = AnchorGenerator(sizes=(tuple(rpn.anchor_sizes),), aspect_ratios=(tuple(rpn.aspect_ratios),))
    return TorchvisionFasterRCNN(
        _OneMap(backbone(head)), num_classes=None, min_size=image_size, max_size=image_size,
        image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
        rpn_anchor_generator=anchors, rpn_pre_nms_top_n_train=1000, rpn_pre_nms_top_n_test=600,
        rpn_post_nms_top_n_train=300, rpn_post_nms_top_n_test=300,
        box_roi_pool=MultiScaleRoIAlign(["0"], head.roi_size, head.sampling_ratio),
        box_head=TwoMLPHead(head.feature_channels * head.roi_size ** 2, head.hidden),
        box_predictor=FastRCNNPredictor(head.hidden, head.num_classes),
        box_batch_size_per_image=128, box_score_thresh=head.score_threshold, box_nms_thresh=head.nms_threshold,
        box_detections_per_img=head.detections_per_image)


#: The recipe's data: ``preset_dataset("scenes128", ...)`` train scenes, held-out test scenes,
#: training budget (process CPU seconds / threads) and threads.
SCENE_DATA = {"preset": "scenes128", "n_train": 3000, "n_test": 300, "seed": 0, "seconds": 360.0, "threads": 2}


def scene_items(split: str, n_images: int, seed: int, masks: bool = False) -> list:
    """The recipe's scenes as a list of ``(image, {"boxes", "labels"[, "masks"]})``, generated now."""
    from lecture_lib.data.shapes import preset_dataset

    data = preset_dataset(SCENE_DATA["preset"], n_images, seed=seed, split=split)
    scenes = [data.scene(i) for i in range(n_images)]
    return [(s.image, {"boxes": s.boxes, "labels": s.labels, **({"masks": s.instance_masks} if masks else {})})
            for s in scenes]


def train_on_scenes(model: nn.Module, seed: int, seconds: float, masks: bool = False) -> dict:
    """Train ``model`` in place on the recipe's training scenes (``SCENE_DATA``, generated before
    the clock starts) with ``train_detector`` for ``seconds`` on 2 threads, random left-right and
    up-down flips (the shapes have no "up"); returns the history as a dict."""
    from dataclasses import asdict

    from lecture_lib.train.detector import train_detector

    threads = torch.get_num_threads()
    torch.set_num_threads(SCENE_DATA["threads"])
    try:
        items = scene_items("train", SCENE_DATA["n_train"], SCENE_DATA["seed"], masks)  # before the clock
        history = train_detector(model, items, seconds=seconds, seed=seed, flips=("horizontal", "vertical"))
    finally:
        torch.set_num_threads(threads)
    return asdict(history)


def evaluate_on_scenes(model: nn.Module, n_images: int | None = None, masks: bool = False) -> dict:
    """``evaluate_detector`` on the recipe's test scenes (the first ``n_images`` when given)."""
    from lecture_lib.train.detector import evaluate_detector

    n = SCENE_DATA["n_test"] if n_images is None else min(n_images, SCENE_DATA["n_test"])
    scores = evaluate_detector(model, scene_items("test", n, SCENE_DATA["seed"], masks), masks=masks)
    return {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}


def faster_rcnn_recipe():
    """``lecture_lib.weights`` recipe "faster_rcnn_scenes": ``FasterRCNN(scene_config(128, 5))``
    trained by ``train_detector`` for 6 minutes on 3000 ``scenes128`` scenes, scored on 300 test
    scenes (headline: VOC mAP@0.5)."""
    from lecture_lib.weights import Recipe

    return Recipe(
        name="faster_rcnn_scenes",
        build=lambda: FasterRCNN(scene_config(128, 5)),
        train=lambda model, seed: train_on_scenes(model, seed, SCENE_DATA["seconds"]),
        evaluate=lambda model, n_images=None: evaluate_on_scenes(model, n_images),
        metric="voc_map_50",
        check_images=16,
        seed=0,
        description="Faster R-CNN (scene_config), scenes128, 6 CPU minutes (CPU s / 2 threads)",
    )

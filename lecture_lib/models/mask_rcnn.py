"""Mask R-CNN (He et al. 2017): Faster R-CNN plus a mask for every detected object.

**Instance segmentation** asks for one mask per *object* (two touching circles are two masks),
where semantic segmentation (chapter 05) labels pixels by class only. Mask R-CNN gets it by
adding a third branch to Faster R-CNN's RoI head (``faster_rcnn.py``):

* the **mask head** (:class:`MaskHead`) is a small fully convolutional network on each RoI's
  features: RoI *align* to 14 x 14, a few 3x3 convs, a 2x2 **transpose convolution** (stride 2,
  the learnable upsampling of chapter 05, ``lecture_lib.upsampling.conv_transpose2d``) to
  28 x 28, and a 1x1 conv to one mask logit per class and pixel;
* the **targets** (:func:`project_masks_on_boxes`): each positive RoI's ground-truth instance
  mask, cropped to the RoI's box and resized to 28 x 28 -- with RoI align again;
* the **loss** (:func:`mask_loss`): per-pixel binary cross-entropy on the mask of the RoI's
  *true* class only. The masks of the classes do not compete (no softmax over classes): the
  classification branch says *what*, the mask branch only *where* -- the paper's decoupling.
* at test time the mask of the *predicted* class of each detection is resized into its box
  (:func:`paste_masks_in_image`).

Pixel-accurate masks need features that are not shifted by RoI pooling's rounding, hence
RoIAlign (``lecture_lib.roi``). Every function gives the numbers of its namesake in
``torchvision.models.detection.roi_heads`` (checked in ``tests/test_mask_rcnn.py``).

Length: the mask targets, loss, pasting (two conventions) and the stored result's recipe are one
concept (what Mask R-CNN adds to Faster R-CNN); a little over the guide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.boxes import box_iou
from lecture_lib.checks import check_boxes, check_detection_inputs, check_masks, check_positive_int, check_positive_ints
from lecture_lib.metrics.detection import match_detections
from lecture_lib.metrics.masks import mask_iou
from lecture_lib.models.faster_rcnn import SCENE_DATA, FasterRCNN, FasterRCNNConfig, scene_config
from lecture_lib.models.roi_heads import detection_ops

__all__ = [
    "project_masks_on_boxes",
    "mask_loss",
    "paste_masks_in_image",
    "mask_iou",
    "matched_mask_ious",
    "instance_targets",
    "MaskHead",
    "MaskRCNNConfig",
    "MaskRCNN",
    "mask_scene_config",
    "mask_rcnn_recipe",
]


# --- training targets and loss -----------------------------------------------------------------

def project_masks_on_boxes(gt_masks: Tensor, boxes: Tensor, matched_idxs: Tensor, M: int,
                           ops: str = "lecture_lib", aligned: bool = False) -> Tensor:
    """The mask target of each RoI: its ground-truth mask cropped to the box, resized to M x M.

    The crop-and-resize is RoI align on the mask itself (``spatial_scale = 1``), so the target
    is the soft fraction of object inside each of the M x M bins (the loss uses it as is).

    Args:
        gt_masks (Tensor[G, H, W]): one image's instance masks (bool or float).
        boxes (Tensor[P, 4]): the RoIs, image coordinates (x1, y1, x2, y2).
        matched_idxs (Tensor[P] int64): index into ``gt_masks`` of each RoI's object.
        M: side of the target.
        ops: RoI align from ``"torchvision"`` or ``"lecture_lib"`` (``roi_heads.detection_ops``).
        aligned: RoI align's half-pixel correction. False (torchvision's Mask R-CNN) reads mask
            pixel ``c`` at coordinate ``c``, half a pixel off its centre ``c + 0.5``: a shift
            invisible on an 800-pixel photo, and a loss of mask IoU on a 20-pixel shape. True
            samples at the pixel centres (pair it with ``paste_masks_in_image(aligned=True)``).

    Returns:
        Tensor[P, M, M] float in [0, 1].
    """
    check_masks(gt_masks, "gt_masks")
    check_boxes(boxes, "boxes")
    check_positive_int(M, "M")
    if not isinstance(matched_idxs, Tensor) or matched_idxs.shape != (boxes.shape[0],):
        raise ValueError(f"matched_idxs must have shape [{boxes.shape[0]}], "
                         f"got {list(getattr(matched_idxs, 'shape', [type(matched_idxs).__name__]))}")
    if matched_idxs.numel() and (matched_idxs.min() < 0 or matched_idxs.max() >= gt_masks.shape[0]):
        raise ValueError(f"matched_idxs must be in [0, {gt_masks.shape[0] - 1}], got {matched_idxs.tolist()}")
    dtype = boxes.dtype if boxes.is_floating_point() else torch.float32
    # Each mask is an "image" of its own: the RoI row (matched index, box) picks which one to crop.
    rois = torch.cat([matched_idxs.to(dtype)[:, None], boxes.to(dtype)], dim=1)
    return detection_ops(ops).roi_align(gt_masks[:, None].to(dtype), rois, (M, M), 1.0, aligned=aligned)[:, 0]


def mask_loss(mask_logits: Tensor, proposals: list[Tensor], gt_masks: list[Tensor], gt_labels: list[Tensor],
              matched_idxs: list[Tensor], ops: str = "lecture_lib", aligned: bool = False) -> Tensor:
    """Mask R-CNN's mask loss: mean per-pixel binary cross-entropy on the true class's mask.

    Args:
        mask_logits (Tensor[P, C, M, M]): the mask head's output for the positive RoIs of the
            batch, image after image.
        proposals (list of Tensor[P_i, 4]): those RoIs, per image (sum P_i = P).
        gt_masks (list of Tensor[G_i, H, W]), gt_labels (list of Tensor[G_i] int64): per image.
        matched_idxs (list of Tensor[P_i] int64): each RoI's object.
        ops, aligned: the targets' RoI align (:func:`project_masks_on_boxes`).

    Returns:
        A scalar: ``binary_cross_entropy_with_logits`` averaged over the P x M x M pixels of the
        masks of the true classes; with no RoI, 0 that still has a graph (as torchvision).
    """
    if not isinstance(mask_logits, Tensor) or mask_logits.dim() != 4 or mask_logits.shape[-1] != mask_logits.shape[-2]:
        raise ValueError(f"mask_logits must have shape [P, C, M, M], got {list(getattr(mask_logits, 'shape', []))}")
    if not len(proposals) == len(gt_masks) == len(gt_labels) == len(matched_idxs):
        raise ValueError(f"proposals, gt_masks, gt_labels and matched_idxs must be lists of the same length "
                         f"(one entry per image), got {len(proposals)}, {len(gt_masks)}, {len(gt_labels)}, "
                         f"{len(matched_idxs)}")
    if sum(p.shape[0] for p in proposals) != mask_logits.shape[0]:
        raise ValueError(f"mask_logits has {mask_logits.shape[0]} masks but the proposals hold "
                         f"{sum(p.shape[0] for p in proposals)} boxes")
    m = mask_logits.shape[-1]
    labels = torch.cat([lab[i] for lab, i in zip(gt_labels, matched_idxs)]) if proposals else \
        torch.zeros(0, dtype=torch.int64)
    if labels.numel() == 0:  # no positive RoI: a zero that keeps the graph (backward still works)
        return mask_logits.sum() * 0
    targets = torch.cat([project_masks_on_boxes(g, p, i, m, ops, aligned)
                         for g, p, i in zip(gt_masks, proposals, matched_idxs)])
    # He et al. 2017: only the mask of the ground-truth class k contributes -- no competition
    # between classes, unlike the per-pixel softmax of FCN-style semantic segmentation.
    logits = mask_logits[torch.arange(labels.numel(), device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))


# --- inference ---------------------------------------------------------------------------------

def paste_masks_in_image(masks: Tensor, boxes: Tensor, image_size: tuple[int, int], padding: int = 1,
                         aligned: bool = False) -> Tensor:
    """Resize each M x M mask into its box and place it in an empty image.

    ``aligned=False``: the same steps (and numbers) as torchvision's ``paste_masks_in_image``: pad the mask with
    ``padding`` zero pixels and grow the box by the same factor (so that the bilinear resize
    fades to 0 at the box edge instead of stopping abruptly), round the box to whole pixels
    (truncation), resize with ``F.interpolate(mode="bilinear")`` to the box's size in the legacy
    Detectron convention of ``x2 - x1 + 1`` pixels, paste, cut at the image border.

    ``aligned=True``: the inverse of ``project_masks_on_boxes(aligned=True)``: every image pixel
    whose centre lies in the box reads the mask bilinearly at that centre (the M x M cells
    tile the box exactly; ``padding`` is not used); pixels outside the box are 0. A perfect
    28 x 28 mask pasted back this way keeps a mean IoU of 0.997 on the 128-pixel scenes, against
    0.92 with torchvision's rounding.

    Args:
        masks (Tensor[N, 1, M, M]): probabilities (or logits) per box.
        boxes (Tensor[N, 4]): the boxes in image coordinates.
        image_size: ``(height, width)``.
        padding: zero pixels added around each mask before resizing (``aligned=False``).
        aligned: see above.

    Returns:
        Tensor[N, 1, H, W] of the masks' dtype, zero outside each box.
    """
    if not isinstance(masks, Tensor) or masks.dim() != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks must have shape [N, 1, M, M], got {list(getattr(masks, 'shape', []))}")
    check_boxes(boxes, "boxes")
    if boxes.shape[0] != masks.shape[0]:
        raise ValueError(f"boxes must have one row per mask: shape [{masks.shape[0]}, 4], got {list(boxes.shape)}")
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    height, width = image_size
    if aligned:
        return _paste_aligned(masks, boxes, height, width)
    m = masks.shape[-1]
    masks = F.pad(masks, (padding,) * 4)
    scale = (m + 2 * padding) / m
    centre, half = (boxes[:, 2:] + boxes[:, :2]) * 0.5, (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale
    boxes = torch.cat([centre - half, centre + half], dim=1).to(torch.int64)
    out = masks.new_zeros(masks.shape[0], 1, height, width)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        resized = F.interpolate(masks[i:i + 1], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        resized = resized.clamp(masks[i].min(), masks[i].max())  # rounding must not push 1 to 1 + 1e-7
        xa, xb, ya, yb = max(x1, 0), min(x2 + 1, width), max(y1, 0), min(y2 + 1, height)
        if xa < xb and ya < yb:
            out[i, 0, ya:yb, xa:xb] = resized[ya - y1:yb - y1, xa - x1:xb - x1]
    return out


def _paste_aligned(masks: Tensor, boxes: Tensor, height: int, width: int) -> Tensor:
    """``paste_masks_in_image(aligned=True)``: bilinear samples of each mask at the pixel centres."""
    if masks.shape[0] == 0:
        return masks.new_zeros(0, 1, height, width)
    boxes = boxes.to(masks.dtype)
    xs = torch.arange(width, dtype=masks.dtype, device=masks.device) + 0.5
    ys = torch.arange(height, dtype=masks.dtype, device=masks.device) + 0.5
    size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
    # grid_sample's (-1, 1) spans the mask's outer edges (align_corners=False): box edge -> -1 / +1
    gx = 2 * (xs[None] - boxes[:, :1]) / size[:, :1] - 1  # [N, W]
    gy = 2 * (ys[None] - boxes[:, 1:2]) / size[:, 1:] - 1  # [N, H]
    grid = torch.stack([gx[:, None, :].expand(-1, height, -1), gy[:, :, None].expand(-1, -1, width)], dim=-1)
    pasted = F.grid_sample(masks, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # bilinear weights sum to 1 up to rounding: keep each mask within its own range (probabilities stay <= 1)
    pasted = torch.minimum(torch.maximum(pasted, masks.amin(dim=(2, 3), keepdim=True)),
                           masks.amax(dim=(2, 3), keepdim=True))
    inside = (gx.abs() <= 1)[:, None, :] & (gy.abs() <= 1)[:, :, None]  # pixel centres in the box
    return pasted * inside[:, None].to(pasted.dtype)


# --- evaluation --------------------------------------------------------------------------------

def matched_mask_ious(preds: list[dict], targets: list[dict], iou_threshold: float = 0.5,
                      score_threshold: float = 0.5, mask_threshold: float = 0.5) -> Tensor:
    """Mask IoU of every true-positive detection with the object it found.

    Per image and class, detections with score >= ``score_threshold`` are matched greedily to
    the ground truth by *box* IoU >= ``iou_threshold`` (``metrics.detection.match_detections``,
    COCO rule); for each match, the IoU of the predicted mask (probability >= ``mask_threshold``)
    with the true instance mask. Box mAP says *whether* objects are found, this how well their
    masks fit.

    Args:
        preds: per image ``{"boxes", "scores", "labels", "masks" [N, 1, H, W]}``.
        targets: per image ``{"boxes", "labels", "masks" [M, H, W]}``.

    Returns:
        Tensor[T] float32, one IoU per true positive (empty when none).
    """
    if not isinstance(preds, (list, tuple)) or not isinstance(targets, (list, tuple)) or len(preds) != len(targets):
        raise ValueError(f"preds and targets must be lists with one dict per image, got lengths "
                         f"{len(preds) if isinstance(preds, (list, tuple)) else type(preds).__name__} and "
                         f"{len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__}")
    for i, (pred, target) in enumerate(zip(preds, targets)):
        if "masks" not in pred or "masks" not in target:
            raise ValueError(f"preds[{i}] and targets[{i}] must both have 'masks'")
    ious = []
    for pred, target in zip(preds, targets):
        keep = pred["scores"] >= score_threshold
        for label in pred["labels"][keep].unique().tolist():
            det = torch.nonzero(keep & (pred["labels"] == label)).flatten()
            gt = torch.nonzero(target["labels"] == label).flatten()
            match = match_detections(pred["boxes"][det], pred["scores"][det], target["boxes"][gt], iou_threshold)
            for d, g in zip(det.tolist(), match.matched_gt.tolist()):
                if g >= 0:
                    ious.append(mask_iou(pred["masks"][d] >= mask_threshold, target["masks"][gt[g]][None].bool())[0, 0])
    return torch.stack(ious) if ious else torch.zeros(0)


def instance_targets(dataset, indices) -> tuple[Tensor, list[dict]]:
    """Images and instance-segmentation targets of ``ShapesDataset`` scenes, batched.

    Returns ``(images [B, 3, H, W], targets)`` with ``{"boxes", "labels", "masks" [N, H, W]
    bool}`` per image: the form :class:`MaskRCNN` (and torchvision's Mask R-CNN) expects.
    """
    scenes = [dataset.scene(int(i)) for i in indices]
    return (torch.stack([s.image for s in scenes]),
            [{"boxes": s.boxes, "labels": s.labels, "masks": s.instance_masks} for s in scenes])


# --- the modules -------------------------------------------------------------------------------

class MaskHead(nn.Module):
    """A small FCN per RoI: RoI align -> 3x3 convs -> 2x2 transpose conv -> 1x1 conv.

    The transpose convolution (stride 2) is the learnable upsampling of chapter 05: it doubles
    the ``roi_size x roi_size`` grid to ``2 roi_size`` (14 -> 28 as in the paper). Fully
    convolutional, so every mask pixel keeps its place relative to the RoI -- a fully connected
    layer would have to learn the layout (the paper's argument for an FCN mask head).

    ``forward(features [B, C, h, w], boxes: list of B Tensor[L_i, 4]) -> mask logits
    [sum L_i, num_classes, 2 roi_size, 2 roi_size]``.
    """

    def __init__(self, in_channels: int, num_classes: int, stride: int, roi_size: int = 14,
                 widths: tuple[int, ...] = (64, 64), sampling_ratio: int = 2, ops: str = "lecture_lib",
                 aligned: bool = False) -> None:
        super().__init__()
        for value, name in ((in_channels, "in_channels"), (num_classes, "num_classes"), (stride, "stride"),
                            (roi_size, "roi_size"), (sampling_ratio, "sampling_ratio")):
            check_positive_int(value, name)
        if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ValueError(f"widths must be positive ints, got {widths!r}")
        self.roi_align = detection_ops(ops).roi_align
        self.stride, self.roi_size, self.sampling_ratio, self.aligned = stride, roi_size, sampling_ratio, aligned
        layers: list[nn.Module] = []
        for width in widths:
            layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = width
        self.convs = nn.Sequential(*layers)
        self.upsample = nn.ConvTranspose2d(in_channels, in_channels, 2, stride=2)
        self.predictor = nn.Conv2d(in_channels, num_classes, 1)
        for module in self.modules():  # as torchvision's MaskRCNNHeads
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, features: Tensor, boxes: list[Tensor]) -> Tensor:
        x = self.roi_align(features, [b.to(features.dtype) for b in boxes], self.roi_size,
                           spatial_scale=1.0 / self.stride, sampling_ratio=self.sampling_ratio, aligned=self.aligned)
        x = F.relu(self.upsample(self.convs(x)))
        return self.predictor(x)


@dataclass
class MaskRCNNConfig(FasterRCNNConfig):
    """Faster R-CNN's settings (``head``, ``rpn``) plus the mask head's.

    Attributes:
        mask_roi_size: RoI align output of the mask head (the paper: 14); masks are twice that.
        mask_widths: channels of its 3x3 convs (the paper: four of 256).
        mask_sampling_ratio: bilinear samples per RoI-align bin and direction.
        mask_aligned: RoI align with the half-pixel correction for the mask head's features and
            targets, and pasting at pixel centres (``paste_masks_in_image(aligned=True)``).
            False gives torchvision's numbers; True fits small objects better.
    """

    mask_roi_size: int = 14
    mask_widths: tuple[int, ...] = (64, 64)
    mask_sampling_ratio: int = 2
    mask_aligned: bool = False

    def __post_init__(self) -> None:
        check_positive_int(self.mask_roi_size, "mask_roi_size")
        check_positive_int(self.mask_sampling_ratio, "mask_sampling_ratio")
        if not self.mask_widths or not all(isinstance(w, int) and w > 0 for w in self.mask_widths):
            raise ValueError(f"mask_widths must be a non-empty tuple of positive ints, got {self.mask_widths!r}")

    @property
    def mask_size(self) -> int:
        """Side of the predicted masks (after the stride-2 transpose conv)."""
        return 2 * self.mask_roi_size


def _check_mask_targets(images: Tensor, targets: list[dict] | None) -> None:
    """Every target must hold ``"masks"`` Tensor[N, H, W], one per box, of the image's size."""
    for i, t in enumerate(targets or []):
        if "masks" not in t:
            raise ValueError(f"targets[{i}] must have 'masks' (Tensor[N, H, W], one instance mask per box) "
                             f"to train Mask R-CNN, got keys {sorted(t)}")
        check_masks(t["masks"], f"targets[{i}]['masks']", t["boxes"].shape[0], tuple(images.shape[-2:]))


class MaskRCNN(FasterRCNN):
    """Faster R-CNN (backbone, RPN, box head: inherited) + :class:`MaskHead`, trained end to end.

    ``forward(images, targets=None)``: training mode returns Faster R-CNN's four losses plus
    ``"loss_mask"`` (targets need ``"masks"`` Tensor[N, H, W]); eval mode returns one
    ``{"boxes", "scores", "labels", "masks"}`` dict per image, ``masks`` Tensor[D, 1, H, W]
    float in [0, 1] (torchvision's format; threshold at 0.5 for binary masks).
    """

    def __init__(self, config: MaskRCNNConfig | None = None) -> None:
        config = config or MaskRCNNConfig()
        if not isinstance(config, MaskRCNNConfig):
            raise TypeError(f"config must be a MaskRCNNConfig, got {type(config).__name__}")
        super().__init__(config)
        c = config.head
        self.mask_head = MaskHead(c.feature_channels, c.num_classes, c.stride, config.mask_roi_size, config.mask_widths,
                                  config.mask_sampling_ratio, ops=c.ops, aligned=config.mask_aligned)

    def forward(self, images: Tensor, targets: list[dict] | None = None):
        check_detection_inputs(images, targets, self.config.head.num_classes, self.training)
        _check_mask_targets(images, targets)
        image_size = tuple(images.shape[-2:])
        features = self.backbone(images)
        proposals, rpn_losses = self.rpn(features, image_size, targets)
        if self.training:
            losses, rois, labels = self.roi_head.training_losses(features, proposals, targets)
            # The mask branch trains on the positive RoIs of the same sample, each with the object
            # it was labelled from (the best-IoU box, as in match_proposals).
            positives = [r[lab > 0] for r, lab in zip(rois, labels)]
            matched = [box_iou(t["boxes"].to(p.dtype), p).max(dim=0).indices if p.numel()
                       else torch.zeros(0, dtype=torch.int64, device=p.device) for p, t in zip(positives, targets)]
            mask_logits = self.mask_head(features, positives)
            loss = mask_loss(mask_logits, positives, [t["masks"] for t in targets], [t["labels"] for t in targets],
                             matched, ops=self.config.head.ops, aligned=self.config.mask_aligned)
            return {**rpn_losses, **losses, "loss_mask": loss}
        detections = self.roi_head(features, proposals, image_size)
        mask_logits = self.mask_head(features, [d["boxes"] for d in detections])
        labels = torch.cat([d["labels"] for d in detections])
        # the mask of each detection's predicted class (the classifier decides, the mask follows)
        probs = mask_logits[torch.arange(labels.numel(), device=labels.device), labels][:, None].sigmoid()
        for d, p in zip(detections, probs.split([len(d["boxes"]) for d in detections])):
            d["masks"] = paste_masks_in_image(p, d["boxes"], image_size, aligned=self.config.mask_aligned)
        return detections


# --- the chapter's recipe ------------------------------------------------------------------------

def mask_scene_config(image_size: int, num_classes: int) -> MaskRCNNConfig:
    """Mask R-CNN for the 128-pixel scenes: the Faster R-CNN of ``faster_rcnn.scene_config`` (same
    backbone, anchors, RoI align box head) plus a mask head of two 3x3 convolutions of 32
    channels on 14 x 14 RoI-aligned features (the paper: four of 256; the shapes need less, and
    the head runs on every positive RoI of the batch), and ``mask_aligned=True``: targets and
    pasting at pixel centres, so that a perfect 28 x 28 mask keeps its IoU on small objects.

    Args:
        image_size: side of the (square) images, >= 32.
        num_classes: classes including the background.
    """
    base = scene_config(image_size, num_classes)
    return MaskRCNNConfig(head=base.head, rpn=base.rpn, mask_roi_size=14, mask_widths=(32, 32),
                          mask_sampling_ratio=2, mask_aligned=True)


#: Mask R-CNN's training budget (process CPU seconds / threads): 8 minutes.
MASK_SCENE_SECONDS = 480.0


def mask_rcnn_recipe():
    """``lecture_lib.weights`` recipe "mask_rcnn_scenes": ``MaskRCNN(mask_scene_config(128, 5))``
    trained by ``train_detector`` for 8 minutes on the ``scenes128`` scenes of the Faster R-CNN
    recipe, scored on its 300 test scenes (headline: COCO mask mAP)."""
    from lecture_lib.models.faster_rcnn import evaluate_on_scenes, train_on_scenes
    from lecture_lib.weights import Recipe

    return Recipe(
        name="mask_rcnn_scenes",
        build=lambda: MaskRCNN(mask_scene_config(128, 5)),
        train=lambda model, seed: train_on_scenes(model, seed, MASK_SCENE_SECONDS, masks=True),
        evaluate=lambda model, n_images=None: evaluate_on_scenes(model, n_images, masks=True),
        metric="mask_map",
        check_images=16,
        seed=0,
        description="Mask R-CNN (mask_scene_config), scenes128, 8 CPU minutes (CPU s / 2 threads)",
    )

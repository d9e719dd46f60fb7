"""Classification + localization: one CNN, two heads (the lecture's "localization as regression").

A classifier answers *what*; adding a second head of 4 numbers answers *where*: the box
``(x1, y1, x2, y2)``, trained with an L2 loss next to the cross-entropy of the class head,
``loss = CE(class) + box_weight * L2(box)``. Two variants of the box head:

* **class-agnostic**: 4 outputs, one box whatever the class;
* **per-class**: ``4 x C`` outputs, one box per class; training uses the box of the *true*
  class (the others get no gradient), prediction the box of the *predicted* class.

With ``K`` objects per image one can ask for ``K`` (class, box) pairs (:class:`MultiObjectLocalizer`),
but the output size is fixed: it needs a "no object" class for empty slots and a rule saying
which object goes to which slot, and it can never report more than ``K`` objects -- the reason
detection needs another approach (sliding windows, proposals, anchors).

Boxes are fractions of the image size (see ``lecture_lib.data.localization``). Train with
``lecture_lib.train.fit(model, loader, forward_fn=localization_forward, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.boxes import box_iou
from lecture_lib.checks import check_positive_int as _check_positive_int, check_positive_ints

__all__ = [
    "LocalizationConfig",
    "Localizer",
    "MultiObjectConfig",
    "MultiObjectLocalizer",
    "select_class_boxes",
    "localization_loss",
    "localization_forward",
    "multi_object_loss",
    "multi_object_forward",
    "paired_iou",
    "evaluate_localization",
    "evaluate_multi_object",
    "HEADS",
]

HEADS = ("agnostic", "per_class")


@dataclass
class LocalizationConfig:
    """Size and head of a :class:`Localizer`.

    Attributes:
        num_classes: number of object classes ``C``.
        in_channels: image channels.
        widths: channels of the conv blocks (each halves the resolution).
        hidden: width of the shared fully connected layer.
        head: ``"agnostic"`` (4 box outputs) or ``"per_class"`` (4 x C box outputs).
        box_weight: weight of the L2 box loss next to the cross-entropy.
    """

    num_classes: int = 4
    in_channels: int = 3
    widths: tuple[int, ...] = (16, 32, 64)
    hidden: int = 128
    head: str = "agnostic"
    box_weight: float = 10.0

    def __post_init__(self) -> None:
        for name in ("num_classes", "in_channels", "hidden"):
            _check_positive_int(getattr(self, name), name)
        check_positive_ints(self.widths, "widths")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if not self.box_weight >= 0:
            raise ValueError(f"box_weight must be >= 0, got {self.box_weight!r}")


def _backbone(in_channels: int, widths: tuple[int, ...], hidden: int) -> nn.Sequential:
    """conv-BN-ReLU-maxpool blocks, a 4 x 4 average pool and one shared FC layer -> [N, hidden]."""
    layers: list[nn.Module] = []
    channels = in_channels
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = width
    # A 4 x 4 grid keeps *where* things are (a global average would throw that away).
    layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(channels * 16, hidden), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _check_images(images, in_channels: int) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != in_channels:
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape [N, {in_channels}, H, W], got {shape}")


def _channels_last(images: Tensor) -> Tensor:
    # The same images in NHWC memory order (the tensor's shape and values do not change): the
    # backbone's convolutions, BatchNorm and max pooling then run in channels-last format, about
    # 1.6x faster to train on a CPU (oneDNN's NHWC kernels; PyTorch's NCHW max pooling is slow).
    return images.contiguous(memory_format=torch.channels_last)


def select_class_boxes(boxes: Tensor, labels: Tensor) -> Tensor:
    """Pick each sample's box of class ``labels[i]`` from a per-class head.

    Args:
        boxes (Tensor[N, C, 4]): one box per class.
        labels (Tensor[N]): class index per sample.

    Returns:
        Tensor[N, 4]: ``boxes[i, labels[i]]``.
    """
    if boxes.dim() != 3 or boxes.shape[2] != 4:
        raise ValueError(f"boxes must have shape [N, C, 4], got {list(boxes.shape)}")
    if labels.shape != boxes.shape[:1]:
        raise ValueError(f"labels must have shape [{boxes.shape[0]}], got {list(labels.shape)}")
    return boxes[torch.arange(boxes.shape[0], device=boxes.device), labels]


class Localizer(nn.Module):
    """A small CNN with a classification head and an L2 box-regression head.

    ``forward(images [N, 3, H, W]) -> (class_logits [N, C], boxes)`` with ``boxes`` ``[N, 4]``
    (class-agnostic) or ``[N, C, 4]`` (per-class), as fractions of the image size.
    """

    def __init__(self, config: LocalizationConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or LocalizationConfig()
        self.features = _backbone(config.in_channels, config.widths, config.hidden)
        self.classifier = nn.Linear(config.hidden, config.num_classes)
        n_boxes = 1 if config.head == "agnostic" else config.num_classes
        self.box_regressor = nn.Linear(config.hidden, 4 * n_boxes)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        _check_images(images, self.config.in_channels)
        shared = self.features(_channels_last(images))
        boxes = self.box_regressor(shared)
        if self.config.head == "per_class":
            boxes = boxes.view(-1, self.config.num_classes, 4)
        return self.classifier(shared), boxes

    @torch.no_grad()
    def predict(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(labels [N], boxes [N, 4])``: the predicted class and *its* box."""
        class_logits, boxes = self(images)
        labels = class_logits.argmax(1)
        if boxes.dim() == 3:  # per-class head: the box of the class we predict
            boxes = select_class_boxes(boxes, labels)
        return labels, boxes


def localization_loss(class_logits: Tensor, boxes: Tensor, labels: Tensor, target_boxes: Tensor,
                      box_weight: float = 1.0) -> Tensor:
    """``cross_entropy(class_logits, labels) + box_weight * mse(box, target_boxes)``.

    Args:
        class_logits (Tensor[N, C]): class scores.
        boxes (Tensor[N, 4] or Tensor[N, C, 4]): predicted boxes; with a per-class head the box
            of the **true** class is used (the other classes' boxes get no gradient).
        labels (Tensor[N]): true classes.
        target_boxes (Tensor[N, 4]): true boxes.
        box_weight: weight of the L2 term (mean squared error over the 4 coordinates).

    Returns:
        Tensor[]: the scalar loss.
    """
    if boxes.dim() == 3:
        boxes = select_class_boxes(boxes, labels)
    if boxes.shape != target_boxes.shape:
        raise ValueError(f"boxes and target_boxes must have the same shape, got "
                         f"{list(boxes.shape)} and {list(target_boxes.shape)}")
    return F.cross_entropy(class_logits, labels) + box_weight * F.mse_loss(boxes, target_boxes)


def localization_forward(model: Localizer, batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``forward_fn`` for ``lecture_lib.train.fit`` on ``SingleObjectDataset`` batches.

    Returns ``(loss, images, labels, class_logits)``, so that fit's accuracy is the class accuracy.
    """
    images, target = batch
    class_logits, boxes = model(images)
    loss = localization_loss(class_logits, boxes, target["label"], target["box"], model.config.box_weight)
    return loss, images, target["label"], class_logits


def _ordered_corners(boxes: Tensor) -> Tensor:
    # A regressor may output x2 < x1; read it as the box spanned by the two corners.
    x = torch.sort(boxes[..., 0::2], dim=-1).values
    y = torch.sort(boxes[..., 1::2], dim=-1).values
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def paired_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of ``boxes1[i]`` with ``boxes2[i]`` (Tensor[N, 4] each) -> Tensor[N].

    Predicted corners are put in order first (a regressor can output x2 < x1).
    """
    if boxes1.shape != boxes2.shape or boxes1.dim() != 2 or boxes1.shape[1] != 4:
        raise ValueError(f"boxes1 and boxes2 must both have shape [N, 4], got "
                         f"{list(boxes1.shape)} and {list(boxes2.shape)}")
    # the diagonal of the [N, N] IoU matrix: fine for a batch, and reuses the tested box_iou
    return box_iou(_ordered_corners(boxes1), _ordered_corners(boxes2)).diagonal()


@torch.no_grad()
def evaluate_localization(model: Localizer, loader, device: torch.device | str | None = None) -> dict:
    """Classification accuracy and mean IoU of the predicted box with the true box.

    Returns:
        ``{"accuracy": float, "mean_iou": float, "iou": Tensor[N]}`` over the whole loader.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, ious = [], []
    try:
        for images, target in loader:
            labels, boxes = model.predict(images.to(device))
            correct.append(labels.cpu() == target["label"])
            ious.append(paired_iou(boxes.cpu().float(), target["box"].float()))
    finally:
        model.train(was_training)
    iou = torch.cat(ious)
    return {"accuracy": torch.cat(correct).float().mean().item(), "mean_iou": iou.mean().item(), "iou": iou}


# --- a fixed number K of objects ---------------------------------------------------------------


@dataclass
class MultiObjectConfig:
    """Size of a :class:`MultiObjectLocalizer`.

    Attributes:
        max_objects: ``K``, the fixed number of (class, box) slots.
        num_classes: classes per slot, **including** "no object" = 0.
        in_channels, widths, hidden, box_weight: as in :class:`LocalizationConfig`.
    """

    max_objects: int = 3
    num_classes: int = 5
    in_channels: int = 3
    widths: tuple[int, ...] = (16, 32, 64)
    hidden: int = 256
    box_weight: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_objects", "in_channels", "hidden"):
            _check_positive_int(getattr(self, name), name)
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2 (no object + classes), got {self.num_classes!r}")
        check_positive_ints(self.widths, "widths")
        if not self.box_weight >= 0:
            raise ValueError(f"box_weight must be >= 0, got {self.box_weight!r}")


class MultiObjectLocalizer(nn.Module):
    """``K`` (class, box) slots from one CNN: ``K x C`` class outputs and ``K x 4`` box outputs.

    ``forward(images) -> (class_logits [N, C, K], boxes [N, K, 4])``; classes on dim 1 so that
    ``F.cross_entropy`` and ``lecture_lib.train.accuracy`` take ``labels [N, K]`` directly.
    """

    def __init__(self, config: MultiObjectConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MultiObjectConfig()
        self.features = _backbone(config.in_channels, config.widths, config.hidden)
        self.classifier = nn.Linear(config.hidden, config.max_objects * config.num_classes)
        self.box_regressor = nn.Linear(config.hidden, config.max_objects * 4)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        _check_images(images, self.config.in_channels)
        shared = self.features(_channels_last(images))
        k, c = self.config.max_objects, self.config.num_classes
        class_logits = self.classifier(shared).view(-1, k, c).transpose(1, 2)
        return class_logits, self.box_regressor(shared).view(-1, k, 4)

    @torch.no_grad()
    def predict(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(labels [N, K], boxes [N, K, 4])``; label 0 means the slot holds no object."""
        class_logits, boxes = self(images)
        return class_logits.argmax(1), boxes


def multi_object_loss(class_logits: Tensor, boxes: Tensor, labels: Tensor, target_boxes: Tensor,
                      box_weight: float = 1.0) -> Tensor:
    """Cross-entropy over all ``K`` slots + ``box_weight`` x L2 over the slots holding an object.

    Args:
        class_logits (Tensor[N, C, K]), boxes (Tensor[N, K, 4]): model outputs.
        labels (Tensor[N, K]): 0 for an empty slot.
        target_boxes (Tensor[N, K, 4]): true boxes (ignored in empty slots).
    """
    if boxes.shape != target_boxes.shape:
        raise ValueError(f"boxes and target_boxes must have the same shape, got "
                         f"{list(boxes.shape)} and {list(target_boxes.shape)}")
    loss = F.cross_entropy(class_logits, labels)
    occupied = labels > 0
    if bool(occupied.any()):  # an empty slot has no box to regress to
        loss = loss + box_weight * F.mse_loss(boxes[occupied], target_boxes[occupied])
    return loss


def multi_object_forward(model: MultiObjectLocalizer, batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``forward_fn`` for ``fit`` on ``MultiObjectDataset`` batches: ``(loss, images, labels, class_logits)``."""
    images, target = batch
    class_logits, boxes = model(images)
    loss = multi_object_loss(class_logits, boxes, target["labels"], target["boxes"], model.config.box_weight)
    return loss, images, target["labels"], class_logits


@torch.no_grad()
def evaluate_multi_object(model: MultiObjectLocalizer, loader, device: torch.device | str | None = None) -> dict:
    """Slot accuracy, mean IoU over occupied slots, and how often the object count is right.

    Returns:
        ``{"slot_accuracy", "mean_iou", "count_accuracy"}`` (floats).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, ious, counts = [], [], []
    try:
        for images, target in loader:
            labels, boxes = model.predict(images.to(device))
            labels, boxes = labels.cpu(), boxes.cpu().float()
            correct.append((labels == target["labels"]).flatten())
            occupied = target["labels"] > 0
            ious.append(paired_iou(boxes[occupied], target["boxes"][occupied].float()))
            counts.append((labels > 0).sum(1) == occupied.sum(1))
    finally:
        model.train(was_training)
    return {
        "slot_accuracy": torch.cat(correct).float().mean().item(),
        "mean_iou": torch.cat(ious).mean().item(),
        "count_accuracy": torch.cat(counts).float().mean().item(),
    }

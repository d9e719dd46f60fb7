"""Overfeat (Sermanet et al. 2014): fully connected layers as convolutions, for sliding windows.

A classifier trained on ``window x window`` crops ends in fully connected (FC) layers. Running it
at every position of a larger image means cropping hundreds of overlapping windows and
recomputing the same convolutions on the overlaps. Overfeat's observation: an FC layer that
reads a ``C x f x f`` feature map *is* a convolution with a ``f x f`` kernel (its weight matrix
reshaped to ``[out, C, f, f]``), and the FC layers after it are ``1 x 1`` convolutions. The
converted network accepts any image size and, in one pass, outputs a **map** of class scores
(and boxes): the value at map cell ``(i, j)`` is what the FC network says about the window whose
top-left corner is ``(i * stride, j * stride)``, where ``stride`` is the product of the pooling
strides. The convolutions of overlapping windows are computed once.

The equality is exact (to float rounding) because every layer here is shift-equivariant: valid
(unpadded) convolutions, BatchNorm in eval mode (a per-channel affine map), ReLU and 2 x 2 max
pooling, with windows ``stride`` pixels apart.
Padding would break it: a padded convolution sees zeros at a window's border but image pixels
at the same place in the big image.

**Multi-scale inference** (Sermanet et al., section 4): one window size only fits objects of one
size, so Overfeat runs the convolutional network on the image at several scales (six in the
paper) and merges the boxes of all scales. :func:`multiscale_detections` does that: resize, one
pass per scale, boxes mapped back to the original image, then per-class NMS over all scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.checks import check_positive_int, check_positive_ints
from lecture_lib.nms import batched_nms

__all__ = ["OverfeatConfig", "OverfeatNet", "ConvOverfeat", "fc_to_conv", "sliding_windows",
           "window_boxes_to_image", "multiscale_detections"]


@dataclass
class OverfeatConfig:
    """Size of an :class:`OverfeatNet`.

    Attributes:
        num_classes: classes of the classification head.
        window: side of the square training crops (the classifier's input size).
        in_channels: image channels.
        widths: channels of the conv blocks; each block is a valid 3 x 3 conv, BatchNorm, ReLU
            and 2 x 2 max pooling, so the stride of the score map is ``2 ** len(widths)``.
        hidden: width of the FC layer that reads the last feature map.
        box_weight: weight of the L2 box loss when trained with
            ``lecture_lib.models.localization.localization_forward``.
    """

    num_classes: int = 4
    window: int = 32
    in_channels: int = 3
    widths: tuple[int, ...] = (16, 32, 64)
    hidden: int = 128
    box_weight: float = 10.0

    def __post_init__(self) -> None:
        for name in ("num_classes", "window", "in_channels", "hidden"):
            check_positive_int(getattr(self, name), name)
        check_positive_ints(self.widths, "widths")
        if self.feature_size < 1:
            raise ValueError(f"window {self.window} is too small for {len(self.widths)} conv blocks")

    @property
    def stride(self) -> int:
        """Pixels between two neighbouring windows (cells of the score map)."""
        return 2 ** len(self.widths)

    @property
    def feature_size(self) -> int:
        """Side ``f`` of the last feature map for one window."""
        size = self.window
        for _ in self.widths:
            size = (size - 2) // 2  # valid 3 x 3 conv, then 2 x 2 pooling (floor)
        return size


def _features(config: OverfeatConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = config.in_channels
    for width in config.widths:
        # No padding: padding makes a window's features differ from the big image's (see above).
        # BatchNorm trains faster; in eval mode it is a fixed per-channel affine map, which is
        # shift-equivariant too (compare the two networks in eval mode).
        layers += [nn.Conv2d(channels, width, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2)]
        channels = width
    return nn.Sequential(*layers)


class OverfeatNet(nn.Module):
    """The classifier as trained: conv features, then FC layers on the flattened map.

    ``forward(windows [N, 3, window, window]) -> (class_logits [N, C], boxes [N, 4])``, boxes as
    fractions of the window (Overfeat's regression head next to its classifier).
    """

    def __init__(self, config: OverfeatConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or OverfeatConfig()
        self.features = _features(config)
        self.fc = nn.Linear(config.widths[-1] * config.feature_size**2, config.hidden)
        self.classifier = nn.Linear(config.hidden, config.num_classes)
        self.box_regressor = nn.Linear(config.hidden, 4)

    def forward(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        w = self.config.window
        if windows.dim() != 4 or windows.shape[1:] != (self.config.in_channels, w, w):
            raise ValueError(f"windows must have shape [N, {self.config.in_channels}, {w}, {w}], "
                             f"got {list(windows.shape)}")
        hidden = torch.relu(self.fc(self.features(windows).flatten(1)))
        return self.classifier(hidden), self.box_regressor(hidden)

    @torch.no_grad()
    def predict(self, windows: Tensor) -> tuple[Tensor, Tensor]:
        """``(labels [N], boxes [N, 4])``, as ``Localizer.predict`` (so ``evaluate_localization`` works)."""
        class_logits, boxes = self(windows)
        return class_logits.argmax(1), boxes


class ConvOverfeat(nn.Module):
    """The same network with its FC layers as convolutions (build it with :func:`fc_to_conv`).

    ``forward(images [N, 3, H, W]) -> (class_map [N, C, H', W'], box_map [N, 4, H', W'])`` with
    ``H' = (H - window) // stride + 1``: cell ``(i, j)`` is the window at ``(i, j) * stride``.
    """

    def __init__(self, config: OverfeatConfig) -> None:
        super().__init__()
        self.config = config
        self.features = _features(config)
        f = config.feature_size
        self.fc = nn.Conv2d(config.widths[-1], config.hidden, kernel_size=f)  # reads one window's map
        self.classifier = nn.Conv2d(config.hidden, config.num_classes, kernel_size=1)
        self.box_regressor = nn.Conv2d(config.hidden, 4, kernel_size=1)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        c, w = self.config.in_channels, self.config.window
        if images.dim() != 4 or images.shape[1] != c or min(images.shape[-2:]) < w:
            raise ValueError(f"images must have shape [N, {c}, H, W] with H, W >= {w}, got {list(images.shape)}")
        hidden = torch.relu(self.fc(self.features(images)))
        return self.classifier(hidden), self.box_regressor(hidden)


def fc_to_conv(model: OverfeatNet) -> ConvOverfeat:
    """Copy a trained :class:`OverfeatNet` into a :class:`ConvOverfeat` with the same weights.

    The FC layer's weight ``[hidden, C * f * f]`` is reshaped to ``[hidden, C, f, f]`` (flatten
    order of ``[C, f, f]``: channel, row, column), the heads' ``[out, hidden]`` to
    ``[out, hidden, 1, 1]``; biases are unchanged.
    """
    if not isinstance(model, OverfeatNet):
        raise TypeError(f"model must be an OverfeatNet, got {type(model).__name__}")
    conv = ConvOverfeat(model.config).to(next(model.parameters()))
    conv.features.load_state_dict(model.features.state_dict())
    with torch.no_grad():
        for fc_layer, conv_layer in ((model.fc, conv.fc), (model.classifier, conv.classifier),
                                     (model.box_regressor, conv.box_regressor)):
            conv_layer.weight.copy_(fc_layer.weight.view_as(conv_layer.weight))
            conv_layer.bias.copy_(fc_layer.bias)
    return conv.train(model.training)


def sliding_windows(model: OverfeatNet, images: Tensor, stride: int | None = None) -> tuple[Tensor, Tensor]:
    """The explicit way: crop every window and run the FC network on each (the reference).

    Args:
        model: the classifier.
        images (Tensor[N, 3, H, W]): images at least one window large.
        stride: pixels between windows; default ``model.config.stride`` (what the
            convolutional version computes).

    Returns:
        ``(class_map [N, C, H', W'], box_map [N, 4, H', W'])`` laid out like
        :class:`ConvOverfeat`'s outputs, ``H' = (H - window) // stride + 1``.
    """
    w = model.config.window
    stride = model.config.stride if stride is None else stride
    if images.dim() != 4 or min(images.shape[-2:]) < w:
        raise ValueError(f"images must have shape [N, C, H, W] with H, W >= {w}, got {list(images.shape)}")
    n, c = images.shape[:2]
    # [N, C, H', W', w, w]: every window, then one batch of N * H' * W' crops
    crops = images.unfold(2, w, stride).unfold(3, w, stride)
    rows, cols = crops.shape[2:4]
    crops = crops.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, w, w)
    class_logits, boxes = model(crops)

    def as_map(t: Tensor) -> Tensor:
        return t.view(n, rows, cols, -1).permute(0, 3, 1, 2)

    return as_map(class_logits), as_map(boxes)


def window_boxes_to_image(box_map: Tensor, window: int, stride: int) -> Tensor:
    """Turn per-window boxes (fractions of the window) into image pixel coordinates.

    Args:
        box_map (Tensor[N, 4, H', W']): ``(x1, y1, x2, y2)`` of each window's box, as fractions.
        window, stride: the window side and the distance between windows, in pixels.

    Returns:
        Tensor[N, H', W', 4]: boxes in image pixels (the window at cell ``(i, j)`` starts at
        ``x = j * stride``, ``y = i * stride``).
    """
    n, four, rows, cols = box_map.shape
    if four != 4:
        raise ValueError(f"box_map must have shape [N, 4, H', W'], got {list(box_map.shape)}")
    ys = torch.arange(rows, dtype=box_map.dtype, device=box_map.device) * stride
    xs = torch.arange(cols, dtype=box_map.dtype, device=box_map.device) * stride
    offsets = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None], xs[None, :], ys[:, None]), -1)
    return box_map.permute(0, 2, 3, 1) * window + offsets


@torch.no_grad()
def multiscale_detections(model: ConvOverfeat, image: Tensor, scales: tuple[float, ...] = (1.0,),
                          nms_threshold: float = 0.3, max_detections: int = 100) -> dict:
    """Overfeat's multi-scale inference: one convolutional pass per scale, boxes of all scales merged.

    At scale ``s`` the image is resized to ``round(s * H) x round(s * W)`` (bilinear, with
    antialiasing when shrinking), so a window covers ``window / s`` pixels of the original image:
    scales below 1 find objects larger than those the classifier was trained on. Every window
    proposes its best class (softmax probability as the score) and its regressed box, mapped
    back to the original image; per-class NMS then merges overlapping boxes of all windows and
    scales. Scales whose resized image is smaller than one window are skipped.

    Args:
        model: the converted network (:func:`fc_to_conv`), in eval mode.
        image (Tensor[3, H, W]): one image.
        scales: resize factors (> 0).
        nms_threshold: IoU above which the weaker of two same-class boxes is removed.
        max_detections: kept, best first.

    Returns:
        ``{"boxes": Tensor[N, 4], "scores": Tensor[N], "labels": Tensor[N]}`` with labels
        ``1..C`` (the classifier's class ``k`` is label ``k + 1``: 0 stays free for background,
        as in the course's detectors and ``lecture_lib.metrics.detection``).
    """
    if not isinstance(model, ConvOverfeat):
        raise TypeError(f"model must be a ConvOverfeat (see fc_to_conv), got {type(model).__name__}")
    c = model.config.in_channels
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != c:
        shape = list(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a Tensor[{c}, H, W], got {shape}")
    if len(scales) == 0 or not all(isinstance(s, (int, float)) and s > 0 for s in scales):
        raise ValueError(f"scales must be positive numbers, got {scales!r}")
    height, width = image.shape[1:]
    boxes, scores, labels = [], [], []
    for scale in scales:
        size = (round(height * scale), round(width * scale))
        if min(size) < model.config.window:
            continue
        resized = image[None]
        if size != (height, width):
            resized = F.interpolate(resized, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
        class_map, box_map = model(resized)
        probabilities = class_map.softmax(1)[0].flatten(1)                     # [C, cells]
        best, label = probabilities.max(0)
        cell_boxes = window_boxes_to_image(box_map, model.config.window, model.config.stride)[0].reshape(-1, 4)
        cell_boxes = torch.cat([torch.minimum(cell_boxes[:, :2], cell_boxes[:, 2:]),   # a regressor may
                                torch.maximum(cell_boxes[:, :2], cell_boxes[:, 2:])], 1)  # swap corners
        scale_back = torch.tensor([width / size[1], height / size[0]] * 2, dtype=cell_boxes.dtype)
        boxes.append(cell_boxes * scale_back)
        scores.append(best)
        labels.append(label + 1)
    if not boxes:
        return {"boxes": image.new_zeros(0, 4), "scores": image.new_zeros(0),
                "labels": torch.zeros(0, dtype=torch.int64)}
    boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
    keep = batched_nms(boxes, scores, labels, nms_threshold)[:max_detections]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}

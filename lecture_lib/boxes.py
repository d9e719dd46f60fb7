"""Bounding boxes: area, IoU, format conversion, clipping.

Boxes are ``Tensor[N, 4]`` in ``(x1, y1, x2, y2)`` format with continuous coordinates (no "+1"
pixel convention), exactly as in ``torchvision.ops``; every function here returns what its
torchvision namesake returns, and the tests check that.

IoU (intersection over union, the Jaccard index) is the lecture's measure of how well a
predicted box matches a ground-truth box: area of overlap / area of union, 1 for identical
boxes and 0 for disjoint ones.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lecture_lib.checks import check_boxes as _check_boxes  # the one box check (also imported from here)

__all__ = ["box_area", "box_iou", "box_convert", "clip_boxes_to_image", "BOX_FORMATS"]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def _upcast(t: Tensor) -> Tensor:
    # Subtracting coordinates in float16 / uint8 overflows or loses precision (torchvision does
    # the same): compute in float32 / int32 or wider.
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box.

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format.

    Returns:
        Tensor[N]: ``(x2 - x1) * (y2 - y1)`` for every box.
    """
    _check_boxes(boxes)
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union.

    Args:
        boxes1 (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format.
        boxes2 (Tensor[M, 4]): boxes in (x1, y1, x2, y2) format.

    Returns:
        Tensor[N, M]: ``iou[i, j]`` is the IoU of ``boxes1[i]`` and ``boxes2[j]``
        (NaN for two boxes of zero area, as in torchvision).
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    return _pairwise_iou(_upcast(boxes1), _upcast(boxes2))


def _pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """``box_iou`` without the checks (``lecture_lib.nms`` calls it in its inner loop).

    The same operations in the same order as torchvision, so that the results agree to the last
    bit; each coordinate is a contiguous row, so every step is one pass over an ``[N, M]`` array.
    """
    x1, y1, x2, y2 = boxes1.T.contiguous()[:, :, None]  # each [N, 1]
    X1, Y1, X2, Y2 = boxes2.T.contiguous()  # each [M]
    area1 = (x2 - x1) * (y2 - y1)
    area2 = (X2 - X1) * (Y2 - Y1)
    # The intersection of two axis-aligned boxes is the box between the larger top-left
    # corner and the smaller bottom-right corner; empty (width or height 0) if they miss.
    width = torch.minimum(x2, X2).sub_(torch.maximum(x1, X1)).clamp_(min=0)  # [N, M]
    height = torch.minimum(y2, Y2).sub_(torch.maximum(y1, Y1)).clamp_(min=0)
    intersection = width.mul_(height)
    union = (area1 + area2).sub_(intersection)
    return intersection / union


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between ``"xyxy"``, ``"xywh"`` (top-left corner, size) and ``"cxcywh"``
    (centre, size).

    Args:
        boxes (Tensor[N, 4]): boxes in ``in_fmt``.
        in_fmt, out_fmt: one of ``"xyxy"``, ``"xywh"``, ``"cxcywh"``.

    Returns:
        Tensor[N, 4]: the same boxes in ``out_fmt``.
    """
    for arg, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in BOX_FORMATS:
            raise ValueError(f"{arg} must be one of {BOX_FORMATS}, got {fmt!r}")
    _check_boxes(boxes, xyxy=False)
    if in_fmt == out_fmt:
        return boxes.clone()
    # Go through xyxy, as torchvision does, so results agree to the last bit.
    if in_fmt == "xywh":
        x, y, w, h = boxes.unbind(-1)
        boxes = torch.stack([x, y, x + w, y + h], dim=-1)
    elif in_fmt == "cxcywh":
        cx, cy, w, h = boxes.unbind(-1)
        boxes = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
    if out_fmt == "xywh":
        x1, y1, x2, y2 = boxes.unbind(-1)
        boxes = torch.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)
    elif out_fmt == "cxcywh":
        x1, y1, x2, y2 = boxes.unbind(-1)
        boxes = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
    return boxes


def clip_boxes_to_image(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip boxes so that they lie inside an image of ``size = (height, width)``.

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format.
        size: ``(height, width)`` of the image.

    Returns:
        Tensor[N, 4]: x clamped to ``[0, width]``, y clamped to ``[0, height]``.
    """
    _check_boxes(boxes, xyxy=False)
    if not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    height, width = size
    if height < 0 or width < 0:
        raise ValueError(f"size must be non-negative (height, width), got {tuple(size)}")
    x = boxes[:, 0::2].clamp(min=0, max=width)
    y = boxes[:, 1::2].clamp(min=0, max=height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=-1)


# --- box regression targets (R-CNN parameterisation) ------------------------------------------
#
# Girshick et al. 2014 (R-CNN, appendix C) regress a box relative to a proposal P rather than in
# pixels: the centre offset in units of the proposal's size, and the log of the size ratio,
#     dx = (Gx - Px) / Pw,   dy = (Gy - Py) / Ph,   dw = log(Gw / Pw),   dh = log(Gh / Ph).
# The targets are then independent of the proposal's position and scale, which is what lets one
# regressor serve every proposal (and every anchor in Faster R-CNN). Fast/Faster R-CNN multiply
# the four targets by ``weights`` (e.g. (10, 10, 5, 5)) to give them roughly unit variance.

__all__ += ["encode_boxes", "decode_boxes", "BBOX_XFORM_CLIP"]

#: Largest dw, dh that decode_boxes feeds to exp(): a box may grow at most 1000/16 = 62.5 times
#: its proposal (Detectron / torchvision), so a wild prediction cannot overflow to inf.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _check_weights(weights) -> tuple[float, float, float, float]:
    if not isinstance(weights, (tuple, list)) or len(weights) != 4:
        raise ValueError(f"weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in weights):
        raise ValueError(f"weights must be positive numbers, got {tuple(weights)}")
    return tuple(float(w) for w in weights)


def _check_box_pair(first: Tensor, second: Tensor, first_name: str, second_name: str) -> None:
    if not first.is_floating_point():
        raise TypeError(f"{first_name} must be a floating point tensor, got dtype {first.dtype}")
    if first.shape[0] != second.shape[0]:
        raise ValueError(
            f"{first_name} and {second_name} must have the same number of rows, "
            f"got {first.shape[0]} and {second.shape[0]}"
        )


def _check_positive_size(boxes: Tensor, name: str) -> None:
    bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{name} must have positive width and height, got {boxes[i].tolist()} at row {i}")


def encode_boxes(reference_boxes: Tensor, proposals: Tensor,
                 weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Regression targets that turn each proposal into its reference (ground-truth) box.

    Args:
        reference_boxes (Tensor[N, 4]): target boxes G in (x1, y1, x2, y2) format.
        proposals (Tensor[N, 4]): boxes P (proposals or anchors) the targets are relative to;
            row i of ``proposals`` is paired with row i of ``reference_boxes``.
        weights: ``(wx, wy, ww, wh)`` multiplying the four targets.

    Returns:
        Tensor[N, 4]: ``(wx (Gx-Px)/Pw, wy (Gy-Py)/Ph, ww log(Gw/Pw), wh log(Gh/Ph))`` with centres
        (x, y) and sizes (w, h); equal to torchvision's ``BoxCoder(weights).encode_single``.
    """
    wx, wy, ww, wh = _check_weights(weights)
    _check_boxes(reference_boxes, "reference_boxes")
    _check_boxes(proposals, "proposals")
    _check_box_pair(reference_boxes, proposals, "reference_boxes", "proposals")
    _check_box_pair(proposals, reference_boxes, "proposals", "reference_boxes")
    _check_positive_size(proposals, "proposals")  # we divide by their width and height
    _check_positive_size(reference_boxes, "reference_boxes")  # log(0) would be -inf
    # Same operations in the same order as torchvision, so the results agree to the last bit.
    weight = torch.as_tensor((wx, wy, ww, wh), dtype=reference_boxes.dtype, device=reference_boxes.device)
    p_widths = proposals[:, 2] - proposals[:, 0]
    p_heights = proposals[:, 3] - proposals[:, 1]
    p_ctr_x = proposals[:, 0] + 0.5 * p_widths
    p_ctr_y = proposals[:, 1] + 0.5 * p_heights
    g_widths = reference_boxes[:, 2] - reference_boxes[:, 0]
    g_heights = reference_boxes[:, 3] - reference_boxes[:, 1]
    g_ctr_x = reference_boxes[:, 0] + 0.5 * g_widths
    g_ctr_y = reference_boxes[:, 1] + 0.5 * g_heights
    dx = weight[0] * (g_ctr_x - p_ctr_x) / p_widths
    dy = weight[1] * (g_ctr_y - p_ctr_y) / p_heights
    dw = weight[2] * torch.log(g_widths / p_widths)
    dh = weight[3] * torch.log(g_heights / p_heights)
    return torch.stack((dx, dy, dw, dh), dim=1)


def decode_boxes(deltas: Tensor, proposals: Tensor,
                 weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Apply regression outputs to proposals: the inverse of :func:`encode_boxes`.

    Args:
        deltas (Tensor[N, 4]): ``(dx, dy, dw, dh)`` per proposal, as produced by a box regressor.
        proposals (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format the deltas are relative to.
        weights: the ``(wx, wy, ww, wh)`` the deltas were encoded with.

    Returns:
        Tensor[N, 4]: decoded boxes in (x1, y1, x2, y2) format, in the dtype of ``deltas``.
        ``dw`` and ``dh`` are clamped at ``BBOX_XFORM_CLIP = log(1000 / 16)`` before ``exp``;
        equal to torchvision's ``BoxCoder(weights).decode_single``.
    """
    wx, wy, ww, wh = _check_weights(weights)
    if not isinstance(deltas, Tensor):
        raise TypeError(f"deltas must be a torch.Tensor of shape [N, 4], got {type(deltas).__name__}")
    if deltas.dim() != 2 or deltas.shape[-1] != 4:
        raise ValueError(f"deltas must have shape [N, 4], got {list(deltas.shape)}")
    _check_boxes(proposals, "proposals")
    _check_box_pair(deltas, proposals, "deltas", "proposals")
    proposals = proposals.to(deltas.dtype)
    widths = proposals[:, 2] - proposals[:, 0]
    heights = proposals[:, 3] - proposals[:, 1]
    ctr_x = proposals[:, 0] + 0.5 * widths
    ctr_y = proposals[:, 1] + 0.5 * heights
    dx = deltas[:, 0] / wx
    dy = deltas[:, 1] / wy
    # An untrained regressor can output dw = 50; exp(50) * w would overflow float32 to inf.
    dw = torch.clamp(deltas[:, 2] / ww, max=BBOX_XFORM_CLIP)
    dh = torch.clamp(deltas[:, 3] / wh, max=BBOX_XFORM_CLIP)
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    half_w = 0.5 * (torch.exp(dw) * widths)
    half_h = 0.5 * (torch.exp(dh) * heights)
    return torch.stack(
        (pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=1
    )

"""Non-maximum suppression: keep the best box, drop its duplicates, repeat.

A detector fires many overlapping boxes on one object (neighbouring sliding windows, anchors,
proposals). Greedy NMS is the standard answer, the one of the whole R-CNN family (Girshick et al.
2014, section 2.2: "a greedy non-maximum suppression ... that rejects a region if it has an
intersection-over-union (IoU) overlap with a higher scoring selected region larger than a learned
threshold"):

1. sort the boxes by score, highest first;
2. take the best remaining box and keep it;
3. discard every remaining box whose IoU with it is **greater than** ``iou_threshold``;
4. repeat from 2 until no box is left.

Two versions, proven equal in ``tests/test_nms.py``:

* :func:`nms_loop` is the four steps above, one kept box per Python iteration;
* :func:`nms` does the same in blocks of ``BLOCK`` boxes: it resolves a block among itself on a
  small ``[BLOCK, BLOCK]`` IoU matrix, then removes everything the block's kept boxes suppress
  from the rest with one ``[kept, rest]`` IoU matrix. Suppressed boxes drop out of the working
  set at once, so, like torchvision's kernel, it never computes the IoU of a box that is gone.

Both return exactly what ``torchvision.ops.nms`` returns on the CPU, in the same order, score
ties included: like torchvision's kernel they sort the scores with a *stable* descending sort (of
equal scores, the earlier box wins) and decide as its comparison of the float IoU with the
threshold in float64 does. Like that kernel, :func:`nms` runs on one CPU thread.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from lecture_lib._single_thread import one_cpu_thread
from lecture_lib.boxes import _check_boxes, box_iou

__all__ = ["nms", "nms_loop", "batched_nms", "BLOCK"]

#: Boxes :func:`nms` resolves per step: larger blocks mean fewer (Python-level) steps, smaller
#: ones less work on boxes that an earlier box of the block already removed (on the 2 000 boxes
#: of ``benchmarks/bench_ops.py``, 128 was the best of 64 / 128 / 256).
BLOCK = 128


def _check_nms_inputs(boxes, scores, iou_threshold) -> None:
    """Raise a clear error unless boxes (Tensor[N, 4]), scores (Tensor[N]) and the threshold fit."""
    _check_boxes(boxes)
    if not boxes.is_floating_point():
        raise TypeError(f"boxes must be a floating point tensor, got dtype {boxes.dtype}")
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores must be a torch.Tensor of shape [N], got {type(scores).__name__}")
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores must have shape [N] = [{boxes.shape[0]}] like boxes, got {list(scores.shape)}")
    if scores.dtype != boxes.dtype:
        raise TypeError(f"scores must have the same dtype as boxes ({boxes.dtype}), got {scores.dtype}")
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"iou_threshold must be a number, got {type(iou_threshold).__name__}")
    if math.isnan(iou_threshold) or not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")


def nms_loop(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression, one kept box at a time (the readable version of :func:`nms`).

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format, float32 or float64.
        scores (Tensor[N]): score of each box (same dtype as ``boxes``).
        iou_threshold (float): a box is discarded when its IoU with a kept, higher-scoring box
            is **greater than** this value.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, in decreasing order of score
        (== ``torchvision.ops.nms``, ties included).
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    # Ties: torchvision's kernel (0.29) sorts with stable=True, so of two equal scores the box
    # that comes first in the input is visited first. The default torch.sort is not stable: for
    # more than 16 equal scores it reorders them, and a different box of a tie would be kept.
    order = torch.sort(scores, dim=0, descending=True, stable=True).indices
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        # IoU of the kept box with every box; compared in float64 because the kernel compares
        # its float IoU with the double threshold (0.1f > 0.1 is true, float32(0.1) > 0.1f is not).
        iou = box_iou(boxes[i : i + 1], boxes)[0]
        suppressed |= iou.to(torch.float64) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def _threshold_in(dtype: torch.dtype, iou_threshold: float) -> float:
    """The largest number of ``dtype`` that is <= ``iou_threshold``.

    For an IoU ``v`` stored in ``dtype``, ``v > result`` (compared in ``dtype``) is exactly
    ``v > iou_threshold`` compared in float64, as torchvision's kernel does, without converting
    a whole IoU matrix to float64: no number of ``dtype`` lies between the two thresholds.
    """
    threshold = torch.tensor(iou_threshold, dtype=dtype)
    if float(threshold) > iou_threshold:  # rounded up: step down to the number below
        threshold = torch.nextafter(threshold, torch.tensor(-math.inf, dtype=dtype))
    return float(threshold)


def _greedy_pass(suppresses: Tensor) -> Tensor:
    """Greedy NMS on a precomputed suppression matrix.

    Args:
        suppresses (Tensor[B, B] bool): ``suppresses[i, j]``: box i, if kept, removes box j;
            only ``j > i`` may be set (boxes in decreasing order of score).

    Returns:
        Tensor[B] bool: which boxes are kept.
    """
    # A sequential scan over at most BLOCK rows, on the CPU (torchvision's CUDA kernel scans
    # its bit mask on the CPU too); only a box that overlaps a later one can remove anything.
    rows = suppresses.cpu().numpy()
    removed = np.zeros(len(rows), dtype=bool)
    for i in np.flatnonzero(rows.any(axis=1)):
        if not removed[i]:
            removed |= rows[i]
    return torch.from_numpy(~removed).to(suppresses.device)


def _overlap_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box of ``a`` with every box of ``b`` where they overlap, <= 0 where they miss.

    Args:
        a (Tensor[5, K]), b (Tensor[5, M]): one row each for x1, y1, x2, y2 and the area.

    Returns:
        Tensor[K, M]: the IoU, bit for bit as torchvision's kernel computes it, for every pair
        that overlaps; 0, a negative number or NaN (two boxes of zero area) for the others,
        which no threshold in [0, 1] lets suppress anything, as an IoU of 0 would not.
    """
    x1, y1, x2, y2, area = a[:, :, None].unbind(0)  # each [K, 1]
    X1, Y1, X2, Y2, AREA = b.unbind(0)  # each [M]
    width = torch.minimum(x2, X2).sub_(torch.maximum(x1, X1)).clamp_(min=0)
    # No clamp here: a negative height makes the intersection <= 0, which is all we need.
    intersection = width.mul_(torch.minimum(y2, Y2).sub_(torch.maximum(y1, Y1)))
    return intersection.div_((area + AREA).sub_(intersection))


@one_cpu_thread
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression, ``BLOCK`` boxes at a time (vectorized :func:`nms_loop`).

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format, float32 or float64.
        scores (Tensor[N]): score of each box (same dtype as ``boxes``).
        iou_threshold (float): a box is discarded when its IoU with a kept, higher-scoring box
            is **greater than** this value.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, in decreasing order of score
        (== ``torchvision.ops.nms`` and :func:`nms_loop`, ties included).
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    order = torch.sort(scores, dim=0, descending=True, stable=True).indices  # stable: as nms_loop
    ranked = boxes[order]
    if ranked.dtype not in (torch.float32, torch.float64):  # float16: IoU in float32, as box_iou
        ranked = ranked.float()
    threshold = _threshold_in(ranked.dtype, iou_threshold)
    # The boxes still in the game, best first (none is suppressed by a box kept so far), as
    # rows x1, y1, x2, y2, area: each step then reads contiguous rows.
    candidates = order
    alive = torch.cat([ranked.T, ((ranked[:, 2] - ranked[:, 0]) * (ranked[:, 3] - ranked[:, 1]))[None]])
    keep = []
    while len(candidates):
        block, rest = alive[:, :BLOCK], alive[:, BLOCK:]
        # 1. The block among itself: box i can only remove a later box j > i of the block.
        kept = _greedy_pass((_overlap_iou(block, block) > threshold).triu_(diagonal=1))
        keep.append(candidates[:BLOCK][kept])
        # 2. A box of the rest survives if no kept box of the block overlaps it too much: if the
        # largest IoU with them is not above the threshold (NaN only for boxes of zero area).
        survivors = torch.where(~(_overlap_iou(block[:, kept], rest).amax(dim=0) > threshold))[0]
        candidates, alive = candidates[BLOCK:][survivors], rest[:, survivors]
    if not keep:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    return torch.cat(keep)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS applied separately to each category: boxes of different ``idxs`` never suppress
    each other.

    Up to 1 000 boxes on the CPU (25 000 on a GPU: torchvision's switch points), the coordinate
    trick of torchvision: shift the boxes of category ``c`` by ``c * (max_coordinate + 1)`` so that
    boxes of different categories cannot overlap, then run one :func:`nms` over all of them.
    Above that, one :func:`nms` per category is faster (each IoU matrix only spans a category).

    Args:
        boxes (Tensor[N, 4]): boxes in (x1, y1, x2, y2) format.
        scores (Tensor[N]): score of each box.
        idxs (Tensor[N]): integer category (or image) index of each box.
        iou_threshold (float): as in :func:`nms`.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, in decreasing order of score
        (== ``torchvision.ops.batched_nms``, which takes the same two routes; of equal scores in
        different categories, the per-category route returns them in ``torch.sort``'s order).
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    if not isinstance(idxs, Tensor):
        raise TypeError(f"idxs must be a torch.Tensor of shape [N], got {type(idxs).__name__}")
    if idxs.dim() != 1 or idxs.shape[0] != boxes.shape[0]:
        raise ValueError(f"idxs must have shape [N] = [{boxes.shape[0]}] like boxes, got {list(idxs.shape)}")
    if idxs.is_floating_point() or idxs.is_complex() or idxs.dtype == torch.bool:
        raise TypeError(f"idxs must hold integer category indices, got dtype {idxs.dtype}")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if boxes.numel() > (4000 if boxes.device.type == "cpu" else 100_000):
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for category in torch.unique(idxs):
            members = torch.where(idxs == category)[0]
            keep_mask[members[nms(boxes[members], scores[members], iou_threshold)]] = True
        kept = torch.where(keep_mask)[0]
        return kept[scores[kept].sort(descending=True).indices]  # torchvision's (unstable) sort
    # torchvision's offset max + 1 separates the categories only when no coordinate is below 0
    # (its documented precondition). IoU does not change under translation, so move such boxes
    # into the positive quadrant first instead of silently merging categories.
    lowest = boxes.min()
    if lowest < 0:
        boxes = boxes - lowest
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)

"""Matching ranked detections to ground truth: the one matcher behind box AP, mask AP and the
step-by-step teaching version.

A detector's output is judged per *group*: one image and one class. Inside a group the
detections are ranked by score and go one after the other; each may claim one ground-truth
object it overlaps enough (IoU threshold). Two rules are in use:

- ``"coco"`` (pycocotools' ``evaluateImg``): a detection takes the *still free* object with the
  highest IoU >= t, ties going to the later object; ordinary objects come before *ignored* ones
  (crowd regions, "difficult" objects, objects outside the area range under evaluation), so a
  detection lands on an ignored object only when no ordinary one is left for it. A crowd region
  is never used up: it can absorb any number of detections.
- ``"voc"`` (the PASCAL VOC devkit's ``voc_eval``): a detection looks only at the object with
  the highest IoU (the first on ties), taken or not. IoU > t: a true positive if the object is
  still free, a duplicate (false positive) if not; an ignored object absorbs any number.

Everything here works on IoU values of (detection, object) *pairs* inside groups, so boxes and
masks, one image or fifty thousand, go through the same code: ``match_ranked`` returns, for
every ignore setting (area range) and IoU threshold, which object each detection took.

How it stays fast: a detection without any pair at the lowest threshold cannot take anything;
and when every detection of a group has at most one object to choose from, the greedy loop
reduces to "the first detection (by rank) that reaches an object takes it", one vectorized
step for all groups and thresholds. Only groups where some detection has a choice run the
loop over ranks, and then all of them together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["RULES", "MAX_IOU", "Matches", "pairs_in_groups", "match_ranked"]

RULES = ("coco", "voc")
MAX_IOU = 1 - 1e-10  # pycocotools: iou = min([t, 1 - 1e-10]), so an IoU of 1 matches at t = 1
_NONE = -1
_SHORTCUT = True  # resolve groups without choices in one step (tests turn it off to compare)


@dataclass
class Matches:
    """What ``match_ranked`` found, for the detections that reach some object at the lowest
    threshold (every other detection matched nothing anywhere).

    ``det`` (Tensor[C] int64): those detections, in increasing order.
    ``hit`` (Tensor[A, T, C] bool): took an object, per ignore setting ``a`` and threshold ``t``.
    ``on_ignored`` (Tensor[A, T, C] bool): the object it took is ignored in setting ``a``.
    ``gt`` (Tensor[A, T, C] int64, built when asked for): the object taken, -1 when none.
    """

    det: Tensor
    hit: Tensor
    on_ignored: Tensor
    single: Tensor  # Tensor[C]: the one object a detection could take, -1 when it had a choice
    chosen: Tensor  # Tensor[A, T, B]: the objects taken by the B detections that had a choice

    @property
    def gt(self) -> Tensor:
        gt = torch.where(self.hit, self.single, torch.tensor(_NONE))
        choice = self.single < 0
        if bool(choice.any()):
            gt[:, :, choice] = self.chosen
        return gt


def pairs_in_groups(det_group: Tensor, gt_group: Tensor) -> tuple[Tensor, Tensor]:
    """Every (detection, object) pair that shares a group.

    Args:
        det_group (Tensor[D] int64 >= 0): group of each detection, in any order.
        gt_group (Tensor[G] int64 >= 0): group of each object, non-decreasing.

    Returns:
        (pair_det, pair_gt), Tensor[P] int64 each: the pairs sorted by detection, then object.
    """
    if len(det_group) == 0 or len(gt_group) == 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    num_groups = int(max(det_group.max(), gt_group.max())) + 1
    size = torch.bincount(gt_group, minlength=num_groups)
    count = size[det_group]
    start = (torch.cumsum(size, 0) - size)[det_group]
    pair_det = torch.repeat_interleave(torch.arange(len(det_group)), count)
    first = torch.repeat_interleave(start - (torch.cumsum(count, 0) - count), count)
    pair_gt = first + torch.arange(len(pair_det))
    return pair_det, pair_gt


def _iou_bits(iou: Tensor) -> Tensor:
    """IoUs (>= 0) as int64 bit patterns: for non-negative doubles the integer order is the
    float order, so comparisons are exact and a flag can be packed above them (bit 62)."""
    return (iou.to(torch.float64) + 0.0).view(torch.int64)  # + 0.0 turns -0.0 into +0.0


def match_ranked(pair_det: Tensor, pair_gt: Tensor, pair_iou: Tensor, det_group: Tensor, gt_group: Tensor,
                 gt_ignore: Tensor, gt_crowd: Tensor, iou_thresholds, rule: str = "coco") -> Matches:
    """Greedy matching of ranked detections to objects, for all groups, ignore settings and
    thresholds at once.

    Args:
        pair_det, pair_gt (Tensor[P] int64): the (detection, object) pairs inside groups, sorted
            by detection then object (``pairs_in_groups``). Inside a group, a detection with a
            lower number has the higher rank (score). Objects are numbered by group and, inside
            it, in annotation order (which decides ties).
        pair_iou (Tensor[P] float64): IoU of each pair, in [0, 1].
        det_group (Tensor[D]), gt_group (Tensor[G]): group of each detection / object.
        gt_ignore (Tensor[A, G] bool): ignored objects, one row per setting (COCO: one per area
            range; crowd regions are ignored in every row).
        gt_crowd (Tensor[G] bool): crowd regions (never used up).
        iou_thresholds (array-like[T]): the IoU thresholds.
        rule: "coco" (IoU >= t, best free object) or "voc" (IoU > t, best object).

    Returns:
        Matches: per detection that can match at all, the object taken per setting and threshold.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    thresholds = torch.as_tensor(np.asarray(iou_thresholds, dtype=np.float64))
    num_settings, num_t = gt_ignore.shape[0], len(thresholds)
    if rule == "coco":
        thresholds = thresholds.clamp(max=MAX_IOU)
    bits = _iou_bits(pair_iou)
    thr_bits = _iou_bits(thresholds)
    lowest = thr_bits.min() if num_t else torch.tensor(np.iinfo(np.int64).max)
    if rule == "voc":
        # The devkit looks at one object per detection: the highest IoU, the first on ties.
        best = torch.full((len(det_group),), _NONE, dtype=torch.int64)
        best.scatter_reduce_(0, pair_det, bits, "amax", include_self=True)
        on_best = bits == best[pair_det]
        first = torch.full((len(det_group),), len(pair_det), dtype=torch.int64)
        first.scatter_reduce_(0, pair_det[on_best], torch.arange(len(pair_det))[on_best], "amin")
        keep = first[first < len(pair_det)]
        keep = keep[bits[keep] > lowest]
        det, obj, hit = _first_claim(pair_det[keep], pair_gt[keep], bits[keep], gt_ignore, gt_crowd, thr_bits, rule)
        return Matches(det, hit, hit & gt_ignore[:, obj][:, None], obj, torch.zeros(num_settings, num_t, 0,
                                                                                    dtype=torch.long))
    keep = bits >= lowest
    pair_det, pair_gt, bits = pair_det[keep], pair_gt[keep], bits[keep]
    # A group is "simple" when none of its detections has two objects to choose from.
    choices = torch.bincount(pair_det, minlength=len(det_group))
    busy_groups = torch.unique(det_group[choices > 1] if _SHORTCUT else det_group)
    busy = torch.isin(det_group[pair_det], busy_groups)
    det_s, obj_s, hit_s = _first_claim(pair_det[~busy], pair_gt[~busy], bits[~busy], gt_ignore, gt_crowd, thr_bits,
                                       rule)  # hit_s: [1, T, Cs], the same in every setting
    det_b, chosen = _greedy(pair_det[busy], pair_gt[busy], bits[busy], det_group, gt_group, gt_ignore, gt_crowd,
                            thr_bits)
    if len(det_b) == 0:
        return Matches(det_s, hit_s.expand(num_settings, -1, -1), hit_s & gt_ignore[:, obj_s][:, None], obj_s, chosen)
    det, order = torch.sort(torch.cat([det_s, det_b]))
    where = torch.empty_like(order)
    where[order] = torch.arange(len(order))
    simple_at, busy_at = where[:len(det_s)], where[len(det_s):]
    single = torch.full((len(det),), _NONE, dtype=torch.int64)
    single[simple_at] = obj_s
    hit = torch.empty(num_settings, num_t, len(det), dtype=torch.bool)
    hit[:, :, simple_at] = hit_s
    hit[:, :, busy_at] = chosen >= 0
    on_ignored = torch.empty_like(hit)
    on_ignored[:, :, simple_at] = hit_s & gt_ignore[:, obj_s][:, None]
    on_ignored[:, :, busy_at] = (chosen >= 0) & gt_ignore.gather(1, chosen.clamp(min=0).reshape(num_settings, -1)
                                                                 ).view(chosen.shape)
    return Matches(det, hit, on_ignored, single, chosen)


def _first_claim(pair_det, pair_gt, bits, gt_ignore, gt_crowd, thr_bits, rule) -> tuple[Tensor, Tensor, Tensor]:
    """Matching when each detection has (at most) one object to go for: at every threshold, the
    first detection by rank that reaches an object takes it; later ones find it taken, unless it
    is never used up (a crowd region; for "voc" any ignored object).

    The pairs hold one pair per detection, sorted by detection. Returns (detections, their
    object, took it: Tensor[1 or A, T, C] bool).
    """
    key = pair_gt * (int(pair_det.max()) + 1 if len(pair_det) else 1) + pair_det  # distinct: one pair a detection
    by_gt = torch.from_numpy(np.argsort(key.numpy()))
    gts, b = pair_gt[by_gt], bits[by_gt]
    reach = b[None] >= thr_bits[:, None] if rule == "coco" else b[None] > thr_bits[:, None]  # [T, C]
    # the first reaching detection of each object: the running count of reaching ones is 1
    running = torch.cumsum(reach, 1)
    segment_start = torch.searchsorted(gts, gts, side="left")
    before = running[:, segment_start] - reach[:, segment_start].to(running.dtype)
    first = reach & (running - before == 1)
    if rule == "coco":
        took = (reach & (first | gt_crowd[gts]))[None]  # [1, T, C]: the same for every setting
    else:
        took = reach[None] & (first[None] | gt_ignore[:, gts][:, None])  # [A, T, C]
    back = torch.empty_like(by_gt)
    back[by_gt] = torch.arange(len(by_gt))
    return pair_det, pair_gt, took[:, :, back]


def _greedy(pair_det, pair_gt, bits, det_group, gt_group, gt_ignore, gt_crowd, thr_bits) -> tuple[Tensor, Tensor]:
    """pycocotools' loop, all busy groups, settings and thresholds at once: rank after rank,
    each detection takes the free object with the highest IoU >= t (the later one on ties),
    ordinary objects before ignored ones.

    Only pairs with IoU >= the lowest threshold come in (the others never count). Returns (the
    detections, the object each took: Tensor[A, T, B] int64, -1 for none).
    """
    num_settings, num_t = gt_ignore.shape[0], len(thr_bits)
    if len(pair_det) == 0:
        return pair_det, torch.zeros(num_settings, num_t, 0, dtype=torch.long)
    dets = torch.unique_consecutive(pair_det)
    d_group = det_group[dets]
    by_group = torch.argsort(d_group, stable=True)  # a group's detections need not be adjacent
    sorted_group = d_group[by_group]
    d_rank = torch.empty_like(by_group)
    d_rank[by_group] = torch.arange(len(dets)) - torch.searchsorted(sorted_group, sorted_group, side="left")
    objects = torch.unique(pair_gt)
    o_group = gt_group[objects]
    o_pos = torch.arange(len(objects)) - torch.searchsorted(o_group, o_group, side="left")
    o_count = torch.searchsorted(o_group, o_group, side="right") - torch.searchsorted(o_group, o_group, side="left")
    # Objects in reverse order inside a group: torch's max returns the first maximum, which is
    # then pycocotools' last.
    o_col = o_count - 1 - o_pos
    groups, g_slot = torch.unique(d_group, return_inverse=True)
    depth = torch.bincount(g_slot)
    # groups with the most detections first: at rank r only a prefix of the groups is active
    by_depth = torch.argsort(depth, descending=True, stable=True)
    slot_of = torch.empty_like(by_depth)
    slot_of[by_depth] = torch.arange(len(by_depth))
    g_slot, depth = slot_of[g_slot], depth[by_depth]
    o_slot = slot_of[torch.searchsorted(groups, o_group)]
    n, max_depth, width = len(groups), int(depth[0]), int(o_count.max())
    d_index = torch.searchsorted(dets, pair_det)
    o_index = torch.searchsorted(objects, pair_gt)
    pair_bits = torch.full((n, max_depth, width), _NONE, dtype=torch.int64)
    pair_bits[g_slot[d_index], d_rank[d_index], o_col[o_index]] = bits
    gt_at = torch.full((n, width), _NONE, dtype=torch.int64)
    gt_at[o_slot, o_col] = objects
    regular = torch.zeros(num_settings, n, width, dtype=torch.bool)
    regular[:, o_slot, o_col] = ~gt_ignore[:, objects]
    crowd = torch.zeros(n, width, dtype=torch.bool)
    crowd[o_slot, o_col] = gt_crowd[objects]
    det_at = torch.full((n, max_depth), _NONE, dtype=torch.int64)
    det_at[g_slot, d_rank] = torch.arange(len(dets))
    taken = torch.zeros(num_settings, num_t, n, width + 1, dtype=torch.bool)  # +1: a bin for "none"
    out = torch.full((num_settings, num_t, len(dets)), _NONE, dtype=torch.int64)
    thr = thr_bits[None, :, None, None]
    flag = regular.long() << 62  # ordinary objects rank above ignored ones whatever their IoU
    for r in range(max_depth):
        m = int((depth > r).sum())
        row = pair_bits[:m, r]  # [m, width]
        key = torch.where(row >= 0, row | flag[:, :m], torch.tensor(_NONE))  # [A, m, width]
        reach = (row >= thr) & ~taken[:, :, :m, :width]  # [A, T, m, width]
        best, col = torch.where(reach, key[:, None], torch.tensor(_NONE)).max(-1)  # first maximum
        found = best >= 0
        slots = torch.arange(m)
        use_up = found & ~crowd[slots, col]
        taken[:, :, :m].scatter_(3, torch.where(use_up, col, width)[..., None], True)
        out[:, :, det_at[:m, r]] = torch.where(found, gt_at[slots, col], torch.tensor(_NONE))
    return dets, out

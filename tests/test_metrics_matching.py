"""lecture_lib.metrics.matching: the one matcher, against pycocotools' evaluateImg loop and the VOC
devkit's rule transcribed as loops, on random IoU matrices full of ties and exact thresholds."""

import numpy as np
import pytest
import torch

import lecture_lib.metrics.matching as matching
from lecture_lib.metrics.detection import COCO_IOU_THRESHOLDS
from lecture_lib.metrics.matching import MAX_IOU, match_ranked, pairs_in_groups


def coco_loop(ious, ignore, crowd, threshold):
    """pycocotools COCOeval.evaluateImg for one image, class and threshold (its loop, verbatim in
    spirit): objects sorted with ignored ones last (mergesort), detections in rank order.
    Returns the object (original index) each detection took, -1 for none."""
    gtind = np.argsort(ignore, kind="mergesort")
    gt_ig, iscrowd = ignore[gtind], crowd[gtind]
    gtm = np.zeros(len(gtind))
    out = np.full(len(ious), -1)
    for dind in range(len(ious)):
        iou, m = min([threshold, 1 - 1e-10]), -1
        for gind in range(len(gtind)):
            if gtm[gind] > 0 and not iscrowd[gind]:
                continue
            if m > -1 and gt_ig[m] == 0 and gt_ig[gind] == 1:
                break
            if ious[dind, gtind[gind]] < iou:
                continue
            iou, m = ious[dind, gtind[gind]], gind
        if m == -1:
            continue
        gtm[m] = dind + 1
        out[dind] = gtind[m]
    return out


def voc_loop(ious, ignore, threshold):
    """The VOC devkit (voc_eval): the highest-IoU object (first on ties), IoU > t; an ignored
    ("difficult") object absorbs any number of detections, another one only the first."""
    taken = np.zeros(ious.shape[1], dtype=bool)
    out = np.full(len(ious), -1)
    for d in range(len(ious)):
        if ious.shape[1] == 0:
            continue
        g = int(np.argmax(ious[d]))
        if ious[d, g] > threshold:
            if ignore[g]:
                out[d] = g
            elif not taken[g]:
                taken[g] = True
                out[d] = g
    return out


def random_groups(rng, num_groups, num_settings):
    """Groups of random sizes with IoUs from a few values (ties, values on the thresholds), the
    detections of the groups interleaved in the numbering (as in class order)."""
    values = np.array([0.0, 0.3, 0.5, 0.55, 0.7, 0.75, 0.8, 0.95, 1.0])
    groups = []
    for _ in range(num_groups):
        d, g = int(rng.integers(0, 7)), int(rng.integers(0, 5))
        ious = values[rng.integers(0, len(values), (d, g))] if rng.random() < 0.5 else rng.random((d, g))
        crowd = rng.random(g) < 0.2
        ignore = (rng.random((num_settings, g)) < 0.3) | crowd
        groups.append((ious, ignore, crowd))
    # number the detections: shuffle the groups' detections, keeping each group's rank order
    owner = np.concatenate([np.full(len(ious), k) for k, (ious, _, _) in enumerate(groups)]).astype(np.int64)
    owner = owner[rng.permutation(len(owner))]
    det_index = {k: np.nonzero(owner == k)[0] for k in range(num_groups)}
    gt_start = np.cumsum([0] + [len(c) for _, _, c in groups])
    gt_group = np.concatenate([np.full(len(c), k) for k, (_, _, c) in enumerate(groups)]).astype(np.int64)
    pair_det, pair_gt, pair_iou = [], [], []
    for k, (ious, _, _) in enumerate(groups):
        for r, d in enumerate(det_index[k]):
            for j in range(ious.shape[1]):
                pair_det.append(d)
                pair_gt.append(gt_start[k] + j)
                pair_iou.append(ious[r, j])
    order = np.lexsort((pair_gt, pair_det))
    tensors = dict(
        pair_det=torch.tensor(np.array(pair_det, dtype=np.int64)[order]),
        pair_gt=torch.tensor(np.array(pair_gt, dtype=np.int64)[order]),
        pair_iou=torch.tensor(np.array(pair_iou, dtype=np.float64)[order]),
        det_group=torch.tensor(owner), gt_group=torch.tensor(gt_group),
        gt_ignore=torch.tensor(np.concatenate([i for _, i, _ in groups], 1) if groups else np.zeros((num_settings, 0),
                               dtype=bool)),
        gt_crowd=torch.tensor(np.concatenate([c for _, _, c in groups]).astype(bool)))
    return groups, det_index, gt_start, tensors


def taken_per_detection(result, num_det, num_settings, num_t):
    full = torch.full((num_settings, num_t, num_det), -1, dtype=torch.long)
    full[:, :, result.det] = result.gt
    return full


@pytest.mark.parametrize("shortcut", [True, False])
@pytest.mark.parametrize("seed", range(30))
def test_coco_rule_equals_pycocotools_loop(seed, shortcut, monkeypatch):
    monkeypatch.setattr(matching, "_SHORTCUT", shortcut)
    rng = np.random.default_rng(seed)
    groups, det_index, gt_start, t = random_groups(rng, num_groups=8, num_settings=3)
    result = match_ranked(t["pair_det"], t["pair_gt"], t["pair_iou"], t["det_group"], t["gt_group"],
                          t["gt_ignore"], t["gt_crowd"], COCO_IOU_THRESHOLDS, "coco")
    full = taken_per_detection(result, len(t["det_group"]), 3, len(COCO_IOU_THRESHOLDS))
    for k, (ious, ignore, crowd) in enumerate(groups):
        for a in range(3):
            for ti, threshold in enumerate(COCO_IOU_THRESHOLDS):
                expected = coco_loop(ious, ignore[a], crowd, threshold)
                got = full[a, ti, det_index[k]].numpy()
                np.testing.assert_array_equal(np.where(got >= 0, got - gt_start[k], -1), expected)


@pytest.mark.parametrize("seed", range(30))
def test_voc_rule_equals_devkit_loop(seed):
    rng = np.random.default_rng(100 + seed)
    groups, det_index, gt_start, t = random_groups(rng, num_groups=8, num_settings=2)
    thresholds = [0.3, 0.5, 0.75]
    result = match_ranked(t["pair_det"], t["pair_gt"], t["pair_iou"], t["det_group"], t["gt_group"],
                          t["gt_ignore"], t["gt_crowd"], thresholds, "voc")
    full = taken_per_detection(result, len(t["det_group"]), 2, len(thresholds))
    for k, (ious, ignore, _) in enumerate(groups):
        for a in range(2):
            for ti, threshold in enumerate(thresholds):
                got = full[a, ti, det_index[k]].numpy()
                np.testing.assert_array_equal(np.where(got >= 0, got - gt_start[k], -1),
                                              voc_loop(ious, ignore[a], threshold))


def test_iou_of_one_matches_at_threshold_one_for_coco_only():
    args = (torch.tensor([0]), torch.tensor([0]), torch.tensor([1.0], dtype=torch.float64), torch.tensor([0]),
            torch.tensor([0]), torch.zeros(1, 1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool), [1.0])
    assert match_ranked(*args, "coco").gt.tolist() == [[[0]]]  # pycocotools: min(t, 1 - 1e-10)
    assert match_ranked(*args, "voc").det.numel() == 0  # IoU > 1 never holds: nothing to match
    assert MAX_IOU == 1 - 1e-10


def test_pairs_in_groups():
    det_group = torch.tensor([2, 0, 2, 5, 1])
    gt_group = torch.tensor([0, 0, 2, 3, 5, 5, 5])
    pair_det, pair_gt = pairs_in_groups(det_group, gt_group)
    expected = [(d, g) for d in range(5) for g in range(7) if det_group[d] == gt_group[g]]
    assert list(zip(pair_det.tolist(), pair_gt.tolist())) == expected
    empty = pairs_in_groups(det_group, torch.zeros(0, dtype=torch.long))
    assert empty[0].shape == (0,) and empty[1].shape == (0,)


def test_bad_rule_raises():
    with pytest.raises(ValueError, match=r"rule must be one of \('coco', 'voc'\), got 'voc07'"):
        match_ranked(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0),
                     torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                     torch.zeros(1, 0, dtype=torch.bool), torch.zeros(0, dtype=torch.bool), [0.5], "voc07")

"""lecture_lib.metrics.masks against pycocotools (COCOeval with iouType="segm", mask.iou), the box
mAP of metrics.detection on rectangle masks, and a hand-computed case."""

import functools
import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

import lecture_lib.metrics.reference as coco_reference_module
from lecture_lib.metrics.reference import rle
from lecture_lib.metrics.detection import mean_average_precision
from lecture_lib.metrics.masks import _pixel_iou, mask_iou, mask_mean_average_precision

TOLERANCE = 1e-12  # pycocotools averages all (threshold, recall, class) entries at once, we per class

# --- the reference ------------------------------------------------------------------------------


coco_eval = functools.partial(coco_reference_module.coco_eval, iou_type="segm")
coco_reference = functools.partial(coco_reference_module.coco_reference, iou_type="segm")
coco_statistics = functools.partial(coco_reference_module.coco_statistics, iou_type="segm")


# --- random cases ---------------------------------------------------------------------------------


def blob(rng, height, width):
    """A random object: a filled rectangle or ellipse, some of its border pixels flipped."""
    y, x = np.mgrid[:height, :width]
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    ry, rx = rng.uniform(1, height / 2), rng.uniform(1, width / 2)
    if rng.random() < 0.5:
        mask = (np.abs(y + 0.5 - cy) <= ry) & (np.abs(x + 0.5 - cx) <= rx)
    else:
        mask = ((y + 0.5 - cy) / ry) ** 2 + ((x + 0.5 - cx) / rx) ** 2 <= 1
    return mask ^ (rng.random(mask.shape) < 0.05)


def jitter(rng, mask):
    """A prediction near ``mask``: as is, shifted by a pixel, or with a few pixels flipped."""
    kind = rng.random()
    if kind < 0.3:
        return mask.copy()
    if kind < 0.6:
        return np.roll(mask, (int(rng.integers(-1, 2)), int(rng.integers(-1, 2))), axis=(0, 1))
    return mask ^ (rng.random(mask.shape) < rng.choice([0.02, 0.05, 0.1]))


def random_case(rng, num_images=6, num_classes=3, difficult=False, max_dets=12, probabilities=None, crowd=False,
                given_area=False, big=False):
    """Objects and detections on small images: near copies, duplicates, empty masks, ties in score,
    images without objects or without detections, classes seen only in the detections.
    ``crowd``: some objects are crowd regions; ``given_area``: some carry an annotated area;
    ``big``: images up to 160 pixels wide, so that objects fall in all of COCO's size ranges."""
    preds, targets = [], []
    for _ in range(num_images):
        low, high = (40, 160) if big else (6, 16)
        height, width = int(rng.integers(low, high)), int(rng.integers(low, high))
        m = int(rng.integers(0, 6))
        gt = [blob(rng, height, width) for _ in range(m)]
        gt_labels = rng.integers(0, num_classes, m)
        n = int(rng.integers(0, max_dets + 1))
        masks, labels = [], []
        for _ in range(n):
            kind = rng.random()
            if m and kind < 0.55:  # a near copy of an object
                g = int(rng.integers(0, m))
                mask = jitter(rng, gt[g])
                label = gt_labels[g] if rng.random() < 0.85 else rng.integers(0, num_classes + 1)
            elif masks and kind < 0.65:  # an exact duplicate of an earlier detection
                k = int(rng.integers(0, len(masks)))
                mask, label = masks[k].copy(), labels[k]
            elif kind < 0.7:  # an empty mask
                mask, label = np.zeros((height, width), dtype=bool), rng.integers(0, num_classes)
            else:  # somewhere else; class num_classes has no ground truth
                mask, label = blob(rng, height, width), rng.integers(0, num_classes + 1)
            masks.append(mask)
            labels.append(int(label))
        # few distinct scores so that ties are common
        scores = rng.integers(0, 6, n) / 5.0 if rng.random() < 0.5 else rng.random(n)
        masks = torch.tensor(np.array(masks, dtype=bool).reshape(n, height, width))
        as_probabilities = rng.random() < 0.5 if probabilities is None else probabilities
        if as_probabilities:  # MaskRCNN's format: [N, 1, H, W] float probabilities
            noise = torch.tensor(rng.uniform(0, 0.5, (n, height, width)), dtype=torch.float32)
            noise[torch.tensor(rng.random((n, height, width)) < 0.03)] = 0.5  # exactly 0.5: background
            masks = torch.where(masks, 1 - noise, noise)[:, None]
        preds.append({"masks": masks, "scores": torch.tensor(scores), "labels": torch.tensor(labels, dtype=torch.long)})
        target = {"masks": torch.tensor(np.array(gt, dtype=bool).reshape(m, height, width)),
                  "labels": torch.tensor(gt_labels, dtype=torch.long)}
        if difficult:
            target["difficult"] = torch.tensor(rng.random(m) < 0.25, dtype=torch.bool)
        if crowd:
            target["iscrowd"] = torch.tensor(rng.random(m) < 0.3)
        if given_area:
            area = target["masks"].flatten(1).sum(1).double() * torch.tensor(rng.uniform(0.5, 3.0, m))
            area[torch.tensor(rng.random(m) < 0.3)] = float("nan")
            target["area"] = area
        targets.append(target)
    return preds, targets


def assert_coco_equal(preds, targets, max_det=100):
    ours = mask_mean_average_precision(preds, targets, max_detections=max_det)
    ref = coco_reference(preds, targets, max_det)
    got = (ours["map"], ours["map_50"], ours["map_75"])
    assert got == pytest.approx(ref, abs=TOLERANCE, rel=0), (got, ref)
    return max(abs(a - b) for a, b in zip(got, ref))


@pytest.mark.parametrize("seed", range(60))
def test_coco_equals_pycocotools_random(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_case(rng, num_classes=1 + seed % 4)
    assert_coco_equal(preds, targets)


@pytest.mark.parametrize("seed", range(15))
def test_coco_equals_pycocotools_ignored_ground_truth(seed):
    # "difficult" objects are pycocotools ignore regions (here: area outside the "all" range)
    rng = np.random.default_rng(2000 + seed)
    preds, targets = random_case(rng, difficult=True)
    assert_coco_equal(preds, targets)


@pytest.mark.parametrize("max_det", [1, 3, 7])
@pytest.mark.parametrize("seed", range(4))
def test_coco_equals_pycocotools_max_detections(seed, max_det):
    # pycocotools keeps the top maxDets per image *and category*
    rng = np.random.default_rng(3000 + seed)
    preds, targets = random_case(rng, max_dets=20, num_classes=2)
    assert_coco_equal(preds, targets, max_det=max_det)


def rectangles(rng, count, height, width):
    """Integer-aligned rectangles (as masks and as boxes): IoUs like 1/2, 3/5, 9/10 land on thresholds."""
    xy = rng.integers(0, [width - 1, height - 1], (count, 2))
    wh = rng.integers(0, 5, (count, 2))  # zero width or height: an empty mask
    boxes = np.concatenate([xy, np.minimum(xy + wh, [width, height])], 1)
    masks = np.zeros((count, height, width), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = True
    return torch.tensor(masks), torch.tensor(boxes, dtype=torch.float64)


def rectangle_case(rng, num_images=5, difficult=False):
    preds, targets, box_preds, box_targets = [], [], [], []
    for _ in range(num_images):
        m, n = int(rng.integers(0, 5)), int(rng.integers(0, 10))
        gt_masks, gt_boxes = rectangles(rng, m, 10, 12)
        gt_labels = torch.tensor(rng.integers(0, 2, m))
        masks, boxes = rectangles(rng, n, 10, 12)
        if m:  # near the objects, so that there are matches
            pick = rng.integers(0, m, n)
            shift = torch.tensor(rng.integers(-1, 2, (n, 4)), dtype=torch.float64)
            boxes = (gt_boxes[pick] + shift).clamp(0, 12).clamp(max=torch.tensor([12.0, 10.0, 12.0, 10.0]))
            boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2])
            masks = torch.zeros(n, 10, 12, dtype=torch.bool)
            for k, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                masks[k, y1:y2, x1:x2] = True
        scores = torch.tensor(rng.integers(0, 4, n) / 3.0)
        labels = torch.tensor(rng.integers(0, 2, n))
        preds.append({"masks": masks, "scores": scores, "labels": labels})
        box_preds.append({"boxes": boxes, "scores": scores, "labels": labels})
        target, box_target = {"masks": gt_masks, "labels": gt_labels}, {"boxes": gt_boxes, "labels": gt_labels}
        if difficult:
            target["difficult"] = box_target["difficult"] = torch.tensor(rng.random(m) < 0.3)
        targets.append(target)
        box_targets.append(box_target)
    return preds, targets, box_preds, box_targets


@pytest.mark.parametrize("seed", range(15))
def test_coco_equals_pycocotools_iou_on_thresholds(seed):
    rng = np.random.default_rng(4000 + seed)
    preds, targets, _, _ = rectangle_case(rng, difficult=seed % 3 == 0)
    assert_coco_equal(preds, targets)


@pytest.mark.parametrize("method", ["coco", "voc", "voc07"])
@pytest.mark.parametrize("seed", range(8))
def test_rectangle_masks_give_the_box_map(seed, method):
    # For integer-aligned rectangles mask IoU == box IoU (the same integers divided), so mask mAP
    # must equal metrics.detection's box mAP (itself equal to pycocotools / the VOC devkit).
    rng = np.random.default_rng(5000 + seed)
    preds, targets, box_preds, box_targets = rectangle_case(rng, difficult=seed % 2 == 0)
    ours = mask_mean_average_precision(preds, targets, method=method)
    boxes = mean_average_precision(box_preds, box_targets, method=method)
    assert ours["map"] == pytest.approx(boxes["map"], abs=TOLERANCE)
    assert ours["map_per_class"] == pytest.approx(boxes["map_per_class"], abs=TOLERANCE)


def test_custom_thresholds_and_per_class_equal_pycocotools():
    rng = np.random.default_rng(5)
    preds, targets = random_case(rng, num_images=8)
    thresholds = [0.1, 0.5, 0.6, 0.75, 0.9]
    ours = mask_mean_average_precision(preds, targets, iou_thresholds=thresholds)
    ev = coco_eval(preds, targets, iou_thresholds=thresholds)
    s = ev.eval["precision"][:, :, :, 0, -1]
    assert ours["map"] == pytest.approx(float(np.mean(s[s > -1])), abs=TOLERANCE)
    assert ours["map_50"] == pytest.approx(float(np.mean(s[1][s[1] > -1])), abs=TOLERANCE)
    assert ours["map_75"] == pytest.approx(float(np.mean(s[3][s[3] > -1])), abs=TOLERANCE)
    expected = {c: float(np.mean(s[:, :, k])) for k, c in enumerate(ev.params.catIds) if (s[:, :, k] > -1).any()}
    assert ours["map_per_class"] == pytest.approx(expected, abs=TOLERANCE)
    assert math.isnan(mask_mean_average_precision(preds, targets, iou_thresholds=[0.3])["map_50"])


def test_edge_cases_equal_pycocotools():
    size = (8, 8)
    empty_p = {"masks": torch.zeros(0, 1, *size), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    empty_t = {"masks": torch.zeros(0, *size, dtype=torch.bool), "labels": torch.zeros(0, dtype=torch.long)}
    mask = torch.zeros(1, *size, dtype=torch.bool)
    mask[0, 2:6, 1:5] = True
    one_p = {"masks": mask.float()[:, None], "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}
    one_t = {"masks": mask, "labels": torch.tensor([1])}
    other_t = {"masks": mask, "labels": torch.tensor([2])}
    cases = [
        ([one_p, empty_p], [one_t, one_t]),  # an image with an object but no detection
        ([one_p, one_p], [one_t, empty_t]),  # a detection on an empty image
        ([empty_p], [one_t]),  # no detection at all: AP 0
        ([one_p], [other_t]),  # class 1 has no ground truth (excluded), class 2 no detection
    ]
    for preds, targets in cases:
        assert_coco_equal(preds, targets)


def test_no_ground_truth_gives_minus_one_like_pycocotools():
    preds = [{"masks": torch.ones(1, 1, 4, 4), "scores": torch.tensor([0.5]), "labels": torch.tensor([0])}]
    targets = [{"masks": torch.zeros(0, 4, 4, dtype=torch.bool), "labels": torch.zeros(0, dtype=torch.long)}]
    assert coco_reference(preds, targets) == (-1.0, -1.0, -1.0)
    for method in ("coco", "voc", "voc07"):
        out = mask_mean_average_precision(preds, targets, method=method)
        assert (out["map"], out["map_50"], out["map_per_class"]) == (-1.0, -1.0, {})
        # "voc" evaluates IoU 0.5 only: map_75 was not computed
        assert out["map_75"] == -1.0 if method == "coco" else math.isnan(out["map_75"])
    assert mask_mean_average_precision([], [])["map"] == -1.0


def test_hand_computed():
    # One class, two objects: A (4 pixels) and B (3 pixels). Detection 1 (score 0.9) is A exactly,
    # detection 2 (0.8) covers 2 of B's pixels (IoU 2/3), detection 3 (0.7) misses both.
    # IoU thresholds 0.50, 0.55, 0.60, 0.65 <= 2/3: TP TP FP, both objects found first: AP 1.
    # The 6 thresholds 0.70 ... 0.95: TP FP FP: precision 1 up to recall 1/2, then nothing:
    # the 51 recall levels 0, 0.01, ..., 0.50 score 1, AP = 51/101.
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[0, 0:2, 0:2] = True  # A
    masks[1, 4, 3:6] = True  # B
    dets = torch.zeros(3, 1, 6, 6)
    dets[0, 0, 0:2, 0:2] = 0.8
    dets[1, 0, 4, 4:6] = 0.9
    dets[2, 0, 2:4, 2:4] = 0.7
    preds = [{"masks": dets, "scores": torch.tensor([0.9, 0.8, 0.7]), "labels": torch.zeros(3, dtype=torch.long)}]
    targets = [{"masks": masks, "labels": torch.zeros(2, dtype=torch.long)}]
    torch.testing.assert_close(mask_iou(dets[:, 0] > 0.5, masks),
                               torch.tensor([[1.0, 0.0], [0.0, 2 / 3], [0.0, 0.0]]))
    out = mask_mean_average_precision(preds, targets)
    assert out["map_50"] == pytest.approx(1.0, abs=1e-15)
    assert out["map_75"] == pytest.approx(51 / 101, abs=1e-15)
    assert out["map"] == pytest.approx((4 * 1 + 6 * 51 / 101) / 10, abs=1e-15)
    assert out["map_per_class"] == {0: out["map"]}
    # a probability of exactly 0.5 is background: detection 2 keeps 1 of B's pixels (IoU 1/3)
    # and misses B at every threshold
    dets[1, 0, 4, 4] = 0.5
    assert mask_mean_average_precision(preds, targets)["map"] == pytest.approx(51 / 101, abs=1e-15)


def test_real_object_beats_a_better_ignored_one():
    # pycocotools: a detection takes an ordinary object over an ignored one even when it overlaps
    # the ignored one more. Ignored I = pixels 0-4 (listed first), real R = pixels 0-5; the
    # detection D = pixels 0-4 has IoU 1 with I and 5/6 with R. At the 7 thresholds 0.50 ... 0.80
    # D finds R (AP 1); at 0.85 ... 0.95 it only lands on I (ignored) and R is missed (AP 0).
    masks = torch.zeros(2, 1, 8, dtype=torch.bool)
    masks[0, 0, :5] = True
    masks[1, 0, :6] = True
    targets = [{"masks": masks, "labels": torch.tensor([0, 0]), "difficult": torch.tensor([True, False])}]
    preds = [{"masks": masks[:1].clone(), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}]
    out = mask_mean_average_precision(preds, targets)
    assert out["map"] == pytest.approx(0.7, abs=1e-15)
    assert out["map"] == pytest.approx(coco_reference(preds, targets)[0], abs=TOLERANCE)


def test_mask_formats_give_the_same_result():
    rng = np.random.default_rng(9)
    preds, targets = random_case(rng, num_images=5, probabilities=True)
    as_bool = [{**p, "masks": p["masks"][:, 0] > 0.5} for p in preds]
    as_uint8 = [{**t, "masks": t["masks"].to(torch.uint8)} for t in targets]
    expected = mask_mean_average_precision(preds, targets)
    assert mask_mean_average_precision(as_bool, targets) == expected
    assert mask_mean_average_precision(preds, as_uint8) == expected


def test_perfect_masks_score_one():
    rng = np.random.default_rng(0)
    _, targets = random_case(rng, num_images=5)
    preds = [{"masks": t["masks"], "scores": torch.rand(len(t["labels"])), "labels": t["labels"]} for t in targets]
    # (an object whose mask is empty could not be found: IoU 0, as in pycocotools)
    assert all(bool(t["masks"].flatten(1).any(1).all()) for t in targets)
    for method in ("coco", "voc", "voc07"):
        out = mask_mean_average_precision(preds, targets, method=method)
        assert out["map"] == pytest.approx(1.0) and all(v == pytest.approx(1.0) for v in out["map_per_class"].values())


# --- mask IoU ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_mask_iou_equals_pycocotools(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(5, 9, 13, generator=g) > torch.rand(5, 1, 1, generator=g)
    b = torch.rand(4, 9, 13, generator=g) > torch.rand(4, 1, 1, generator=g)
    a[0], b[1] = False, False  # empty masks: IoU 0
    expected = mask_utils.iou([rle(m) for m in a], [rle(m) for m in b], [0] * len(b))
    torch.testing.assert_close(mask_iou(a, b), torch.tensor(expected, dtype=torch.float32), rtol=0, atol=0)
    assert mask_iou(a, b[:0]).shape == (5, 0) and mask_iou(a[:0], b).shape == (0, 4)
    torch.testing.assert_close(mask_iou(a, a).diag()[1:], torch.ones(4))


# --- bad input ------------------------------------------------------------------------------------


def good():
    p = {"masks": torch.ones(1, 1, 4, 4), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}
    t = {"masks": torch.ones(1, 4, 4, dtype=torch.bool), "labels": torch.tensor([1])}
    return p, t


def test_bad_input_raises_clear_errors():
    p, t = good()
    f = mask_mean_average_precision
    with pytest.raises(ValueError, match="same length.*got 2 preds and 1 targets"):
        f([p, p], [t])
    with pytest.raises(TypeError, match="preds must be a list with one dict per image, got dict"):
        f(p, [t])
    with pytest.raises(TypeError, match=r"targets\[0\] must be a dict"):
        f([p], [None])
    with pytest.raises(ValueError, match=r"preds\[0\] is missing key\(s\) \['masks'\]"):
        f([{"scores": p["scores"], "labels": p["labels"]}], [t])
    with pytest.raises(ValueError, match=r"preds\[0\]\['masks'\] must have shape \[N, 1, H, W\] or \[N, H, W\], "
                                         r"got \[1, 2, 4, 4\]"):
        f([{**p, "masks": torch.ones(1, 2, 4, 4)}], [t])
    with pytest.raises(ValueError, match=r"targets\[0\]\['masks'\] must have shape \[N, H, W\], got \[4, 4\]"):
        f([p], [{**t, "masks": torch.ones(4, 4)}])
    with pytest.raises(ValueError, match=r"targets\[0\]\['masks'\] must match the image size \[4, 4\], got .*\[4, 5\]"):
        f([p], [{**t, "masks": torch.ones(1, 4, 5, dtype=torch.bool)}])
    with pytest.raises(ValueError, match=r"preds\[0\]\['scores'\] must have shape \[N\] with N = 1.*got \[2\]"):
        f([{**p, "scores": torch.tensor([0.5, 0.4])}], [t])
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\] must have shape \[N\] with N = 1.*got \[0\]"):
        f([p], [{**t, "labels": torch.zeros(0, dtype=torch.long)}])
    with pytest.raises(ValueError, match=r"preds\[0\]\['masks'\] must hold probabilities in \[0, 1\].*sigmoid"):
        f([{**p, "masks": torch.full((1, 1, 4, 4), 3.0)}], [t])
    # a bilinear paste's rounding error (1 + 1e-7, what failed a CI run) is a probability of 1, not an error
    overshoot = {**p, "masks": torch.full((1, 1, 4, 4), 1.0 + 1e-7)}
    assert f([overshoot], [t])["map"] == f([{**p, "masks": torch.ones(1, 1, 4, 4)}], [t])["map"]
    with pytest.raises(ValueError, match=r"targets\[0\]\['masks'\] must be bool or hold only 0 and 1"):
        f([p], [{**t, "masks": torch.full((1, 4, 4), 2, dtype=torch.uint8)}])
    with pytest.raises(TypeError, match=r"preds\[0\]\['labels'\] must hold integers"):
        f([{**p, "labels": torch.tensor([1.0])}], [t])
    with pytest.raises(TypeError, match=r"preds\[0\]\['scores'\] must hold floating-point numbers"):
        f([{**p, "scores": torch.tensor([1])}], [t])
    with pytest.raises(ValueError, match=r"preds\[0\]\['scores'\] must be finite"):
        f([{**p, "scores": torch.tensor([float("nan")])}], [t])
    with pytest.raises(TypeError, match=r"targets\[0\]\['difficult'\] must be a bool tensor of shape \[1\]"):
        f([p], [{**t, "difficult": torch.tensor([1])}])
    with pytest.raises(ValueError, match="method must be one of.*got 'segm'"):
        f([p], [t], method="segm")
    with pytest.raises(ValueError, match=r"iou_thresholds must lie in \[0, 1\], got \[0.5, 1.5\]"):
        f([p], [t], iou_thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="max_detections must be a positive int"):
        f([p], [t], max_detections=0)


def test_bad_crowd_and_area_raise():
    p, t = good()
    f = mask_mean_average_precision
    with pytest.raises(ValueError, match=r"targets\[0\]\['iscrowd'\] must hold 0 or 1, got \[3\]"):
        f([p], [{**t, "iscrowd": torch.tensor([3])}])
    with pytest.raises(ValueError, match=r"targets\[0\]\['area'\] must have shape \[N\] with N = 1.*got \[2\]"):
        f([p], [{**t, "area": torch.tensor([1.0, 2.0])}])
    with pytest.raises(ValueError, match=r"targets\[0\]\['area'\] must hold finite areas >= 0.*\[inf\]"):
        f([p], [{**t, "area": torch.tensor([float("inf")])}])
    with pytest.raises(TypeError, match="class_metrics must be True or False"):
        f([p], [t], class_metrics=None)


def test_mask_iou_bad_input():
    with pytest.raises(TypeError, match="masks1 must be a torch.Tensor of shape \\[N, H, W\\], got ndarray"):
        mask_iou(np.zeros((1, 4, 4)), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"masks2 must match the image size \[4, 4\], got masks of size \[4, 5\]"):
        mask_iou(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match=r"masks1 must be bool or hold only 0 and 1.*masks > 0.5"):
        mask_iou(torch.full((1, 4, 4), 0.7), torch.zeros(1, 4, 4))


# --- the twelve statistics ------------------------------------------------------------------------


def assert_twelve_equal(preds, targets, max_det=100, backend="pycocotools"):
    ours = mask_mean_average_precision(preds, targets, max_detections=max_det)
    ref = coco_reference_module.coco_statistics(preds, targets, max_det, iou_type="segm", backend=backend)
    for name, value in ref.items():
        assert ours[name] == pytest.approx(value, abs=TOLERANCE, rel=0), (name, ours[name], value)
    return ours


@pytest.mark.parametrize("seed", range(30))
def test_twelve_statistics_equal_pycocotools_random(seed):
    rng = np.random.default_rng(8000 + seed)
    preds, targets = random_case(rng, num_images=5, num_classes=1 + seed % 3, crowd=seed % 3 != 2,
                                 given_area=seed % 2 == 1, difficult=seed % 5 == 0, big=seed % 2 == 0)
    ours = assert_twelve_equal(preds, targets)
    assert list(ours)[:12] == ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
                               "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]


@pytest.mark.parametrize("max_det", [1, 3])
def test_twelve_statistics_equal_pycocotools_max_detections(max_det):
    rng = np.random.default_rng(8100 + max_det)
    preds, targets = random_case(rng, max_dets=20, num_classes=2, crowd=True, big=True)
    assert_twelve_equal(preds, targets, max_det=max_det)


def test_crowd_mask_iou_is_the_share_of_the_detection():
    # a crowd region of 8 x 8 pixels; a 2 x 2 detection inside it has IoU 1 with the region
    crowd = torch.zeros(1, 10, 10, dtype=torch.bool)
    crowd[0, 1:9, 1:9] = True
    det = torch.zeros(1, 10, 10, dtype=torch.bool)
    det[0, 2:4, 2:4] = True
    assert _pixel_iou(det.flatten(1), crowd.flatten(1), torch.tensor([True]))[0, 0] == 1.0
    assert _pixel_iou(det.flatten(1), crowd.flatten(1))[0, 0] == 4 / 64
    preds = [{"masks": det, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}]
    targets = [{"masks": crowd, "labels": torch.tensor([0]), "iscrowd": torch.tensor([True])}]
    ours = assert_twelve_equal(preds, targets)
    assert ours["map"] == -1.0  # nothing but a crowd region: no object counts


def test_class_metrics_and_extended_summary():
    rng = np.random.default_rng(8200)
    preds, targets = random_case(rng, num_images=6, crowd=True, big=True)
    ours = mask_mean_average_precision(preds, targets, class_metrics=True, extended_summary=True)
    ev = coco_eval(preds, targets)
    np.testing.assert_allclose(ours["precision"].numpy(), ev.eval["precision"][..., -1], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(ours["recall"].numpy(), ev.eval["recall"], rtol=0, atol=TOLERANCE)
    for label, table in ours["per_class"].items():
        assert table["map"] == pytest.approx(ours["map_per_class"][label], abs=1e-15)


@pytest.mark.skipif(not coco_reference_module.HAS_FASTER_COCO_EVAL, reason="faster-coco-eval is not installed")
@pytest.mark.parametrize("seed", range(6))
def test_twelve_statistics_equal_faster_coco_eval(seed):
    rng = np.random.default_rng(8300 + seed)
    preds, targets = random_case(rng, num_images=5, crowd=True, big=seed % 2 == 0)
    assert_twelve_equal(preds, targets, backend="faster")

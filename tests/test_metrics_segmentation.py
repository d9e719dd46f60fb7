"""Tests for lecture_lib.metrics.segmentation against scikit-learn."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, jaccard_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from lecture_lib.metrics.segmentation import (
    ConfusionMatrix,
    confusion_matrix,
    iou_from_confusion_matrix,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
)


def _random_maps(seed, num_classes, shape=(2, 16, 16), absent=()):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, shape, generator=g)
    # a decent segmentation: mostly right, some noise
    pred = torch.where(torch.rand(shape, generator=g) < 0.7, target, torch.randint(0, num_classes, shape, generator=g))
    for c in absent:  # remove class c from both maps
        target[target == c] = 0 if c else 1
        pred[pred == c] = 0 if c else 1
    return pred, target


@pytest.mark.parametrize("seed", range(5))
def test_confusion_matrix_matches_sklearn(seed):
    pred, target = _random_maps(seed, 5)
    ref = sk_confusion_matrix(target.flatten(), pred.flatten(), labels=list(range(5)))
    np.testing.assert_array_equal(confusion_matrix(pred, target, 5).numpy(), ref)


def test_rows_are_the_target():
    target = torch.tensor([0, 0, 1])
    pred = torch.tensor([1, 1, 1])
    cm = confusion_matrix(pred, target, 2)
    assert cm.tolist() == [[0, 2], [0, 1]]  # the two true-0 pixels predicted as 1 sit in row 0


@pytest.mark.parametrize("seed", range(5))
def test_pixel_accuracy_and_iou_match_sklearn(seed):
    pred, target = _random_maps(seed, 4)
    y_true, y_pred = target.flatten().numpy(), pred.flatten().numpy()
    assert pixel_accuracy(pred, target) == pytest.approx(accuracy_score(y_true, y_pred))
    ref = jaccard_score(y_true, y_pred, labels=list(range(4)), average=None)
    np.testing.assert_allclose(per_class_iou(pred, target, 4).numpy(), ref)
    assert mean_iou(pred, target, 4) == pytest.approx(jaccard_score(y_true, y_pred, average="macro"))


def test_classes_absent_from_both_are_ignored():
    pred, target = _random_maps(1, 6, absent=(2, 5))
    iou = per_class_iou(pred, target, 6)
    assert math.isnan(iou[2]) and math.isnan(iou[5]) and not iou[[0, 1, 3, 4]].isnan().any()
    y_true, y_pred = target.flatten().numpy(), pred.flatten().numpy()
    present = [0, 1, 3, 4]
    assert mean_iou(pred, target, 6) == pytest.approx(jaccard_score(y_true, y_pred, labels=present, average="macro"))


def test_class_only_predicted_counts_with_iou_zero():
    target = torch.zeros(4, dtype=torch.long)
    pred = torch.tensor([0, 0, 0, 1])
    # class 1 is absent from the target but predicted: a false positive, IoU 0, kept in the mean
    assert per_class_iou(pred, target, 3)[1] == 0
    assert mean_iou(pred, target, 3) == pytest.approx((0.75 + 0.0) / 2)


def test_hand_computed_example():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0]])
    # class 0: TP 3, FP 1, FN 1 -> 3/5; class 1: TP 3, FP 1, FN 1 -> 3/5
    assert pixel_accuracy(pred, target) == pytest.approx(6 / 8)
    assert mean_iou(pred, target, 2) == pytest.approx(0.6)


def test_ignore_index():
    pred, target = _random_maps(3, 4)
    target_void = target.clone()
    void = torch.rand(target.shape, generator=torch.Generator().manual_seed(0)) < 0.2
    target_void[void] = 255
    keep = ~void
    y_true, y_pred = target[keep].numpy(), pred[keep].numpy()
    ref = sk_confusion_matrix(y_true, y_pred, labels=list(range(4)))
    np.testing.assert_array_equal(confusion_matrix(pred, target_void, 4, ignore_index=255).numpy(), ref)
    assert pixel_accuracy(pred, target_void, ignore_index=255) == pytest.approx(accuracy_score(y_true, y_pred))
    assert mean_iou(pred, target_void, 4, ignore_index=255) == pytest.approx(
        jaccard_score(y_true, y_pred, average="macro"))
    # an ignore_index inside the class range works too (e.g. ignore the background, 0)
    cm = confusion_matrix(pred, target, 4, ignore_index=0)
    assert cm[0].sum() == 0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), num_classes=st.integers(1, 6), n=st.integers(1, 60))
def test_properties(seed, num_classes, n):
    pred, target = _random_maps(seed, num_classes, shape=(n,))
    cm = confusion_matrix(pred, target, num_classes)
    assert int(cm.sum()) == n
    iou = per_class_iou(pred, target, num_classes)
    valid = iou[~iou.isnan()]
    assert ((valid >= 0) & (valid <= 1)).all()
    assert mean_iou(target, target, num_classes) == 1.0
    # IoU is symmetric in pred and target; the confusion matrix transposes
    torch.testing.assert_close(per_class_iou(target, pred, num_classes), iou, equal_nan=True)
    torch.testing.assert_close(confusion_matrix(target, pred, num_classes), cm.t())


def test_accumulator_equals_metrics_on_all_pixels():
    pred, target = _random_maps(4, 5, shape=(6, 8, 8))
    acc = ConfusionMatrix(5)
    for p, t in zip(pred.split(2), target.split(2)):
        acc.update(p, t)
    torch.testing.assert_close(acc.matrix, confusion_matrix(pred, target, 5))
    assert acc.mean_iou() == pytest.approx(mean_iou(pred, target, 5))
    assert acc.pixel_accuracy() == pytest.approx(pixel_accuracy(pred, target))


def test_empty_inputs():
    empty = torch.zeros(0, dtype=torch.long)
    assert confusion_matrix(empty, empty, 3).tolist() == [[0] * 3] * 3
    assert math.isnan(pixel_accuracy(empty, empty))
    assert math.isnan(mean_iou(empty, empty, 3))
    assert per_class_iou(empty, empty, 3).isnan().all()
    assert math.isnan(ConfusionMatrix(2).mean_iou())


def test_bad_input():
    t = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="target must hold class ids < num_classes = 2, got 2"):
        confusion_matrix(torch.tensor([0, 1, 1]), t, 2)
    with pytest.raises(ValueError, match="pred must hold class ids < num_classes = 3, got 3"):
        mean_iou(torch.tensor([0, 1, 3]), t, 3)
    with pytest.raises(ValueError, match="ignore_index"):
        confusion_matrix(t, torch.tensor([0, 1, 255]), 3)
    with pytest.raises(ValueError, match=">= 0"):
        confusion_matrix(torch.tensor([0, -1, 1]), t, 3)
    with pytest.raises(ValueError, match=r"same shape, got \[3\] and \[2\]"):
        pixel_accuracy(t, t[:2])
    with pytest.raises(TypeError, match="argmax"):
        mean_iou(torch.rand(3), t, 3)
    with pytest.raises(TypeError, match="torch.Tensor"):
        pixel_accuracy([0, 1], t)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        confusion_matrix(t, t, 0)
    with pytest.raises(ValueError, match="square matrix"):
        iou_from_confusion_matrix(torch.zeros(2, 3))

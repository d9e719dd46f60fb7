"""lecture_lib.checks: every check raises the right error type, naming what was expected and given."""

import pytest
import torch

from lecture_lib.checks import (
    check_boxes,
    check_detection_inputs,
    check_detection_targets,
    check_fraction,
    check_image_size,
    check_images,
    check_masks,
    check_positive_int,
    check_positive_ints,
    check_positive_number,
)


def test_good_values_pass():
    check_positive_int(3, "n")
    check_positive_ints((1, 2), "widths")
    check_fraction(0.0, "t")
    check_fraction(1, "t")
    check_positive_number(1e-3, "lr")
    assert check_image_size([4, 5]) == (4, 5)
    check_boxes(torch.zeros(0, 4))
    check_boxes(torch.tensor([[1.0, 2.0, 1.0, 3.0]]))  # zero width is a box
    check_masks(torch.zeros(2, 4, 5, dtype=torch.bool), "masks", count=2, size=(4, 5))
    check_images(torch.zeros(1, 3, 4, 4))
    check_detection_inputs(torch.zeros(2, 3, 8, 8), None, 5, training=False)
    check_detection_targets([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}], 1, 5)


@pytest.mark.parametrize("call,error,match", [
    (lambda: check_positive_int(0, "stride"), ValueError, "stride must be a positive int, got 0"),
    (lambda: check_positive_int(True, "stride"), ValueError, "got True"),
    (lambda: check_positive_int(2.0, "stride"), ValueError, "got 2.0"),
    (lambda: check_positive_ints((), "widths"), ValueError, "widths must be a non-empty tuple of positive ints"),
    (lambda: check_positive_ints((8, -1), "widths"), ValueError, r"got \(8, -1\)"),
    (lambda: check_fraction(1.5, "nms_threshold"), ValueError, r"nms_threshold must be a number in \[0.0, 1.0\], got 1.5"),
    (lambda: check_fraction(-0.1, "iou"), ValueError, "got -0.1"),
    (lambda: check_fraction(float("nan"), "iou"), ValueError, "got nan"),
    (lambda: check_fraction("0.5", "iou"), ValueError, "got '0.5'"),
    (lambda: check_fraction(0.6, "bg", high=0.5), ValueError, r"in \[0.0, 0.5\]"),
    (lambda: check_positive_number(0, "seconds"), ValueError, "seconds must be a number > 0, got 0"),
    (lambda: check_positive_number(float("inf"), "seconds"), ValueError, "got inf"),
    (lambda: check_image_size((4,)), ValueError, r"image_size must be \(height, width\)"),
    (lambda: check_boxes([[0, 0, 1, 1]]), TypeError, r"boxes must be a torch.Tensor of shape \[N, 4\], got list"),
    (lambda: check_boxes(torch.zeros(3, 5), "proposals"), ValueError, r"proposals must have shape \[N, 4\], got \[3, 5\]"),
    (lambda: check_boxes(torch.zeros(4)), ValueError, r"got \[4\]"),
    (lambda: check_boxes(torch.zeros(2, 4, dtype=torch.bool)), TypeError, "must hold real numbers"),
    (lambda: check_boxes(torch.tensor([[0.0, 0.0, 1.0, 1.0], [5.0, 0.0, 1.0, 1.0]])), ValueError,
     r"x1 <= x2 and y1 <= y2, got \[5.0, 0.0, 1.0, 1.0\] at row 1"),
    (lambda: check_masks(torch.zeros(2, 4), "masks"), ValueError, r"masks must have shape \[N, H, W\], got \[2, 4\]"),
    (lambda: check_masks(torch.zeros(2, 4, 4), "masks", count=3), ValueError, "one mask per box"),
    (lambda: check_masks(torch.zeros(2, 4, 4), "masks", size=(4, 5)), ValueError, r"image size \[4, 5\]"),
    (lambda: check_images(torch.zeros(3, 8, 8)), ValueError, r"images must have shape \[B, 3, H, W\], got \[3, 8, 8\]"),
    (lambda: check_images(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)), TypeError, "floating point"),
    (lambda: check_images("x"), TypeError, "got str"),
    (lambda: check_detection_inputs(torch.zeros(1, 3, 8, 8), None, 5, training=True), ValueError,
     "targets must be given in training mode"),
    (lambda: check_detection_targets([], 2), ValueError, "targets must be a list of 2 dicts"),
    (lambda: check_detection_targets([{"boxes": torch.zeros(0, 4)}], 1), ValueError, "must be a dict with 'boxes' and 'labels'"),
    (lambda: check_detection_targets([{"boxes": torch.zeros(2, 4), "labels": torch.zeros(3, dtype=torch.int64)}], 1),
     ValueError, r"labels'\] must have shape \[2\]"),
    (lambda: check_detection_targets([{"boxes": torch.zeros(1, 4), "labels": torch.ones(1)}], 1), TypeError,
     "must be int64"),
    (lambda: check_detection_targets([{"boxes": torch.zeros(1, 4), "labels": torch.tensor([5])}], 1, 5), ValueError,
     r"must be in \[1, 4\] \(0 is background\), got \[5\]"),
    (lambda: check_detection_targets([{"boxes": torch.zeros(1, 5), "labels": torch.tensor([1])}], 1), ValueError,
     r"targets\[0\]\['boxes'\] must have shape \[N, 4\]"),
])
def test_bad_values_raise_with_expected_and_given(call, error, match):
    with pytest.raises(error, match=match):
        call()

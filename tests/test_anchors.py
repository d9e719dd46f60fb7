"""lecture_lib.anchors against torchvision's AnchorGenerator, hand-computed anchors, bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from lecture_lib.anchors import cell_anchors, generate_anchors
from lecture_lib.boxes import box_area


def torchvision_anchors(feature_size, stride, sizes, aspect_ratios):
    """AnchorGenerator on one feature map of ``feature_size`` in an image ``stride`` times larger."""
    (h, w), (sh, sw) = feature_size, stride
    images = ImageList(torch.zeros(1, 3, h * sh, w * sw), [(h * sh, w * sw)])
    feature_map = torch.zeros(1, 8, h, w)
    generator = AnchorGenerator(sizes=(tuple(sizes),), aspect_ratios=(tuple(aspect_ratios),))
    return generator(images, [feature_map])[0]


@pytest.mark.parametrize(
    "feature_size, stride, sizes, aspect_ratios",
    [
        ((5, 7), (16, 16), (32, 64, 128), (0.5, 1.0, 2.0)),  # the Faster R-CNN defaults, small map
        ((3, 4), (8, 32), (20,), (1.0,)),
        ((6, 2), (4, 4), (10, 15, 23, 37), (0.25, 0.7, 1.3)),
        ((1, 1), (32, 32), (128, 256, 512), (0.5, 1.0, 2.0)),
        ((13, 9), (32, 16), (30.5, 77.0), (0.33, 3.0)),
    ],
)
def test_generate_anchors_equals_torchvision(feature_size, stride, sizes, aspect_ratios):
    expected = torchvision_anchors(feature_size, stride, sizes, aspect_ratios)
    ours = generate_anchors(feature_size, stride, sizes, aspect_ratios)
    assert ours.shape == (feature_size[0] * feature_size[1] * len(sizes) * len(aspect_ratios), 4)
    assert ours.dtype == expected.dtype
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(st.integers(1, 9), st.integers(1, 9)),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.lists(st.integers(2, 300), min_size=1, max_size=4),
    st.lists(st.floats(0.1, 10.0), min_size=1, max_size=4),
)
def test_generate_anchors_equals_torchvision_random(feature_size, stride, sizes, aspect_ratios):
    expected = torchvision_anchors(feature_size, stride, sizes, aspect_ratios)
    torch.testing.assert_close(generate_anchors(feature_size, stride, sizes, aspect_ratios), expected,
                               rtol=0, atol=0)


def test_int_stride_means_both_directions():
    torch.testing.assert_close(generate_anchors((3, 4), 16, (32,), (1.0,)),
                               generate_anchors((3, 4), (16, 16), (32,), (1.0,)))


def test_hand_computed_anchors():
    # one square anchor of size 32 on a 2 x 2 map with stride 16: centres at (0,0), (16,0), (0,16), (16,16)
    expected = torch.tensor([
        [-16.0, -16.0, 16.0, 16.0],
        [0.0, -16.0, 32.0, 16.0],
        [-16.0, 0.0, 16.0, 32.0],
        [0.0, 0.0, 32.0, 32.0],
    ])
    torch.testing.assert_close(generate_anchors((2, 2), 16, (32,), (1.0,)), expected)
    # ratio h / w = 0.5, size 32: w = 32 / sqrt(0.5) = 45.25, h = 22.63; halves rounded to 23 and 11
    torch.testing.assert_close(cell_anchors((32,), (0.5,)), torch.tensor([[-23.0, -11.0, 23.0, 11.0]]))


def test_order_is_ratio_major_and_areas_follow_sizes():
    base = cell_anchors((10, 100), (0.5, 2.0))
    widths, heights = base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]
    # (ratio 0.5, size 10), (0.5, 100), (2.0, 10), (2.0, 100)
    assert (heights < widths).tolist() == [True, True, False, False]
    areas = box_area(base)
    for area, size in zip(areas, [10, 100, 10, 100]):
        assert abs(area.item() - size**2) / size**2 < 0.15  # rounding to whole pixels only
    assert math.isclose(widths[1].item() / heights[1].item(), 2.0, rel_tol=0.05)


def test_empty_feature_map():
    assert generate_anchors((0, 5), 16, (32,), (1.0, 2.0)).shape == (0, 4)


def test_bad_input():
    with pytest.raises(ValueError, match=r"feature_size must be .* got \(3,\)"):
        generate_anchors((3,), 16, (32,), (1.0,))
    with pytest.raises(ValueError, match=r"stride must be .* >= 1, got 0"):
        generate_anchors((3, 3), 0, (32,), (1.0,))
    with pytest.raises(ValueError, match=r"stride must be .* got 2.5"):
        generate_anchors((3, 3), 2.5, (32,), (1.0,))
    with pytest.raises(ValueError, match=r"sizes must be positive numbers, got \(32, -1\)"):
        generate_anchors((3, 3), 16, (32, -1), (1.0,))
    with pytest.raises(ValueError, match=r"aspect_ratios must be a non-empty sequence .* got \(\)"):
        generate_anchors((3, 3), 16, (32,), ())
    with pytest.raises(ValueError, match=r"aspect_ratios must be positive numbers, got \(0.0,\)"):
        generate_anchors((3, 3), 16, (32,), (0.0,))

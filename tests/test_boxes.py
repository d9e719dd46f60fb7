"""lecture_lib.boxes against torchvision.ops, hand-computed lecture values and IoU's laws."""

import pytest
import torch
import torchvision.ops as tvops
from hypothesis import given, settings
from hypothesis import strategies as st

from lecture_lib.boxes import box_area, box_convert, box_iou, clip_boxes_to_image


def random_boxes(n, generator, scale=100.0, dtype=torch.float32):
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * scale
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * scale / 2 + 1e-3
    return torch.cat([xy, xy + wh], dim=1).to(dtype)


# --- against torchvision ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_iou_equals_torchvision(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    a, b = random_boxes(37, g, dtype=dtype), random_boxes(23, g, dtype=dtype)
    torch.testing.assert_close(box_iou(a, b), tvops.box_iou(a, b), rtol=0, atol=0)


def test_box_iou_integer_boxes_equal_torchvision():
    g = torch.Generator().manual_seed(7)
    a = torch.randint(0, 50, (20, 2), generator=g)
    a = torch.cat([a, a + torch.randint(1, 30, (20, 2), generator=g)], 1)
    torch.testing.assert_close(box_iou(a, a.flip(0)), tvops.box_iou(a, a.flip(0)))


@pytest.mark.parametrize("seed", range(3))
def test_box_area_equals_torchvision(seed):
    boxes = random_boxes(50, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(box_area(boxes), tvops.box_area(boxes), rtol=0, atol=0)


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_equals_torchvision(in_fmt, out_fmt):
    boxes = random_boxes(40, torch.Generator().manual_seed(3))
    expected = tvops.box_convert(boxes, in_fmt, out_fmt)
    torch.testing.assert_close(box_convert(boxes, in_fmt, out_fmt), expected, rtol=0, atol=0)


def test_clip_boxes_equals_torchvision():
    boxes = random_boxes(60, torch.Generator().manual_seed(4), scale=200.0) - 50
    boxes[:, 2:] = torch.max(boxes[:, 2:], boxes[:, :2])
    expected = tvops.clip_boxes_to_image(boxes, (80, 120))
    torch.testing.assert_close(clip_boxes_to_image(boxes, (80, 120)), expected, rtol=0, atol=0)


# --- hand-computed cases --------------------------------------------------------------------


def test_iou_hand_computed():
    # Two 2x2 squares shifted by one unit: intersection 1x2 = 2, union 4 + 4 - 2 = 6, IoU 1/3.
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 0.0, 3.0, 2.0], [2.0, 2.0, 4.0, 4.0], [0.5, 0.5, 1.5, 1.5]])
    # second box only touches a corner: IoU 0; third lies inside: IoU = 1 / 4
    expected = torch.tensor([[1 / 3, 0.0, 0.25]])
    torch.testing.assert_close(box_iou(a, b), expected)
    torch.testing.assert_close(box_area(b), torch.tensor([4.0, 4.0, 1.0]))


def test_box_convert_hand_computed():
    xyxy = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    torch.testing.assert_close(box_convert(xyxy, "xyxy", "xywh"), torch.tensor([[10.0, 20.0, 20.0, 40.0]]))
    torch.testing.assert_close(box_convert(xyxy, "xyxy", "cxcywh"), torch.tensor([[20.0, 40.0, 20.0, 40.0]]))


def test_clip_hand_computed():
    boxes = torch.tensor([[-5.0, -5.0, 50.0, 8.0]])
    # size is (height, width) = (10, 40): x to [0, 40], y to [0, 10]
    torch.testing.assert_close(clip_boxes_to_image(boxes, (10, 40)), torch.tensor([[0.0, 0.0, 40.0, 8.0]]))


# --- empty inputs ---------------------------------------------------------------------------


def test_empty_inputs_give_empty_outputs():
    empty = torch.zeros(0, 4)
    some = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    assert box_area(empty).shape == (0,)
    assert box_iou(empty, some).shape == (0, 1)
    assert box_iou(some, empty).shape == (1, 0)
    assert box_iou(empty, empty).shape == (0, 0)
    assert box_convert(empty, "xyxy", "cxcywh").shape == (0, 4)
    assert clip_boxes_to_image(empty, (5, 5)).shape == (0, 4)


# --- properties -----------------------------------------------------------------------------

coordinate = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)
extent = st.floats(min_value=0.125, max_value=1e3, allow_nan=False, width=32)
box = st.tuples(coordinate, coordinate, extent, extent).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])
boxes_strategy = st.lists(box, min_size=1, max_size=8).map(lambda b: torch.tensor(b, dtype=torch.float64))


@settings(max_examples=200, deadline=None)
@given(boxes_strategy, boxes_strategy)
def test_iou_symmetric_and_bounded(a, b):
    iou_ab, iou_ba = box_iou(a, b), box_iou(b, a)
    torch.testing.assert_close(iou_ab, iou_ba.T)
    assert bool(((iou_ab >= 0) & (iou_ab <= 1 + 1e-12)).all())


@settings(max_examples=200, deadline=None)
@given(boxes_strategy)
def test_iou_is_one_on_itself(a):
    torch.testing.assert_close(box_iou(a, a).diagonal(), torch.ones(len(a), dtype=a.dtype))


@settings(max_examples=200, deadline=None)
@given(box, st.floats(min_value=0, max_value=100), st.booleans())
def test_iou_zero_when_disjoint(b, gap, horizontal):
    x1, y1, x2, y2 = b
    if horizontal:  # the second box starts where the first ends (or further right)
        moved = [x2 + gap, y1, x2 + gap + (x2 - x1), y2]
    else:
        moved = [x1, y2 + gap, x2, y2 + gap + (y2 - y1)]
    a, moved = torch.tensor([b], dtype=torch.float64), torch.tensor([moved], dtype=torch.float64)
    assert box_iou(a, moved).item() == 0.0


@settings(max_examples=100, deadline=None)
@given(boxes_strategy, st.sampled_from(["xywh", "cxcywh"]))
def test_convert_round_trip(a, fmt):
    torch.testing.assert_close(box_convert(box_convert(a, "xyxy", fmt), fmt, "xyxy"), a)


# --- bad input ------------------------------------------------------------------------------


def test_bad_shape_raises_value_error_with_shapes():
    with pytest.raises(ValueError, match=r"shape \[N, 4\], got \[3, 5\]"):
        box_iou(torch.zeros(3, 5), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"got \[4\]"):
        box_area(torch.zeros(4))


def test_non_tensor_raises_type_error():
    with pytest.raises(TypeError, match="torch.Tensor .* got list"):
        box_area([[0, 0, 1, 1]])
    with pytest.raises(TypeError, match="real numbers"):
        box_area(torch.zeros(2, 4, dtype=torch.bool))


def test_malformed_boxes_raise():
    with pytest.raises(ValueError, match=r"x1 <= x2 .* got \[5.0, 0.0, 1.0, 1.0\] at row 1"):
        box_iou(torch.tensor([[0.0, 0, 1, 1], [5.0, 0, 1, 1]]), torch.zeros(1, 4))


def test_unknown_format_raises():
    with pytest.raises(ValueError, match=r"in_fmt must be one of .* got 'xyhw'"):
        box_convert(torch.zeros(1, 4), "xyhw", "xyxy")
    with pytest.raises(ValueError, match=r"out_fmt"):
        box_convert(torch.zeros(1, 4), "xyxy", "yxyx")


def test_bad_size_raises():
    with pytest.raises(ValueError, match=r"\(height, width\), got 10"):
        clip_boxes_to_image(torch.zeros(1, 4), 10)
    with pytest.raises(ValueError, match="non-negative"):
        clip_boxes_to_image(torch.zeros(1, 4), (-1, 10))


# --- encode_boxes / decode_boxes (box regression targets) ------------------------------------

import math  # noqa: E402

from torchvision.models.detection._utils import BoxCoder  # noqa: E402

from lecture_lib.boxes import BBOX_XFORM_CLIP, decode_boxes, encode_boxes  # noqa: E402

WEIGHTS = [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0), (2.0, 0.5, 3.0, 1.5)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encode_equals_torchvision_box_coder(seed, weights, dtype):
    g = torch.Generator().manual_seed(seed)
    gt, proposals = random_boxes(50, g, dtype=dtype), random_boxes(50, g, dtype=dtype)
    expected = BoxCoder(weights).encode_single(gt, proposals)
    torch.testing.assert_close(encode_boxes(gt, proposals, weights), expected, rtol=0, atol=0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decode_equals_torchvision_box_coder(seed, weights, dtype):
    g = torch.Generator().manual_seed(seed)
    proposals = random_boxes(50, g, dtype=dtype)
    deltas = torch.randn(50, 4, generator=g, dtype=dtype) * 2  # some dw, dh beyond the clamp
    expected = BoxCoder(weights).decode_single(deltas, proposals)
    torch.testing.assert_close(decode_boxes(deltas, proposals, weights), expected, rtol=0, atol=0)


def test_encode_hand_computed():
    # proposal centre (5, 5), size 10 x 10; target centre (7, 4), size 20 x 5
    proposal = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    target = torch.tensor([[-3.0, 1.5, 17.0, 6.5]])
    expected = torch.tensor([[0.2, -0.1, math.log(2.0), math.log(0.5)]])
    torch.testing.assert_close(encode_boxes(target, proposal), expected)
    torch.testing.assert_close(encode_boxes(target, proposal, (10, 10, 5, 5)),
                               expected * torch.tensor([10, 10, 5, 5.0]))
    # zero deltas give back the proposal itself
    torch.testing.assert_close(decode_boxes(torch.zeros(1, 4), proposal), proposal)


@settings(max_examples=100, deadline=None)
@given(boxes_strategy, st.sampled_from(WEIGHTS))
def test_decode_inverts_encode(a, weights):
    # proposals: each box moved and resized, size ratios within the clamp (at most 1000 / 16)
    cx, cy, w, h = box_convert(a, "xyxy", "cxcywh").unbind(1)
    b = box_convert(torch.stack([cx + 0.3 * w, cy - 0.2 * h, 1.7 * w, 0.6 * h], 1), "cxcywh", "xyxy")
    torch.testing.assert_close(decode_boxes(encode_boxes(a, b, weights), b, weights), a)


def test_decode_clamps_dw_dh_like_torchvision():
    proposals = torch.tensor([[0.0, 0.0, 16.0, 16.0], [10.0, 10.0, 12.0, 14.0]])
    deltas = torch.tensor([[0.0, 0.0, 50.0, 1000.0], [0.0, 0.0, -3.0, 10.0]])
    out = decode_boxes(deltas, proposals)
    # the first box grows to at most 1000 / 16 times 16 = 1000 pixels, centred on (8, 8)
    assert BBOX_XFORM_CLIP == math.log(1000.0 / 16)
    torch.testing.assert_close(out[0], torch.tensor([-492.0, -492.0, 508.0, 508.0]))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, BoxCoder((1.0, 1.0, 1.0, 1.0)).decode_single(deltas, proposals))
    # the clamp applies after dividing by the weights, as in torchvision
    w = (1.0, 1.0, 10.0, 10.0)
    torch.testing.assert_close(decode_boxes(deltas, proposals, w), BoxCoder(w).decode_single(deltas, proposals))


def test_encode_decode_empty():
    empty = torch.zeros(0, 4)
    assert encode_boxes(empty, empty).shape == (0, 4)
    assert decode_boxes(empty, empty).shape == (0, 4)


def test_encode_decode_bad_input():
    box = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"same number of rows, got 1 and 2"):
        encode_boxes(box, torch.cat([box, box]))
    with pytest.raises(ValueError, match=r"deltas must have shape \[N, 4\], got \[1, 8\]"):
        decode_boxes(torch.zeros(1, 8), box)
    with pytest.raises(ValueError, match=r"proposals must have shape \[N, 4\], got \[1, 3\]"):
        decode_boxes(torch.zeros(1, 4), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"weights must be 4 numbers .* got \(1.0, 1.0\)"):
        encode_boxes(box, box, (1.0, 1.0))
    with pytest.raises(ValueError, match="weights must be positive"):
        decode_boxes(box, box, (1.0, 0.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"proposals must have positive width and height, got \[2.0, 0.0, 2.0, 1.0\]"):
        encode_boxes(box, torch.tensor([[2.0, 0.0, 2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"x1 <= x2"):
        encode_boxes(torch.tensor([[3.0, 0.0, 1.0, 1.0]]), box)
    with pytest.raises(TypeError, match="floating point .* got dtype torch.int64"):
        encode_boxes(box.long(), box.long())
    with pytest.raises(TypeError, match="deltas must be a torch.Tensor"):
        decode_boxes([[0.0, 0.0, 0.0, 0.0]], box)

"""lecture_lib.roi (vectorized and loop versions) against torchvision.ops.roi_pool / roi_align,
forward and gradients, hand-computed bins, bad input."""

import pytest
import torch
import torchvision.ops as tvops
from hypothesis import given, settings
from hypothesis import strategies as st

from lecture_lib.roi import boxes_to_rois, roi_align, roi_align_loop, roi_pool, roi_pool_loop


def random_rois(k, n_images, image_size, generator, dtype=torch.float32, max_fraction=1.0):
    """Rows (batch_index, x1, y1, x2, y2); some boxes stick out of the image, some are tiny."""
    h, w = image_size
    xy = torch.rand(k, 2, generator=generator, dtype=torch.float64) * torch.tensor([w, h]) * 1.1 - 2
    wh = torch.rand(k, 2, generator=generator, dtype=torch.float64) * torch.tensor([w, h]) * max_fraction
    batch = torch.randint(0, n_images, (k, 1), generator=generator).double()
    return torch.cat([batch, xy, xy + wh], 1).to(dtype)


CASES = [  # (N, C, H, W), output_size, spatial_scale
    ((2, 3, 12, 15), (3, 4), 1.0),
    ((1, 4, 16, 16), 7, 0.5),
    ((3, 2, 9, 20), (2, 5), 0.25),
    ((2, 1, 7, 7), (7, 7), 1 / 16),
    ((1, 2, 10, 6), (4, 1), 0.3),
]


# --- roi_pool -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, output_size, spatial_scale", CASES)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roi_pool_equals_torchvision(shape, output_size, spatial_scale, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype)
    image_size = (round(shape[2] / spatial_scale), round(shape[3] / spatial_scale))
    rois = random_rois(30, shape[0], image_size, g, dtype)
    expected = tvops.roi_pool(x, rois, output_size, spatial_scale)
    torch.testing.assert_close(roi_pool(x, rois, output_size, spatial_scale), expected, rtol=0, atol=0)


def test_roi_pool_half_coordinates_round_away_from_zero_like_torchvision():
    # x1 * scale = 2.5 and 3.5: C's round gives 3 and 4, torch.round would give 2 and 4
    x = torch.arange(100.0).reshape(1, 1, 10, 10)
    rois = torch.tensor([[0, 5.0, 5.0, 7.0, 13.0], [0, 1.0, 3.0, 9.0, 9.0], [0, 0.0, 0.0, 19.0, 19.0]])
    torch.testing.assert_close(roi_pool(x, rois, (2, 3), 0.5), tvops.roi_pool(x, rois, (2, 3), 0.5), rtol=0, atol=0)


def test_roi_pool_hand_computed():
    # a 4 x 4 map 0..15; the box covering cells x 0..3, y 0..1 pooled to 1 x 2: max of each half
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = roi_pool(x, torch.tensor([[0, 0.0, 0.0, 3.0, 1.0]]), (1, 2))
    assert out.tolist() == [[[[5.0, 7.0]]]]  # max of [[0, 1], [4, 5]] and of [[2, 3], [6, 7]]
    # a box completely outside the map gives zeros, not -inf
    assert roi_pool(x, torch.tensor([[0, 10.0, 10.0, 12.0, 12.0]]), 2).abs().sum() == 0


def test_roi_pool_list_of_boxes_equals_tensor_form():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 10, 10, generator=g)
    per_image = [random_rois(4, 1, (10, 10), g)[:, 1:], random_rois(6, 1, (10, 10), g)[:, 1:]]
    expected = tvops.roi_pool(x, per_image, 3)
    torch.testing.assert_close(roi_pool(x, per_image, 3), expected, rtol=0, atol=0)
    assert boxes_to_rois(per_image)[:, 0].tolist() == [0.0] * 4 + [1.0] * 6


# --- roi_align ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, output_size, spatial_scale", CASES)
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_equals_torchvision(shape, output_size, spatial_scale, sampling_ratio, aligned):
    g = torch.Generator().manual_seed(sampling_ratio + 10 * aligned)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    image_size = (round(shape[2] / spatial_scale), round(shape[3] / spatial_scale))
    rois = random_rois(25, shape[0], image_size, g, torch.float64)
    expected = tvops.roi_align(x, rois, output_size, spatial_scale, sampling_ratio, aligned)
    ours = roi_align(x, rois, output_size, spatial_scale, sampling_ratio, aligned)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_roi_align_float32_equals_torchvision(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 8, 20, 24, generator=g)
    rois = random_rois(40, 2, (80, 96), g)
    for aligned in (False, True):
        expected = tvops.roi_align(x, rois, 5, 0.25, -1, aligned)
        torch.testing.assert_close(roi_align(x, rois, 5, 0.25, -1, aligned), expected)


def test_roi_align_tiny_and_zero_size_boxes_equal_torchvision():
    x = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rois = torch.tensor([[0, 3.0, 3.0, 3.0, 3.0], [0, 2.2, 4.1, 2.3, 4.1], [0, 7.5, 7.5, 8.5, 8.5]],
                        dtype=torch.float64)
    for aligned in (False, True):
        for sampling_ratio in (-1, 2):
            expected = tvops.roi_align(x, rois, 2, 1.0, sampling_ratio, aligned)
            torch.testing.assert_close(roi_align(x, rois, 2, 1.0, sampling_ratio, aligned), expected)


def test_roi_align_hand_computed():
    # On a map whose value is its x coordinate, a bilinear sample reads back its own x.
    # Box x 1..3, one bin, 2 x 2 samples: x = 1.5 and 2.5, mean 2; aligned shifts by -0.5 -> 1.5.
    x = torch.arange(6.0).repeat(6, 1)[None, None]
    box = torch.tensor([[0, 1.0, 1.0, 3.0, 3.0]])
    assert roi_align(x, box, 1, sampling_ratio=2).item() == pytest.approx(2.0)
    assert roi_align(x, box, 1, sampling_ratio=2, aligned=True).item() == pytest.approx(1.5)
    # 1 x 2 bins: bin centres at x = 1.5 and 2.5 with one sample each
    assert roi_align(x, box, (1, 2), sampling_ratio=1).flatten().tolist() == pytest.approx([1.5, 2.5])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(2, 12), st.integers(2, 12), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from([1.0, 0.5, 0.125]), st.integers(-1, 3), st.booleans(), st.integers(0, 2**16))
def test_roi_ops_equal_torchvision_random(n, h, w, ph, pw, spatial_scale, sampling_ratio, aligned, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, h, w, generator=g, dtype=torch.float64)
    rois = random_rois(7, n, (round(h / spatial_scale), round(w / spatial_scale)), g, torch.float64)
    torch.testing.assert_close(roi_pool(x, rois, (ph, pw), spatial_scale),
                               tvops.roi_pool(x, rois, (ph, pw), spatial_scale), rtol=0, atol=0)
    torch.testing.assert_close(roi_align(x, rois, (ph, pw), spatial_scale, sampling_ratio, aligned),
                               tvops.roi_align(x, rois, (ph, pw), spatial_scale, sampling_ratio, aligned))


# --- empty and bad input --------------------------------------------------------------------


def test_empty_inputs():
    x = torch.randn(2, 3, 8, 8)
    assert roi_pool(x, torch.zeros(0, 5), (2, 3)).shape == (0, 3, 2, 3)
    assert roi_align(x, torch.zeros(0, 5), 4).shape == (0, 3, 4, 4)
    assert roi_align(x, [torch.zeros(0, 4), torch.zeros(0, 4)], 4).shape == (0, 3, 4, 4)


@pytest.mark.parametrize("roi_pool, roi_align", [(roi_pool, roi_align), (roi_pool_loop, roi_align_loop)],
                         ids=["vectorized", "loop"])
def test_bad_input(roi_pool, roi_align):
    x = torch.randn(2, 3, 8, 8)
    box = torch.tensor([[0, 1.0, 1.0, 4.0, 4.0]])
    with pytest.raises(ValueError, match=r"boxes must have shape \[K, 5\] .* got \[1, 4\]"):
        roi_pool(x, box[:, 1:], 2)
    with pytest.raises(ValueError, match=r"input must have shape \[N, C, H, W\], got \[3, 8, 8\]"):
        roi_align(x[0], box, 2)
    with pytest.raises(ValueError, match=r"batch indices .* in \[0, 1\], got 2.0 at row 0"):
        roi_align(x, torch.tensor([[2, 1.0, 1.0, 4.0, 4.0]]), 2)
    with pytest.raises(ValueError, match=r"batch indices .* in \[0, 1\], got -1.0 at row 1"):
        roi_pool(x, torch.tensor([[0, 1.0, 1.0, 4.0, 4.0], [-1, 1.0, 1.0, 4.0, 4.0]]), 2)
    with pytest.raises(ValueError, match=r"got 0.5 at row 0"):
        roi_pool(x, torch.tensor([[0.5, 1.0, 1.0, 4.0, 4.0]]), 2)
    with pytest.raises(ValueError, match=r"x1 <= x2"):
        roi_pool(x, torch.tensor([[0, 5.0, 1.0, 4.0, 4.0]]), 2)
    with pytest.raises(ValueError, match=r"output_size must be a positive int or \(height, width\), got \(2, 0\)"):
        roi_align(x, box, (2, 0))
    with pytest.raises(ValueError, match=r"spatial_scale must be positive, got -1"):
        roi_align(x, box, 2, spatial_scale=-1)
    with pytest.raises(TypeError, match=r"dtype of input \(torch.float32\), got torch.float64"):
        roi_align(x, box.double(), 2)
    with pytest.raises(TypeError, match=r"boxes\[1\] must be a floating point"):
        roi_align(x, [box[:, 1:], box[:, 1:].long()], 2)
    with pytest.raises(ValueError, match=r"boxes\[0\] must have shape \[N, 4\], got \[1, 5\]"):
        roi_align(x, [box], 2)
    with pytest.raises(TypeError, match="sampling_ratio must be an int, got float"):
        roi_align(x, box, 2, sampling_ratio=2.0)
    with pytest.raises(TypeError, match="aligned must be a bool, got int"):
        roi_align(x, box, 2, aligned=1)
    with pytest.raises(TypeError, match="input must be a floating point tensor"):
        roi_pool(x.long(), box, 2)
    with pytest.raises(TypeError, match=r"non-empty list of Tensor\[L, 4\]"):
        roi_pool(x, "boxes", 2)


# --- the readable loops, the vectorized versions and torchvision agree ------------------------


@pytest.mark.parametrize("shape, output_size, spatial_scale", CASES)
@pytest.mark.parametrize("sampling_ratio, aligned", [(-1, False), (-1, True), (2, False), (3, True)])
def test_loops_equal_vectorized_and_torchvision(shape, output_size, spatial_scale, sampling_ratio, aligned):
    g = torch.Generator().manual_seed(len(shape) + sampling_ratio)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    image_size = (round(shape[2] / spatial_scale), round(shape[3] / spatial_scale))
    rois = random_rois(8, shape[0], image_size, g, torch.float64)
    pooled = roi_pool_loop(x, rois, output_size, spatial_scale)
    torch.testing.assert_close(pooled, roi_pool(x, rois, output_size, spatial_scale), rtol=0, atol=0)
    torch.testing.assert_close(pooled, tvops.roi_pool(x, rois, output_size, spatial_scale), rtol=0, atol=0)
    aligned_out = roi_align_loop(x, rois, output_size, spatial_scale, sampling_ratio, aligned)
    torch.testing.assert_close(aligned_out, roi_align(x, rois, output_size, spatial_scale, sampling_ratio, aligned))
    torch.testing.assert_close(aligned_out,
                               tvops.roi_align(x, rois, output_size, spatial_scale, sampling_ratio, aligned))


@pytest.mark.parametrize("sampling_ratio, aligned", [(-1, False), (-1, True), (2, False), (2, True)])
def test_benchmark_sized_input_equals_torchvision(sampling_ratio, aligned):
    # the benchmark's shape (512 RoIs of 1 to 16 cells on a 32 x 32 map at stride 16), fewer channels
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 16, 32, 32, generator=g)
    xy = torch.rand(512, 2, generator=g) * 496
    rois = torch.cat([torch.randint(0, 2, (512, 1), generator=g).float(), xy,
                      (xy + 16 + torch.rand(512, 2, generator=g) * 240).clamp(max=512)], 1)
    torch.testing.assert_close(roi_align(x, rois, 7, 1 / 16, sampling_ratio, aligned),
                               tvops.roi_align(x, rois, 7, 1 / 16, sampling_ratio, aligned))
    torch.testing.assert_close(roi_pool(x, rois, 7, 1 / 16), tvops.roi_pool(x, rois, 7, 1 / 16), rtol=0, atol=0)


def test_boxes_on_the_border_and_outside_the_map_equal_torchvision():
    x = torch.randn(2, 3, 10, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    rois = torch.tensor([
        [0, 0.0, 0.0, 12.0, 10.0],      # the whole map
        [1, 11.0, 9.0, 12.0, 10.0],     # the bottom-right cell
        [0, -3.0, -2.0, 0.5, 0.5],      # sticks out at the top-left
        [1, 10.5, 4.0, 14.0, 13.0],     # sticks out at the bottom-right
        [0, 20.0, 20.0, 30.0, 25.0],    # entirely outside
        [1, -9.0, -9.0, -2.0, -1.5],    # entirely outside, negative
        [0, 4.0, 4.0, 4.0, 4.0],        # a point
    ], dtype=torch.float64)
    for output_size in (2, (3, 4)):
        for version in (roi_pool, roi_pool_loop):
            torch.testing.assert_close(version(x, rois, output_size), tvops.roi_pool(x, rois, output_size),
                                       rtol=0, atol=0)
        for sampling_ratio in (-1, 0, 1, 2):
            for aligned in (False, True):
                expected = tvops.roi_align(x, rois, output_size, 1.0, sampling_ratio, aligned)
                for version in (roi_align, roi_align_loop):
                    torch.testing.assert_close(version(x, rois, output_size, 1.0, sampling_ratio, aligned), expected)


# --- gradients: detectors train through these ---------------------------------------------------


def test_roi_pool_gradient_equals_torchvision_with_ties():
    # After a ReLU many cells of a bin are 0: the gradient must go to the first maximum in
    # row-major order, as in torchvision, not be shared among the tied cells. Integer upstream
    # gradients in float64 make the sums exact, so the comparison can be exact.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 16, 16, generator=g, dtype=torch.float64).relu()
    x[:, :, 4:8, 4:8] = 1.0  # a plateau: every cell of a bin ties
    rois = random_rois(40, 2, (64, 64), g, torch.float64)
    upstream = torch.randint(-3, 4, (40, 4, 3, 5), generator=g).double()
    grads = []
    for version in (roi_pool, roi_pool_loop, tvops.roi_pool):
        leaf = x.clone().requires_grad_()
        version(leaf, rois, (3, 5), 0.25).backward(upstream)
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[2], rtol=0, atol=0)
    torch.testing.assert_close(grads[1], grads[2], rtol=0, atol=0)


@pytest.mark.parametrize("sampling_ratio, aligned", [(-1, False), (-1, True), (0, False), (2, False), (3, True)])
def test_roi_align_gradient_equals_torchvision(sampling_ratio, aligned):
    g = torch.Generator().manual_seed(2 + sampling_ratio)
    x = torch.randn(2, 3, 12, 14, generator=g, dtype=torch.float64)
    rois = random_rois(12, 2, (48, 56), g, torch.float64)
    upstream = torch.randn(12, 3, 4, 3, generator=g, dtype=torch.float64)
    grads = []
    for version in (roi_align, roi_align_loop, tvops.roi_align):
        leaf = x.clone().requires_grad_()
        version(leaf, rois, (4, 3), 0.25, sampling_ratio, aligned).backward(upstream)
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[2], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[1], grads[2], rtol=1e-12, atol=1e-12)


def test_float32_gradients_equal_torchvision_and_boxes_get_none():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 8, 20, 20, generator=g)
    rois = random_rois(25, 1, (80, 80), g).requires_grad_()
    for ours, theirs in ((roi_align, tvops.roi_align), (roi_pool, tvops.roi_pool)):
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours(a, rois, 5, 0.25).sum().backward()
        theirs(b, rois, 5, 0.25).sum().backward()
        torch.testing.assert_close(a.grad, b.grad)
        assert rois.grad is None  # neither is differentiable with respect to the boxes


# --- lists of boxes with empty images ----------------------------------------------------------


def test_list_of_boxes_with_empty_images_equals_torchvision():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 2, 9, 9, generator=g)
    per_image = [random_rois(3, 1, (9, 9), g)[:, 1:], torch.zeros(0, 4), random_rois(2, 1, (9, 9), g)[:, 1:]]
    torch.testing.assert_close(roi_pool(x, per_image, 2), tvops.roi_pool(x, per_image, 2), rtol=0, atol=0)
    torch.testing.assert_close(roi_align(x, per_image, 2, aligned=True), tvops.roi_align(x, per_image, 2, aligned=True))
    assert boxes_to_rois(per_image)[:, 0].tolist() == [0.0] * 3 + [2.0] * 2
    for version in (roi_pool, roi_pool_loop, roi_align, roi_align_loop):
        assert version(x, [torch.zeros(0, 4)] * 3, (2, 3)).shape == (0, 2, 2, 3)


def test_kernels_and_their_backward_run_on_one_thread_and_restore_the_callers_count():
    # like torchvision's CPU kernels (lecture_lib._single_thread); gradients unchanged
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 4, 12, 12, generator=g)
    rois = random_rois(10, 2, (48, 48), g)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for ours, theirs in ((roi_align, tvops.roi_align), (roi_pool, tvops.roi_pool)):
            a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
            out = ours(a, rois, 3, 0.25)
            assert torch.get_num_threads() == 2 and out.requires_grad
            out.square().sum().backward()
            theirs(b, rois, 3, 0.25).square().sum().backward()
            assert torch.get_num_threads() == 2
            torch.testing.assert_close(a.grad, b.grad)
            empty = x.clone().requires_grad_()  # no boxes: a zero gradient, as torchvision's
            ours(empty, torch.zeros(0, 5), 3).sum().backward()
            assert torch.equal(empty.grad, torch.zeros_like(x))
            with torch.no_grad():
                assert not ours(a, rois, 3, 0.25).requires_grad
        with pytest.raises(ValueError):
            roi_align(x.requires_grad_(), torch.zeros(1, 4), 3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

"""Tests for lecture_lib.upsampling against torch.nn.functional and the lecture's quiz."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lecture_lib.upsampling import (
    ConvTranspose2d,
    bed_of_nails,
    conv_transpose2d,
    conv_transpose2d_loop,
    max_pool2d_with_indices,
    max_unpool2d,
    nearest_upsample,
)

TRANSPOSE_CONVS = [conv_transpose2d, conv_transpose2d_loop]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- nearest, bed of nails

@pytest.mark.parametrize("scale", [1, 2, 3, (2, 3), (1, 4)])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 1), (0, 2, 3, 3)])
def test_nearest_matches_interpolate(scale, shape):
    x = torch.randn(shape, generator=_gen(0))
    torch.testing.assert_close(nearest_upsample(x, scale), F.interpolate(x, scale_factor=scale, mode="nearest"))


@pytest.mark.parametrize("scale", [2, 3, (2, 3)])
def test_bed_of_nails_matches_transpose_conv_with_one_hot_filter(scale):
    # Independent reference: a depthwise transpose conv, stride s, whose s x s filter is 1 at
    # the top-left and 0 elsewhere, puts each value at its block's top-left corner.
    x = torch.randn(2, 3, 4, 5, generator=_gen(1))
    sh, sw = (scale, scale) if isinstance(scale, int) else scale
    w = torch.zeros(3, 1, sh, sw)
    w[:, :, 0, 0] = 1
    torch.testing.assert_close(bed_of_nails(x, scale), F.conv_transpose2d(x, w, stride=(sh, sw), groups=3))


def test_bed_of_nails_by_hand():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(bed_of_nails(x, 2)[0, 0], expected)


@pytest.mark.parametrize("fn", [nearest_upsample, bed_of_nails])
@pytest.mark.parametrize("scale,error,match", [
    (1.5, TypeError, "scale_factor must be an int"),
    (2.0, TypeError, "scale_factor must be an int"),
    (0, ValueError, "scale_factor must be >= 1"),
    ((2, 0), ValueError, "scale_factor must be >= 1"),
    ((2, 2, 2), TypeError, "pair of ints"),
])
def test_bad_scale(fn, scale, error, match):
    with pytest.raises(error, match=match):
        fn(torch.zeros(1, 1, 2, 2), scale)


@pytest.mark.parametrize("fn", [nearest_upsample, bed_of_nails])
def test_non_4d_input(fn):
    with pytest.raises(ValueError, match=r"\[N, C, H, W\].*got \[2, 2\]"):
        fn(torch.zeros(2, 2), 2)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        fn([[1.0]], 2)


# --------------------------------------------------------------------------- max pool / unpool

@pytest.mark.parametrize("kernel,stride", [(2, None), (3, None), (2, 1), (3, 2), ((2, 3), (1, 2)), (1, None)])
@pytest.mark.parametrize("shape", [(2, 3, 7, 8), (1, 1, 6, 6), (0, 2, 4, 4)])
def test_max_pool_matches_torch(kernel, stride, shape):
    x = torch.randn(shape, generator=_gen(2))
    values, indices = max_pool2d_with_indices(x, kernel, stride)
    ref_values, ref_indices = F.max_pool2d(x, kernel, stride, return_indices=True)
    torch.testing.assert_close(values, ref_values)
    torch.testing.assert_close(indices, ref_indices)


def test_max_pool_ties_pick_the_first_like_torch():
    x = torch.randint(0, 3, (2, 2, 8, 8), generator=_gen(3)).float()  # many ties
    for kernel, stride in [(2, None), (3, 1), (3, 2)]:
        _, indices = max_pool2d_with_indices(x, kernel, stride)
        torch.testing.assert_close(indices, F.max_pool2d(x, kernel, stride, return_indices=True)[1])


@pytest.mark.parametrize("kernel,stride,size", [
    (2, None, (6, 8)), (2, None, (7, 9)), (3, 2, (9, 7)), ((2, 3), (2, 3), (8, 9)), (3, 1, (6, 6)),
])
def test_max_unpool_matches_torch(kernel, stride, size):
    x = torch.randn(2, 3, *size, generator=_gen(4))
    pooled, indices = F.max_pool2d(x, kernel, stride, return_indices=True)
    for output_size in (size, x.shape):
        ref = F.max_unpool2d(pooled, indices, kernel, stride, output_size=output_size)
        torch.testing.assert_close(max_unpool2d(pooled, indices, kernel, stride, output_size), ref)
    # without output_size the default size may be too small for the remembered positions
    # (pooling dropped the last row/column): PyTorch fails then, and so do we, more kindly
    try:
        ref = F.max_unpool2d(pooled, indices, kernel, stride)
    except RuntimeError:
        with pytest.raises(ValueError, match="indices must lie in"):
            max_unpool2d(pooled, indices, kernel, stride)
    else:
        torch.testing.assert_close(max_unpool2d(pooled, indices, kernel, stride), ref)


def test_unpool_puts_maxima_back_where_they_were():
    x = torch.tensor([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 1.0], [0.0, 1.0, 2.0, 3.0], [9.0, 0.0, 4.0, 6.0]]]])
    pooled, indices = max_pool2d_with_indices(x, 2)
    torch.testing.assert_close(pooled[0, 0], torch.tensor([[5.0, 8.0], [9.0, 6.0]]))
    expected = torch.tensor([[0, 5, 0, 0], [0, 0, 8, 0], [0, 0, 0, 0], [9, 0, 0, 6]], dtype=torch.float32)
    torch.testing.assert_close(max_unpool2d(pooled, indices, 2)[0, 0], expected)


def test_max_pool_bad_input():
    with pytest.raises(ValueError, match="4-D"):
        max_pool2d_with_indices(torch.zeros(3, 4, 4), 2)
    with pytest.raises(ValueError, match="larger than the input"):
        max_pool2d_with_indices(torch.zeros(1, 1, 2, 2), 3)
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        max_pool2d_with_indices(torch.zeros(1, 1, 4, 4), 2.0)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        max_pool2d_with_indices(torch.zeros(1, 1, 4, 4), 2, 0)


def test_max_unpool_bad_input():
    pooled, indices = F.max_pool2d(torch.randn(1, 2, 4, 4), 2, return_indices=True)
    with pytest.raises(ValueError, match=r"indices must have the shape of x \[1, 2, 2, 2\], got \[1, 2, 4\]"):
        max_unpool2d(pooled, indices.flatten(2), 2)
    with pytest.raises(TypeError, match="int64"):
        max_unpool2d(pooled, indices.int(), 2)
    with pytest.raises(ValueError, match="indices must lie in"):
        max_unpool2d(pooled, indices + 100, 2)
    with pytest.raises(ValueError, match="not consistent with the pooling"):
        max_unpool2d(pooled, indices, 2, output_size=(9, 4))
    with pytest.raises(ValueError, match="4-D"):
        max_unpool2d(pooled[0], indices[0], 2)


# --------------------------------------------------------------------------- the lecture's examples

def test_lecture_upsampling_examples_exactly_as_on_the_slides():
    """Nearest, bed of nails and max unpooling on the slides' own numbers (typed from the slides)."""
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert nearest_upsample(x, 2)[0, 0].tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    assert bed_of_nails(x, 2)[0, 0].tolist() == [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]
    earlier = torch.tensor([[[[1.0, 2.0, 6.0, 3.0], [3.0, 5.0, 2.0, 1.0], [1.0, 2.0, 2.0, 1.0], [7.0, 3.0, 4.0, 8.0]]]])
    pooled, switches = max_pool2d_with_indices(earlier, 2)
    assert pooled[0, 0].tolist() == [[5, 6], [7, 8]]
    unpooled = max_unpool2d(x, switches, 2)[0, 0]
    assert unpooled.tolist() == [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]]
    # the same numbers as lecture_lib.lecture, which the pages import
    from lecture_lib.lecture import BED_OF_NAILS_EXAMPLE, MAX_UNPOOL_EXAMPLE, NEAREST_EXAMPLE

    assert nearest_upsample(x, 2)[0, 0].tolist() == NEAREST_EXAMPLE["output"]
    assert bed_of_nails(x, 2)[0, 0].tolist() == BED_OF_NAILS_EXAMPLE["output"]
    assert earlier[0, 0].tolist() == MAX_UNPOOL_EXAMPLE["pool_input"]
    assert unpooled.tolist() == MAX_UNPOOL_EXAMPLE["unpool_output"]


# --------------------------------------------------------------------------- transpose conv

QUIZ_INPUT = torch.tensor([[[[10.0, 20.0], [30.0, 40.0]]]])
QUIZ_FILTER = torch.tensor([[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]])


@pytest.mark.parametrize("fn", TRANSPOSE_CONVS)
def test_lecture_quiz_numbers(fn):
    out = fn(QUIZ_INPUT, QUIZ_FILTER, stride=2)[0, 0]
    assert out.shape == (5, 5)
    # by hand: row 0 = 10 * [1 2 1] and 20 * [1 2 1] two columns apart, overlapping in column 2
    torch.testing.assert_close(out[0], torch.tensor([10.0, 20.0, 30.0, 40.0, 20.0]))
    # row 1 uses the filter's middle row [2 4 2]: X, Y, Z = 40, 60, 80 (answer C)
    torch.testing.assert_close(out[1, 1:4], torch.tensor([40.0, 60.0, 80.0]))
    torch.testing.assert_close(out, F.conv_transpose2d(QUIZ_INPUT, QUIZ_FILTER, stride=2)[0, 0])


CASES = [
    # (N, C_in, H, W), (C_out, kh, kw), stride, padding, output_padding, bias
    ((1, 1, 3, 3), (1, 3, 3), 1, 0, 0, False),
    ((2, 3, 4, 5), (4, 3, 3), 2, 1, 1, True),
    ((2, 2, 5, 3), (3, 4, 2), (2, 3), (1, 0), (1, 2), True),
    ((1, 4, 6, 6), (2, 4, 4), 2, 1, 0, True),  # the classic 2x learnable upsampling
    ((3, 1, 2, 7), (1, 1, 5), (1, 3), (0, 2), 0, False),
    ((1, 2, 1, 1), (3, 3, 3), 3, 0, 2, True),
    ((0, 2, 4, 4), (3, 3, 3), 2, 0, 1, True),  # empty batch
    ((2, 3, 4, 5), (4, 2, 2), 2, 0, 0, True),  # kernel == stride: U-Net's up-conv (the reshape path)
    ((1, 2, 3, 2), (3, 2, 3), (2, 3), 0, 0, False),  # kernel == stride, not square
]


@pytest.mark.parametrize("fn", TRANSPOSE_CONVS)
@pytest.mark.parametrize("in_shape,w_shape,stride,padding,output_padding,use_bias", CASES)
def test_conv_transpose_matches_torch(fn, in_shape, w_shape, stride, padding, output_padding, use_bias):
    g = _gen(5)
    x = torch.randn(in_shape, generator=g, dtype=torch.float64)
    weight = torch.randn(in_shape[1], *w_shape, generator=g, dtype=torch.float64)
    bias = torch.randn(w_shape[0], generator=g, dtype=torch.float64) if use_bias else None
    ref = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
    torch.testing.assert_close(fn(x, weight, bias, stride, padding, output_padding), ref)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
    h=st.integers(1, 5), w=st.integers(1, 5), kh=st.integers(1, 4), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), data=st.data(),
)
def test_conv_transpose_random_shapes(n, c_in, c_out, h, w, kh, kw, sh, sw, data):
    ph = data.draw(st.integers(0, (kh - 1) // 2))
    pw = data.draw(st.integers(0, (kw - 1) // 2))
    oph, opw = data.draw(st.integers(0, sh - 1)), data.draw(st.integers(0, sw - 1))
    seed = data.draw(st.integers(0, 2**16))
    g = _gen(seed)
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_in, c_out, kh, kw, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    args = (weight, bias, (sh, sw), (ph, pw), (oph, opw))
    ref = F.conv_transpose2d(x, *args)
    torch.testing.assert_close(conv_transpose2d(x, *args), ref)
    torch.testing.assert_close(conv_transpose2d_loop(x, *args), ref)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 0), (2, 1), (3, 1)])
def test_transpose_conv_is_the_gradient_of_conv(stride, padding):
    # conv2d maps z [N, C_in', H', W'] to y; its gradient w.r.t. z for an upstream gradient
    # g is conv_transpose2d(g, same weight, same stride/padding).
    g = _gen(6)
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)  # conv: 3 -> 4 channels
    z = torch.randn(2, 3, 9, 9, generator=g, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(z, weight, stride=stride, padding=padding)
    upstream = torch.randn(y.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad(y, z, upstream)
    # the transpose conv may be short by (9 + 2p - k) % s rows: output_padding restores them
    op = (9 + 2 * padding - 3) % stride
    torch.testing.assert_close(conv_transpose2d(upstream, weight, stride=stride, padding=padding, output_padding=op), grad)


def test_transpose_is_the_adjoint_of_conv():
    # <conv(z), y> == <z, conv_transpose(y)>: the defining property of a transpose
    g = _gen(7)
    weight = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    z = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64)
    lhs = (F.conv2d(z, weight, stride=2, padding=1) * y).sum()
    rhs = (z * conv_transpose2d(y, weight, stride=2, padding=1)).sum()
    torch.testing.assert_close(lhs, rhs)


@pytest.mark.parametrize("kernel,stride,padding,output_padding", [(3, 2, 1, 1), (2, 2, 0, 0)])
def test_gradients_flow_like_torch(kernel, stride, padding, output_padding):
    g = _gen(8)
    x = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    weight = torch.randn(3, 2, kernel, kernel, generator=g, requires_grad=True)
    (conv_transpose2d(x, weight, None, stride, padding, output_padding) ** 2).sum().backward()
    ours = (x.grad.clone(), weight.grad.clone())
    x.grad = weight.grad = None
    (F.conv_transpose2d(x, weight, None, stride, padding, output_padding) ** 2).sum().backward()
    torch.testing.assert_close(ours[0], x.grad)
    torch.testing.assert_close(ours[1], weight.grad)


def test_module_matches_nn_conv_transpose():
    torch.manual_seed(0)
    ours = ConvTranspose2d(3, 5, 4, stride=2, padding=1)
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1)
    torch.testing.assert_close(ours.weight, ref.weight)  # same initialisation
    torch.testing.assert_close(ours.bias, ref.bias)
    x = torch.randn(2, 3, 6, 7)
    torch.testing.assert_close(ours(x), ref(x))


@pytest.mark.parametrize("fn", TRANSPOSE_CONVS)
def test_conv_transpose_bad_input(fn):
    x, w = torch.randn(1, 2, 3, 3), torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\].*got \[2, 3, 3\]"):
        fn(x[0], w)
    with pytest.raises(ValueError, match="channel mismatch: x has C_in = 2 .* C_in = 3"):
        fn(x, torch.randn(3, 4, 3, 3))
    with pytest.raises(ValueError, match="weight must have shape"):
        fn(x, torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        fn(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding must be smaller than stride"):
        fn(x, w, output_padding=1)
    with pytest.raises(ValueError, match=r"bias must have shape \[C_out\] = \[4\]"):
        fn(x, w, bias=torch.zeros(3))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        fn(x, w, stride=0)
    with pytest.raises(TypeError, match="stride must be an int"):
        fn(x, w, stride=1.5)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        fn(x, w, padding=-1)
    with pytest.raises(ValueError, match="output would be empty"):
        fn(x, w, padding=3)
    with pytest.raises(TypeError, match="floating point"):
        fn(x.long(), w)
    with pytest.raises(TypeError, match="dtype"):
        fn(x, w.double())

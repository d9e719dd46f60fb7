"""lecture_lib.clipping against torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lecture_lib.clipping import clip_grad_norm_, clip_grad_value_, grad_total_norm


def _twin_params(seed, shapes=((3, 4), (4,), (2, 3, 5), (1,)), scale=1.0, dtype=torch.float32):
    """Two identical lists of parameters with identical random gradients."""
    g = torch.Generator().manual_seed(seed)
    ours, ref = [], []
    for shape in shapes:
        p = torch.randn(shape, generator=g, dtype=dtype, requires_grad=True)
        p.grad = torch.randn(shape, generator=g, dtype=dtype) * scale
        q = p.detach().clone().requires_grad_()
        q.grad = p.grad.clone()
        ours.append(p)
        ref.append(q)
    return ours, ref


def _assert_same_grads(ours, ref):
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p.grad, q.grad, equal_nan=True)


@pytest.mark.parametrize("norm_type", [1, 2.0, 3, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.0, 0.1, 1.0, 5.0, 1e6])
@pytest.mark.parametrize("seed", range(3))
def test_clip_grad_norm_equals_torch(norm_type, max_norm, seed):
    ours, ref = _twin_params(seed, scale=3.0)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = nn.utils.clip_grad_norm_(ref, max_norm, norm_type)
    torch.testing.assert_close(total, expected)
    _assert_same_grads(ours, ref)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), max_norm=st.floats(1e-3, 1e3),
       norm_type=st.sampled_from([1.0, 1.5, 2.0, 3.0, 7.0, math.inf]), n=st.integers(1, 6))
def test_clip_grad_norm_property(seed, max_norm, norm_type, n):
    g = torch.Generator().manual_seed(seed)
    shapes = [tuple(int(s) for s in torch.randint(1, 6, (int(torch.randint(1, 4, (1,), generator=g)),),
                                                   generator=g)) for _ in range(n)]
    ours, ref = _twin_params(seed, shapes, scale=float(torch.rand(1, generator=g)) * 10)
    before = [p.grad.clone() for p in ours]
    total = clip_grad_norm_(ours, max_norm, norm_type)
    torch.testing.assert_close(total, nn.utils.clip_grad_norm_(ref, max_norm, norm_type))
    _assert_same_grads(ours, ref)
    # the clipped gradients point the same way and their norm is at most max_norm
    after_norm = grad_total_norm([p.grad for p in ours], norm_type)
    assert after_norm <= max_norm * (1 + 1e-5) or torch.isclose(after_norm, total)
    scale = ours[0].grad.flatten()[0] / before[0].flatten()[0]
    for b, p in zip(before, ours):
        torch.testing.assert_close(p.grad, b * scale)


def test_total_norm_is_the_norm_of_the_concatenation():
    ours, _ = _twin_params(0)
    flat = torch.cat([p.grad.flatten() for p in ours])
    for p in (1.0, 2.0, 3.0, math.inf):
        torch.testing.assert_close(grad_total_norm([q.grad for q in ours], p), torch.linalg.vector_norm(flat, p))


def test_clip_grad_norm_hand_computed():
    # gradient (3, 4): L2 norm 5; max_norm 1 -> (0.6, 0.8) up to the 1e-6 guard
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.tensor([3.0, 4.0])
    total = clip_grad_norm_(p, 1.0)
    assert total.item() == pytest.approx(5.0)
    torch.testing.assert_close(p.grad, torch.tensor([0.6, 0.8]))


def test_clip_grad_norm_single_tensor_and_generator_and_missing_grads():
    model, twin = nn.Linear(4, 3), nn.Linear(4, 3)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(8, 4) * 10
    model(x).pow(2).sum().backward()
    twin(x).pow(2).sum().backward()
    model.bias.grad, twin.bias.grad = None, None  # a parameter without gradient is skipped
    total = clip_grad_norm_(model.parameters(), 0.5)  # a generator
    torch.testing.assert_close(total, nn.utils.clip_grad_norm_(twin.parameters(), 0.5))
    torch.testing.assert_close(model.weight.grad, twin.weight.grad)
    assert model.bias.grad is None
    # a single tensor
    total = clip_grad_norm_(model.weight, 0.1, norm_type=1)
    torch.testing.assert_close(total, nn.utils.clip_grad_norm_(twin.weight, 0.1, norm_type=1))
    torch.testing.assert_close(model.weight.grad, twin.weight.grad)


def test_clip_grad_norm_nothing_to_clip():
    total = clip_grad_norm_([], 1.0)
    torch.testing.assert_close(total, nn.utils.clip_grad_norm_([], 1.0))
    p = torch.zeros(3, requires_grad=True)  # no .grad yet
    torch.testing.assert_close(clip_grad_norm_([p], 1.0), torch.tensor(0.0))
    assert p.grad is None


def test_clip_grad_norm_does_not_scale_up_small_gradients():
    ours, ref = _twin_params(1, scale=1e-3)
    before = [p.grad.clone() for p in ours]
    clip_grad_norm_(ours, 10.0)
    nn.utils.clip_grad_norm_(ref, 10.0)
    _assert_same_grads(ours, ref)
    for b, p in zip(before, ours):
        torch.testing.assert_close(p.grad, b)


def test_clip_grad_norm_mixed_dtypes():
    ours, ref = _twin_params(2, shapes=((3,), (2, 2)), scale=5.0, dtype=torch.float64)
    o32, r32 = _twin_params(3, shapes=((4,),), scale=5.0)
    total = clip_grad_norm_(ours + o32, 1.0)
    torch.testing.assert_close(total, nn.utils.clip_grad_norm_(ref + r32, 1.0))
    _assert_same_grads(ours + o32, ref + r32)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_error_if_nonfinite_like_torch(bad):
    ours, ref = _twin_params(4)
    ours[1].grad[0] = bad
    ref[1].grad[0] = bad
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(ref, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    _assert_same_grads(ours, ref)  # nothing was touched
    # without the flag both scale by the non-finite norm
    total = clip_grad_norm_(ours, 1.0)
    expected = nn.utils.clip_grad_norm_(ref, 1.0)
    torch.testing.assert_close(total, expected, equal_nan=True)
    _assert_same_grads(ours, ref)


@pytest.mark.parametrize("clip_value", [0.0, 0.05, 0.5, 2.0, 100.0])
def test_clip_grad_value_equals_torch(clip_value):
    ours, ref = _twin_params(5, scale=2.0)
    assert clip_grad_value_(ours, clip_value) is None
    nn.utils.clip_grad_value_(ref, clip_value)
    _assert_same_grads(ours, ref)
    for p in ours:
        assert p.grad.abs().max() <= clip_value


def test_clip_grad_value_single_tensor_and_missing_grads():
    p = torch.zeros(4, requires_grad=True)
    p.grad = torch.tensor([-3.0, -0.5, 0.5, 3.0])
    q = torch.zeros(2, requires_grad=True)
    clip_grad_value_((t for t in [p, q]), 1.0)
    torch.testing.assert_close(p.grad, torch.tensor([-1.0, -0.5, 0.5, 1.0]))
    assert q.grad is None
    clip_grad_value_(p, 0.25)
    torch.testing.assert_close(p.grad, torch.tensor([-0.25, -0.25, 0.25, 0.25]))


def test_clip_by_value_changes_direction_clip_by_norm_does_not():
    # the lecture's picture: g = (4, 1) clipped by value 1 becomes (1, 1) -- a 45 degree turn
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.tensor([4.0, 1.0])
    clip_grad_value_(p, 1.0)
    torch.testing.assert_close(p.grad, torch.tensor([1.0, 1.0]))
    p.grad = torch.tensor([4.0, 1.0])
    clip_grad_norm_(p, 1.0)
    torch.testing.assert_close(p.grad / p.grad.norm(), torch.tensor([4.0, 1.0]) / math.sqrt(17))


def test_errors():
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.ones(2)
    with pytest.raises(ValueError, match=r"max_norm must be >= 0, got -1.0"):
        clip_grad_norm_(p, -1.0)
    with pytest.raises(ValueError, match=r"clip_value must be >= 0, got -0.5"):
        clip_grad_value_(p, -0.5)
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        clip_grad_norm_(p, float("nan"))
    with pytest.raises(ValueError, match="norm_type must be > 0"):
        clip_grad_norm_(p, 1.0, norm_type=-2)
    with pytest.raises(TypeError, match="norm_type must be a number"):
        clip_grad_norm_(p, 1.0, norm_type="two")
    with pytest.raises(TypeError, match="max_norm must be a real number"):
        clip_grad_norm_(p, "1")
    with pytest.raises(TypeError, match="parameters must hold Tensors, got int at position 1"):
        clip_grad_norm_([p, 3], 1.0)
    with pytest.raises(TypeError, match="parameters must be a Tensor or an iterable"):
        clip_grad_value_(3.0, 1.0)
    assert torch.equal(p.grad, torch.ones(2))  # untouched after every failed call

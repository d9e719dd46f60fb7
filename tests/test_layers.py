"""lecture_lib.layers against torch.nn.functional.dropout, nn.BatchNorm2d and F.batch_norm."""

import math

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lecture_lib.layers import BatchNorm2d, Dropout, batch_norm, dropout, identity_parameters

# --- dropout --------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_prob", [0.1, 0.5, 0.8, 0.95])
def test_dropout_equals_torch_with_same_random_stream(keep_prob):
    # ATen draws a Bernoulli(1 - p) mask from the global generator: same seed, same mask.
    x = torch.randn(64, 33)
    torch.manual_seed(123)
    expected = F.dropout(x, p=1 - keep_prob, training=True)
    torch.manual_seed(123)
    torch.testing.assert_close(dropout(x, keep_prob), expected)


def test_dropout_with_generator_is_reproducible_and_matches_the_mask():
    x = torch.randn(10, 20)
    out1 = dropout(x, 0.7, generator=torch.Generator().manual_seed(5))
    out2 = dropout(x, 0.7, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)
    # the same Bernoulli draw from an independent call with the same generator seed
    mask = torch.empty_like(x).bernoulli_(0.7, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out1, x * mask / 0.7)


@pytest.mark.parametrize("keep_prob", [0.2, 0.5, 0.9])
def test_dropout_mask_statistics(keep_prob):
    x = torch.ones(200_000)
    out = dropout(x, keep_prob, generator=torch.Generator().manual_seed(0))
    kept = out != 0
    n = x.numel()
    # binomial: the kept fraction is within 5 standard deviations of keep_prob
    assert abs(kept.float().mean().item() - keep_prob) < 5 * math.sqrt(keep_prob * (1 - keep_prob) / n)
    # kept units are scaled by exactly 1 / keep_prob (inverted dropout)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / keep_prob))


def test_dropout_preserves_the_expectation():
    x = torch.randn(8)
    g = torch.Generator().manual_seed(1)
    mean = torch.stack([dropout(x, 0.4, generator=g) for _ in range(40_000)]).mean(0)
    # std of the mean of one element: |x| * sqrt((1 - q) / q / 40000)
    tol = 5 * x.abs() * math.sqrt(0.6 / 0.4 / 40_000) + 1e-6
    assert ((mean - x).abs() <= tol).all()


def test_dropout_eval_and_keep_one_are_identity():
    x = torch.randn(4, 5)
    assert torch.equal(dropout(x, 0.3, training=False), x)
    assert torch.equal(dropout(x, 1.0), x)
    torch.testing.assert_close(dropout(x, 0.3, training=False), F.dropout(x, 0.7, training=False))


def test_dropout_gradient_is_the_mask_over_keep_prob():
    x = torch.randn(50, requires_grad=True)
    torch.manual_seed(9)
    out = dropout(x, 0.6)
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).float() / 0.6)


def test_dropout_empty_input():
    out = dropout(torch.empty(0, 3), 0.5)
    assert out.shape == (0, 3)


def test_dropout_module_train_eval():
    m = Dropout(keep_prob=0.5)
    x = torch.ones(1000)
    assert (m(x) == 0).any()
    m.eval()
    assert torch.equal(m(x), x)
    assert "keep_prob=0.5" in repr(m)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.01, 2, float("nan")])
def test_dropout_bad_keep_prob(bad):
    with pytest.raises(ValueError, match=r"keep_prob must be in \(0, 1\]"):
        dropout(torch.ones(3), bad)
    with pytest.raises(ValueError, match="keep_prob"):
        Dropout(bad)


def test_dropout_bad_types():
    with pytest.raises(TypeError, match="keep_prob must be a real number"):
        dropout(torch.ones(3), "0.5")
    with pytest.raises(TypeError, match="keep_prob must be a real number"):
        dropout(torch.ones(3), True)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        dropout([1.0, 2.0], 0.5)


# --- batch norm: the function ---------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), c=st.integers(1, 5), h=st.integers(1, 5), w=st.integers(1, 5),
       momentum=st.floats(0.0, 1.0), training=st.booleans(), seed=st.integers(0, 2**16))
def test_batch_norm_function_equals_functional(n, c, h, w, momentum, training, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 3 + 1
    rm, rv = torch.randn(c, generator=g, dtype=torch.float64), torch.rand(c, generator=g, dtype=torch.float64) + 0.5
    weight, bias = torch.randn(c, generator=g, dtype=torch.float64), torch.randn(c, generator=g, dtype=torch.float64)
    rm2, rv2 = rm.clone(), rv.clone()
    out = batch_norm(x, rm, rv, weight, bias, training=training, momentum=momentum, eps=1e-3)
    ref = F.batch_norm(x, rm2, rv2, weight, bias, training=training, momentum=momentum, eps=1e-3)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(rm, rm2)
    torch.testing.assert_close(rv, rv2)


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 7), (3, 2, 3, 4, 5)])
def test_batch_norm_function_any_rank(shape):
    x = torch.randn(shape)
    rm, rv = torch.zeros(shape[1]), torch.ones(shape[1])
    rm2, rv2 = rm.clone(), rv.clone()
    out = batch_norm(x, rm, rv, training=True)
    torch.testing.assert_close(out, F.batch_norm(x, rm2, rv2, training=True))
    torch.testing.assert_close(rv, rv2)


def test_batch_norm_hand_computed():
    # one channel, values 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased var 5/3
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).reshape(2, 1, 2, 1)
    rm, rv = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    out = batch_norm(x, rm, rv, training=True, momentum=0.1, eps=0.0)
    expected = (torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64) - 2.5) / math.sqrt(1.25)
    torch.testing.assert_close(out.flatten(), expected)
    torch.testing.assert_close(rm, torch.tensor([0.25], dtype=torch.float64))
    torch.testing.assert_close(rv, torch.tensor([0.9 + 0.1 * 5 / 3], dtype=torch.float64))


def test_batch_norm_function_errors():
    with pytest.raises(ValueError, match=r"running_mean must have shape \[3\]"):
        batch_norm(torch.randn(4, 3, 2, 2), torch.zeros(2), torch.ones(3), training=True)
    with pytest.raises(ValueError, match="needed when training=False"):
        batch_norm(torch.randn(4, 3, 2, 2))
    with pytest.raises(ValueError, match=r"\[N, C, \*\]"):
        batch_norm(torch.randn(4), training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm(torch.randn(1, 3, 1, 1), training=True)
    with pytest.raises(TypeError, match="torch.Tensor"):
        batch_norm([[1.0, 2.0]], training=True)


# --- batch norm: the module against nn.BatchNorm2d ----------------------------------------------


def _pair(c, **kwargs):
    ours, ref = BatchNorm2d(c, **kwargs).double(), nn.BatchNorm2d(c, **kwargs).double()
    if ours.weight is not None:
        g = torch.Generator().manual_seed(c)
        with torch.no_grad():
            ours.weight.copy_(torch.randn(c, generator=g, dtype=torch.float64))
            ours.bias.copy_(torch.randn(c, generator=g, dtype=torch.float64))
            ref.weight.copy_(ours.weight)
            ref.bias.copy_(ours.bias)
    return ours, ref


def _assert_same_state(ours, ref):
    s1, s2 = ours.state_dict(), ref.state_dict()
    assert list(s1) == list(s2)
    for key in s1:
        torch.testing.assert_close(s1[key], s2[key], msg=key)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_batchnorm2d_equals_torch_over_training_then_eval(momentum, affine, seed):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = (int(v) for v in torch.randint(2, 7, (4,), generator=g))
    ours, ref = _pair(c, momentum=momentum, affine=affine)
    for step in range(4):  # several batches: running statistics accumulate
        x = (torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * (step + 1) + step).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        upstream = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
        out, ref_out = ours(x), ref(x2)
        torch.testing.assert_close(out, ref_out)
        (out * upstream).sum().backward()
        (ref_out * upstream).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad)
        if affine:
            torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
            torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
        _assert_same_state(ours, ref)
    assert int(ours.num_batches_tracked) == 4
    ours.eval(), ref.eval()
    x = torch.randn(3, c, h, w, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))
    _assert_same_state(ours, ref)  # eval mode does not touch the running statistics


def test_batchnorm2d_without_running_stats_uses_batch_stats_in_eval():
    ours, ref = _pair(4, track_running_stats=False)
    assert ours.running_mean is None and "running_mean" not in ours.state_dict()
    x = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x))
    ours.train(), ref.train()
    torch.testing.assert_close(ours(x), ref(x))


def test_batchnorm2d_float32_and_state_dict_interchange():
    ref = nn.BatchNorm2d(6)
    x = torch.randn(8, 6, 5, 5) * 4 + 2
    ref(x)  # one training step to move the running statistics
    ours = BatchNorm2d(6)
    ours.load_state_dict(ref.state_dict())
    ours.eval(), ref.eval()
    torch.testing.assert_close(ours(x), ref(x))
    ours.train(), ref.train()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    _assert_same_state(ours, ref)


def test_batchnorm2d_output_is_normalized_in_training():
    bn = BatchNorm2d(3)
    out = bn(torch.randn(16, 3, 8, 8) * 5 + 7)
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3, rtol=0)


def test_batchnorm2d_empty_batch():
    ours, ref = BatchNorm2d(3), nn.BatchNorm2d(3)
    x = torch.randn(0, 3, 4, 4)
    assert ours(x).shape == ref(x).shape == (0, 3, 4, 4)
    _assert_same_state(ours, ref)
    ours.eval()
    assert ours(x).shape == (0, 3, 4, 4)


def test_batchnorm2d_reset_running_stats():
    bn = BatchNorm2d(2)
    bn(torch.randn(4, 2, 3, 3) + 3)
    bn.reset_running_stats()
    _assert_same_state(bn, nn.BatchNorm2d(2))


def test_batchnorm2d_errors():
    bn = BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"expected 4D input \[N, C, H, W\], got 3D"):
        bn(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="expected 3 channels"):
        bn(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(torch.randn(1, 3, 1, 1))
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        BatchNorm2d(0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        BatchNorm2d(3, momentum=1.5)
    with pytest.raises(TypeError, match="torch.Tensor"):
        bn("image")


def test_identity_parameters_undo_the_normalization_like_nn_batchnorm2d():
    # the lecture: gamma and beta "can (should?) learn the identity mapping"
    g = torch.Generator().manual_seed(7)
    x = torch.randn(6, 3, 4, 5, generator=g, dtype=torch.float64) * torch.tensor([0.5, 2.0, 9.0],
                                                                               dtype=torch.float64)[None, :, None, None]
    x = x + torch.tensor([-3.0, 0.0, 40.0], dtype=torch.float64)[None, :, None, None]
    gamma, beta = identity_parameters(x, eps=1e-5)
    reference = nn.BatchNorm2d(3, eps=1e-5).double()
    ours = BatchNorm2d(3, eps=1e-5).double()
    with torch.no_grad():
        for layer in (reference, ours):
            layer.weight.copy_(gamma)
            layer.bias.copy_(beta)
    torch.testing.assert_close(reference(x), x)  # training mode: the batch's statistics
    torch.testing.assert_close(ours(x), x)
    torch.testing.assert_close(beta, torch.from_numpy(x.numpy().mean(axis=(0, 2, 3))))
    torch.testing.assert_close(gamma, torch.from_numpy(np.sqrt(x.numpy().var(axis=(0, 2, 3)) + 1e-5)))
    with pytest.raises(ValueError, match=r"x must have shape \[N, C, \*\] \(at least 2 dims\), got \[4\]"):
        identity_parameters(torch.zeros(4))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        identity_parameters([1.0, 2.0])

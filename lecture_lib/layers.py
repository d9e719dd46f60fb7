"""Layers from the recap, written from scratch: inverted dropout and batch normalization.

Dropout (Srivastava et al. 2014). The lecture writes ``p`` as the probability to **keep** a unit;
PyTorch's ``nn.Dropout(p)`` takes the probability to **drop** one. Here the argument is called
``keep_prob`` so there is no doubt: ``dropout(x, keep_prob=0.8)`` equals
``F.dropout(x, p=0.2)``. It is *inverted* dropout: kept units are divided by ``keep_prob`` at
training time, so ``E[out] == x`` and nothing needs rescaling at test time.

Batch normalization (Ioffe & Szegedy 2015). In training mode each channel is normalized with the
mean and (biased) variance of the current mini-batch, then scaled by ``weight`` (gamma) and
shifted by ``bias`` (beta). Running averages of the mean and of the *unbiased* variance are kept
for test time, where the layer is a fixed affine map. PyTorch's momentum convention is
``running = (1 - momentum) * running + momentum * batch_stat`` (the opposite of the optimizer's
momentum); ``momentum=None`` gives the cumulative average over all batches seen so far.
``BatchNorm2d`` here has the same outputs, gradients, running statistics and ``state_dict`` keys
as ``nn.BatchNorm2d``, which the tests check.
"""

from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor, nn

__all__ = ["dropout", "Dropout", "batch_norm", "BatchNorm2d", "identity_parameters"]


def _check_keep_prob(keep_prob) -> float:
    """Return ``keep_prob`` as a float, or raise unless it is a real number in (0, 1]."""
    if isinstance(keep_prob, bool) or not isinstance(keep_prob, Real):
        raise TypeError(f"keep_prob must be a real number in (0, 1], got {type(keep_prob).__name__}")
    keep_prob = float(keep_prob)
    if not 0.0 < keep_prob <= 1.0:  # also rejects NaN
        raise ValueError(
            f"keep_prob must be in (0, 1] (the probability to KEEP a unit; PyTorch's p = 1 - keep_prob), "
            f"got {keep_prob}"
        )
    return keep_prob


# --- dropout ---------------------------------------------------------------------------------


def dropout(x: Tensor, keep_prob: float, training: bool = True, *,
            generator: torch.Generator | None = None) -> Tensor:
    """Inverted dropout with the lecture's **keep** probability.

    Each element is kept with probability ``keep_prob`` and divided by ``keep_prob``, otherwise
    set to 0, so that ``E[out] == x``. At test time (``training=False``) it is the identity.

    Args:
        x (Tensor[*]): activations, any shape (empty is fine).
        keep_prob (float): probability to keep a unit, in (0, 1]. ``1`` switches dropout off.
        training (bool): drop only in training mode.
        generator (torch.Generator, optional): source of randomness for the mask; with the same
            seed the mask is the one ``F.dropout(x, p=1 - keep_prob)`` draws.

    Returns:
        Tensor[*]: same shape and dtype as ``x``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    keep_prob = _check_keep_prob(keep_prob)
    if not training or keep_prob == 1.0:
        return x
    # Same sampling as ATen's dropout: a Bernoulli(keep_prob) mask, scaled by 1 / keep_prob.
    mask = torch.empty_like(x).bernoulli_(keep_prob, generator=generator)
    return x * mask.div_(keep_prob)


class Dropout(nn.Module):
    """``nn.Module`` around :func:`dropout`: drops in ``train()`` mode, identity in ``eval()``.

    Args:
        keep_prob (float): probability to keep a unit, in (0, 1]; ``nn.Dropout(p=1 - keep_prob)``.
    """

    def __init__(self, keep_prob: float = 0.5) -> None:
        super().__init__()
        self.keep_prob = _check_keep_prob(keep_prob)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.keep_prob, self.training)

    def extra_repr(self) -> str:
        return f"keep_prob={self.keep_prob}"


# --- batch normalization ---------------------------------------------------------------------


def batch_norm(x: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalization over every dimension except the channels (dim 1).

    Same arguments and results as ``torch.nn.functional.batch_norm``.

    Args:
        x (Tensor[N, C, *]): input, e.g. ``[N, C, H, W]`` for images.
        running_mean, running_var (Tensor[C], optional): running statistics. Used to normalize
            when ``training=False``; updated **in place** when ``training=True``.
        weight, bias (Tensor[C], optional): gamma and beta (scale and shift); none = 1 and 0.
        training (bool): normalize with the batch statistics (and update the running ones).
        momentum (float): ``running = (1 - momentum) * running + momentum * batch_stat``.
        eps (float): added to the variance before the square root.

    Returns:
        Tensor[N, C, *]: ``(x - mean) / sqrt(var + eps) * weight + bias``, per channel.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape [N, C, *] (at least 2 dims), got {list(x.shape)}")
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"{name} must have shape [{channels}] (one value per channel), got {list(t.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("running_mean and running_var are needed when training=False")

    dims = [0] + list(range(2, x.dim()))  # every dim but the channels
    shape = [1, channels] + [1] * (x.dim() - 2)  # to broadcast a [C] vector against x
    if training:
        values_per_channel = x.numel() // channels if channels else 0
        if values_per_channel == 1:  # the variance of one value is 0: nothing to normalize by
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        if values_per_channel == 0:  # empty batch: empty output, running statistics untouched
            return x.clone()
        # Ioffe & Szegedy, Algorithm 1: mini-batch mean and (biased) variance.
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                # The running variance is the *unbiased* estimate (Algorithm 2 uses m / (m - 1)).
                unbiased_var = var * (values_per_channel / (values_per_channel - 1))
                running_mean.mul_(1 - momentum).add_(mean.detach().to(running_mean.dtype), alpha=momentum)
                running_var.mul_(1 - momentum).add_(unbiased_var.detach().to(running_var.dtype), alpha=momentum)
    else:
        mean, var = running_mean.to(x.dtype), running_var.to(x.dtype)

    x_hat = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + eps)
    if weight is not None:
        x_hat = x_hat * weight.reshape(shape)
    if bias is not None:
        x_hat = x_hat + bias.reshape(shape)
    return x_hat


def identity_parameters(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """The gamma and beta with which training-mode batch norm gives back its input.

    The lecture: "Learn gamma and beta ... It can (should?) learn the identity mapping!"
    With ``gamma = sqrt(var + eps)`` and ``beta = mean`` (the batch's per-channel statistics),
    ``gamma * (x - mean) / sqrt(var + eps) + beta == x``: normalization is undone exactly.

    Args:
        x (Tensor[N, C, *]): the batch; the statistics are over every dim but the channels.
        eps (float): the layer's eps.

    Returns:
        (weight, bias): Tensor[C] each, i.e. sqrt(biased variance + eps) and the mean.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape [N, C, *] (at least 2 dims), got {list(x.shape)}")
    dims = [0] + list(range(2, x.dim()))
    return torch.sqrt(x.var(dim=dims, unbiased=False) + eps), x.mean(dim=dims)


class BatchNorm2d(nn.Module):
    """Batch normalization for ``[N, C, H, W]`` inputs, a drop-in for ``nn.BatchNorm2d``.

    Same constructor, buffers (``running_mean``, ``running_var``, ``num_batches_tracked``),
    parameters (``weight``, ``bias``) and ``state_dict`` keys as ``nn.BatchNorm2d``, so a state
    dict can be moved between the two.

    Args:
        num_features (int): C, the number of channels.
        eps (float): added to the variance for numerical stability.
        momentum (float or None): weight of the newest batch in the running averages;
            ``None`` = cumulative (equal-weight) average of every batch seen.
        affine (bool): learn gamma (``weight``) and beta (``bias``).
        track_running_stats (bool): keep running averages; if False, batch statistics are
            used in eval mode too.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        factory = {"device": device, "dtype": dtype}
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            self.bias = nn.Parameter(torch.zeros(num_features, **factory))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """x (Tensor[N, C, H, W]) -> Tensor[N, C, H, W]."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"expected 4D input [N, C, H, W], got {x.dim()}D input of shape {list(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got input of shape {list(x.shape)}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                # cumulative moving average: the k-th batch gets weight 1/k
                momentum = 1.0 / float(self.num_batches_tracked)
        # Without running statistics there is nothing to use at test time but the batch's.
        use_batch_stats = self.training or self.running_mean is None
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          training=use_batch_stats, momentum=momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")

"""The upsampling family: how a segmentation network gets back to full resolution.

A fully convolutional segmentation net downsamples (pooling, strided convolution) to see a
large context cheaply, then must upsample to give one prediction per pixel. The lecture's
options, from fixed to learned:

- ``nearest_upsample``: copy each value into an ``s x s`` block ("unpooling" by repetition),
- ``bed_of_nails``: put each value at the top-left of its block, zeros elsewhere,
- ``max_pool2d_with_indices`` + ``max_unpool2d``: the pooling layer remembers *where* each
  maximum came from (the "switches"), the matching unpooling layer puts the value back there,
- ``conv_transpose2d``: learnable upsampling. Each input value scales the filter and the scaled
  copies are added into the output, ``stride`` pixels apart; where copies overlap they sum. It
  is the transpose (adjoint) of a strided convolution, hence the name, and it is exactly what
  autograd computes as the gradient of ``conv2d`` with respect to its input.

All functions take ``x (Tensor[N, C, H, W])`` and equal their ``torch.nn.functional``
counterpart; the tests check that on random shapes. ``conv_transpose2d_loop`` is the readable
version of ``conv_transpose2d`` (the lecture's picture as code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "nearest_upsample",
    "bed_of_nails",
    "max_pool2d_with_indices",
    "max_unpool2d",
    "conv_transpose2d",
    "conv_transpose2d_loop",
    "conv_transpose2d_output_size",
    "ConvTranspose2d",
]


def _check_input(x, name: str = "x", floating: bool = False) -> None:
    """Raise unless ``x`` is a 4-D tensor ``[N, C, H, W]`` (of floating dtype if asked)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, C, H, W], got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape [N, C, H, W] (4-D), got {list(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got dtype {x.dtype}")


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """``value`` as ``(for_height, for_width)`` ints >= ``minimum``; non-integers raise."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(items) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(items[0]), int(items[1])


# --------------------------------------------------------------------------- fixed upsampling

def nearest_upsample(x: Tensor, scale_factor: int | tuple[int, int]) -> Tensor:
    """Nearest-neighbour upsampling by an integer factor: every value fills an ``s x s`` block.

    Args:
        x (Tensor[N, C, H, W]): input.
        scale_factor: positive int, or ``(s_h, s_w)``.

    Returns:
        Tensor[N, C, H * s_h, W * s_w], equal to ``F.interpolate(x, scale_factor=s, mode="nearest")``.
    """
    _check_input(x)
    sh, sw = _pair(scale_factor, "scale_factor", 1)
    return x.repeat_interleave(sh, dim=2).repeat_interleave(sw, dim=3)


def bed_of_nails(x: Tensor, scale_factor: int | tuple[int, int]) -> Tensor:
    """"Bed of nails" unpooling: each value at the top-left of its ``s x s`` block, zeros elsewhere.

    Args:
        x (Tensor[N, C, H, W]): input.
        scale_factor: positive int, or ``(s_h, s_w)``.

    Returns:
        Tensor[N, C, H * s_h, W * s_w].
    """
    _check_input(x)
    sh, sw = _pair(scale_factor, "scale_factor", 1)
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, h * sh, w * sw)
    out[:, :, ::sh, ::sw] = x
    return out


# --------------------------------------------------------------------------- max unpooling

def max_pool2d_with_indices(x: Tensor, kernel_size: int | tuple[int, int],
                            stride: int | tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    """Max pooling that also returns where each maximum was (the "switches").

    Args:
        x (Tensor[N, C, H, W]): input.
        kernel_size: window size, int or ``(k_h, k_w)``.
        stride: step between windows (default ``kernel_size``).

    Returns:
        (Tensor[N, C, H_out, W_out], Tensor[N, C, H_out, W_out] int64): the maxima and, for
        each, its flat index ``row * W + col`` in its input plane, with
        ``H_out = (H - k_h) // s_h + 1``. Equal to ``F.max_pool2d(..., return_indices=True)``
        (ties go to the first maximum in row-major order, as in PyTorch).
    """
    _check_input(x)
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(kernel_size if stride is None else stride, "stride", 1)
    n, c, h, w = x.shape
    if kh > h or kw > w:
        raise ValueError(f"kernel_size {(kh, kw)} is larger than the input's {(h, w)}")
    # windows[n, c, i, j] is the k_h x k_w window whose top-left corner is (i * s_h, j * s_w)
    windows = x.unfold(2, kh, sh).unfold(3, kw, sw)  # [N, C, H_out, W_out, k_h, k_w]
    h_out, w_out = windows.shape[2], windows.shape[3]
    values, arg = windows.reshape(n, c, h_out, w_out, kh * kw).max(dim=-1)
    rows = torch.arange(h_out, device=x.device).view(-1, 1) * sh + torch.div(arg, kw, rounding_mode="floor")
    cols = torch.arange(w_out, device=x.device).view(1, -1) * sw + arg % kw
    return values, rows * w + cols


def max_unpool2d(x: Tensor, indices: Tensor, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 output_size: tuple[int, ...] | None = None) -> Tensor:
    """Undo max pooling: put each value back at the position its maximum came from, zeros elsewhere.

    Args:
        x (Tensor[N, C, h, w]): pooled values.
        indices (Tensor[N, C, h, w] int64): the switches from ``max_pool2d_with_indices``.
        kernel_size, stride: those of the pooling (``stride`` defaults to ``kernel_size``).
        output_size: ``(H, W)`` (or ``(N, C, H, W)``) of the map before pooling, needed when
            the pooling dropped rows/columns; default ``((h - 1) * s_h + k_h, (w - 1) * s_w + k_w)``.

    Returns:
        Tensor[N, C, H, W], equal to ``F.max_unpool2d``.
    """
    _check_input(x)
    if not isinstance(indices, Tensor):
        raise TypeError(f"indices must be a torch.Tensor, got {type(indices).__name__}")
    if indices.shape != x.shape:
        raise ValueError(f"indices must have the shape of x {list(x.shape)}, got {list(indices.shape)}")
    if indices.dtype != torch.int64:
        raise TypeError(f"indices must have dtype torch.int64, got {indices.dtype}")
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(kernel_size if stride is None else stride, "stride", 1)
    n, c, h, w = x.shape
    default = ((h - 1) * sh + kh, (w - 1) * sw + kw)
    if output_size is None:
        size = default
    else:
        if not isinstance(output_size, (tuple, list, torch.Size)) or len(output_size) not in (2, 4) \
                or not all(isinstance(s, int) for s in output_size):
            raise ValueError(f"output_size must be (H, W) or (N, C, H, W) ints, got {output_size!r}")
        size = tuple(output_size)[-2:]
        # Same rule as PyTorch: a pooling of stride s maps s consecutive sizes to one h.
        for d, (got, ref, s) in enumerate(zip(size, default, (sh, sw))):
            if not ref - s < got < ref + s:
                raise ValueError(f"output_size {size} is not consistent with the pooling: "
                                 f"size {d} must be between {ref - s + 1} and {ref + s - 1}, got {got}")
    plane = size[0] * size[1]
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= plane):
        raise ValueError(f"indices must lie in [0, {plane}) for an output of size {size}, "
                         f"got values in [{int(indices.min())}, {int(indices.max())}]")
    out = x.new_zeros(n, c, plane)
    out.scatter_(2, indices.reshape(n, c, h * w), x.reshape(n, c, h * w))
    return out.view(n, c, *size)


# --------------------------------------------------------------------------- transpose convolution

def _check_conv_transpose(x, weight, bias, stride, padding, output_padding):
    """Validate the arguments of the transpose convolution; return (stride, padding, output_padding)."""
    _check_input(x, floating=True)
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        shape = list(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must have shape [C_in, C_out, k_h, k_w], got {shape}")
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"channel mismatch: x has C_in = {x.shape[1]} channels but weight "
                         f"[C_in, C_out, k_h, k_w] has C_in = {weight.shape[0]}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight must have the dtype of x ({x.dtype}), got {weight.dtype}")
    if bias is not None and (not isinstance(bias, Tensor) or bias.shape != (weight.shape[1],)):
        shape = list(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
        raise ValueError(f"bias must have shape [C_out] = [{weight.shape[1]}], got {shape}")
    stride = _pair(stride, "stride", 1)
    padding = _pair(padding, "padding", 0)
    output_padding = _pair(output_padding, "output_padding", 0)
    # output_padding only chooses among the sizes a stride-s convolution maps to the same size,
    # so it must be smaller than the stride (PyTorch has the same rule).
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(f"output_padding must be smaller than stride, got output_padding="
                         f"{output_padding} and stride={stride}")
    size = conv_transpose2d_output_size(x.shape[-2:], weight.shape[-2:], stride, padding, output_padding)
    if min(size) <= 0:
        raise ValueError(f"the output would be empty ({size}): padding {padding} is too large "
                         f"for a {tuple(x.shape[-2:])} input and a {tuple(weight.shape[-2:])} filter")
    return stride, padding, output_padding


def conv_transpose2d_output_size(input_size, kernel_size, stride=1, padding=0, output_padding=0) -> tuple[int, int]:
    """``(H_out, W_out)`` with ``H_out = (H - 1) * s - 2 * p + k + output_padding``."""
    h, w = input_size
    (kh, kw), (sh, sw) = _pair(tuple(kernel_size), "kernel_size", 1), _pair(stride, "stride", 1)
    (ph, pw), (oh, ow) = _pair(padding, "padding", 0), _pair(output_padding, "output_padding", 0)
    return (h - 1) * sh - 2 * ph + kh + oh, (w - 1) * sw - 2 * pw + kw + ow


def _crop(full: Tensor, padding, output_padding, size) -> Tensor:
    """Turn the full ("valid" transpose) result into the requested size: ``padding`` removes
    rows/columns on both sides, ``output_padding`` adds zero rows/columns at the bottom/right."""
    (ph, pw), (oh, ow) = padding, output_padding
    if oh or ow:
        full = F.pad(full, (0, ow, 0, oh))
    return full[:, :, ph:ph + size[0], pw:pw + size[1]]


def conv_transpose2d_loop(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                          stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                          output_padding: int | tuple[int, int] = 0) -> Tensor:
    """Transpose convolution, the readable way (the lecture's picture).

    Each input value ``x[n, :, i, j]`` scales the filter, and the scaled filter is added into
    the output with its top-left corner at ``(i * s_h, j * s_w)``: input positions one step
    apart land ``stride`` steps apart in the output, and overlapping copies sum.

    Args and Returns: as :func:`conv_transpose2d`.
    """
    stride, padding, output_padding = _check_conv_transpose(x, weight, bias, stride, padding, output_padding)
    n, _, h, w = x.shape
    c_out, kh, kw = weight.shape[1:]
    (sh, sw) = stride
    full = x.new_zeros(n, c_out, (h - 1) * sh + kh, (w - 1) * sw + kw)
    for i in range(h):
        for j in range(w):
            # x[n, c, i, j] * weight[c] summed over the input channels c: with one channel in
            # and out this is just "value times filter".
            scaled_filter = torch.einsum("nc,cokl->nokl", x[:, :, i, j], weight)
            full[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += scaled_filter
    size = conv_transpose2d_output_size((h, w), (kh, kw), stride, padding, output_padding)
    out = _crop(full, padding, output_padding, size)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def conv_transpose2d(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                     stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                     output_padding: int | tuple[int, int] = 0) -> Tensor:
    """Transpose convolution ("deconvolution", "fractionally strided convolution"), vectorized.

    Same sum as :func:`conv_transpose2d_loop`, organised as one matrix product and one
    scatter-add: every input pixel's scaled filter for all pixels at once is
    ``weight^T @ x`` (a column of ``C_out * k_h * k_w`` values per input pixel), and ``F.fold``
    (col2im) adds each column into the output at its stride-spaced position, cropping the
    padding as it goes.

    Args:
        x (Tensor[N, C_in, H, W]): input (floating point).
        weight (Tensor[C_in, C_out, k_h, k_w]): filters (PyTorch's layout for transpose conv).
        bias (Tensor[C_out], optional): added to every output pixel.
        stride: output step between neighbouring input pixels, int or pair, >= 1.
        padding: rows/columns removed from each side of the full result, >= 0.
        output_padding: extra rows/columns at the bottom/right, ``0 <= output_padding < stride``.

    Returns:
        Tensor[N, C_out, H_out, W_out] with ``H_out = (H - 1) * s_h - 2 * p_h + k_h + op_h``,
        equal to ``F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)``.
    """
    stride, padding, output_padding = _check_conv_transpose(x, weight, bias, stride, padding, output_padding)
    n, c_in, h, w = x.shape
    c_out, kh, kw = weight.shape[1:]
    size = conv_transpose2d_output_size((h, w), (kh, kw), stride, padding, output_padding)
    if n == 0:
        return x.new_zeros(0, c_out, *size)
    # columns[n, (o, a, b), i * W + j] = sum_c weight[c, o, a, b] * x[n, c, i, j]
    columns = weight.reshape(c_in, c_out * kh * kw).t() @ x.reshape(n, c_in, h * w)
    if stride == (kh, kw) and padding == (0, 0) and output_padding == (0, 0):
        # kernel == stride (U-Net's "up-conv 2x2"): the copies tile the output without overlap,
        # so nothing is summed and col2im is a reshape: block (i, j) fills rows i*k_h .. i*k_h+k_h-1
        out = columns.reshape(n, c_out, kh, kw, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c_out, h * kh, w * kw)
        return out + bias.view(1, -1, 1, 1) if bias is not None else out
    # col2im adds column (i, j) at (i * s - p, j * s - p) and drops what falls outside the
    # output: that is the padding crop. output_padding just makes the output taller/wider
    # (fold still finds H x W block positions because output_padding < stride).
    out = F.fold(columns, output_size=size, kernel_size=(kh, kw), stride=stride, padding=padding)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class ConvTranspose2d(nn.Module):
    """A learnable upsampling layer around :func:`conv_transpose2d` (same parameters, same
    initialisation and same outputs as ``torch.nn.ConvTranspose2d`` with groups = dilation = 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 output_padding: int | tuple[int, int] = 0, bias: bool = True) -> None:
        super().__init__()
        kh, kw = _pair(kernel_size, "kernel_size", 1)
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        # nn.ConvTranspose2d's init: kaiming_uniform(a=sqrt(5)), bias ~ U(-1/sqrt(fan_in), ..),
        # where fan_in is computed from the weight's dims 1.. (out_channels * k_h * k_w).
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        if self.bias is not None:
            bound = 1 / (out_channels * kh * kw) ** 0.5
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)

"""Fully convolutional network (Long, Shelhamer & Darrell 2015), small and from scratch.

A classification-style backbone (conv blocks, each followed by 2x2 max pooling) turns the
image into coarse feature maps at strides 2, 4, ..., 32. A 1x1 convolution "scores" every
coarse position for every class (the fully connected classifier turned into a convolution),
and learnable transpose convolutions, initialised to bilinear interpolation as in the paper,
upsample the scores back to the input size. The paper's variants:

- ``"32s"``: score the stride-32 map and upsample it 32x in one step (blobby outputs),
- ``"16s"``: upsample 2x, add the scores of the stride-16 map (a skip connection), then 16x,
- ``"8s"``: the same once more with the stride-8 map, then 8x (sharpest boundaries).

The paper pads the input by 100 pixels and crops the output; we zero-pad the input to a
multiple of 32 and crop the scores back, so any input size works.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.checks import check_scene_config_args
from lecture_lib.upsampling import ConvTranspose2d

__all__ = ["FCNConfig", "FCN", "bilinear_kernel", "scene_config"]

VARIANTS = {"32s": 0, "16s": 1, "8s": 2}  # number of skip connections fused


@dataclass
class FCNConfig:
    """Size of an FCN.

    Attributes:
        num_classes: output channels (classes, background included).
        in_channels: input channels.
        widths: channels of the 5 backbone blocks (one block per pooling: strides 2 .. 32).
        variant: "32s", "16s" or "8s".
    """

    num_classes: int = 5
    in_channels: int = 3
    widths: tuple[int, ...] = (16, 32, 64, 128, 128)
    variant: str = "8s"

    def __post_init__(self) -> None:
        for name in ("num_classes", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if len(self.widths) != 5 or not all(isinstance(w, int) and w > 0 for w in self.widths):
            raise ValueError(f"widths must be 5 positive ints (strides 2 .. 32), got {self.widths!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {tuple(VARIANTS)}, got {self.variant!r}")


def bilinear_kernel(channels: int, factor: int) -> Tensor:
    """Transpose-convolution weight ``Tensor[channels, channels, 2f, 2f]`` that performs
    bilinear upsampling by ``factor`` channel by channel (used with stride ``f`` and padding
    ``f // 2``): the FCN paper's initialisation of its upsampling layers."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    size = 2 * factor
    # the triangle (hat) function: weight 1 at the centre, falling linearly to 0 at distance f
    center = factor - 0.5
    hat = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = hat[:, None] * hat[None, :]
    return weight


def _upsample_layer(channels: int, factor: int) -> ConvTranspose2d:
    # kernel 2f, stride f, padding f/2: output = f * input exactly (for even f)
    layer = ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, factor))
    return layer


class FCN(nn.Module):
    """FCN-32s / 16s / 8s for semantic segmentation.

    ``FCN(FCNConfig(num_classes=5, variant="8s"))`` or ``FCN(num_classes=5, variant="8s")``.

    Input ``Tensor[N, in_channels, H, W]``; output ``Tensor[N, num_classes, H, W]`` (logits).
    """

    def __init__(self, config: FCNConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise TypeError("pass either an FCNConfig or keyword arguments, not both")
        self.config = config if config is not None else FCNConfig(**kwargs)
        cfg = self.config
        blocks, c_in = [], cfg.in_channels
        for width in cfg.widths:
            blocks.append(nn.Sequential(
                nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ))
            c_in = width
        self.blocks = nn.ModuleList(blocks)
        self.n_skips = VARIANTS[cfg.variant]
        k = cfg.num_classes
        # 1x1 "score" layers: the classifier applied at every position of a feature map
        self.score = nn.Conv2d(cfg.widths[4], k, 1)
        self.score_skips = nn.ModuleList([nn.Conv2d(cfg.widths[3 - i], k, 1) for i in range(self.n_skips)])
        self.up2 = nn.ModuleList([_upsample_layer(k, 2) for _ in range(self.n_skips)])
        self.up_final = _upsample_layer(k, 32 // 2 ** self.n_skips)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"input must have shape [N, {self.config.in_channels}, H, W], got {list(x.shape)}")
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % 32, 0, -height % 32))  # 5 poolings need multiples of 32
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)  # strides 2, 4, 8, 16, 32
        scores = self.score(features[4])
        # Long et al. 2015, Sec. 4.2: upsample 2x, add the finer map's scores, repeat
        for i in range(self.n_skips):
            scores = self.up2[i](scores) + self.score_skips[i](features[3 - i])
        scores = self.up_final(scores)
        return scores[:, :, :height, :width]


def scene_config(image_size: int, num_classes: int, variant: str = "8s") -> FCNConfig:
    """The FCN that the segmentation chapter trains beside its U-Net on square scenes of
    ``image_size`` pixels (``num_classes`` with the background): the U-Net's encoder widths
    (8, 16, 32, 64) plus a stride-32 block, so the comparison is about the decoder.

    Args:
        image_size: side of the training images, >= 16 (recorded for symmetry with
            ``lecture_lib.models.unet.scene_config``; an FCN takes any size).
        num_classes: classes to predict, background included (>= 2).
        variant: "32s", "16s" or "8s".
    """
    check_scene_config_args(image_size, num_classes)
    return FCNConfig(num_classes=num_classes, widths=(8, 16, 32, 64, 128), variant=variant)

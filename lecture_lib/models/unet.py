"""U-Net (Ronneberger, Fischer & Brox 2015), small and from scratch.

An encoder halves the resolution ``depth`` times (two 3x3 convolutions, then 2x2 max
pooling), doubling the channels each time; a decoder doubles it back with 2x2 transpose
convolutions ("up-conv 2x2" in the paper). The U-Net idea is the long **skip connections**:
after each up-step the decoder concatenates the encoder's feature map of the same resolution,
so the fine spatial detail lost by pooling comes straight back and object boundaries are sharp.
A final 1x1 convolution gives one score per class and pixel.

Two deliberate differences from the 2015 paper, both now standard: "same" padding (output size
= input size, no cropping of the skip maps) and batch normalization after every convolution.
Inputs of any size work: after each up-step the upsampled map is zero-padded to the size of
its skip map when pooling had dropped an odd row or column.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.checks import check_scene_config_args
from lecture_lib.upsampling import ConvTranspose2d

__all__ = ["UNetConfig", "UNet", "double_conv", "scene_config", "ChannelsLastConv2d"]


@dataclass
class UNetConfig:
    """Size of a U-Net.

    Attributes:
        num_classes: output channels (classes, background included).
        in_channels: input channels (3 for RGB).
        base_channels: channels of the first level; level ``i`` has ``base_channels * 2**i``.
        depth: number of poolings (the paper uses 4 with base 64).
        batch_norm: BatchNorm after each convolution (not in the paper; trains faster).
        stem_stride: 1 (the paper) or 2: the first convolution has stride 2, so the whole
            U-Net runs at half resolution, and a last up-conv brings its features back to full
            resolution, where one 3x3 convolution sees them beside the input image (the pixels'
            own colours place the boundaries). About 4x fewer operations.
    """

    num_classes: int = 5
    in_channels: int = 3
    base_channels: int = 16
    depth: int = 3
    batch_norm: bool = True
    stem_stride: int = 1

    def __post_init__(self) -> None:
        for name in ("num_classes", "in_channels", "base_channels", "depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.stem_stride not in (1, 2) or isinstance(self.stem_stride, bool):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride!r}")


class ChannelsLastConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same state dict) that computes in channels-last memory on
    a CPU and hands back a plain (NCHW) tensor.

    Why: for thin, large feature maps (8 channels at 64 x 64) the CPU's NCHW convolution kernels
    are slow: a 3x3 conv 8 -> 8 on 16 x 8 x 64 x 64, forward and backward on 2 cores, took
    22.1 ms in NCHW and 7.5 ms channels-last, the 1x1 head 8 -> 5 24.3 against 4.2 ms, copies
    in and out included (a training step of the recipe at 128 px: 124 -> 96 ms). The
    U-Net uses it at full resolution only; deeper, smaller maps are as fast in NCHW, and
    BatchNorm's backward is slower channels-last. Inputs already channels-last (a GPU run of
    the recipe converts the whole model) pass straight through.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


def double_conv(in_channels: int, out_channels: int, batch_norm: bool = True,
                channels_last: bool = False) -> nn.Sequential:
    """(3x3 conv -> [BN] -> ReLU) twice, with "same" padding: the U-Net's building block.

    ``channels_last=True`` uses :class:`ChannelsLastConv2d` (for the full-resolution level)."""
    conv = ChannelsLastConv2d if channels_last else nn.Conv2d
    layers: list[nn.Module] = []
    for c_in in (in_channels, out_channels):
        layers.append(conv(c_in, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net for semantic segmentation.

    ``UNet(UNetConfig(num_classes=5, depth=3))`` or ``UNet(num_classes=5, depth=3)``.

    Input ``Tensor[N, in_channels, H, W]`` (any ``H, W >= 1``); output
    ``Tensor[N, num_classes, H, W]``: unnormalized class scores (logits) per pixel.
    """

    def __init__(self, config: UNetConfig | None = None, **kwargs) -> None:
        super().__init__()
        if config is not None and kwargs:
            raise TypeError("pass either a UNetConfig or keyword arguments, not both")
        self.config = config if config is not None else UNetConfig(**kwargs)
        cfg = self.config
        widths = [cfg.base_channels * 2 ** i for i in range(cfg.depth + 1)]
        # the first level's maps are the largest: its convolutions run channels-last on a CPU
        first = double_conv(cfg.in_channels, widths[0], cfg.batch_norm, channels_last=True)
        if cfg.stem_stride == 2:
            first[0].stride = (2, 2)  # the first 3x3 convolution halves the resolution
        self.encoder = nn.ModuleList(
            [first] + [double_conv(widths[i], widths[i + 1], cfg.batch_norm) for i in range(cfg.depth)]
        )
        # up-conv 2x2, stride 2: learned upsampling that also halves the channels
        self.up = nn.ModuleList([ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(cfg.depth))])
        # after concatenation with the skip map there are 2 * widths[i] channels
        self.decoder = nn.ModuleList([double_conv(2 * widths[i], widths[i], cfg.batch_norm, channels_last=i == 0)
                                      for i in reversed(range(cfg.depth))])
        if cfg.stem_stride == 2:
            # back to full resolution; one 3x3 conv sees the features beside the image itself
            self.up_stem = ConvTranspose2d(widths[0], widths[0], 2, stride=2)
            self.refine = nn.Sequential(
                ChannelsLastConv2d(widths[0] + cfg.in_channels, widths[0], 3, padding=1, bias=not cfg.batch_norm),
                *([nn.BatchNorm2d(widths[0])] if cfg.batch_norm else []), nn.ReLU(inplace=True))
        self.head = ChannelsLastConv2d(widths[0], cfg.num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"input must have shape [N, {self.config.in_channels}, H, W], got {list(x.shape)}")
        image, skips = x, []
        for level, block in enumerate(self.encoder):
            # pooling floors odd sizes; a 1-pixel map cannot be pooled further, so keep it
            if level > 0:
                x = F.max_pool2d(x, 2) if min(x.shape[-2:]) >= 2 else x
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for up, block in zip(self.up, self.decoder):
            skip = skips.pop()
            x = up(x)
            # crop or zero-pad to the skip's size (odd sizes lose a row/column in pooling)
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            x = F.pad(x, (0, dw, 0, dh))
            x = block(torch.cat([skip, x], dim=1))
        if self.config.stem_stride == 2:
            x = self.up_stem(x)
            dh, dw = image.shape[-2] - x.shape[-2], image.shape[-1] - x.shape[-1]
            x = self.refine(torch.cat([image, F.pad(x, (0, dw, 0, dh))], dim=1))
        return self.head(x)


def scene_config(image_size: int, num_classes: int) -> UNetConfig:
    """The segmentation chapter's U-Net for square scenes of ``image_size`` pixels.

    Train it with :func:`lecture_lib.train.train_segmenter`; ``benchmarks/bench_unet.py``
    measures the choice (and the alternatives of its ablation table).

    Args:
        image_size: side of the (square) training images, >= 16.
        num_classes: classes to predict, background included (>= 2).
    """
    check_scene_config_args(image_size, num_classes)
    # measured by benchmarks/bench_unet.py on 2 CPU cores (notes in its ablation): at a fixed time
    # budget the number of optimizer steps decides, so at 128 px the U-Net runs at half resolution
    # (stride-2 stem, one full-resolution conv beside the image) and stays thin (8 channels: 16 gave
    # fewer steps and a lower mIoU); depth 4 lets the deepest cells see a whole 64-px object at 128 px.
    # At 64 px a full-resolution step is cheap enough: stem stride 1 there (scenes64, 180 s, 8 views,
    # 300 test scenes: 0.934 against 0.924 at half resolution).
    small = image_size <= 64
    return UNetConfig(num_classes=num_classes, base_channels=8, depth=3 if small else 4, batch_norm=True,
                      stem_stride=1 if small else 2)

"""Small convolutional backbones of the R-CNN family, trained from scratch on a CPU.

* :func:`small_cnn`: conv 3x3 + BatchNorm + ReLU blocks, each followed by 2x2 max pooling -- the
  CNN R-CNN runs on every warped crop;
* :class:`Backbone`: the same blocks in *stages* (each stage halves the resolution and may hold
  several convolutions), optionally with a **top-down pathway** (Lin et al. 2017, feature pyramid
  networks) that adds the coarse, semantically strong maps of the deep stages back onto a finer
  one. The detectors read one map of ``out_channels`` channels at stride ``stride``: with the
  pathway, a fine map (stride 4) that still "sees" 60-pixel objects, so that both the 12-pixel
  and the 64-pixel shapes of a 128 x 128 scene are cut from the same map.

The real detectors use an ImageNet-trained ResNet; a few stages of BatchNorm'ed 3x3 convolutions
are enough for the synthetic shapes and fit in minutes of CPU training.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lecture_lib.checks import check_positive_int, check_positive_ints

__all__ = ["conv_bn_relu", "small_cnn", "Backbone"]


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """A 3x3 convolution (no bias: BatchNorm's shift replaces it), BatchNorm, ReLU."""
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)]


def small_cnn(in_channels: int, widths: tuple[int, ...], pool_last: bool = True) -> nn.Sequential:
    """Conv 3x3 + BatchNorm + ReLU blocks, each followed by 2x2 max pooling (not the last one
    when ``pool_last`` is False); the output stride is ``2 ** (number of pools)``."""
    check_positive_int(in_channels, "in_channels")
    check_positive_ints(widths, "widths")
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers += conv_bn_relu(in_channels, width)
        if pool_last or i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        in_channels = width
    return nn.Sequential(*layers)


class Backbone(nn.Module):
    """Stages of conv-BN-ReLU blocks, optionally with a top-down pathway to a finer output map.

    Stage ``i`` (of ``len(widths)``) works at stride ``2 ** i``: a 2x2 max pooling (not in stage
    0), then ``convs_per_stage[i]`` convolutions of ``widths[i]`` channels.

    * ``top_down_channels = 0``: the output is the last stage's map (stride
      ``2 ** (len(widths) - 1)``, ``widths[-1]`` channels) -- Fast R-CNN's plain backbone.
    * ``top_down_channels = c > 0``: every stage from ``out_level`` on gets a 1x1 "lateral"
      convolution to ``c`` channels; from the deepest up, each map is upsampled 2x (nearest) and
      added to the next finer lateral; a 3x3 conv-BN-ReLU smooths the sum at ``out_level``. The
      output has ``c`` channels at stride ``2 ** out_level``.

    ``forward(images [B, 3, H, W]) -> features [B, out_channels, H / stride, W / stride]``
    (H and W divisible by the deepest stride).
    """

    def __init__(self, widths: tuple[int, ...], convs_per_stage: tuple[int, ...] | None = None,
                 top_down_channels: int = 0, out_level: int | None = None, in_channels: int = 3) -> None:
        super().__init__()
        check_positive_ints(widths, "widths")
        convs_per_stage = (1,) * len(widths) if convs_per_stage is None else tuple(convs_per_stage)
        check_positive_ints(convs_per_stage, "convs_per_stage")
        if len(convs_per_stage) != len(widths):
            raise ValueError(f"convs_per_stage must have one entry per stage ({len(widths)}), "
                             f"got {convs_per_stage!r}")
        if isinstance(top_down_channels, bool) or not isinstance(top_down_channels, int) or top_down_channels < 0:
            raise ValueError(f"top_down_channels must be an int >= 0, got {top_down_channels!r}")
        last = len(widths) - 1
        out_level = last if out_level is None else out_level
        if isinstance(out_level, bool) or not isinstance(out_level, int) or not 0 <= out_level <= last:
            raise ValueError(f"out_level must be a stage index in [0, {last}], got {out_level!r}")
        if top_down_channels == 0 and out_level != last:
            raise ValueError(f"without a top-down pathway the output is the last stage ({last}), "
                             f"got out_level={out_level}")
        self.stages = nn.ModuleList()
        for i, (width, n) in enumerate(zip(widths, convs_per_stage)):
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if i > 0 else []
            for _ in range(n):
                layers += conv_bn_relu(in_channels, width)
                in_channels = width
            self.stages.append(nn.Sequential(*layers))
        self.out_level = out_level
        self.stride = 2 ** out_level
        self.out_channels = top_down_channels or widths[-1]
        self.laterals = nn.ModuleList([nn.Conv2d(w, top_down_channels, 1) for w in widths[out_level:]]
                                      if top_down_channels else [])
        self.smooth = nn.Sequential(*conv_bn_relu(top_down_channels, top_down_channels)) if top_down_channels \
            else None

    def forward(self, images: Tensor) -> Tensor:
        maps = []
        x = images
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        if self.smooth is None:
            return x
        maps = maps[self.out_level:]
        # Lin et al. 2017: coarse-to-fine, upsample the deeper map and add the finer lateral
        top = self.laterals[-1](maps[-1])
        for lateral, finer in zip(reversed(self.laterals[:-1]), reversed(maps[:-1])):
            top = lateral(finer) + F.interpolate(top, size=finer.shape[-2:], mode="nearest")
        return self.smooth(top)

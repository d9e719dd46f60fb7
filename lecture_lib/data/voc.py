"""PASCAL VOC segmentation as tensors, in the same format as the synthetic shapes.

The real-data path of the segmentation chapter: a thin wrapper around
``torchvision.datasets.VOCSegmentation`` (never downloading: the course runs offline, so you
fetch VOC yourself and point ``root`` at it) that turns its PIL images into

- ``image (Tensor[3, H, W] float32)`` in [0, 1], and
- ``mask (Tensor[H, W] int64)``: class ids 0 (background) .. 20 as in ``VOC_CLASSES``, and
  ``VOC_IGNORE_INDEX = 255`` on the thin "void" borders drawn around objects, which the
  metrics and the loss skip (``ignore_index=255``).

Expected layout under ``root`` (VOC's own)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png      (palette PNG: pixel value = class id)
    VOCdevkit/VOC2012/ImageSets/Segmentation/<image_set>.txt   (one <id> per line)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["VOC_CLASSES", "VOC_IGNORE_INDEX", "VOCSegmentationDataset"]

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOC_IGNORE_INDEX = 255


def _check_voc_root(root: Path, year: str, image_set: str) -> None:
    """Raise ``FileNotFoundError`` naming the missing piece when VOC is not where expected."""
    base = root / "VOCdevkit" / f"VOC{year}"
    needed = [base / "JPEGImages", base / "SegmentationClass",
              base / "ImageSets" / "Segmentation" / f"{image_set}.txt"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"PASCAL VOC {year} segmentation data not found under {str(root)!r}: missing "
            f"{', '.join(missing)}. This course never downloads it; get VOCtrainval "
            f"(VOCdevkit/VOC{year}/...) yourself and pass its parent folder as root."
        )


class VOCSegmentationDataset(Dataset):
    """PASCAL VOC semantic segmentation as ``(image [3, H, W] float32, mask [H, W] int64)``.

    Args:
        root: folder that holds ``VOCdevkit/``.
        year: "2007" .. "2012".
        image_set: "train", "trainval" or "val" (the name of the list file).
        image_size: optional ``(H, W)`` (or an int): resize the image bilinearly and the mask
            with nearest neighbour (never interpolate class ids), so that items can be batched.
    """

    classes = VOC_CLASSES
    num_classes = len(VOC_CLASSES)
    ignore_index = VOC_IGNORE_INDEX

    def __init__(self, root: str | os.PathLike, year: str = "2012", image_set: str = "train",
                 image_size: int | tuple[int, int] | None = None) -> None:
        from torchvision.datasets import VOCSegmentation

        if not isinstance(year, str) or year not in {str(y) for y in range(2007, 2013)}:
            raise ValueError(f"year must be a string from '2007' to '2012', got {year!r}")
        if isinstance(image_size, int) and not isinstance(image_size, bool):
            image_size = (image_size, image_size)
        if image_size is not None and not (
            isinstance(image_size, (tuple, list)) and len(image_size) == 2
            and all(isinstance(s, int) and s > 0 for s in image_size)
        ):
            raise ValueError(f"image_size must be None, an int or (height, width) > 0, got {image_size!r}")
        _check_voc_root(Path(root), year, image_set)
        self.image_size = None if image_size is None else tuple(image_size)
        self.voc = VOCSegmentation(str(root), year=year, image_set=image_set, download=False)

    def __len__(self) -> int:
        return len(self.voc)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, target = self.voc[index]  # PIL RGB image, PIL palette ("P") image
        image = torch.from_numpy(np.array(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        # A palette PNG stores the class id as the pixel's palette index: np.array gives it.
        if target.mode not in ("P", "L"):
            raise ValueError(f"segmentation target must be a palette or grey PNG, got mode {target.mode!r}")
        mask = torch.from_numpy(np.array(target, dtype=np.int64))
        if self.image_size is not None:
            image = F.interpolate(image[None], size=self.image_size, mode="bilinear", align_corners=False)[0]
            mask = F.interpolate(mask[None, None].float(), size=self.image_size, mode="nearest")[0, 0].long()
        return image.contiguous(), mask

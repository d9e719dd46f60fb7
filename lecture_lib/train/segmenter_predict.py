"""Using a trained segmenter: masks for images, and the confusion matrix over a test set.

    masks = predict_masks(model, images)                  # Tensor[N, H, W] of class ids
    masks = predict_masks(model, images, tta=True)        # averaged over the 8 flips and turns
    cm = evaluate_segmenter(model, test_set, num_classes, tta=True)
    cm.mean_iou(), cm.per_class_iou(), cm.pixel_accuracy()

**Test-time augmentation** (``tta=True``): the network sees each image in the 8 symmetries of
the square (4 quarter turns, each also mirrored; the 4 flips only for non-square images), the
class probabilities of every view are turned back and averaged, and each pixel takes the
arg-max of the average. The chapter trains with those same flips and turns, so every view is
an image like the training ones; a CNN is not exactly invariant to them (its errors differ from
view to view), and averaging removes part of the errors: on the chapter's stored U-Net, mean IoU
0.895 -> 0.909 for 8 times the forward passes (``benchmarks/bench_unet.py`` measures every row
both ways).

Prediction runs on an inference copy of the model (BatchNorm folded into the convolutions,
PyTorch's transpose convolution in place of the course's, channels-last memory: about 2x faster
on a CPU, the same scores up to float rounding ~1e-6); the model itself is not changed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lecture_lib.metrics.segmentation import ConfusionMatrix

__all__ = ["predict_masks", "predict_probabilities", "evaluate_segmenter", "symmetries"]


def symmetries(height: int, width: int) -> list[tuple[int, bool]]:
    """The views of test-time augmentation, as ``(quarter turns, mirrored)``: the 8 symmetries
    of the square for square images, the 4 flips (0 or 2 turns, mirrored or not) otherwise."""
    turns = range(4) if height == width else (0, 2)
    return [(k, mirrored) for k in turns for mirrored in (False, True)]


def _view(x: Tensor, turns: int, mirrored: bool) -> Tensor:
    x = torch.rot90(x, turns, (-2, -1)) if turns else x
    return x.flip(-1) if mirrored else x


def _unview(x: Tensor, turns: int, mirrored: bool) -> Tensor:
    x = x.flip(-1) if mirrored else x
    return torch.rot90(x, -turns, (-2, -1)) if turns else x


def _check_images(images) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a Tensor[N, C, H, W], got "
                         f"{list(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got {images.dtype}")


def _inference_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode that computes the same scores faster: BatchNorm folded
    into the convolutions before it, the course's from-scratch transpose convolutions
    (``lecture_lib.upsampling.ConvTranspose2d``) swapped for ``torch.nn.ConvTranspose2d`` with
    the same weights (the same sum: ``tests/test_upsampling.py`` checks them equal), channels-last."""
    from lecture_lib.ensembles.training import fold_batch_norm  # here: lecture_lib.ensembles imports lecture_lib.train
    from lecture_lib.upsampling import ConvTranspose2d

    inference = fold_batch_norm(model)
    for parent in list(inference.modules()):
        for name, child in parent.named_children():
            if type(child) is ConvTranspose2d:
                c_in, c_out, kh, kw = child.weight.shape
                fast = nn.ConvTranspose2d(c_in, c_out, (kh, kw), child.stride, child.padding, child.output_padding,
                                          bias=child.bias is not None, device=child.weight.device, dtype=child.weight.dtype)
                fast.load_state_dict(child.state_dict())
                setattr(parent, name, fast)
    return inference.to(memory_format=torch.channels_last)


@torch.no_grad()
def _scores(inference: nn.Module, images: Tensor, batch_size: int, tta: bool):
    """Per chunk of ``batch_size`` images: the class probabilities averaged over the views
    (``tta``), or the scores themselves (one view: the same arg-max, no softmax needed)."""
    weight = next(inference.parameters())
    views = symmetries(*images.shape[-2:]) if tta else [(0, False)]
    for chunk in images.split(batch_size):
        chunk = chunk.to(weight.device, weight.dtype)
        if not tta:
            yield inference(chunk.contiguous(memory_format=torch.channels_last)).float()
            continue
        total = 0
        for turns, mirrored in views:
            view = _view(chunk, turns, mirrored).contiguous(memory_format=torch.channels_last)
            total = total + _unview(inference(view).float().softmax(1), turns, mirrored)
        yield total / len(views)


def _masks(inference: nn.Module, images: Tensor, batch_size: int, tta: bool) -> Tensor:
    # the arg-max chunk by chunk, over channels-last scores (4x faster than over contiguous ones)
    return torch.cat([scores.contiguous(memory_format=torch.channels_last).argmax(1).cpu()
                      for scores in _scores(inference, images, batch_size, tta)])


def _checked(images, batch_size) -> None:
    _check_images(images)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")


def predict_probabilities(model: nn.Module, images: Tensor, batch_size: int = 32, tta: bool = False) -> Tensor:
    """Class probabilities ``Tensor[N, num_classes, H, W]`` (float32, on the CPU) for ``images``
    ``Tensor[N, C, H, W]``: the softmax of the model's scores in eval mode, on the model's
    device, ``batch_size`` images at a time; ``tta``: averaged over :func:`symmetries`."""
    _checked(images, batch_size)
    if len(images) == 0:
        raise ValueError("images must hold at least one image, got an empty Tensor[0, C, H, W]")
    parts = _scores(_inference_copy(model), images, batch_size, tta)
    return torch.cat([p.cpu() if tta else p.softmax(1).cpu() for p in parts]).contiguous()


def predict_masks(model: nn.Module, images: Tensor, batch_size: int = 32, tta: bool = False) -> Tensor:
    """Arg-max class of every pixel: ``Tensor[N, H, W]`` int64 on the CPU for ``images``
    ``Tensor[N, C, H, W]`` (run in eval mode on the model's device, ``batch_size`` at a time;
    ``tta``: of the probabilities averaged over the 8 flips and quarter turns, see the module).
    ``model`` itself is left as it was (prediction runs on an inference copy)."""
    _checked(images, batch_size)
    if len(images) == 0:
        return torch.zeros(0, *images.shape[2:], dtype=torch.int64)
    return _masks(_inference_copy(model), images, batch_size, tta)


def evaluate_segmenter(model: nn.Module, dataset, num_classes: int, batch_size: int = 32,
                       tta: bool = False) -> ConfusionMatrix:
    """The confusion matrix of ``model`` over a data set of ``(image, mask)`` pairs (summed over
    all pixels: read ``.mean_iou()``, ``.per_class_iou()``, ``.pixel_accuracy()`` off it);
    ``tta``: with test-time augmentation (:func:`predict_masks`)."""
    cm = ConfusionMatrix(num_classes)
    inference = _inference_copy(model)
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        images = torch.stack([image for image, _ in items])
        _checked(images, batch_size)
        masks = torch.stack([mask for _, mask in items])
        cm.update(_masks(inference, images, batch_size, tta), masks)
    return cm

"""The segmentation chapter's stored result ``segmenters_scenes`` (``make weights NAME=segmenters_scenes``).

Five segmenters trained by :func:`lecture_lib.train.segmenter.train_segmenter` on the same
4000 ``scenes128`` scenes and evaluated on 300 unseen ones:

- ``unet``: ``UNet(unet.scene_config(128, 5))`` for the full budget of 360 s (6 minutes of
  2 CPU cores, the budget clock of ``train_segmenter``): the chapter's headline model;
- ``unet_60s``, ``fcn32s``, ``fcn16s``, ``fcn8s``: the same U-Net and the three FCNs of
  ``fcn.scene_config(128, 5, variant)`` for 60 s each, so the FCN / U-Net comparison is at
  one budget. (All four at 360 s would make the build about 24 minutes of two dedicated
  cores, hours on a shared machine; the comparison only needs them alike.)

The stored module holds the five networks in half precision (``scene_segmenters(dtype=
torch.float16)``: 4 MB instead of 8); they are trained in float32 and rounded once at the end,
and :func:`evaluate_scene_segmenters` computes with float32 copies of the rounded weights, so
every recorded number is measured on exactly what is stored. The page loads them into float32
models, ``lecture_lib.weights.load("segmenters_scenes", scene_segmenters())`` (the same values),
and evaluates them live.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lecture_lib.train.segmenter import evaluate_segmenter, train_segmenter

__all__ = ["SceneTensors", "scene_tensors", "SCENE_PRESET", "SCENE_BUDGETS", "SCENE_TRAIN", "SCENE_TEST", "SCENE_MODELS", "scene_segmenters",
           "train_scene_segmenters", "evaluate_scene_segmenters", "scene_segmenters_recipe"]

SCENE_PRESET = "scenes128"
# seconds of train_segmenter's budget clock (process CPU s / 2 threads on a CPU) per model
SCENE_BUDGETS = {"unet": 360.0, "unet_60s": 60.0, "fcn32s": 60.0, "fcn16s": 60.0, "fcn8s": 60.0}
SCENE_MODELS = tuple(SCENE_BUDGETS)
SCENE_TRAIN, SCENE_TEST = 4000, 300



class SceneTensors(Dataset):
    """``(image, mask)`` pairs held as two tensors: ``images`` ``Tensor[N, 3, H, W]`` (float32, or
    float16 to halve the memory: items come back as float32) and ``masks`` ``Tensor[N, H, W]``
    (uint8, items come back as int64). 4000 scenes of 128 x 128 take 460 MB in float16, against
    about 1.5 GB for the cached scenes of a ``ShapesDataset``."""

    def __init__(self, images: Tensor, masks: Tensor) -> None:
        if images.dim() != 4 or masks.dim() != 3 or images.shape[0] != masks.shape[0] \
                or images.shape[2:] != masks.shape[1:]:
            raise ValueError(f"images [N, C, H, W] and masks [N, H, W] must agree, got {list(images.shape)} "
                             f"and {list(masks.shape)}")
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index].float(), self.masks[index].long()


def scene_tensors(preset: str, n_images: int, split: str = "train", seed: int = 0, half: bool = False) -> SceneTensors:
    """The scenes of ``lecture_lib.data.shapes.preset_dataset(preset, n_images, ...)`` generated
    once and held as :class:`SceneTensors` (``half``: images in float16)."""
    from lecture_lib.data.shapes import NUM_CLASSES, preset_dataset

    scenes = preset_dataset(preset, n_images, split=split, seed=seed)
    first_image, first_mask = scenes[0] if n_images else (torch.zeros(3, 1, 1), torch.zeros(1, 1))
    images = torch.empty(n_images, *first_image.shape, dtype=torch.float16 if half else torch.float32)
    masks = torch.empty(n_images, *first_mask.shape, dtype=torch.uint8 if NUM_CLASSES <= 256 else torch.int64)
    for i in range(n_images):
        scene = scenes.scene(i)
        images[i], masks[i] = scene.image, scene.mask
        scenes._cache.pop(i, None)  # keep only the compact copy
    return SceneTensors(images, masks)


def scene_segmenters(image_size: int = 128, num_classes: int = 5, dtype: torch.dtype = torch.float32) -> nn.ModuleDict:
    """The chapter's five segmenters, untrained, keyed as :data:`SCENE_MODELS`, their
    floating-point tensors in ``dtype`` (the stored result keeps float16)."""
    from lecture_lib.models import fcn, unet

    models = {"unet": unet.UNet(unet.scene_config(image_size, num_classes)),
              "unet_60s": unet.UNet(unet.scene_config(image_size, num_classes))}
    for variant in ("32s", "16s", "8s"):
        models[f"fcn{variant}"] = fcn.FCN(fcn.scene_config(image_size, num_classes, variant))
    return nn.ModuleDict(models).to(dtype)  # floating-point tensors only (num_batches_tracked stays int64)


def _float32(model: nn.Module) -> nn.Module:
    """``model`` itself when it computes in float32, else a float32 copy (same values)."""
    return model if next(model.parameters()).dtype == torch.float32 else copy.deepcopy(model).float()


def train_scene_segmenters(models: nn.ModuleDict, seed: int = 0, budget_scale: float = 1.0,
                           n_train: int = SCENE_TRAIN) -> dict:
    """Train each model of :func:`scene_segmenters` for its :data:`SCENE_BUDGETS` seconds (times
    ``budget_scale``) on the same ``n_train`` scenes, on the device the models are on.

    A model kept in half precision is trained as a float32 copy, then rounded back into it.

    Returns:
        ``{name: {"steps", "seconds", "budget_seconds", "loss_every", "loss"}}``: the loss curve
        as means of ``loss_every`` steps (at most 200 points).
    """
    if not budget_scale > 0:
        raise ValueError(f"budget_scale must be > 0, got {budget_scale!r}")
    missing = [name for name in SCENE_MODELS if name not in models]
    if missing:
        raise ValueError(f"models must hold {list(SCENE_MODELS)} (from scene_segmenters()), missing {missing}")
    train_set = scene_tensors(SCENE_PRESET, n_train, split="train", half=True)  # before any clock starts
    device = next(models.parameters()).device
    history = {}
    for name in SCENE_MODELS:
        seconds = SCENE_BUDGETS[name] * budget_scale
        work = _float32(models[name])
        h = train_segmenter(work, train_set, seconds, seed=seed, device=device)
        if work is not models[name]:
            models[name].load_state_dict(work.state_dict())  # rounds to the stored precision
        every = max(1, len(h.step_loss) // 200)
        history[name] = {"steps": len(h.step_loss), "seconds": seconds,
                         "budget_seconds": h.epochs[-1]["budget_seconds"], "loss_every": every,
                         "loss": [sum(h.step_loss[i:i + every]) / len(h.step_loss[i:i + every])
                                  for i in range(0, len(h.step_loss), every)]}
    return history


def evaluate_scene_segmenters(models: nn.ModuleDict, n_images: int | None = None) -> dict[str, float]:
    """Mean IoU of every model on the first ``n_images`` (default all 300) test scenes:
    ``mean_iou`` (the U-Net at the full budget), ``mean_iou_<name>`` for the others, and the
    U-Net's ``pixel_accuracy``."""
    test_set = scene_tensors(SCENE_PRESET, min(n_images or SCENE_TEST, SCENE_TEST), split="test")
    result = {}
    for name in SCENE_MODELS:
        cm = evaluate_segmenter(_float32(models[name]).eval(), test_set, models[name].config.num_classes)
        result["mean_iou" if name == "unet" else f"mean_iou_{name}"] = cm.mean_iou()
        if name == "unet":
            result["pixel_accuracy"] = cm.pixel_accuracy()
    return result


def scene_segmenters_recipe():
    """The stored result ``segmenters_scenes`` (``make weights NAME=segmenters_scenes``)."""
    from lecture_lib.weights import Recipe

    budgets = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in SCENE_BUDGETS.items())
    return Recipe(name="segmenters_scenes", build=lambda: scene_segmenters(dtype=torch.float16),
                  train=train_scene_segmenters,
                  evaluate=evaluate_scene_segmenters, metric="mean_iou", check_images=16,
                  description=f"UNet(scene_config(128, 5)) and FCN-32s/16s/8s trained by train_segmenter on "
                              f"{SCENE_TRAIN} {SCENE_PRESET} scenes ({budgets}; CPU s / 2 threads), "
                              "stored in float16")

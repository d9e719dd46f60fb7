"""Train a semantic segmenter for a time budget: the segmentation chapter's recipe in one call.

    model = UNet(scene_config(128, num_classes=5))          # lecture_lib.models.unet
    history = train_segmenter(model, dataset, seconds=360)  # any map-style (image, mask) data set
    masks = predict_masks(model, images)                     # Tensor[N, H, W] of class ids

What the recipe does (each choice measured on the chapter's scenes by
``benchmarks/bench_unet.py``, whose ablation table is in ``benchmarks/results/unet.json``):

- AdamW, a short linear warm-up, then the learning rate falls along a cosine **of the fraction
  of the time budget spent** (the number of steps that fit in the budget is not known before);
- random flips and quarter turns of image and mask together (the 8 symmetries of the square:
  a rotated circle, square, triangle or cross is still one);
- cross-entropy plus soft Dice loss (Dice weighs every class alike, however few its pixels);
- random 64 x 64 crops (the network is fully convolutional: 4x the steps, whole images at test);
- on a GPU: mixed precision (``torch.autocast`` with a gradient scaler) and channels-last
  memory; on a CPU, channels-last only where :class:`SegmenterRecipe` says so (the U-Net's
  full-resolution convolutions compute channels-last on a CPU anyway:
  :class:`lecture_lib.models.unet.ChannelsLastConv2d`).

**The budget clock.** On a CPU, ``seconds`` counts the process's CPU seconds divided by the
number of torch threads (as ``benchmarks/bench_unet.py`` does): on a dedicated machine with
OpenMP's default wait policy that is the wall-clock time (measured: 70.5 ms of CPU per thread
for a 71.5-ms step), and time other processes take is not counted. On a busy machine the
default policy's waiting threads spin and burn CPU seconds that do no work, so the run gets
fewer steps than on dedicated cores; ``OMP_WAIT_POLICY=PASSIVE`` (set before importing torch)
stops that, but then a budget second is worth fewer steps and about 1.9 wall-clock seconds on
an idle machine (79 ms per thread for a 137-ms step). On a GPU, where the CPU mostly waits, it
counts wall-clock seconds.
Loading the data set's items counts too: pre-compute them (a list of tensors) for a fair budget.
The chapter's scenes and stored result: :mod:`lecture_lib.train.segmenter_scenes`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lecture_lib.config import get_device
from lecture_lib.train.loop import fit
from lecture_lib.train.segmenter_predict import evaluate_segmenter, predict_masks  # re-exported: using the trained model
from lecture_lib.train.state import Callback, History, TrainState

__all__ = ["SegmenterRecipe", "train_segmenter", "segmentation_loss", "dice_loss", "predict_masks",
           "evaluate_segmenter", "BudgetClock"]

LOSSES = ("ce", "dice", "ce+dice")
SCHEDULES = ("cosine", "constant")


@dataclass
class SegmenterRecipe:
    """The knobs of :func:`train_segmenter` (defaults: the chapter's recipe).

    Attributes:
        peak_lr: learning rate after the warm-up.
        weight_decay: AdamW's decoupled weight decay.
        warmup_steps: linear warm-up from ``peak_lr / warmup_steps``.
        schedule: "cosine" (to 0 at the end of the budget) or "constant".
        loss: "ce" (pixel-wise cross-entropy), "dice" (soft Dice) or "ce+dice" (their sum).
        flips: random flips and quarter turns (only flips for non-square images).
        channels_last: channels-last memory format; ``None`` = only on a GPU.
        crop: train on random ``crop x crop`` windows (None, or images no larger: whole) ...
        crop_fraction: ... during this fraction of the budget, whole images after it.

    Crops of 64: the network is fully convolutional (evaluated on whole images); a 64-px window
    costs a quarter of a 128-px image, so 4x the steps fit (scenes128, 120 s: mIoU 0.60 -> 0.76).
    Keep ``crop`` >= your largest objects: 48-px crops cut the 64-px shapes and fell to 0.46.
    The last 20 % of the budget trains on whole images, the size the model is evaluated on
    (scenes128, 360 s, 1000 test scenes, 8 views: 0.885 with crops to the end, 0.901 with
    whole images for the last 20 %; the ablation row ``crops_to_the_end`` measures it again).
    """

    peak_lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    schedule: str = "cosine"
    loss: str = "ce+dice"
    flips: bool = True
    channels_last: bool | None = None
    crop: int | None = 64
    crop_fraction: float = 0.8

    def __post_init__(self) -> None:
        if not self.peak_lr > 0:
            raise ValueError(f"peak_lr must be > 0, got {self.peak_lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.warmup_steps, int) or isinstance(self.warmup_steps, bool) or self.warmup_steps < 1:
            raise ValueError(f"warmup_steps must be an int >= 1, got {self.warmup_steps!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.crop is not None and (isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 1):
            raise ValueError(f"crop must be None or an int >= 1, got {self.crop!r}")
        if not 0 <= self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in [0, 1], got {self.crop_fraction!r}")


# --- losses -----------------------------------------------------------------------------------


def dice_loss(logits: Tensor, masks: Tensor, eps: float = 1.0) -> Tensor:
    """Soft Dice loss ``1 - mean_c (2 |P_c . Y_c| + eps) / (|P_c| + |Y_c| + eps)``.

    ``P_c`` are the softmax probabilities of class ``c``, ``Y_c`` its one-hot mask, sums over the
    whole batch; every class counts alike, however few its pixels (Milletari et al. 2016).

    Args:
        logits (Tensor[N, C, H, W]): class scores.
        masks (Tensor[N, H, W] int64): class ids in ``0 .. C - 1``.
    """
    probs = logits.float().softmax(1)
    onehot = F.one_hot(masks, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    overlap, total = (probs * onehot).sum((0, 2, 3)), (probs + onehot).sum((0, 2, 3))
    return 1 - ((2 * overlap + eps) / (total + eps)).mean()


def segmentation_loss(logits: Tensor, masks: Tensor, loss: str = "ce+dice") -> Tensor:
    """Cross-entropy, soft Dice or their sum (``loss`` one of "ce", "dice", "ce+dice")."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    value = logits.new_zeros((), dtype=torch.float32)
    if "ce" in loss.split("+"):
        value = value + F.cross_entropy(logits.float(), masks)
    if "dice" in loss.split("+"):
        value = value + dice_loss(logits, masks)
    return value


# --- data -------------------------------------------------------------------------------------


def _check_item(item: Any, index: int, num_classes: int, in_channels: int | None) -> tuple[Tensor, Tensor]:
    """One data set item -> (image [C, H, W] float, mask [H, W] int64), else a clear error."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"dataset item {index} must be a pair (image, mask), got {type(item).__name__}"
                        + (f" of length {len(item)}" if hasattr(item, "__len__") else ""))
    image, mask = item
    if not isinstance(image, Tensor) or not isinstance(mask, Tensor):
        raise TypeError(f"dataset item {index}: image and mask must be torch.Tensors, got "
                        f"{type(image).__name__} and {type(mask).__name__}")
    if not image.is_floating_point():
        raise TypeError(f"dataset item {index}: image must be a float tensor (e.g. in [0, 1]), got dtype {image.dtype}")
    if image.dim() != 3 or (in_channels is not None and image.shape[0] != in_channels):
        channels = in_channels if in_channels is not None else "C"
        raise ValueError(f"dataset item {index}: image must have shape [{channels}, H, W], got {list(image.shape)}")
    if mask.dtype != torch.int64:
        raise TypeError(f"dataset item {index}: mask must hold int64 class ids, got dtype {mask.dtype}")
    if mask.shape != image.shape[1:]:
        raise ValueError(f"dataset item {index}: mask must have shape [H, W] = {list(image.shape[1:])} "
                         f"(the image's), got {list(mask.shape)}")
    if mask.numel() and (int(mask.min()) < 0 or int(mask.max()) >= num_classes):
        bad = int(mask.max()) if int(mask.max()) >= num_classes else int(mask.min())
        raise ValueError(f"dataset item {index}: mask class ids must be in 0 .. {num_classes - 1} "
                         f"(num_classes = {num_classes}, background included), got {bad}")
    return image, mask


def _random_symmetry(image: Tensor, mask: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Apply one of the 8 symmetries of the square (4 for non-square images) to both."""
    square = image.shape[-1] == image.shape[-2]
    k = int(torch.randint(8 if square else 4, (), generator=generator))
    if square:
        turns, flip = k % 4, k >= 4
        if turns:
            image, mask = image.rot90(turns, (-2, -1)), mask.rot90(turns, (-2, -1))
        if flip:
            image, mask = image.flip(-1), mask.flip(-1)
    else:  # identity, horizontal flip, vertical flip, both (= a half turn)
        dims = [d for d, on in ((-1, k & 1), (-2, k & 2)) if on]
        if dims:
            image, mask = image.flip(dims), mask.flip(dims)
    return image, mask


class _CheckedItems(Dataset):
    """The data set seen by the loader: each item checked (naming its index), then randomly
    turned and flipped with ``generator``."""

    def __init__(self, dataset, num_classes: int, in_channels: int | None, flips: bool,
                 generator: torch.Generator, crop: int | None = None) -> None:
        self.dataset, self.num_classes, self.in_channels = dataset, num_classes, in_channels
        self.flips, self.generator, self.crop = flips, generator, crop

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = _check_item(self.dataset[index], index, self.num_classes, self.in_channels)
        if self.flips:
            image, mask = _random_symmetry(image, mask, self.generator)
        if self.crop is not None:
            height, width = mask.shape
            top = int(torch.randint(max(height - self.crop, 0) + 1, (), generator=self.generator))
            left = int(torch.randint(max(width - self.crop, 0) + 1, (), generator=self.generator))
            image, mask = image[:, top:top + self.crop, left:left + self.crop], mask[top:top + self.crop, left:left + self.crop]
        return image, mask


def _collate(items: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    sizes = sorted({tuple(mask.shape) for _, mask in items})
    if len(sizes) > 1:
        raise ValueError(f"all images of a batch must have the same size, got sizes {sizes}")
    return torch.stack([image for image, _ in items]).float(), torch.stack([mask for _, mask in items])


# --- the budget -------------------------------------------------------------------------------


class BudgetClock:
    """Seconds of training: CPU seconds of this process / torch threads on a CPU, wall-clock
    seconds (after ``torch.cuda.synchronize``) on a GPU. ``spent()`` counts from ``start()``."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.threads = torch.get_num_threads()
        self.name = ("wall-clock seconds" if self.device.type != "cpu"
                     else f"process CPU seconds / {self.threads} threads")
        self.begin = 0.0

    def now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return time.perf_counter()
        if self.device.type != "cpu":
            return time.perf_counter()
        # CPU seconds / threads = the wall time of the same work on dedicated cores
        return time.process_time() / self.threads

    def start(self) -> "BudgetClock":
        self.begin = self.now()
        return self

    def spent(self) -> float:
        return self.now() - self.begin


class _TimeBudget(Callback):
    """Set the learning rate from the fraction of the budget spent; stop when it is spent."""

    def __init__(self, seconds: float, recipe: SegmenterRecipe, clock: BudgetClock, items=None) -> None:
        self.seconds, self.recipe, self.clock, self.items = seconds, recipe, clock, items

    def on_fit_start(self, state: TrainState) -> None:
        self.clock.start()

    def on_batch_start(self, state: TrainState) -> None:
        r = self.recipe
        warmup = min(1.0, (state.step + 1) / r.warmup_steps)
        fraction = min(self.clock.spent() / self.seconds, 1.0)
        decay = 0.5 * (1 + math.cos(math.pi * fraction)) if r.schedule == "cosine" else 1.0
        if self.items is not None and self.items.crop is not None and fraction >= r.crop_fraction:
            self.items.crop = None  # from the next batch on: whole images
        for group in state.optimizer.param_groups:
            group["lr"] = r.peak_lr * warmup * decay

    def on_step_end(self, state: TrainState) -> None:
        if self.clock.spent() >= self.seconds:
            state.stop, state.stop_reason = True, f"budget of {self.seconds:g} s spent ({self.clock.name})"

    def on_epoch_end(self, state: TrainState) -> None:
        state.history.epochs[-1]["budget_seconds"] = self.clock.spent()
        state.history.epochs[-1]["steps"] = state.step


# --- the recipe -------------------------------------------------------------------------------


def _num_classes(model: nn.Module, image: Tensor) -> int:
    """Classes the model predicts: ``model.config.num_classes``, else read off one forward pass."""
    configured = getattr(getattr(model, "config", None), "num_classes", None)
    if isinstance(configured, int) and not isinstance(configured, bool):
        return configured
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            out = model(image[None].float().to(device))
    finally:
        model.train(was_training)
    if out.dim() != 4:
        raise ValueError(f"model must return scores [N, num_classes, H, W], got shape {list(out.shape)}")
    return int(out.shape[1])


def train_segmenter(model: nn.Module, dataset, seconds: float, batch_size: int = 16, seed: int = 0, *,
                    recipe: SegmenterRecipe | None = None, device: torch.device | str | None = None) -> History:
    """Train ``model`` on ``dataset`` for ``seconds`` with the chapter's recipe; return the history.

    Args:
        model: a segmenter returning scores ``Tensor[N, num_classes, H, W]`` for images
            ``Tensor[N, C, H, W]`` (e.g. ``UNet(scene_config(128, 5))``); trained in place on
            ``device`` and left there, **in eval mode**.
        dataset: any map-style data set (``len`` and ``[i]``; a plain Python list works) of
            pairs ``(image Tensor[C, H, W] float, mask Tensor[H, W] int64)``, class ids in
            ``0 .. num_classes - 1`` (0 = background). Every image of a batch has one size.
        seconds: the training budget (> 0): process CPU seconds / torch threads on a CPU,
            wall-clock seconds on a GPU (see the module docstring). The step that crosses it
            finishes, so training ends a fraction of a step after the budget.
        batch_size: images per optimizer step (at most ``len(dataset)``; the last, smaller
            batch of an epoch is dropped when the data set holds a full batch).
        seed: seeds the order of the items and the random flips (seed the model's
            initialisation yourself before building it).
        recipe: the knobs (default :class:`SegmenterRecipe`: the chapter's recipe).
        device: default ``lecture_lib.config.get_device()`` (cuda > mps > cpu).

    Returns:
        History: ``step_loss`` per optimizer step; one row per pass over the data set with
        ``train_loss``, ``lr``, ``budget_seconds`` (spent so far) and ``steps``;
        ``stop_reason`` says the budget was spent.

    Raises:
        ValueError / TypeError: ``seconds <= 0``, an empty data set, an item that is not an
        ``(image, mask)`` pair, a non-float image, a mask of another shape than its image or
        not int64, a class id ``>= num_classes`` (checked as batches are drawn, item by item).
    """
    recipe = SegmenterRecipe() if recipe is None else recipe
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if not isinstance(recipe, SegmenterRecipe):
        raise TypeError(f"recipe must be a SegmenterRecipe, got {type(recipe).__name__}")
    try:
        n_items = len(dataset)
    except TypeError as error:
        raise TypeError(f"dataset must be a map-style data set (len and [i]), got {type(dataset).__name__}") from error
    if n_items == 0:
        raise ValueError("dataset must hold at least one (image, mask) pair, got an empty one")
    device = get_device() if device is None else torch.device(device)

    in_channels = getattr(getattr(model, "config", None), "in_channels", None)
    first = dataset[0]
    if isinstance(first, (tuple, list)) and len(first) == 2 and isinstance(first[0], Tensor):
        num_classes = _num_classes(model, first[0])
    else:
        num_classes = 1 << 62  # the item check below names what is wrong
    _check_item(first, 0, num_classes, in_channels)

    generator = torch.Generator().manual_seed(seed)
    items = _CheckedItems(dataset, num_classes, in_channels, recipe.flips, generator, recipe.crop)
    loader = DataLoader(items, batch_size=min(batch_size, n_items), shuffle=True, generator=generator,
                        drop_last=n_items >= batch_size, collate_fn=_collate)
    channels_last = device.type == "cuda" if recipe.channels_last is None else recipe.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)

    def forward(m: nn.Module, batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        images, masks = batch
        images = images.contiguous(memory_format=memory_format)
        outputs = m(images)
        return segmentation_loss(outputs, masks, recipe.loss), images, masks, outputs

    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.peak_lr, weight_decay=recipe.weight_decay)
    budget = _TimeBudget(float(seconds), recipe, BudgetClock(device), items)
    try:
        history = fit(model, loader, epochs=1 << 30, optimizer=optimizer, callbacks=[budget], device=device,
                      amp=device.type == "cuda", progress=False, metric=None, forward_fn=forward)
    finally:
        model.to(memory_format=torch.contiguous_format)
        model.eval()
    return history

"""``train_detector``: a detector of the R-CNN family trained on a time budget, in one call.

    model = FasterRCNN(scene_config(128, num_classes=5))
    history = train_detector(model, dataset, seconds=360)      # 6 minutes, then eval mode
    history.losses["loss_objectness"]                           # one value per optimizer step

What it does (each choice is one of the chapter's recipe, explained there):

* **a time budget, not a number of epochs**: training stops when ``seconds`` are spent, and the
  learning rate follows a linear warm-up then a cosine decay *over the budget* (the number of
  steps that fit in it is not known in advance, so the schedule follows the fraction of the
  budget spent, as ``benchmarks/bench_unet.py`` does);
* **the budget clock**: by default process CPU seconds divided by the number of torch threads:
  on dedicated cores that is the wall-clock time, and on a shared machine (where other jobs take
  turns on the same cores) it still counts only the work this training did, so the same budget
  buys the same training. ``clock="wall"`` counts wall-clock seconds instead. Reading the data
  counts too: generate synthetic scenes before the call (``[dataset[i] for i in ...]``) if their
  generation should not;
* **AdamW** with weight decay on the weights only (not on biases and BatchNorm's scale and
  shift), gradient norm clipped at ``max_grad_norm`` (the first steps of an RPN trained from
  scratch can be violent);
* **random flips** of the images and their boxes (left-right by default; up-down too with
  ``flips=("horizontal", "vertical")``, right only when the data have no "up", like the
  synthetic shapes);
* seeded: the same ``seed`` gives the same batches, flips and samples (the caller's global RNG
  state is restored afterwards).

It works for any model of the family (and torchvision's detectors): ``model(images, targets)``
in training mode must return a dict of losses, which are summed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lecture_lib.checks import check_detection_targets, check_positive_int, check_positive_number
from lecture_lib.train.loop import fit
from lecture_lib.train.state import Callback, History, TrainState

__all__ = ["FLIPS", "CLOCKS", "DetectorHistory", "BudgetSchedule", "flip_detection", "train_detector",
           "detect", "evaluate_detector"]

FLIPS = ("horizontal", "vertical")
CLOCKS = ("cpu", "wall")


@dataclass
class DetectorHistory(History):
    """``History`` of :func:`train_detector`, plus per optimizer step

    Attributes:
        losses: ``{loss name: [value per step]}`` -- the four losses of Faster R-CNN (five with
            Mask R-CNN), as the model returned them.
        lr: learning rate of each step.
        budget_seconds: seconds of the budget clock spent at the end of each step.
        clock: ``"cpu"`` (process CPU seconds / threads) or ``"wall"``.
        threads: torch threads during training.
        images_seen: images the model was trained on (steps x batch size).
    """

    losses: dict[str, list[float]] = field(default_factory=dict)
    lr: list[float] = field(default_factory=list)
    budget_seconds: list[float] = field(default_factory=list)
    clock: str = "cpu"
    threads: int = 1
    images_seen: int = 0


def flip_detection(image: Tensor, target: dict, horizontal: bool = False, vertical: bool = False
                   ) -> tuple[Tensor, dict]:
    """Mirror an image (Tensor[C, H, W]) and its target: ``boxes`` (and ``proposals``, if present:
    Tensor[N, 4] in (x1, y1, x2, y2)) and instance ``masks`` (Tensor[N, H, W]). Other keys are
    kept as they are; the input is not changed.

    A box ``[x1, x2]`` of an image of width ``W`` becomes ``[W - x2, W - x1]`` (continuous pixel
    coordinates: pixel ``c`` covers ``[c, c + 1)`` and goes to ``W - 1 - c``).
    """
    height, width = image.shape[-2:]
    target = dict(target)
    for key in ("boxes", "proposals"):
        if key not in target:
            continue
        boxes = target[key]
        if horizontal:
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
        if vertical:
            boxes = torch.stack([boxes[:, 0], height - boxes[:, 3], boxes[:, 2], height - boxes[:, 1]], dim=1)
        target[key] = boxes
    if horizontal:
        image = image.flip(-1)
        if "masks" in target:
            target["masks"] = target["masks"].flip(-1)
    if vertical:
        image = image.flip(-2)
        if "masks" in target:
            target["masks"] = target["masks"].flip(-2)
    return image, target


class _FlipCollate:
    """Batch items, each flipped at random (its own generator: seeded, independent of the model)."""

    def __init__(self, flips: tuple[str, ...], generator: torch.Generator) -> None:
        self.flips, self.generator = flips, generator

    def __call__(self, items: list) -> tuple[Tensor, list[dict]]:
        images, targets = [], []
        for image, target in items:
            coins = torch.rand(2, generator=self.generator) < 0.5
            image, target = flip_detection(image, target, horizontal="horizontal" in self.flips and bool(coins[0]),
                                           vertical="vertical" in self.flips and bool(coins[1]))
            images.append(image)
            targets.append(target)
        return torch.stack(images), targets


class BudgetSchedule(Callback):
    """Stop after ``seconds`` of the budget clock; learning rate = ``peak_lr`` x linear warm-up
    over ``warmup_steps`` x a cosine of the fraction of the budget spent (1 -> 0).

    Also records the losses, learning rate and budget seconds of every step into ``history``
    (a :class:`DetectorHistory`).
    """

    def __init__(self, seconds: float, peak_lr: float, warmup_steps: int, clock: str,
                 history: DetectorHistory) -> None:
        self.seconds, self.peak_lr, self.warmup_steps = seconds, peak_lr, warmup_steps
        self.clock, self.record = clock, history
        self.threads = torch.get_num_threads()

    def now(self) -> float:
        # CPU seconds / threads = the wall time of the same work on dedicated cores
        return time.perf_counter() if self.clock == "wall" else time.process_time() / self.threads

    def spent(self) -> float:
        return self.now() - self.start

    def on_fit_start(self, state: TrainState) -> None:
        self.start = self.now()

    def on_batch_start(self, state: TrainState) -> None:
        fraction = min(self.spent() / self.seconds, 1.0)
        warmup = min(1.0, (state.step + 1) / self.warmup_steps)
        lr = self.peak_lr * warmup * 0.5 * (1.0 + math.cos(math.pi * fraction))
        for group in state.optimizer.param_groups:
            group["lr"] = lr

    def on_step_end(self, state: TrainState) -> None:
        for name, value in state.outputs.items():
            self.record.losses.setdefault(name, []).append(float(value))
        self.record.lr.append(state.optimizer.param_groups[0]["lr"])
        self.record.budget_seconds.append(round(self.spent(), 3))
        if self.spent() >= self.seconds:
            state.stop, state.stop_reason = True, f"budget of {self.seconds:g} s spent ({self.clock} clock)"


def _forward(model: nn.Module, batch) -> tuple[Tensor, Tensor, list, dict]:
    images, targets = batch
    losses = model(images, targets)
    return sum(losses.values()), images, targets, {k: v.detach() for k, v in losses.items()}


def _check_dataset(dataset) -> None:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(f"dataset must be a map-style dataset (__len__ and __getitem__), got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("dataset must hold at least one image, got an empty dataset")
    item = dataset[0]
    if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], Tensor):
        raise TypeError(f"dataset items must be (image Tensor[3, H, W], {{'boxes', 'labels'}}), "
                        f"got {type(item).__name__}")
    image, target = item
    if image.dim() != 3 or image.shape[0] != 3 or not image.is_floating_point():
        raise ValueError(f"dataset images must be float Tensor[3, H, W], got {image.dtype} {list(image.shape)}")
    check_detection_targets([target], 1)


def train_detector(model: nn.Module, dataset, seconds: float, batch_size: int = 8, seed: int = 0, *,
                   lr: float = 4e-3, weight_decay: float = 1e-4, warmup_steps: int = 50,
                   max_grad_norm: float | None = 10.0, flips: tuple[str, ...] = ("horizontal",),
                   clock: str = "cpu", callbacks: tuple[Callback, ...] = (),
                   progress: bool = False) -> DetectorHistory:
    """Train a detector for ``seconds`` of the budget clock; return its history, model in eval mode.

    Args:
        model: a detector whose ``forward(images [B, 3, H, W], targets)`` returns a dict of
            losses in training mode (any model of ``lecture_lib.models``, or torchvision's); it is
            trained in place on the device its parameters are on.
        dataset: any map-style dataset (a plain list works) of ``(image Tensor[3, H, W] float in
            [0, 1], {"boxes": Tensor[N, 4], "labels": Tensor[N] int64})``, all images of one
            size; targets may carry ``"masks"`` (Tensor[N, H, W], for Mask R-CNN), flipped too.
        seconds: the training budget. Counted as process CPU seconds / torch threads unless
            ``clock="wall"``: see the module docstring. The step that crosses it is finished.
        batch_size: images per optimizer step.
        seed: seeds the order of the images, the flips and the models' random sampling.
        lr, weight_decay, warmup_steps, max_grad_norm: AdamW's peak learning rate (reached after
            ``warmup_steps`` steps, then a cosine to 0 at the end of the budget), weight decay on
            tensors of 2 dimensions or more, gradient clipping (None: none).
        flips: which random flips to apply, each with probability 1/2: a subset of ``FLIPS``.
        clock: ``"cpu"`` or ``"wall"``.
        callbacks: more ``lecture_lib.train.Callback``\\ s, called after the budget's.
        progress: a tqdm bar over the epochs.

    Returns:
        DetectorHistory: ``fit``'s History (``step_loss``, ``epochs``, ``seconds`` wall-clock,
        ``stop_reason``) plus the losses, learning rate and budget seconds of every step.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_dataset(dataset)
    check_positive_number(seconds, "seconds")
    check_positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    check_positive_number(lr, "lr")
    check_positive_int(warmup_steps, "warmup_steps")
    if isinstance(flips, str) or not isinstance(flips, (tuple, list)) or not set(flips) <= set(FLIPS):
        raise ValueError(f"flips must be a tuple of names from {FLIPS}, got {flips!r}")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    device = next(model.parameters()).device
    history = DetectorHistory(clock=clock, threads=torch.get_num_threads())
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    schedule = BudgetSchedule(float(seconds), lr, warmup_steps, clock, history)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        order = torch.Generator().manual_seed(seed)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=min(batch_size, len(dataset)), shuffle=True, drop_last=True, generator=order,
            collate_fn=_FlipCollate(tuple(flips), torch.Generator().manual_seed(seed + 1)))
        model.train()
        # epochs: an upper bound, the budget stops training long before
        fitted = fit(model, loader, epochs=1_000_000, optimizer=optimizer, callbacks=[schedule, *callbacks],
                     device=device, progress=progress, metric=None, max_grad_norm=max_grad_norm,
                     forward_fn=_forward)
    model.eval()
    history.step_loss, history.epochs = fitted.step_loss, fitted.epochs
    history.seconds, history.stop_reason = fitted.seconds, fitted.stop_reason
    history.images_seen = len(fitted.step_loss) * min(batch_size, len(dataset))
    return history


# --- evaluation ----------------------------------------------------------------------------------


@torch.no_grad()
def detect(model: nn.Module, images, batch_size: int = 25) -> list[dict]:
    """The model's detections (eval mode, no gradients) on a list or tensor of images [3, H, W],
    ``batch_size`` at a time; one dict per image, on the CPU."""
    check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds = []
    try:
        for start in range(0, len(images), batch_size):
            batch = torch.stack(list(images[start:start + batch_size])).to(device)
            preds += [{k: v.cpu() for k, v in p.items()} for p in model(batch)]
    finally:
        model.train(was_training)
    return preds


def evaluate_detector(model: nn.Module, dataset, batch_size: int = 25, masks: bool = False,
                      return_predictions: bool = False) -> dict | tuple[dict, list[dict]]:
    """A detector's box (and mask) mAP on a data set of ``(image, target)`` items.

    Returns:
        ``{"voc_map_50"`` (VOC mAP at IoU 0.5, all-point AP, the devkit's matching),
        ``"coco_map"`` (COCO mAP over IoU 0.50:0.95), ``"coco_map_50"``, ``"coco_map_75"``,
        ``"voc_ap_per_class"`` ({label: AP@0.5}), ``"images"``, ``"objects"``,
        ``"seconds_per_image"`` (wall-clock, batches of ``batch_size``)``}``; with ``masks=True``
        (targets with ``"masks"``, a model that predicts them) also ``"mask_map"``,
        ``"mask_map_50"``, ``"mask_map_75"`` (COCO's segmentation mAP). With
        ``return_predictions=True``: ``(scores, predictions)``, one detection dict per image.
    """
    from lecture_lib.metrics.detection import mean_average_precision
    from lecture_lib.metrics.masks import mask_mean_average_precision

    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise ValueError("dataset must hold at least one image, got an empty dataset")
    images, targets = [image for image, _ in items], [target for _, target in items]
    start = time.perf_counter()
    preds = detect(model, images, batch_size)
    seconds = (time.perf_counter() - start) / len(images)
    voc = mean_average_precision(preds, targets, method="voc")
    coco = mean_average_precision(preds, targets, method="coco")
    scores = {"voc_map_50": voc["map"], "coco_map": coco["map"], "coco_map_50": coco["map_50"],
              "coco_map_75": coco["map_75"], "voc_ap_per_class": {int(k): v for k, v in voc["map_per_class"].items()},
              "images": len(images), "objects": sum(len(t["boxes"]) for t in targets), "seconds_per_image": seconds}
    if masks:
        segm = mask_mean_average_precision(preds, targets)
        scores.update(mask_map=segm["map"], mask_map_50=segm["map_50"], mask_map_75=segm["map_75"])
    return (scores, preds) if return_predictions else scores

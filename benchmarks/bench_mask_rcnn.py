"""Mask R-CNN on the 128-pixel scenes in 8 CPU minutes: mask mAP and box mAP on held-out scenes.

Target (issue 13): ``MaskRCNN(mask_scene_config(128, 5))`` trained from scratch by
``train_detector`` on 3000 ``preset_dataset("scenes128")`` training scenes with their instance
masks, for 8 minutes (480 s of the budget clock: process CPU seconds / 2 threads), reaches on 300
held-out test scenes

* COCO **mask** mAP@[.5:.95] >= 0.60 (``lecture_lib.metrics.masks.mask_mean_average_precision``,
  equal to pycocotools' ``COCOeval(iouType="segm")``), and
* VOC **box** mAP@0.5 >= 0.90.

Also recorded: COCO box mAP, mask mAP@0.5 / @0.75, the mean mask IoU of the true positives
(score >= 0.5, box IoU >= 0.5 with an object of the same class; ``matched_mask_ious``) and the
training curves' last values.

    python benchmarks/bench_mask_rcnn.py                  # full: about 10 min on 2 idle cores
    LECTURE_QUICK=1 python benchmarks/bench_mask_rcnn.py  # smoke run (seconds of training, no targets)
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # effective only if torch is not imported yet

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import write_result  # noqa: E402

from lecture_lib.config import is_quick, pick, seed_everything  # noqa: E402
from lecture_lib.models.faster_rcnn import scene_items  # noqa: E402
from lecture_lib.models.mask_rcnn import MaskRCNN, mask_scene_config, matched_mask_ious  # noqa: E402
from lecture_lib.train.detector import detect, evaluate_detector, train_detector  # noqa: E402

THREADS = 2
TARGET_MASK, TARGET_BOX = 0.60, 0.90


@dataclass
class Settings:
    budget_s: float = pick(480.0, 4.0)
    n_train: int = pick(3000, 16)
    n_test: int = pick(300, 8)
    data_seed: int = 0


def main() -> dict:
    s = Settings()
    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()[0]
    train = scene_items("train", s.n_train, s.data_seed, masks=True)  # generated before the clock starts
    test = scene_items("test", s.n_test, s.data_seed, masks=True)
    seed_everything(0)
    config = mask_scene_config(128, 5)
    model = MaskRCNN(config)
    wall = time.perf_counter()
    history = train_detector(model, train, seconds=s.budget_s, flips=("horizontal", "vertical"))
    train_wall = time.perf_counter() - wall
    scores = evaluate_detector(model, test, masks=True)
    preds = detect(model, [image for image, _ in test])
    ious = matched_mask_ious(preds, [t for _, t in test], iou_threshold=0.5, score_threshold=0.5)
    spent = history.budget_seconds[-1]
    passed = bool(scores["mask_map"] >= TARGET_MASK and scores["voc_map_50"] >= TARGET_BOX
                  and spent <= s.budget_s + 5.0 and not is_quick())
    result = {
        "target": f"Mask R-CNN (mask_scene_config) trained from scratch for {s.budget_s:.0f} s (process CPU s / "
                  f"{THREADS} threads) on scenes128: COCO mask mAP >= {TARGET_MASK} and VOC box mAP@0.5 >= "
                  f"{TARGET_BOX} on {s.n_test} held-out test scenes",
        "measured": f"mask mAP {scores['mask_map']:.3f} (@0.5 {scores['mask_map_50']:.3f}, @0.75 "
                    f"{scores['mask_map_75']:.3f}), box VOC mAP@0.5 {scores['voc_map_50']:.3f}, box COCO mAP "
                    f"{scores['coco_map']:.3f} after {spent:.0f} s ({len(history.step_loss)} steps, {train_wall:.0f} s "
                    f"wall); mean mask IoU of {len(ious)} true positives "
                    f"{ious.mean().item() if len(ious) else 0.0:.3f}" + (" (quick sizes)" if is_quick() else ""),
        "passed": passed,
        **{k: v for k, v in scores.items()},
        "mean_mask_iou_true_positives": ious.mean().item() if len(ious) else 0.0,
        "true_positives": len(ious),
        "steps": len(history.step_loss), "images_seen": history.images_seen,
        "train_budget_seconds": spent, "train_wall_seconds": train_wall, "stop_reason": history.stop_reason,
        "final_losses": {k: sum(v[-20:]) / len(v[-20:]) for k, v in history.losses.items()},
        "settings": asdict(s),
        "config": asdict(config),
        "budget_clock": f"process CPU seconds / {THREADS} threads",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": {"1min_before": load_before, "1min_after": os.getloadavg()[0]},
        "quick": is_quick(),
    }
    path = write_result("mask_rcnn", result)
    print(result["measured"], "->", "PASS" if passed else "FAIL", f"({path})")
    return result


if __name__ == "__main__":
    main()

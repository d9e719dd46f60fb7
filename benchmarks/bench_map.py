"""mean_average_precision(method="coco") against pycocotools' COCOeval: same numbers, faster.

Synthetic, seeded data: 5 000 images x 100 detections x 20 classes (LECTURE_QUICK=1: 200 images),
up to 15 ground-truth objects per image; detections are jittered copies of the objects (some
with a wrong class) and random boxes, with scores that favour the good ones. The reference time
is pycocotools' full evaluate() + accumulate() + summarize() on COCO objects built beforehand;
our time is one call on the list of dicts of tensors. Target: the three numbers of
COCOeval.stats[:3] within 1e-6 and a median paired speed-up >= 20.

Run: ``.venv/bin/python benchmarks/bench_map.py``
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import paired_ratio, write_result  # noqa: E402

from lecture_lib.config import pick  # noqa: E402
from lecture_lib.metrics.detection import mean_average_precision  # noqa: E402

TARGET_RATIO = 20.0
TOLERANCE = 1e-6


def make_data(num_images: int, detections: int = 100, num_classes: int = 20, seed: int = 0):
    """Seeded synthetic detections and ground truth (lists of dicts of tensors)."""
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(num_images):
        m = int(rng.integers(1, 16))
        xy = rng.uniform(0, 500, (m, 2))
        gt = np.concatenate([xy, xy + rng.uniform(10, 200, (m, 2))], 1)
        gt_labels = rng.integers(0, num_classes, m)
        near = min(detections, int(rng.integers(m, 4 * m + 1)))
        pick_gt = rng.integers(0, m, near)
        size = gt[pick_gt, 2:] - gt[pick_gt, :2]
        jitter = rng.normal(0, 0.12, (near, 4)) * np.concatenate([size, size], 1)
        near_boxes = gt[pick_gt] + jitter
        near_labels = np.where(rng.random(near) < 0.9, gt_labels[pick_gt], rng.integers(0, num_classes, near))
        far = detections - near
        xy = rng.uniform(0, 500, (far, 2))
        far_boxes = np.concatenate([xy, xy + rng.uniform(5, 200, (far, 2))], 1)
        boxes = np.concatenate([near_boxes, far_boxes])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        scores = np.concatenate([rng.beta(4, 2, near), rng.beta(2, 4, far)]).round(3)  # ties happen
        labels = np.concatenate([near_labels, rng.integers(0, num_classes, far)])
        preds.append({"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.tensor(scores, dtype=torch.float32),
                      "labels": torch.tensor(labels)})
        targets.append({"boxes": torch.tensor(gt, dtype=torch.float32), "labels": torch.tensor(gt_labels)})
    return preds, targets


def to_coco(preds, targets):
    """pycocotools COCO objects for the ground truth and the detections (xywh boxes)."""
    from pycocotools.coco import COCO

    images = [{"id": i + 1} for i in range(len(targets))]
    labels = sorted({int(c) for d in preds + targets for c in d["labels"].tolist()})
    annotations = []
    for i, t in enumerate(targets):
        for (x1, y1, x2, y2), c in zip(t["boxes"].double().tolist(), t["labels"].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": c, "iscrowd": 0,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
    results = []
    for i, p in enumerate(preds):
        for (x1, y1, x2, y2), s, c in zip(p["boxes"].double().tolist(), p["scores"].double().tolist(), p["labels"].tolist()):
            results.append({"image_id": i + 1, "category_id": c, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "categories": [{"id": c} for c in labels], "annotations": annotations}
        gt.createIndex()
        dt = gt.loadRes(results)
    return gt, dt


def pycocotools_stats(gt, dt) -> np.ndarray:
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def main() -> dict:
    num_images = pick(5000, 200)
    repeats = pick(3, 3)
    preds, targets = make_data(num_images)
    gt, dt = to_coco(preds, targets)
    ours = mean_average_precision(preds, targets)
    ref = pycocotools_stats(gt, dt)
    ours_v = np.array([ours["map"], ours["map_50"], ours["map_75"]])
    max_abs_diff = float(np.max(np.abs(ours_v - ref[:3])))
    timing = paired_ratio(lambda: mean_average_precision(preds, targets), lambda: pycocotools_stats(gt, dt),
                          repeats=repeats, warmup=0)
    passed = max_abs_diff <= TOLERANCE and timing["ratio_median"] >= TARGET_RATIO
    result = {
        "target": f"== pycocotools COCOeval.stats[:3] within {TOLERANCE:g} and >= {TARGET_RATIO:g}x faster "
                  f"(5000 images x 100 detections x 20 classes)",
        "measured": f"{num_images} images: max |diff| {max_abs_diff:.1e}, {timing['ratio_median']:.1f}x faster "
                    f"({timing['candidate_s_median']:.2f} s vs {timing['reference_s_median']:.1f} s)",
        "passed": bool(passed),
        "num_images": num_images,
        "detections_per_image": 100,
        "num_classes": 20,
        "ours": ours_v.tolist(),
        "pycocotools": [float(x) for x in ref[:3]],
        "max_abs_diff": max_abs_diff,
        "bitwise_equal": bool(np.array_equal(ours_v, ref[:3])),
        **timing,
    }
    path = write_result("map", {"quick": num_images != 5000, **result})
    print(result["measured"], "->", "PASS" if passed else "FAIL", f"({path})")
    return result


if __name__ == "__main__":
    main()

"""Mask R-CNN on the shapes scenes: box mAP and how well the masks of found objects fit.

Target: Mask R-CNN (``lecture_lib.models.mask_rcnn``, default config) trained end to end on 400
ShapesDataset scenes (64 x 64, 1-3 objects, instance masks; 6 epochs, batch 8, Adam 3e-3, the
Faster R-CNN benchmark's recipe) on 2 CPU cores reaches, on 100 test scenes,

* VOC box mAP@0.5 >= 0.4, and
* mean mask IoU >= 0.7 over the true-positive detections (score >= 0.5, box IoU >= 0.5 with an
  object of the same class; predicted mask thresholded at 0.5) -- ``matched_mask_ious``.

Also reported (no target): the COCO **mask** mAP, mAP@0.5 and mAP@0.75 -- detections matched
to objects by mask IoU, ``lecture_lib.metrics.masks.mask_mean_average_precision``, equal to
pycocotools' ``COCOeval(iouType="segm")`` -- and the training time (3 to 10 minutes on 2 CPU
cores).

    python benchmarks/bench_mask_rcnn.py                 # full
    LECTURE_QUICK=1 python benchmarks/bench_mask_rcnn.py  # smoke run (tiny training, no targets)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import write_result  # noqa: E402

from lecture_lib.config import is_quick, pick, seed_everything  # noqa: E402
from lecture_lib.data.shapes import ShapesDataset  # noqa: E402
from lecture_lib.metrics.detection import mean_average_precision  # noqa: E402
from lecture_lib.metrics.masks import mask_mean_average_precision  # noqa: E402
from lecture_lib.models.mask_rcnn import MaskRCNN, instance_targets, matched_mask_ious  # noqa: E402
from lecture_lib.models.rcnn import detection_forward  # noqa: E402
from lecture_lib.train import fit  # noqa: E402


def main() -> dict:
    seed_everything(0)
    torch.set_num_threads(2)
    n_train, epochs, n_test = pick(400, 32), pick(6, 1), pick(100, 10)
    train = ShapesDataset(n_train, image_size=64, n_objects=(1, 3), split="train")
    test = ShapesDataset(n_test, image_size=64, n_objects=(1, 3), split="test")
    loader = torch.utils.data.DataLoader(range(n_train), batch_size=8, shuffle=True,
                                         collate_fn=lambda idx: instance_targets(train, idx))
    model = MaskRCNN()
    history = fit(model, loader, epochs=epochs, lr=3e-3, forward_fn=detection_forward, metric=None,
                  progress=False, device="cpu")
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for start in range(0, n_test, 10):
            images, batch_targets = instance_targets(test, range(start, min(start + 10, n_test)))
            preds += model(images)
            targets += batch_targets
    voc = mean_average_precision(preds, targets, method="voc")
    coco = mean_average_precision(preds, targets, method="coco")
    mask = mask_mean_average_precision(preds, targets)  # COCO mask mAP (masks binarized at > 0.5)
    ious = matched_mask_ious(preds, targets, iou_threshold=0.5, score_threshold=0.5)
    n_objects = sum(len(t["boxes"]) for t in targets)
    mean_iou = ious.mean().item() if len(ious) else 0.0

    result = {
        "train_images": n_train, "epochs": epochs, "test_images": n_test, "test_objects": n_objects,
        "train_seconds": history.seconds, "final_epoch_loss": history.epochs[-1]["train_loss"],
        "voc_map50": voc["map"], "coco_map": coco["map"], "coco_map50": coco["map_50"], "coco_map75": coco["map_75"],
        "mask_coco_map": mask["map"], "mask_coco_map50": mask["map_50"], "mask_coco_map75": mask["map_75"],
        "mean_mask_iou_true_positives": mean_iou, "true_positives": len(ious),
        "median_mask_iou_true_positives": ious.median().item() if len(ious) else 0.0,
        "target": "Mask R-CNN trained on 400 shapes scenes x 6 epochs on 2 CPU cores: VOC box mAP@0.5 >= 0.4 and "
                  "mean mask IoU of true-positive detections (score >= 0.5) >= 0.7 on 100 test scenes",
        "measured": f"VOC box mAP@0.5 {voc['map']:.3f} (COCO {coco['map']:.3f}); COCO mask mAP {mask['map']:.3f} "
                    f"(mask mAP@0.5 {mask['map_50']:.3f}); mean mask IoU {mean_iou:.3f} over "
                    f"{len(ious)} true positives ({n_objects} objects) after {history.seconds:.0f} s of training"
                    f"{' (quick sizes)' if is_quick() else ''}",
        "passed": bool(voc["map"] >= 0.4 and mean_iou >= 0.7),
        "quick": is_quick(),
    }
    path = write_result("mask_rcnn", result)
    print(result["measured"], "->", "PASS" if result["passed"] else "FAIL", f"({path})")
    return result


if __name__ == "__main__":
    main()

"""R-CNN vs Fast R-CNN vs Faster R-CNN: time per image, and Faster R-CNN's mAP on the shapes data.

Targets:

1. Speed: with the same 500 proposals per image (4 images of 64 x 64), Fast R-CNN (one backbone
   pass per image + RoI pooling) is at least 2x faster than R-CNN (one CNN pass per warped
   proposal), measured as the ``paired_ratio`` median of R-CNN time / Fast R-CNN time on one CPU
   thread. Faster R-CNN (RPN proposals included) and the two others with selective search
   proposals are timed too (reported, no target).
2. Quality: Faster R-CNN trained end to end on 400 ShapesDataset detection images (64 x 64,
   1-3 objects, 6 epochs, batch 8, Adam 3e-3) reaches VOC mAP@0.5 >= 0.4 on 100 test images
   (a pilot run gave 0.58; chance is near 0). COCO mAP is reported.

    python benchmarks/bench_detectors.py                 # full (about 10 minutes on 2 CPU cores)
    LECTURE_QUICK=1 python benchmarks/bench_detectors.py  # smoke run (tiny training, no targets)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import paired_ratio, write_result  # noqa: E402

from lecture_lib.config import is_quick, pick, seed_everything  # noqa: E402
from lecture_lib.data.shapes import ShapesDataset, collate_detection  # noqa: E402
from lecture_lib.metrics.detection import mean_average_precision  # noqa: E402
from lecture_lib.models.fast_rcnn import FastRCNN  # noqa: E402
from lecture_lib.models.faster_rcnn import FasterRCNN  # noqa: E402
from lecture_lib.models.rcnn import RCNN, detection_forward, selective_search, sliding_window_proposals  # noqa: E402
from lecture_lib.train import fit  # noqa: E402


def time_per_image(rcnn: RCNN, fast: FastRCNN, faster: FasterRCNN, test: ShapesDataset) -> dict:
    """Speed part, on one thread (see bench_overfeat.py: two threads on a shared machine add noise)."""
    torch.set_num_threads(1)
    images = torch.stack([test[i][0] for i in range(4)])
    candidates = sliding_window_proposals((64, 64), (12, 16, 24, 32, 40), (0.5, 1.0, 2.0), stride=2)
    g = torch.Generator().manual_seed(0)
    proposals = [candidates[torch.randperm(len(candidates), generator=g)[:500]] for _ in range(4)]
    with torch.no_grad():
        timing = paired_ratio(lambda: fast(images, proposals=proposals), lambda: rcnn(images, proposals=proposals),
                              repeats=pick(7, 3))
        end_to_end = {}
        n = pick(20, 3)
        for name, model in (("rcnn_selective_search", rcnn), ("fast_rcnn_selective_search", fast),
                            ("faster_rcnn", faster)):
            start = time.perf_counter()
            for i in range(n):
                image = test[i][0][None]
                if model is faster:
                    model(image)
                else:
                    model(image, proposals=[selective_search(image[0])])
            end_to_end[name + "_ms_per_image"] = 1e3 * (time.perf_counter() - start) / n
    torch.set_num_threads(2)
    return {"speed_ratio_fast_over_rcnn": timing["ratio_median"], "speed_ratios": timing["ratios"],
            "rcnn_s_4_images_500_proposals": timing["reference_s_median"],
            "fast_rcnn_s_4_images_500_proposals": timing["candidate_s_median"], **end_to_end}


def main() -> dict:
    seed_everything(0)
    torch.set_num_threads(2)
    n_train, epochs, n_test = pick(400, 32), pick(6, 1), pick(100, 10)
    train = ShapesDataset(n_train, image_size=64, n_objects=(1, 3), split="train", task="detection")
    test = ShapesDataset(n_test, image_size=64, n_objects=(1, 3), split="test", task="detection")
    loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True, collate_fn=collate_detection)
    faster = FasterRCNN()
    history = fit(faster, loader, epochs=epochs, lr=3e-3, forward_fn=detection_forward, metric=None,
                  progress=False, device="cpu")
    faster.eval()
    preds, targets = [], []
    with torch.no_grad():
        for images, batch_targets in torch.utils.data.DataLoader(test, batch_size=10, collate_fn=collate_detection):
            preds += faster(images)
            targets += batch_targets
    voc = mean_average_precision(preds, targets, method="voc")
    coco = mean_average_precision(preds, targets, method="coco")
    speed = time_per_image(RCNN().eval(), FastRCNN().eval(), faster, test)

    ratio = speed["speed_ratio_fast_over_rcnn"]
    result = {
        "train_images": n_train, "epochs": epochs, "test_images": n_test,
        "train_seconds": history.seconds, "final_epoch_loss": history.epochs[-1]["train_loss"],
        "voc_map50": voc["map"], "coco_map": coco["map"], "coco_map50": coco["map_50"], "coco_map75": coco["map_75"],
        "voc_ap_per_class": {str(k): v for k, v in voc["map_per_class"].items()},
        **speed,
        "target": "Fast R-CNN >= 2x faster than R-CNN on the same 500 proposals per image (paired ratio, 1 thread); "
                  "Faster R-CNN trained on 400 shapes images x 6 epochs reaches VOC mAP@0.5 >= 0.4 on 100 test images",
        "measured": f"Fast/R-CNN speed ratio {ratio:.1f}x (R-CNN {speed['rcnn_s_4_images_500_proposals']:.2f} s, "
                    f"Fast R-CNN {speed['fast_rcnn_s_4_images_500_proposals']:.2f} s for 4 images); "
                    f"per image with proposals: R-CNN+SS {speed['rcnn_selective_search_ms_per_image']:.0f} ms, "
                    f"Fast R-CNN+SS {speed['fast_rcnn_selective_search_ms_per_image']:.0f} ms, "
                    f"Faster R-CNN {speed['faster_rcnn_ms_per_image']:.0f} ms; Faster R-CNN VOC mAP@0.5 "
                    f"{voc['map']:.3f}, COCO mAP {coco['map']:.3f} after {history.seconds:.0f} s of training"
                    f"{' (quick sizes)' if is_quick() else ''}",
        "passed": bool(ratio >= 2.0 and voc["map"] >= 0.4),
        "quick": is_quick(),
    }
    path = write_result("detectors", result)
    print(result["measured"], "->", "PASS" if result["passed"] else "FAIL", f"({path})")
    return result


if __name__ == "__main__":
    main()

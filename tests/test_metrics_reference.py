"""lecture_lib.metrics.reference, the bridge to pycocotools that the mAP tests, the mAP chapter and
the benchmark share: it must not make pycocotools a dependency of lecture_lib, and it must hand
pycocotools what a hand-worked case says."""

import subprocess
import sys

import pytest
import torch

from lecture_lib.metrics.reference import (
    HAS_PYCOCOTOOLS,
    coco_objects,
    coco_reference,
    coco_statistics,
    run_coco_eval,
    statistics,
)


def test_importing_lecture_lib_does_not_import_pycocotools():
    code = ("import sys, lecture_lib.metrics, lecture_lib.metrics.reference, lecture_lib.data.annotations\n"
            "assert not any(m.startswith(('pycocotools', 'faster_coco_eval')) for m in sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


pytestmark = pytest.mark.skipif(not HAS_PYCOCOTOOLS, reason="pycocotools is not installed")


def test_hand_worked_case():
    # one image, two objects (a 10 x 10 "small" and a 100 x 100 "large" one); one exact detection
    # of the small object and one stray box: AP 1 on the small object, 0 on the large one
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 200.0, 200.0]]),
                "labels": torch.tensor([1, 2])}]
    preds = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [300.0, 300.0, 310.0, 310.0]]),
              "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 2])}]
    gt, dt = coco_objects(preds, targets)
    assert [a["bbox"] for a in gt.dataset["annotations"]] == [[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 100.0, 100.0]]
    assert [a["area"] for a in gt.dataset["annotations"]] == [100.0, 10000.0]
    assert sorted(gt.getCatIds()) == [1, 2] and len(dt.dataset["annotations"]) == 2
    s = statistics(run_coco_eval(gt, dt))
    # pycocotools averages 101 recall points in float: 1 - 1e-16 where the sum is 1
    assert [s["map"], s["map_50"], s["map_small"], s["map_large"]] == pytest.approx([0.5, 0.5, 1.0, 0.0], abs=1e-12)
    assert s["map_medium"] == -1.0  # no medium object: pycocotools' "absent"
    assert coco_reference(preds, targets) == pytest.approx((0.5, 0.5, 0.5), abs=1e-12)


def test_plus_one_difficult_and_empty_predictions():
    # a 10 x 10 object and a detection shifted by 3: IoU 70/130 = 0.538 continuous,
    # 88/154 = 0.571 in VOC's integer pixels; at threshold 0.55 only the second is a match
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "labels": torch.tensor([0])}]
    preds = [{"boxes": torch.tensor([[3.0, 0.0, 13.0, 10.0]]), "scores": torch.tensor([0.9]),
              "labels": torch.tensor([0])}]
    assert coco_statistics(preds, targets)["map_50"] == pytest.approx(1.0, abs=1e-12)
    gt, dt = coco_objects(preds, targets, plus_one=True)
    assert dt.dataset["annotations"][0]["bbox"] == [3.0, 0.0, 11.0, 11.0]
    assert statistics(run_coco_eval(gt, dt, iou_thresholds=[0.55]))["map"] == pytest.approx(1.0, abs=1e-12)
    assert statistics(run_coco_eval(*coco_objects(preds, targets), iou_thresholds=[0.55]))["map"] == 0.0
    # a difficult object is given an area outside every range: missing it costs nothing
    difficult = [{**targets[0], "difficult": torch.tensor([True])}]
    assert coco_objects(preds, difficult)[0].dataset["annotations"][0]["area"] == 2e10
    none = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    assert coco_statistics(none, targets)["map"] == 0.0


def test_bad_options():
    with pytest.raises(ValueError, match="iou_type must be 'bbox' or 'segm', got 'keypoints'"):
        coco_objects([], [], iou_type="keypoints")
    with pytest.raises(ValueError, match="backend must be 'pycocotools' or 'faster', got 'torchmetrics'"):
        coco_objects([], [], backend="torchmetrics")

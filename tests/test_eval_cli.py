"""lecture-eval (lecture_lib.metrics.cli): as a subprocess and in-process, on COCO, VOC and YOLO
files, against pycocotools' own summarize() and mean_average_precision; bad input exits with 2 and
a message naming the file."""

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lecture_lib.data.annotations import (
    Annotations,
    read_coco,
    rle_encode,
    write_coco,
    write_coco_results,
    write_voc,
    write_voc_results,
    write_yolo,
    write_yolo_results,
)
from lecture_lib.metrics import cli
from lecture_lib.metrics.detection import mean_average_precision


def scene(seed=0, num_images=12, integer=False):
    """Ground truth of all sizes, some crowd regions, and a detector's near misses and clutter."""
    rng = np.random.default_rng(seed)
    images, targets, preds = [], [], []
    for i in range(num_images):
        m = int(rng.integers(1, 6))
        xy = rng.uniform(0, 200, (m, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 150, (m, 2))], 1)
        if integer:
            boxes = np.round(boxes)
        labels = rng.integers(0, 3, m)
        pick = rng.integers(0, m, 2 * m)
        size = boxes[pick, 2:] - boxes[pick, :2]
        det = boxes[pick] + rng.normal(0, 0.08, (2 * m, 4)) * np.concatenate([size, size], 1)
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        if integer:
            det = np.round(det)
        images.append({"id": i + 1, "file_name": f"im{i}.jpg", "width": 400, "height": 400})
        targets.append({"boxes": torch.tensor(boxes), "labels": torch.tensor(labels),
                        "iscrowd": torch.tensor(rng.random(m) < 0.1)})
        preds.append({"boxes": torch.tensor(det), "scores": torch.tensor(rng.random(2 * m).round(2)),
                      "labels": torch.tensor(np.where(rng.random(2 * m) < 0.9, labels[pick], 0))})
    return Annotations(images, targets, {0: "cat", 1: "dog", 2: "car"}), preds


def run(*args):
    """The command as a user runs it: a subprocess."""
    return subprocess.run([sys.executable, "-m", "lecture_lib.metrics.cli", *map(str, args), "--no-progress"],
                          capture_output=True, text=True, timeout=300)


def run_here(*args, capsys=None):
    code = cli.main([*map(str, args), "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_coco_files_print_what_pycocotools_prints(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, preds = scene()
    write_coco(tmp_path / "gt.json", gt)
    write_coco_results(tmp_path / "dt.json", preds, gt.images)
    done = run("--gt", tmp_path / "gt.json", "--pred", tmp_path / "dt.json", "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        coco = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(coco, coco.loadRes(str(tmp_path / "dt.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
    with contextlib.redirect_stdout(buffer := io.StringIO()):
        ev.summarize()
    assert done.stdout.splitlines()[:12] == buffer.getvalue().splitlines()
    stats = json.loads((tmp_path / "out.json").read_text())
    expected = dict(zip(["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10",
                         "mar_100", "mar_small", "mar_medium", "mar_large"], ev.stats))
    assert {k: stats[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    assert set(stats["map_per_class"]) == {"cat", "dog", "car"}


def test_in_process_per_class_plot_and_json(tmp_path, capsys):
    gt, preds = scene(1)
    write_coco(tmp_path / "gt.json", gt)
    write_coco_results(tmp_path / "dt.json", preds, gt.images)
    code, out, err = run_here("--gt", tmp_path / "gt.json", "--pred", tmp_path / "dt.json", "--per-class",
                              "--plot", tmp_path / "plots", "--json", tmp_path / "s.json", capsys=capsys)
    assert code == 0, err
    expected = mean_average_precision(preds, read_coco(tmp_path / "gt.json").targets, class_metrics=True)
    header = next(line for line in out.splitlines() if line.startswith("class"))
    assert header.split() == ["class", "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs",
                              "ARm", "ARl"]
    dog = next(line for line in out.splitlines() if line.startswith("dog ")).split()
    assert float(dog[1]) == pytest.approx(expected["per_class"][1]["map"], abs=5e-4)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["pr_iou50.png", "pr_iou75.png",
                                                                       "pr_thresholds.png"]
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["per_class"]["car"]["mar_100"] == pytest.approx(expected["per_class"][2]["mar_100"])


def test_voc_files_with_plus_one_equal_the_library(tmp_path, capsys):
    gt, preds = scene(2, integer=True)
    for t in gt.targets:
        t["difficult"] = t.pop("iscrowd")
    gt.images = [{**im, "id": f"{i:06d}"} for i, im in enumerate(gt.images)]
    write_voc(tmp_path / "Annotations", gt)
    write_voc_results(tmp_path / "results", preds, gt.images, gt.classes)
    code, out, err = run_here("--gt", tmp_path / "Annotations", "--pred", tmp_path / "results", "--plus-one",
                              "--method", "voc", "--json", tmp_path / "s.json", capsys=capsys)
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    ours = mean_average_precision(preds, gt.targets, method="voc", plus_one=True)
    assert stats["map"] == pytest.approx(ours["map"], abs=1e-12)
    assert "IoU=0.50:0.50" in out.splitlines()[0]


def test_yolo_files(tmp_path, capsys):
    from PIL import Image

    gt, preds = scene(3)
    gt.images = [{**im, "id": f"im{i}"} for i, im in enumerate(gt.images)]
    labels, images = tmp_path / "labels" / "val", tmp_path / "images" / "val"
    images.mkdir(parents=True)
    for im in gt.images:
        Image.new("RGB", (im["width"], im["height"])).save(images / f"{im['id']}.png")
    write_yolo(labels, gt)
    write_yolo_results(tmp_path / "predictions", preds, gt.images)
    code, out, err = run_here("--gt", labels, "--pred", tmp_path / "predictions", "--classes",
                              labels / "classes.txt", "--json", tmp_path / "s.json", capsys=capsys)
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    plain = [{"boxes": t["boxes"], "labels": t["labels"]} for t in gt.targets]  # YOLO has no crowd regions
    # the files come back in file name order (im0, im1, im10, ...), which breaks ties in score
    order = sorted(range(len(gt.images)), key=lambda i: gt.images[i]["id"])
    expected = mean_average_precision([preds[i] for i in order], [plain[i] for i in order])
    for key in ("map", "map_small", "mar_large"):
        assert stats[key] == pytest.approx(expected[key], abs=1e-9)
    # without the images: no sizes, so no size statistics
    (images / "im0.png").rename(tmp_path / "elsewhere.png")
    code, out, err = run_here("--gt", labels, "--pred", tmp_path / "predictions", "--images", tmp_path / "predictions",
                              capsys=capsys)
    assert code == 2 and "no image for label file im0.txt" in err


def test_masks_from_coco_files(tmp_path, capsys):
    masks = torch.zeros(2, 20, 20, dtype=torch.bool)
    masks[0, 2:8, 2:8] = True
    masks[1, 10:18, 5:15] = True
    gt = Annotations([{"id": 1, "file_name": "a.jpg", "width": 20, "height": 20}],
                     [{"boxes": torch.tensor([[2.0, 2, 8, 8], [5, 10, 15, 18]]), "labels": torch.tensor([1, 1]),
                       "masks": masks}], {1: "blob"})
    pred = [{"boxes": torch.tensor([[2.0, 2, 8, 8]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1]),
             "masks": masks[:1]}]
    write_coco(tmp_path / "gt.json", gt)
    write_coco_results(tmp_path / "dt.json", pred, gt.images)
    assert json.loads((tmp_path / "dt.json").read_text())[0]["segmentation"] == rle_encode(masks[0])
    code, out, err = run_here("--gt", tmp_path / "gt.json", "--pred", tmp_path / "dt.json", "--iou-type", "segm",
                              "--json", tmp_path / "s.json", capsys=capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "s.json").read_text())["mar_100"] == pytest.approx(0.5)


def test_bad_input_exits_with_a_clear_message(tmp_path, capsys):
    gt, preds = scene(4)
    write_coco(tmp_path / "gt.json", gt)
    write_coco_results(tmp_path / "dt.json", preds, gt.images)
    code, _, err = run_here("--gt", tmp_path / "missing.json", "--pred", tmp_path / "dt.json", capsys=capsys)
    assert code == 2 and "--gt" in err and "missing.json: no such file or folder" in err
    (tmp_path / "bad.json").write_text('[{"image_id": 99, "category_id": 0, "bbox": [0, 0, 1, 1], "score": 1}]')
    code, _, err = run_here("--gt", tmp_path / "gt.json", "--pred", tmp_path / "bad.json", capsys=capsys)
    assert code == 2 and "bad.json: [0].image_id: 99 is not an image of the ground truth" in err
    code, _, err = run_here("--gt", tmp_path / "gt.json", "--pred", tmp_path / "dt.json", "--max-detections", "0",
                            capsys=capsys)
    assert code == 2 and "--max-detections must be a positive number, got 0" in err
    code, _, err = run_here("--gt", tmp_path, "--pred", tmp_path / "dt.json", "--iou-type", "segm", "--format", "voc",
                            capsys=capsys)
    assert code == 2 and "--iou-type segm needs COCO files with segmentations, got --format voc" in err
    code, _, err = run_here("--gt", tmp_path, "--pred", tmp_path / "dt.json", capsys=capsys)
    assert code == 2 and "cannot tell the format" in err
    done = run("--gt", tmp_path / "gt.json", "--pred", tmp_path / "dt.json", "--format", "xml")
    assert done.returncode == 2 and "invalid choice: 'xml'" in done.stderr


SCRIPT = shutil.which("lecture-eval") or Path(sys.executable).parent / "lecture-eval"


@pytest.mark.skipif(not Path(SCRIPT).exists(), reason="the lecture-eval console script is not installed (pip install -e .)")
def test_console_script(tmp_path):
    gt, preds = scene(5)
    write_coco(tmp_path / "gt.json", gt)
    write_coco_results(tmp_path / "dt.json", preds, gt.images)
    script = shutil.which("lecture-eval") or str(Path(sys.executable).parent / "lecture-eval")
    done = subprocess.run([script, "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "dt.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = ")

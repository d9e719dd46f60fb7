"""lecture_lib.widgets.map: compute against mean_average_precision / match_detections, plots
by their artists, demos by moving a slider."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from lecture_lib.metrics.detection import mean_average_precision  # noqa: E402
from lecture_lib.widgets.map import (  # noqa: E402
    COLORS,
    compute_map_demo,
    compute_matching_steps,
    demo_matching_scene,
    make_demo_scenes,
    map_demo,
    matching_demo,
    plot_map_demo,
    plot_matching_step,
    plot_pr_curve,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("method", ["coco", "voc", "voc07"])
@pytest.mark.parametrize("iou_threshold,score_threshold", [(0.5, 0.0), (0.3, 0.4), (0.75, 0.2), (0.9, 0.6)])
def test_compute_map_demo_ap_equals_mean_average_precision(method, iou_threshold, score_threshold):
    preds, targets = make_demo_scenes(5, seed=3)
    result = compute_map_demo(preds, targets, iou_threshold, score_threshold, method)
    kept = [{k: v[p["scores"] >= score_threshold] for k, v in p.items()} for p in preds]
    expected = mean_average_precision(kept, targets, iou_thresholds=[iou_threshold], method=method)["map"]
    assert result.ap == pytest.approx(expected, abs=1e-12)
    # every detection has a fate, dropped exactly when below the score threshold
    for p, status in zip(preds, result.det_status):
        assert [s == "dropped" for s in status] == (p["scores"] < score_threshold).tolist()
    n_tp = sum(s.count("tp") for s in result.det_status)
    assert int(result.ranked_tp.sum()) == n_tp == sum(int(f.sum()) for f in result.gt_found)
    assert torch.all(result.ranked_scores[:-1] >= result.ranked_scores[1:])


def test_compute_map_demo_thresholds_move_ap_the_right_way():
    preds, targets = make_demo_scenes(4, seed=0)
    aps = [compute_map_demo(preds, targets, t).ap for t in (0.1, 0.5, 0.9)]
    assert aps[0] >= aps[1] >= aps[2]  # a stricter IoU threshold can only lose matches
    with pytest.raises(ValueError, match=r"score_threshold must lie in \[0, 1\], got 2"):
        compute_map_demo(preds, targets, 0.5, 2)


def test_plot_map_demo_draws_boxes_and_shaded_curve():
    preds, targets = make_demo_scenes(3, seed=1)
    result = compute_map_demo(preds, targets, 0.5, 0.3)
    axes = plot_map_demo(result)
    assert len(axes) == 4
    rects = [p for p in axes[0].patches if isinstance(p, Rectangle)]
    assert len(rects) == len(preds[0]["boxes"]) + len(targets[0]["boxes"])
    colors = {matplotlib.colors.to_hex(r.get_edgecolor()) for ax in axes[:3] for r in ax.patches}
    assert matplotlib.colors.to_hex(COLORS["tp"]) in colors
    pr = axes[3]
    assert pr.get_xlabel() == "recall" and pr.get_ylabel() == "precision"
    assert "IoU 0.50" in pr.get_title()
    assert len(pr.collections) == 1  # the shaded AP area
    assert f"AP = {result.ap:.3f}" in pr.get_legend().get_texts()[0].get_text()
    for ax in axes[:3]:
        assert ax.get_title().startswith("image") and "x (pixels)" == ax.get_xlabel()


def _label_extents(ax):
    renderer = ax.figure.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in ax.texts]


def _overlapping(extents):
    return [(i, j) for i in range(len(extents)) for j in range(i + 1, len(extents)) if extents[i].overlaps(extents[j])]


def test_plot_map_demo_grid_and_score_labels_do_not_overlap():
    # three identical detections and one far away: the best label goes above the box, the next
    # below it, the third inside; none covers another and all stay inside the image
    box = [20.0, 20.0, 50.0, 50.0]
    preds = [{"boxes": torch.tensor([box, box, box, [70.0, 70.0, 90.0, 90.0]]),
              "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]), "labels": torch.zeros(4, dtype=torch.long)}]
    targets = [{"boxes": torch.tensor([box]), "labels": torch.zeros(1, dtype=torch.long)}]
    axes = plot_map_demo(compute_map_demo(preds, targets))
    assert len(axes) == 2  # one image and the PR curve, on a 2 x 3 grid
    grid = axes[0].figure.axes
    assert len(grid) == 6 and not any(ax.axison for ax in grid[2:])
    key = [t.get_text() for t in grid[2].get_legend().get_texts()]  # the first spare axis explains the boxes
    assert key[:2] == ["TP", "FP"] and "object, missed" in key
    texts = axes[0].texts
    # the status is written, not only coloured; labels in score order
    assert [t.get_text() for t in texts] == ["TP 0.90", "FP 0.80", "FP 0.70", "FP 0.60"]
    (_, y_above), (_, y_below), (_, y_inside) = (t.get_position() for t in texts[:3])
    assert texts[0].get_va() == "bottom" and y_above == 20  # above the top edge
    assert texts[1].get_va() == "top" and y_below == 50  # below the bottom edge
    assert 20 < y_inside < 50  # inside the box
    assert _overlapping(_label_extents(axes[0])) == []
    frame = axes[0].get_window_extent(axes[0].figure.canvas.get_renderer())
    assert all(frame.x0 <= e.x0 and e.x1 <= frame.x1 + 1 and frame.y0 <= e.y0 and e.y1 <= frame.y1 + 1
               for e in _label_extents(axes[0]))
    assert all(t.get_bbox_patch() is not None for t in texts)  # on a background of the box's colour
    with pytest.raises(ValueError, match="needs 2 axes"):
        plot_map_demo(compute_map_demo(preds, targets), [axes[0]])


def test_plot_matching_step_labels_have_background():
    _, ax = plt.subplots()
    ax = plot_matching_step(compute_matching_steps(*demo_matching_scene()), 2, ax)
    labels = {t.get_text(): t for t in ax.texts}
    assert set(labels) == {"gt0", "gt1", "gt2", "FP d2 (0.80)"}
    assert all(t.get_bbox_patch() is not None for t in labels.values())
    assert _overlapping(_label_extents(ax)) == []
    # gt0 and gt1 are taken at step 3 (found), gt2 is still free (drawn as a missed object)
    edge = {matplotlib.colors.to_hex(t.get_bbox_patch().get_facecolor()) for t in (labels["gt0"], labels["gt1"])}
    assert edge == {matplotlib.colors.to_hex(COLORS["found"])}
    assert matplotlib.colors.to_hex(labels["gt2"].get_bbox_patch().get_facecolor()) == COLORS["missed"].lower()


def test_plot_pr_curve_voc_on_given_axis():
    preds, targets = make_demo_scenes(3, seed=1)
    fig, ax = plt.subplots()
    assert plot_pr_curve(compute_map_demo(preds, targets, method="voc"), ax) is ax
    assert "voc" in ax.get_title()


def test_matching_steps_coco_and_voc_differ_on_taken_box():
    boxes, scores, gt_boxes = demo_matching_scene()
    coco = compute_matching_steps(boxes, scores, gt_boxes, 0.5, "coco")
    voc = compute_matching_steps(boxes, scores, gt_boxes, 0.5, "voc")
    assert [s.status for s in coco.steps] == ["tp", "tp", "fp", "fp", "fp", "tp"]
    assert [s.status for s in voc.steps] == ["tp", "fp", "fp", "fp", "fp", "tp"]
    assert coco.steps[1].matched_gt == 1 and voc.steps[1].matched_gt == -1


def test_plot_matching_step():
    matching = compute_matching_steps(*demo_matching_scene())
    ax = plot_matching_step(matching, 1)
    assert "step 2/6" in ax.get_title() and "TP, takes gt1" in ax.get_title()
    assert len(ax.patches) == 3 + 2  # ground truth + the first two detections
    with pytest.raises(ValueError, match=r"step must be in \[0, 5\], got 6"):
        plot_matching_step(matching, 6)


def test_map_demo_updates_on_slider_change():
    demo = map_demo(num_images=3)
    before = demo.summary.value
    assert "AP = " in before
    demo.sliders["iou_threshold"].value = 0.9
    assert demo.summary.value != before
    preds, targets = make_demo_scenes(3, 0)
    expected = compute_map_demo(preds, targets, 0.9, 0.0).ap
    assert f"AP = {expected:.3f}" in demo.summary.value
    demo.sliders["score_threshold"].value = 0.95
    assert "AP = " in demo.summary.value


def test_matching_demo_updates_on_slider_change():
    demo = matching_demo()
    assert demo.summary.value == "d0:TP"
    demo.sliders["step"].value = 3
    assert demo.summary.value == "d0:TP d1:TP d2:FP"
    demo.sliders["method"].value = "voc"
    assert demo.summary.value == "d0:TP d1:FP d2:FP"

"""mAP demos: TP / FP / missed boxes and the PR curve under two sliders, and a step-through of
the greedy matching.

``compute_map_demo`` matches a few synthetic images (one class) at an IoU threshold after
dropping detections below a score threshold, and returns each box's fate, the ranked list, its
precision/recall curve and AP; ``plot_map_demo`` draws the images with coloured boxes and the
PR curve with the AP area shaded; ``map_demo()`` wires both to sliders.

``compute_matching_steps`` records the greedy matching of one image one detection at a time;
``plot_matching_step`` draws one step; ``matching_demo()`` puts a step slider on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from lecture_lib.metrics.detection import (
    COCO_RECALL_THRESHOLDS,
    VOC07_RECALL_THRESHOLDS,
    MatchStep,
    average_precision,
    interpolated_precision,
    match_detections,
    precision_recall,
)
from lecture_lib.widgets.base import figure_output, watch
from lecture_lib.widgets.draw import STYLES, box_legend, detection_status, draw_boxes, draw_marked, label_boxes

__all__ = [
    "COLORS",
    "make_demo_scenes",
    "MapDemoResult",
    "compute_map_demo",
    "plot_detections",
    "plot_pr_curve",
    "plot_map_demo",
    "map_demo",
    "demo_matching_scene",
    "MatchingSteps",
    "compute_matching_steps",
    "plot_matching_step",
    "matching_demo",
]

# the colour of each box kind, as lecture_lib.widgets.draw draws it on every page
COLORS = {kind: STYLES[kind].colour for kind in ("tp", "fp", "ignored", "missed", "found", "dropped")}


def make_demo_scenes(num_images: int = 4, seed: int = 0, size: float = 100.0,
                     num_classes: int = 1) -> tuple[list, list]:
    """Synthetic images: good, sloppy and duplicate detections of each object plus clutter.

    Args:
        num_images: how many images.
        seed: for the NumPy generator.
        size: images are ``size x size`` pixels.
        num_classes: labels 0..num_classes-1; a detection of an object mostly has its label.

    Returns:
        (preds, targets) in the format of ``mean_average_precision``.
    """
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for _ in range(num_images):
        m = int(rng.integers(2, 5))
        xy = rng.uniform(0, size * 0.7, (m, 2))
        gt = np.concatenate([xy, xy + rng.uniform(size * 0.12, size * 0.3, (m, 2))], 1)
        gt_labels = rng.integers(0, num_classes, m)
        boxes, scores, labels = [], [], []
        for g, label in zip(gt, gt_labels):
            w, h = g[2] - g[0], g[3] - g[1]
            for _ in range(int(rng.integers(0, 3))):  # 0 to 2 detections per object
                noise = rng.uniform(0.02, 0.35)  # how sloppy: small noise -> high IoU, high score
                b = g + rng.normal(0, noise, 4) * np.array([w, h, w, h])
                b[2:] = np.maximum(b[2:], b[:2] + 1)
                boxes.append(b)
                scores.append(float(np.clip(1.0 - noise * 1.5 + rng.normal(0, 0.1), 0.05, 0.99)))
                labels.append(int(label) if rng.random() < 0.9 else int(rng.integers(0, num_classes)))
        for _ in range(int(rng.integers(1, 3))):  # clutter
            p = rng.uniform(0, size * 0.8, 2)
            boxes.append(np.concatenate([p, p + rng.uniform(size * 0.08, size * 0.2, 2)]))
            scores.append(float(rng.uniform(0.05, 0.8)))
            labels.append(int(rng.integers(0, num_classes)))
        preds.append({"boxes": torch.tensor(np.array(boxes), dtype=torch.float32),
                      "scores": torch.tensor(scores, dtype=torch.float32),
                      "labels": torch.tensor(labels, dtype=torch.long)})
        targets.append({"boxes": torch.tensor(gt, dtype=torch.float32),
                        "labels": torch.tensor(gt_labels, dtype=torch.long)})
    return preds, targets


@dataclass
class MapDemoResult:
    """Everything the mAP demo draws (one class)."""

    iou_threshold: float
    score_threshold: float
    method: str
    preds: list  # the input detections (all of them)
    targets: list
    det_status: list  # per image: list[str] per detection, "tp" | "fp" | "ignored" | "dropped"
    gt_found: list  # per image: Tensor[M] bool
    ranked_scores: Tensor  # Tensor[K]: kept detections of all images, highest score first
    ranked_tp: Tensor  # Tensor[K] bool
    precision: Tensor  # Tensor[K]
    recall: Tensor  # Tensor[K]
    recall_levels: np.ndarray  # where the interpolated precision is read ([] for "voc")
    interpolated: np.ndarray  # the interpolated precision at recall_levels
    ap: float
    num_gt: int


def compute_map_demo(preds: list, targets: list, iou_threshold: float = 0.5, score_threshold: float = 0.0,
                     method: str = "coco") -> MapDemoResult:
    """Match each image (one class), rank all kept detections, and compute the PR curve and AP.

    Detections with a score below ``score_threshold`` are dropped before matching. AP equals
    ``mean_average_precision(kept, targets, iou_thresholds=[iou_threshold], method=method)["map"]``.
    """
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"score_threshold must lie in [0, 1], got {score_threshold}")
    if len(preds) != len(targets):
        raise ValueError(f"preds and targets must have the same length, got {len(preds)} and {len(targets)}")
    statuses, found, scores, tps = [], [], [], []
    num_gt = 0
    for p, t in zip(preds, targets):
        one_class = {**p, "labels": torch.zeros(len(p["scores"]), dtype=torch.long)}  # the demo has one class
        status, gt_found = detection_status(one_class, {"boxes": t["boxes"], "labels": torch.zeros(len(t["boxes"]))},
                                            iou_threshold, score_threshold, method)
        statuses.append(status)
        found.append(gt_found)
        num_gt += len(t["boxes"])
        # in each image's ranked order, so that a stable sort below breaks ties by image
        ranked = [i for i in torch.argsort(p["scores"], descending=True, stable=True).tolist()
                  if status[i] in ("tp", "fp")]
        scores.append(p["scores"][ranked].double())
        tps.append(torch.tensor([status[i] == "tp" for i in ranked], dtype=torch.bool))
    scores_all = torch.cat(scores) if scores else torch.zeros(0, dtype=torch.float64)
    tp_all = torch.cat(tps) if tps else torch.zeros(0, dtype=torch.bool)
    order = torch.sort(-scores_all, stable=True).indices
    ranked_scores, ranked_tp = scores_all[order], tp_all[order]
    if num_gt == 0:
        raise ValueError("the demo needs at least one ground-truth box")
    precision, recall = precision_recall(ranked_tp, num_gt)
    levels = {"coco": COCO_RECALL_THRESHOLDS, "voc07": VOC07_RECALL_THRESHOLDS}.get(method, np.zeros(0))
    interpolated = interpolated_precision(recall, precision, levels) if len(levels) else np.zeros(0)
    ap = average_precision(recall, precision, method)
    return MapDemoResult(iou_threshold, score_threshold, method, preds, targets, statuses, found, ranked_scores,
                         ranked_tp, precision, recall, levels, interpolated, ap, num_gt)


def plot_detections(result: MapDemoResult, image: int = 0, ax=None, size: float = 100.0):
    """One image: objects found or missed, detections by status (lecture_lib.widgets.draw's
    styles), each kept detection labelled with its status and score, the best scores first."""
    ax = ax if ax is not None else plt.gca()
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    target, pred = result.targets[image], result.preds[image]
    order = torch.argsort(pred["scores"], descending=True, stable=True).tolist()
    draw_marked(ax, target["boxes"], result.gt_found[image], pred["boxes"][order],
                [result.det_status[image][i] for i in order],
                texts=[f"{float(pred['scores'][i]):.2f}" for i in order])
    counts = {s: result.det_status[image].count(s) for s in ("tp", "fp")}
    missed = int((~result.gt_found[image]).sum())
    ax.set_title(f"image {image}: {counts['tp']} TP, {counts['fp']} FP, {missed} missed", fontsize=9)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    return ax


def plot_pr_curve(result: MapDemoResult, ax=None):
    """The precision/recall curve of the ranked list with the AP area shaded."""
    ax = ax if ax is not None else plt.gca()
    recall, precision = result.recall.numpy(), result.precision.numpy()
    if result.method == "voc":  # the area under the precision envelope
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.maximum.accumulate(np.concatenate(([0.0], precision, [0.0]))[::-1])[::-1]
        ax.fill_between(mrec, mpre, step="pre", alpha=0.3, color="tab:blue", label=f"AP = {result.ap:.3f}")
    else:  # the mean of the interpolated precision at the recall levels
        ax.fill_between(result.recall_levels, result.interpolated, step="post", alpha=0.3, color="tab:blue",
                        label=f"AP = {result.ap:.3f} ({len(result.recall_levels)} points)")
    ax.plot(recall, precision, "o-", ms=3, color="tab:blue", lw=1, label="precision after each detection")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"PR curve ({result.method}, IoU {result.iou_threshold:.2f}, score >= {result.score_threshold:.2f})",
                 fontsize=9)
    ax.legend(loc="lower left", fontsize=8)
    return ax


def _map_demo_figure():
    """A 10 x 6.5 inch figure with a 2 x 3 grid of axes: room for 4 images and the PR curve at a
    size where the labels stay readable in a book column."""
    return plt.subplots(2, 3, figsize=(10, 6.5), constrained_layout=True)


def plot_map_demo(result: MapDemoResult, axes=None):
    """The images (up to 4) and the PR curve; returns the axes drawn on (images, then the curve).

    Without ``axes``, draws on a 2 x 3 grid (``_map_demo_figure``); axes beyond the images and the
    curve are switched off.
    """
    n = min(4, len(result.preds))
    if axes is None:
        _, axes = _map_demo_figure()
    axes = list(np.ravel(axes))
    if len(axes) < n + 1:
        raise ValueError(f"plot_map_demo needs {n + 1} axes ({n} images and the PR curve), got {len(axes)}")
    for i in range(n):
        plot_detections(result, i, axes[i])
    plot_pr_curve(result, axes[n])
    for ax in axes[n + 1:]:
        ax.set_axis_off()
    if len(axes) > n + 1:  # a spare axis: the key to the boxes
        box_legend(axes[n + 1], ["tp", "fp", "dropped", "found", "missed"], outside=False, loc="center")
    return axes[: n + 1]


def map_demo(num_images: int = 4, seed: int = 0):
    """Sliders for the IoU and score thresholds; boxes and the PR curve update live."""
    import ipywidgets as widgets

    preds, targets = make_demo_scenes(num_images, seed)
    iou = widgets.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05, description="IoU threshold",
                              continuous_update=False, style={"description_width": "initial"})
    score = widgets.FloatSlider(value=0.0, min=0.0, max=0.95, step=0.05, description="score threshold",
                                continuous_update=False, style={"description_width": "initial"})
    method = widgets.ToggleButtons(options=["coco", "voc", "voc07"], value="coco", description="AP")
    summary = widgets.HTML()

    def draw(result):
        fig, axes = _map_demo_figure()
        plot_map_demo(result, axes)
        return fig

    out, redraw = figure_output(draw)

    def update(_=None):
        result = compute_map_demo(preds, targets, iou.value, score.value, method.value)
        tp, kept = int(result.ranked_tp.sum()), len(result.ranked_tp)
        summary.value = (f"<b>AP = {result.ap:.3f}</b> &nbsp; {tp} TP, {kept - tp} FP, "
                         f"{result.num_gt - tp} missed of {result.num_gt} objects "
                         "(box key beside the images)")
        redraw(result)

    watch([iou, score, method], update)
    box = widgets.VBox([widgets.HBox([iou, score]), method, summary, out])
    box.sliders = {"iou_threshold": iou, "score_threshold": score, "method": method}
    box.summary = summary
    return box


# --- the step-through ---------------------------------------------------------------------


def demo_matching_scene() -> tuple[Tensor, Tensor, Tensor]:
    """One image, three objects, six detections: a duplicate, a near miss, a stray box, and a
    detection whose best box is taken (COCO gives it the next one, VOC calls it a duplicate).

    Returns:
        (boxes Tensor[6, 4], scores Tensor[6], gt_boxes Tensor[3, 4]).
    """
    gt_boxes = torch.tensor([[10.0, 10.0, 40.0, 50.0], [16.0, 10.0, 46.0, 50.0], [65.0, 60.0, 90.0, 90.0]])
    boxes = torch.tensor([
        [10.0, 11.0, 40.0, 50.0],  # object 0, good
        [12.0, 10.0, 42.0, 50.0],  # best IoU with object 0 (taken), 0.76 with object 1
        [11.0, 12.0, 39.0, 51.0],  # object 0 again
        [70.0, 68.0, 99.0, 99.0],  # object 2, sloppy (IoU 0.36)
        [5.0, 65.0, 30.0, 92.0],  # nothing there
        [66.0, 61.0, 91.0, 89.0],  # object 2, good but low score
    ])
    scores = torch.tensor([0.95, 0.9, 0.8, 0.7, 0.6, 0.3])
    return boxes, scores, gt_boxes


@dataclass
class MatchingSteps:
    """The greedy matching of one image, one detection at a time."""

    boxes: Tensor  # Tensor[N, 4]
    scores: Tensor  # Tensor[N]
    gt_boxes: Tensor  # Tensor[M, 4]
    iou_threshold: float
    method: str
    steps: list  # list[MatchStep], in rank order


def compute_matching_steps(boxes: Tensor, scores: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5,
                           method: str = "coco") -> MatchingSteps:
    """Run ``match_detections`` and keep its steps."""
    result = match_detections(boxes, scores, gt_boxes, iou_threshold, method)
    return MatchingSteps(boxes, scores, gt_boxes, iou_threshold, method, result.steps)


def plot_matching_step(matching: MatchingSteps, step: int, ax=None, size: float = 100.0):
    """Draw the matching after ``step`` (0-based): earlier detections by status, the current one
    thick with its IoU to every ground-truth box."""
    if not 0 <= step < len(matching.steps):
        raise ValueError(f"step must be in [0, {len(matching.steps) - 1}], got {step}")
    ax = ax if ax is not None else plt.gca()
    current: MatchStep = matching.steps[step]
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    ax.set_aspect("equal")
    taken = current.gt_taken
    # objects: taken so far as "found", still free as "missed" (what they are if nothing takes them)
    draw_boxes(ax, matching.gt_boxes[taken], "found")
    draw_boxes(ax, matching.gt_boxes[~taken], "missed")
    for s in matching.steps[:step]:
        draw_boxes(ax, matching.boxes[s.detection], s.status, linewidth=1.5, alpha=0.5)
    draw_boxes(ax, matching.boxes[current.detection], current.status, linewidth=3.5)
    label_boxes(ax, matching.boxes[current.detection], [f"d{current.detection} ({current.score:.2f})"],
                current.status)
    for j, (box, is_taken) in enumerate(zip(matching.gt_boxes, taken.tolist())):
        label_boxes(ax, box, [f"gt{j}"], "found" if is_taken else "missed", tag=False)
    ious = ", ".join(f"gt{j} {v:.2f}" for j, v in enumerate(current.ious.tolist()))
    outcome = {"tp": f"TP, takes gt{current.matched_gt}", "fp": "FP", "ignored": "ignored"}[current.status]
    ax.set_title(f"step {step + 1}/{len(matching.steps)} ({matching.method}, IoU {matching.iou_threshold:.2f}): "
                 f"d{current.detection} -> {outcome}\nIoU: {ious}", fontsize=9)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    return ax


def matching_demo(boxes: Tensor | None = None, scores: Tensor | None = None, gt_boxes: Tensor | None = None):
    """A step slider (and IoU threshold, method) over the greedy matching of one image."""
    import ipywidgets as widgets

    if boxes is None:
        boxes, scores, gt_boxes = demo_matching_scene()
    step = widgets.IntSlider(value=1, min=1, max=len(boxes), description="step", continuous_update=False)
    iou = widgets.FloatSlider(value=0.5, min=0.05, max=0.95, step=0.05, description="IoU threshold",
                              continuous_update=False, style={"description_width": "initial"})
    method = widgets.ToggleButtons(options=["coco", "voc"], value="coco", description="rule")
    summary = widgets.HTML()

    def draw(matching):
        fig, ax = plt.subplots(figsize=(5.5, 5.5))
        plot_matching_step(matching, step.value - 1, ax)
        fig.tight_layout()
        return fig

    out, redraw = figure_output(draw)

    def update(_=None):
        matching = compute_matching_steps(boxes, scores, gt_boxes, iou.value, method.value)
        done = matching.steps[: step.value]
        summary.value = " ".join(f"d{s.detection}:{s.status.upper()}" for s in done)
        redraw(matching)

    watch([step, iou, method], update)
    box = widgets.VBox([widgets.HBox([step, iou]), method, summary, out])
    box.sliders = {"step": step, "iou_threshold": iou, "method": method}
    box.summary = summary
    return box

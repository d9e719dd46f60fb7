"""Drawing boxes, labels, masks and detections the same way on every page.

Usage (a scene of ``lecture_lib.data.shapes``, a detector's output ``pred``)::

    import matplotlib.pyplot as plt
    from lecture_lib.data.shapes import CLASS_NAMES
    from lecture_lib.widgets.draw import box_legend, box_texts, draw_boxes, draw_detections, show_image

    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    show_image(axes[0], scene.image, "ground truth")            # pixel coordinates, labelled axes
    draw_boxes(axes[0], scene.boxes, "truth", texts=box_texts(scene.labels, class_names=CLASS_NAMES))
    show_image(axes[1], scene.image, "detections at IoU 0.5")
    draw_detections(axes[1], pred, {"boxes": scene.boxes, "labels": scene.labels}, class_names=CLASS_NAMES)
    box_legend(axes[1], ["tp", "fp", "missed", "found"])       # outside the image
    draw_class_mask(ax, scene.mask, CLASS_NAMES)                # a class per pixel, named
    draw_instance_masks(ax, scene.instance_masks, scene.boxes)  # a colour per object

One style per *kind* of box (``STYLES``): ground truth is dashed yellow, a prediction solid sky
blue, a true positive solid green with "TP" in its label, a false positive dash-dot vermillion
with "FP", a missed object dotted purple with "missed" (Okabe-Ito colours, told apart with colour
blindness). Colour is never the only cue: the line style and the label's first word say it too.
Every line has a thin black outline and every label a background in its box's colour, so both
read on light and dark textures alike. Labels go above the box's top-left corner, else below its
bottom-left one, else inside; never over an earlier label of the same axis.

Masks: ``draw_instance_masks`` (one colour, outline and optional box + label per object) and
``draw_class_mask`` (a class per pixel: ``CLASS_COLOURS``, the class names written on the regions
and in a legend).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import matplotlib.colors as mcolors
import matplotlib.patheffects as path_effects
import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

__all__ = [
    "BoxStyle", "STYLES", "CLASS_COLOURS", "INSTANCE_COLOURS", "show_image", "draw_boxes", "label_boxes",
    "box_texts", "detection_status", "draw_marked", "draw_detections", "box_legend", "draw_instance_masks",
    "draw_class_mask",
]


@dataclass(frozen=True)
class BoxStyle:
    """How one kind of box is drawn: edge colour, line style and width, legend label, the word
    its box labels start with (``tag``; "" for none), and whether a black edge runs under the
    line (``outline``; off for boxes meant to stay faint)."""

    colour: str
    linestyle: str | tuple
    linewidth: float
    label: str
    tag: str = ""
    outline: bool = True


# Okabe & Ito's colour-blind-safe palette; black text reads on all of them (contrast >= 4.5:1)
STYLES: dict[str, BoxStyle] = {
    "truth": BoxStyle("#F0E442", "--", 2.0, "ground truth"),
    "found": BoxStyle("#F0E442", "--", 2.0, "object, found"),
    "missed": BoxStyle("#CC79A7", ":", 2.5, "object, missed", "missed"),
    "prediction": BoxStyle("#56B4E9", "-", 2.0, "prediction"),
    "tp": BoxStyle("#009E73", "-", 2.0, "TP", "TP"),
    "fp": BoxStyle("#D55E00", "-.", 2.0, "FP", "FP"),
    "ignored": BoxStyle("#999999", (0, (3, 1, 1, 1, 1, 1)), 1.5, "ignored (crowd, difficult)", "ignored"),
    "dropped": BoxStyle("#BBBBBB", "-", 1.0, "dropped (score threshold)", outline=False),
    "proposal": BoxStyle("#56B4E9", "-", 0.6, "proposal"),
    # anything else with a frame: an image border, a RoI's bins (usually with a colour of its own)
    "region": BoxStyle("#7F7F7F", "--", 1.0, "region", outline=False),
}

# class ids 0..9 of a segmentation mask (0 = background), as the chapters' mask plots colour them
CLASS_COLOURS: tuple = tuple(mcolors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors)
INSTANCE_COLOURS: tuple = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#FFFFFF")

LABEL_FONTSIZE = 8


def _as_boxes(boxes) -> torch.Tensor:
    boxes = torch.as_tensor(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=torch.float64)
    if boxes.dim() == 1 and boxes.numel() in (0, 4):
        boxes = boxes.reshape(-1, 4)  # one box, or none
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4] (or [4] for one box), got {list(boxes.shape)}")
    return boxes


def _style(kind: str) -> BoxStyle:
    if kind not in STYLES:
        raise ValueError(f"kind must be one of {sorted(STYLES)}, got {kind!r}")
    return STYLES[kind]


def _outline(linewidth: float) -> list:
    """A black edge under the coloured line: it reads on light and dark backgrounds."""
    return [path_effects.Stroke(linewidth=linewidth + 1.5, foreground="black", alpha=0.8), path_effects.Normal()]


def _text_colour(background) -> str:
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in mcolors.to_rgb(background))
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else "white"  # WCAG relative luminance


def show_image(ax, image, title: str | None = None):
    """Show an image (Tensor[3, H, W] or [H, W]; or an array [H, W(, 3)]) in pixel coordinates:
    pixel edges at whole numbers, so that boxes ``(x1, y1, x2, y2)`` line up. Returns the axis."""
    array = image.detach().cpu() if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
    if array.dim() == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.permute(1, 2, 0)
    if array.dim() not in (2, 3):
        raise ValueError(f"image must be [3, H, W], [H, W, 3] or [H, W], got {list(array.shape)}")
    height, width = array.shape[:2]
    ax.imshow(array.numpy(), extent=(0, width, height, 0), cmap="gray" if array.dim() == 2 else None)
    ax.set(xlabel="x (pixels)", ylabel="y (pixels)")
    if title is not None:
        ax.set_title(title)
    return ax


def _renderer(figure):
    canvas = figure.canvas
    return canvas.get_renderer() if hasattr(canvas, "get_renderer") else figure._get_renderer()


def _place_label(ax, box, text: str, colour, fontsize: float):
    """Put ``text`` at the first free place: above the top-left corner, below the bottom-left
    corner, inside the top-left corner, then further down inside the box; moved left where it
    would stick out on the right. None when no place is free (it would cover another label or
    leave the axis)."""
    x1, y1, _, y2 = box
    renderer = _renderer(ax.figure)
    frame = ax.get_window_extent(renderer)
    pad = 0.15 * fontsize * ax.figure.dpi / 72  # the background's pad ("square,pad=0.15"), in pixels

    def extent_of(text):
        return text.get_window_extent(renderer).padded(pad)

    taken = [extent_of(t) for t in ax.texts if t.get_visible()]
    label = ax.text(x1, y1, text, fontsize=fontsize, color=_text_colour(colour), clip_on=True,
                    bbox={"boxstyle": "square,pad=0.15", "facecolor": colour, "edgecolor": "none", "alpha": 0.85})
    to_data = ax.transData.inverted()
    origin = to_data.transform((0, 0))
    places = [(y1, "bottom"), (y2, "top"), (y1, "top")]
    for attempt in range(12):
        y, va = places[min(attempt, len(places) - 1)]
        label.set_verticalalignment(va)
        label.set_position((x1, y))
        extent = extent_of(label)
        step = to_data.transform((max(extent.x1 - frame.x1, 0.0), extent.height)) - origin
        # further down inside the box, one label height at a time; left where it sticks out
        label.set_position((x1 - step[0], y + abs(step[1]) * max(attempt - len(places) + 1, 0)))
        extent = extent_of(label)
        inside = (frame.x0 - 1 <= extent.x0 and extent.x1 <= frame.x1 + 1
                  and frame.y0 - 1 <= extent.y0 and extent.y1 <= frame.y1 + 1)
        if inside and not any(extent.overlaps(other) for other in taken):
            return label
    label.remove()
    return None


def draw_boxes(ax, boxes, kind: str = "prediction", texts=None, *, colour=None, linewidth: float | None = None,
               linestyle=None, alpha: float = 1.0, label: str | None = None, outline: bool | None = None,
               tag: bool = True,
               fontsize: float = LABEL_FONTSIZE) -> list:
    """Draw boxes of one kind (``STYLES``), each with an optional text label.

    Args:
        ax: matplotlib axis, with its limits already set (``show_image``): labels are placed
            where they fit in the drawn area.
        boxes (Tensor[N, 4] or [4]): ``(x1, y1, x2, y2)`` in the axis' data coordinates.
        kind: "truth", "prediction", "tp", "fp", "missed", "found", "ignored", "dropped", "proposal",
            "region".
        texts (list[str] of length N, optional): one label per box (``label_boxes``).
        colour, linewidth, linestyle: override the kind's (e.g. a colour per score or per anchor).
        label: legend entry (given to the first box only); by default none.
        outline: the black edge under each line (default: the kind's).
        tag: put the kind's word ("TP", "FP", "missed") in front of each text.

    Returns:
        the ``Rectangle`` patches, in the order of ``boxes``.
    """
    style = _style(kind)
    boxes = _as_boxes(boxes)
    colour = style.colour if colour is None else colour
    linewidth = style.linewidth if linewidth is None else linewidth
    patches = []
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        patch = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=linewidth,
                          linestyle=style.linestyle if linestyle is None else linestyle, alpha=alpha,
                          label=label if i == 0 and label is not None else "_nolegend_")
        if style.outline if outline is None else outline:
            patch.set_path_effects(_outline(linewidth))
        patches.append(ax.add_patch(patch))
    if texts is not None:
        label_boxes(ax, boxes, texts, kind, colour=colour, tag=tag, fontsize=fontsize)
    return patches


def label_boxes(ax, boxes, texts, kind: str = "prediction", *, colour=None, tag: bool = True,
                fontsize: float = LABEL_FONTSIZE) -> list:
    """Write ``texts[i]`` by ``boxes[i]`` on a background of the kind's colour (or ``colour``),
    with the kind's word in front when ``tag``: above the top-left corner, else below the
    bottom-left corner, else inside the box, never over an earlier label of the axis. A label
    with no free place is left out (None in the returned list of ``Text``)."""
    style = _style(kind)
    boxes = _as_boxes(boxes)
    if len(texts) != len(boxes):
        raise ValueError(f"texts must have one entry per box ({len(boxes)}), got {len(texts)}")
    colour = style.colour if colour is None else colour
    words = [" ".join(w for w in ((style.tag if tag else ""), str(t)) if w) if t else "" for t in texts]
    return [_place_label(ax, box, word, colour, fontsize) if word else None
            for box, word in zip(boxes.tolist(), words)]


def box_texts(labels, scores=None, class_names=None) -> list[str]:
    """Labels for boxes: ``"circle 0.93"`` (class name, or the class id without ``class_names``;
    the score with two decimals when given)."""
    labels = [int(c) for c in torch.as_tensor(labels).reshape(-1).tolist()]
    names = [class_names[c] if class_names is not None else str(c) for c in labels]
    if scores is None:
        return names
    scores = torch.as_tensor(scores).reshape(-1).tolist()
    if len(scores) != len(labels):
        raise ValueError(f"scores must have one entry per label ({len(labels)}), got {len(scores)}")
    return [f"{name} {score:.2f}" for name, score in zip(names, scores)]


def detection_status(pred: dict, target: dict, iou_threshold: float = 0.5, score_threshold: float = 0.0,
                     method: str = "coco") -> tuple[list[str], torch.Tensor]:
    """Each detection's fate in one image, class by class, as ``mean_average_precision`` decides it.

    Args:
        pred: ``{"boxes": [N, 4], "scores": [N], "labels": [N]}``.
        target: ``{"boxes": [M, 4], "labels": [M]}`` (optional "difficult" / "iscrowd": ignored objects).
        iou_threshold, method: as ``lecture_lib.metrics.detection.match_detections``.
        score_threshold: detections below it are "dropped" before matching.

    Returns:
        (status: list of N strings "tp" / "fp" / "ignored" / "dropped",
        found: Tensor[M] bool, the objects some detection matched).
    """
    from lecture_lib.metrics.detection import match_detections

    boxes, gt_boxes = _as_boxes(pred["boxes"]), _as_boxes(target["boxes"])
    scores, labels = torch.as_tensor(pred["scores"]).reshape(-1), torch.as_tensor(pred["labels"]).reshape(-1)
    gt_labels = torch.as_tensor(target["labels"]).reshape(-1)
    if not len(scores) == len(labels) == len(boxes):
        raise ValueError(f"pred needs as many scores and labels as boxes ({len(boxes)}), "
                         f"got {len(scores)} and {len(labels)}")
    ignore = torch.as_tensor(target.get("difficult", torch.zeros(len(gt_labels), dtype=torch.bool))).bool()
    crowd = torch.as_tensor(target.get("iscrowd", torch.zeros(len(gt_labels), dtype=torch.bool))).bool()
    status, found = ["dropped"] * len(boxes), torch.zeros(len(gt_labels), dtype=torch.bool)
    kept = scores >= score_threshold
    for c in sorted(set(labels[kept].tolist()) | set(gt_labels.tolist())):
        det = ((labels == c) & kept).nonzero()[:, 0]
        gt = (gt_labels == c).nonzero()[:, 0]
        match = match_detections(boxes[det], scores[det].double(), gt_boxes[gt], iou_threshold, method,
                                 ignore[gt], gt_crowd=crowd[gt])
        for j, i in enumerate(det.tolist()):
            status[i] = match.status[j]
        found[gt] = match.gt_taken
    return status, found


def draw_marked(ax, gt_boxes, found, boxes, status, gt_texts=None, texts=None) -> None:
    """Draw boxes whose fate is known: ground truth as "found" or "missed" (``found``, Tensor[M]
    bool), detections by ``status`` ("tp", "fp", "ignored", "dropped"; list of N strings), TPs on
    top. Labels (optional lists of M and N strings; the detections' given in the order they
    should get the free places, e.g. by score) carry the kind's word."""
    gt_boxes, boxes, found = _as_boxes(gt_boxes), _as_boxes(boxes), torch.as_tensor(found).bool().reshape(-1)
    if len(found) != len(gt_boxes) or len(status) != len(boxes):
        raise ValueError(f"found and status must have one entry per box ({len(gt_boxes)} and {len(boxes)}), "
                         f"got {len(found)} and {len(status)}")
    draw_boxes(ax, gt_boxes[found], "found")
    draw_boxes(ax, gt_boxes[~found], "missed")
    for kind in ("dropped", "ignored", "fp", "tp"):
        draw_boxes(ax, boxes[[i for i, s in enumerate(status) if s == kind]], kind, alpha=0.6 if kind == "dropped" else 1.0)
    if gt_texts is not None:
        label_boxes(ax, gt_boxes[~found], [t for t, f in zip(gt_texts, found.tolist()) if not f], "missed")
    if texts is not None:
        for i in range(len(boxes)):
            if status[i] != "dropped":
                label_boxes(ax, boxes[i], [texts[i]], status[i])


def draw_detections(ax, pred: dict, target: dict, iou_threshold: float = 0.5, score_threshold: float = 0.0,
                    class_names=None, method: str = "coco", texts: bool = True) -> dict[str, int]:
    """Ground truth and detections of one image, each box drawn by its fate: TP, FP, missed
    object, found object, ignored, dropped (``detection_status``). Labels give the kind, the
    class and the score ("TP circle 0.91", "missed square") unless ``texts=False``; the best
    scores get the best places.

    Returns:
        the counts ``{"tp": ..., "fp": ..., "ignored": ..., "dropped": ..., "missed": ..., "found": ...}``.
    """
    status, found = detection_status(pred, target, iou_threshold, score_threshold, method)
    scores = torch.as_tensor(pred["scores"]).reshape(-1)
    order = torch.argsort(scores, descending=True, stable=True)
    det_texts = box_texts(pred["labels"], scores, class_names)
    draw_marked(ax, target["boxes"], found, _as_boxes(pred["boxes"])[order], [status[i] for i in order.tolist()],
                box_texts(target["labels"], class_names=class_names) if texts else None,
                [det_texts[i] for i in order.tolist()] if texts else None)
    counts = {kind: status.count(kind) for kind in ("tp", "fp", "ignored", "dropped")}
    return {**counts, "missed": int((~found).sum()), "found": int(found.sum())}


def box_legend(ax, kinds, outside: bool = True, **legend_kwargs):
    """A legend of box kinds (line colour, style and outline as drawn), right of the axis by
    default so that it covers no data. Returns the ``Legend``."""
    handles = []
    for kind in kinds:
        style = _style(kind)
        handles.append(Line2D([], [], color=style.colour, linestyle=style.linestyle, linewidth=style.linewidth,
                              path_effects=_outline(style.linewidth) if style.outline else [], label=style.label))
    options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)} if outside else {}
    return ax.legend(handles=handles, **{"fontsize": 9, "title": "boxes", **options, **legend_kwargs})


def draw_instance_masks(ax, masks, boxes=None, texts=None, alpha: float = 0.5) -> list:
    """One object per mask: filled in its colour (``INSTANCE_COLOURS``, in turn), outlined, and
    with ``boxes`` its box and label (``texts``) in the same colour.

    Args:
        masks (Tensor[N, H, W] bool): one mask per object, in the pixel grid of ``show_image``.
        boxes (Tensor[N, 4], optional), texts (list[str], optional): per object.

    Returns:
        the colours used, one per mask.
    """
    masks = torch.as_tensor(masks).detach().cpu().bool()
    if masks.dim() != 3:
        raise ValueError(f"masks must have shape [N, H, W], got {list(masks.shape)}")
    if boxes is not None and len(_as_boxes(boxes)) != len(masks):
        raise ValueError(f"boxes must have one row per mask ({len(masks)}), got {len(_as_boxes(boxes))}")
    if texts is not None and len(texts) != len(masks):
        raise ValueError(f"texts must have one entry per mask ({len(masks)}), got {len(texts)}")
    height, width = masks.shape[1:]
    colours = [INSTANCE_COLOURS[k % len(INSTANCE_COLOURS)] for k in range(len(masks))]
    grid_x, grid_y = np.arange(width) + 0.5, np.arange(height) + 0.5  # pixel centres
    for k, (mask, colour) in enumerate(zip(masks.numpy(), colours)):
        rgba = np.zeros((height, width, 4))
        rgba[mask] = (*mcolors.to_rgb(colour), alpha)
        ax.imshow(rgba, extent=(0, width, height, 0))
        if mask.any() and not mask.all():
            contour = ax.contour(grid_x, grid_y, mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
            contour.set(path_effects=_outline(1.2))
        if boxes is not None:
            draw_boxes(ax, _as_boxes(boxes)[k], "prediction", texts=None if texts is None else [texts[k]],
                       colour=colour, linewidth=1.5)
    return colours


def draw_class_mask(ax, mask, class_names, legend: str | None = "outside", annotate: bool = True,
                    min_pixels: int = 20):
    """A class per pixel (Tensor[H, W] of class ids) in ``CLASS_COLOURS``, in pixel coordinates.

    With ``annotate`` the class name is written on every connected region of at least
    ``min_pixels`` pixels (not on class 0, the background). ``legend``: the classes present,
    right of the axis ("outside"), at a matplotlib ``loc`` inside it ("lower left", ...), or
    none (None). Returns the axis.
    """
    from skimage.measure import label as connected_regions, regionprops

    mask = torch.as_tensor(mask).detach().cpu()
    if mask.dim() != 2:
        raise ValueError(f"mask must have shape [H, W], got {list(mask.shape)}")
    if mask.numel() and int(mask.max()) >= len(CLASS_COLOURS):
        raise ValueError(f"class ids must lie in [0, {len(CLASS_COLOURS) - 1}], got {int(mask.max())}")
    height, width = mask.shape
    ax.imshow(mask.numpy(), cmap=mcolors.ListedColormap(CLASS_COLOURS), vmin=-0.5, vmax=len(CLASS_COLOURS) - 0.5,
              interpolation="nearest", extent=(0, width, height, 0))
    ax.set(xlabel="x (pixels)", ylabel="y (pixels)")
    present = sorted(set(mask.unique().tolist()))
    if annotate:
        for c in present[1:] if present and present[0] == 0 else present:
            for region in regionprops(connected_regions(mask.numpy() == c, connectivity=1)):
                if region.area >= min_pixels:
                    y, x = region.centroid
                    ax.text(x + 0.5, y + 0.5, class_names[c], ha="center", va="center", fontsize=LABEL_FONTSIZE,
                            bbox={"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none",
                                  "alpha": 0.8}, clip_on=True)
    if legend is not None:
        where = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)} if legend == "outside" else {"loc": legend}
        ax.legend(handles=[Patch(color=CLASS_COLOURS[c], label=class_names[c]) for c in present],
                  fontsize=9, title="class", **where)
    return ax

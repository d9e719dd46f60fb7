"""Interactive IoU: two boxes, their intersection and union, and the IoU as they move.

compute / plot / demo:

- ``compute_iou(box_a, box_b)`` and ``compute_iou_grid(...)`` are pure and tested;
- ``plot_iou(..., ax=None)`` and ``plot_iou_grid(..., ax=None)`` draw on a matplotlib axis;
- ``iou_demo()`` wires ipywidgets sliders to them (needs a running kernel: Jupyter, Colab);
- ``iou_drag_html()`` is the same idea in plain SVG + JavaScript: drag or resize the boxes with
  the mouse and the IoU updates in the browser, with no kernel — so it also works in the static
  book, offline.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import torch

from lecture_lib.boxes import box_iou
from lecture_lib.widgets.base import figure_output, watch

__all__ = [
    "IoUParts",
    "compute_iou",
    "compute_iou_grid",
    "plot_iou",
    "plot_iou_grid",
    "iou_demo",
    "iou_drag_html",
]

Box = tuple[float, float, float, float]


def _check_box(box, name: str) -> Box:
    if isinstance(box, torch.Tensor):
        box = box.tolist()
    if not isinstance(box, (tuple, list)) or len(box) != 4:
        raise ValueError(f"{name} must be 4 numbers (x1, y1, x2, y2), got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"{name} must have x1 <= x2 and y1 <= y2, got {(x1, y1, x2, y2)}")
    return x1, y1, x2, y2


@dataclass(frozen=True)
class IoUParts:
    """The pieces of the IoU of two boxes: ``iou = intersection / union``."""

    area_a: float
    area_b: float
    intersection_box: Box | None  # None when the boxes do not overlap
    intersection: float
    union: float
    iou: float


def compute_iou(box_a, box_b) -> IoUParts:
    """Intersection, union and IoU of two boxes given as ``(x1, y1, x2, y2)``.

    The readable version of ``lecture_lib.boxes.box_iou`` for a single pair: the overlap is the
    box between the larger top-left corner and the smaller bottom-right corner.
    """
    ax1, ay1, ax2, ay2 = _check_box(box_a, "box_a")
    bx1, by1, bx2, by2 = _check_box(box_b, "box_b")
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    ix1, iy1, ix2, iy2 = max(ax1, bx1), max(ay1, by1), min(ax2, bx2), min(ay2, by2)
    width, height = max(ix2 - ix1, 0.0), max(iy2 - iy1, 0.0)
    intersection = width * height
    union = area_a + area_b - intersection
    return IoUParts(
        area_a=area_a,
        area_b=area_b,
        intersection_box=(ix1, iy1, ix2, iy2) if width > 0 and height > 0 else None,
        intersection=intersection,
        union=union,
        iou=intersection / union if union > 0 else float("nan"),
    )


def compute_iou_grid(box_a, box_b, shifts_x, shifts_y) -> torch.Tensor:
    """IoU of ``box_a`` with ``box_b`` translated by every ``(dx, dy)`` of a grid.

    Args:
        box_a, box_b: boxes ``(x1, y1, x2, y2)``.
        shifts_x (sequence[W]), shifts_y (sequence[H]): translations of ``box_b``.

    Returns:
        Tensor[H, W]: ``grid[i, j]`` is the IoU of ``box_a`` and ``box_b + (shifts_x[j], shifts_y[i])``.
    """
    a = torch.tensor([_check_box(box_a, "box_a")], dtype=torch.float64)
    b = torch.tensor(_check_box(box_b, "box_b"), dtype=torch.float64)
    dx = torch.as_tensor(shifts_x, dtype=torch.float64).reshape(-1)
    dy = torch.as_tensor(shifts_y, dtype=torch.float64).reshape(-1)
    gy, gx = torch.meshgrid(dy, dx, indexing="ij")
    shifted = b + torch.stack([gx, gy, gx, gy], dim=-1)  # [H, W, 4]
    return box_iou(a, shifted.reshape(-1, 4)).reshape(len(dy), len(dx))


def plot_iou(box_a, box_b, iou_threshold: float | None = 0.5, ax=None, image_size=(100, 100)):
    """Draw both boxes with the intersection filled; the title gives the IoU.

    Args:
        box_a, box_b: boxes ``(x1, y1, x2, y2)`` in pixels; ``box_a`` plays the ground truth.
        iou_threshold: when given, the title says whether the pair counts as a match (IoU >= t).
        ax: matplotlib axis to draw on (a new figure when None).
        image_size: ``(height, width)`` of the drawn canvas in pixels.

    Returns:
        the matplotlib axis.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    parts = compute_iou(box_a, box_b)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    height, width = image_size
    # solid / dashed / hatched as well as blue / orange / green: colour is not the only cue
    for box, colour, style, label in ((box_a, "tab:blue", "-", "A (ground truth, solid)"),
                                      (box_b, "tab:orange", "--", "B (prediction, dashed)")):
        x1, y1, x2, y2 = _check_box(box, "box")
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=2.5, ec=colour, ls=style, label=label))
    if parts.intersection_box is not None:
        x1, y1, x2, y2 = parts.intersection_box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fc="tab:green", ec="darkgreen", alpha=0.45, hatch="//",
                               label="A ∩ B (hatched)"))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # image coordinates: y grows downwards
    ax.set_aspect("equal")
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    title = (f"IoU = {parts.intersection:.0f} / {parts.union:.0f} = {parts.iou:.3f}")
    if iou_threshold is not None:
        verdict = "match" if parts.iou >= iou_threshold else "no match"
        title += f"  ({verdict} at IoU ≥ {iou_threshold:g})"
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_iou_grid(box_a, box_b, shifts_x, shifts_y, ax=None):
    """Heat map of the IoU as ``box_b`` slides over a grid of translations; returns the axis."""
    import matplotlib.pyplot as plt

    grid = compute_iou_grid(box_a, box_b, shifts_x, shifts_y)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    extent = (float(min(shifts_x)), float(max(shifts_x)), float(max(shifts_y)), float(min(shifts_y)))
    image = ax.imshow(grid.numpy(), extent=extent, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label="IoU")
    ax.set_xlabel("shift of B along x (pixels)")
    ax.set_ylabel("shift of B along y (pixels)")
    ax.set_title("IoU as box B slides over box A")
    return ax


def iou_demo(box_a=(20, 20, 60, 70), box_b=(35, 30, 80, 80), iou_threshold: float = 0.5,
             image_size=(100, 100)):
    """Sliders move and resize box B (and set the IoU threshold); the plot follows.

    Returns an ``ipywidgets.VBox``; its ``.children`` are the sliders, the output area and a
    label holding the current IoU (handy in tests).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    _check_box(box_a, "box_a")
    bx1, by1, bx2, by2 = _check_box(box_b, "box_b")
    height, width = image_size
    style = {"description_width": "initial"}
    sliders = {
        "x": widgets.FloatSlider(value=bx1, min=0, max=width, step=1, description="B: x1", style=style),
        "y": widgets.FloatSlider(value=by1, min=0, max=height, step=1, description="B: y1", style=style),
        "w": widgets.FloatSlider(value=bx2 - bx1, min=1, max=width, step=1, description="B: width", style=style),
        "h": widgets.FloatSlider(value=by2 - by1, min=1, max=height, step=1, description="B: height", style=style),
        "t": widgets.FloatSlider(value=iou_threshold, min=0, max=1, step=0.05, description="IoU threshold", style=style),
    }
    label = widgets.HTML()

    def draw(box, threshold):
        _, ax = plt.subplots(figsize=(4.5, 4.5))
        return plot_iou(box_a, box, iou_threshold=threshold, ax=ax, image_size=image_size)

    out, redraw = figure_output(draw)

    def update(*_):
        s = {k: v.value for k, v in sliders.items()}
        box = (s["x"], s["y"], s["x"] + s["w"], s["y"] + s["h"])
        parts = compute_iou(box_a, box)
        label.value = f"<b>IoU = {parts.iou:.3f}</b> (intersection {parts.intersection:.0f}, union {parts.union:.0f})"
        redraw(box, s["t"])

    watch(sliders.values(), update)
    return widgets.VBox([*sliders.values(), label, out])


_DRAG_TEMPLATE = """
<div class="lecture-iou-drag" id="{uid}" style="font-family: sans-serif">
<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="group"
     aria-label="two boxes A and B; focus a box and use the arrow keys to move it, shift + arrow keys to resize it"
     style="border: 1px solid #999; background: #fafafa; touch-action: none; user-select: none">
  <rect data-role="intersection" fill="#2ca02c" fill-opacity="0.45"></rect>
  <rect data-role="box" data-name="a" fill="#1f77b4" fill-opacity="0.08" stroke="#1f77b4" stroke-width="3" style="cursor: move"
        tabindex="0" role="button" aria-label="box A (ground truth): arrow keys move, shift + arrow keys resize"></rect>
  <rect data-role="box" data-name="b" fill="#ff7f0e" fill-opacity="0.08" stroke="#ff7f0e" stroke-width="3" stroke-dasharray="8 4"
        style="cursor: move" tabindex="0" role="button"
        aria-label="box B (prediction): arrow keys move, shift + arrow keys resize"></rect>
  <rect data-role="handle" data-name="a" width="12" height="12" fill="#1f77b4" style="cursor: nwse-resize"></rect>
  <rect data-role="handle" data-name="b" width="12" height="12" fill="#ff7f0e" style="cursor: nwse-resize"></rect>
</svg>
<div data-role="readout" aria-live="polite" style="margin-top: 4px">
  <b>IoU = <span data-role="iou"></span></b>
  = <span data-role="inter"></span> / <span data-role="union"></span>
  <span data-role="verdict"></span><br>
  <span style="color: #1f77b4">A (solid)</span> = <code data-role="box-a"></code>,
  <span style="color: #a34f00">B (dashed)</span> = <code data-role="box-b"></code>
  <small>(drag a box to move it, its corner square to resize it; or focus a box with Tab and use
  the arrow keys, with shift to resize)</small>
</div>
</div>
<script>
(function () {{
  var root = document.getElementById("{uid}");
  var svg = root.querySelector("svg");
  var boxes = {{a: {box_a}, b: {box_b}}};  // x1, y1, x2, y2 in image pixels
  var threshold = {threshold};
  var W = {width}, H = {height};
  function q(sel) {{ return root.querySelector(sel); }}
  // Same formula as lecture_lib.boxes.box_iou: overlap between the larger top-left corner and
  // the smaller bottom-right corner, divided by the union.
  function iou(a, b) {{
    var w = Math.max(Math.min(a[2], b[2]) - Math.max(a[0], b[0]), 0);
    var h = Math.max(Math.min(a[3], b[3]) - Math.max(a[1], b[1]), 0);
    var inter = w * h;
    var union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return {{inter: inter, union: union, iou: inter / union,
             box: [Math.max(a[0], b[0]), Math.max(a[1], b[1]), w, h]}};
  }}
  function draw() {{
    ["a", "b"].forEach(function (k) {{
      var b = boxes[k];
      var r = q('rect[data-role="box"][data-name="' + k + '"]');
      r.setAttribute("x", b[0]); r.setAttribute("y", b[1]);
      r.setAttribute("width", b[2] - b[0]); r.setAttribute("height", b[3] - b[1]);
      var hd = q('rect[data-role="handle"][data-name="' + k + '"]');
      hd.setAttribute("x", b[2] - 6); hd.setAttribute("y", b[3] - 6);
      q('[data-role="box-' + k + '"]').textContent = "(" + b.join(", ") + ")";
    }});
    var r = iou(boxes.a, boxes.b);
    var ir = q('rect[data-role="intersection"]');
    ir.setAttribute("x", r.box[0]); ir.setAttribute("y", r.box[1]);
    ir.setAttribute("width", r.box[2]); ir.setAttribute("height", r.box[3]);
    q('[data-role="iou"]').textContent = r.iou.toFixed(3);
    q('[data-role="inter"]').textContent = r.inter.toFixed(0);
    q('[data-role="union"]').textContent = r.union.toFixed(0);
    var ok = r.iou >= threshold;
    var v = q('[data-role="verdict"]');
    v.textContent = ok ? "\\u2265 " + threshold + ": a match" : "< " + threshold + ": no match";
    v.style.color = ok ? "#1a7f37" : "#b42318";  // dark enough for WCAG AA; the words carry the verdict
  }}
  function point(evt) {{
    var p = svg.createSVGPoint(); p.x = evt.clientX; p.y = evt.clientY;
    var m = svg.getScreenCTM().inverse(); var s = p.matrixTransform(m);
    return [s.x, s.y];
  }}
  var drag = null;
  svg.addEventListener("pointerdown", function (evt) {{
    var t = evt.target, role = t.getAttribute("data-role");
    if (role !== "box" && role !== "handle") return;
    drag = {{name: t.getAttribute("data-name"), role: role, start: point(evt),
             box: boxes[t.getAttribute("data-name")].slice()}};
    svg.setPointerCapture(evt.pointerId);
    evt.preventDefault();
  }});
  svg.addEventListener("pointermove", function (evt) {{
    if (!drag) return;
    var p = point(evt), dx = Math.round(p[0] - drag.start[0]), dy = Math.round(p[1] - drag.start[1]);
    var b = drag.box.slice();
    if (drag.role === "box") {{
      dx = Math.min(Math.max(dx, -b[0]), W - b[2]); dy = Math.min(Math.max(dy, -b[1]), H - b[3]);
      b = [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy];
    }} else {{
      b[2] = Math.min(Math.max(b[2] + dx, b[0] + 4), W); b[3] = Math.min(Math.max(b[3] + dy, b[1] + 4), H);
    }}
    boxes[drag.name] = b; draw();
  }});
  // keyboard: arrows move the focused box by 5 pixels, shift + arrows resize it
  function moveBy(name, role, dx, dy) {{
    var b = boxes[name].slice();
    if (role === "box") {{
      dx = Math.min(Math.max(dx, -b[0]), W - b[2]); dy = Math.min(Math.max(dy, -b[1]), H - b[3]);
      b = [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy];
    }} else {{
      b[2] = Math.min(Math.max(b[2] + dx, b[0] + 4), W); b[3] = Math.min(Math.max(b[3] + dy, b[1] + 4), H);
    }}
    boxes[name] = b; draw();
  }}
  svg.addEventListener("keydown", function (evt) {{
    var t = evt.target;
    if (t.getAttribute("data-role") !== "box") return;
    var steps = {{ArrowLeft: [-5, 0], ArrowRight: [5, 0], ArrowUp: [0, -5], ArrowDown: [0, 5]}}[evt.key];
    if (!steps) return;
    moveBy(t.getAttribute("data-name"), evt.shiftKey ? "handle" : "box", steps[0], steps[1]);
    evt.preventDefault();
  }});
  function end() {{ drag = null; }}
  svg.addEventListener("pointerup", end); svg.addEventListener("pointercancel", end);
  draw();
}})();
</script>
"""


def iou_drag_html(box_a=(40, 40, 160, 140), box_b=(100, 80, 230, 190), iou_threshold: float = 0.5,
                  image_size=(240, 320)):
    """A draggable IoU figure in SVG + JavaScript that runs in any browser, without a kernel.

    Args:
        box_a, box_b: starting boxes ``(x1, y1, x2, y2)`` in pixels (integers).
        iou_threshold: the readout says whether IoU >= threshold counts as a match.
        image_size: ``(height, width)`` of the canvas in pixels.

    Returns:
        ``IPython.display.HTML``; its ``.data`` is the HTML text.
    """
    from IPython.display import HTML

    height, width = image_size
    boxes = []
    for name, box in (("box_a", box_a), ("box_b", box_b)):
        x1, y1, x2, y2 = _check_box(box, name)
        if not all(float(v).is_integer() for v in (x1, y1, x2, y2)):
            raise ValueError(f"{name} must have integer pixel coordinates, got {box!r}")
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise ValueError(f"{name} must lie inside the canvas (height, width) = {tuple(image_size)}, got {box!r}")
        boxes.append(json.dumps([int(x1), int(y1), int(x2), int(y2)]))
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    html = _DRAG_TEMPLATE.format(uid=f"iou-{uuid.uuid4().hex[:8]}", width=width, height=height,
                                 box_a=boxes[0], box_b=boxes[1], threshold=json.dumps(iou_threshold))
    return HTML(html)

"""Interactive upsampling: pick an operation and an input grid, see input -> output.

compute / plot / demo:

- ``compute_upsampling(grid, op, ...)`` is pure and tested: it calls the canonical functions
  of :mod:`lecture_lib.upsampling` on a single-channel 2-D grid;
- ``compute_transpose_conv_steps(...)`` lists the transpose convolution's partial sums, one
  input value at a time (the output "filling in stride by stride", used by the quiz too);
- ``plot_grids(...)`` / ``plot_upsampling(...)`` draw annotated heatmaps on one matplotlib axis;
- ``upsampling_demo()`` wires ipywidgets to them (needs a running kernel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lecture_lib.lecture import MAX_UNPOOL_EXAMPLE, NEAREST_EXAMPLE, TRANSPOSE_CONV_QUIZ
from lecture_lib.upsampling import (
    bed_of_nails,
    conv_transpose2d,
    conv_transpose2d_output_size,
    max_pool2d_with_indices,
    max_unpool2d,
    nearest_upsample,
)
from lecture_lib.widgets.base import figure_output, watch

__all__ = [
    "OPERATIONS",
    "DEFAULT_INPUT",
    "DEFAULT_FILTER",
    "DEFAULT_SWITCH_SOURCE",
    "UpsamplingResult",
    "TransposeConvStep",
    "parse_grid",
    "compute_upsampling",
    "compute_transpose_conv_steps",
    "plot_grids",
    "plot_upsampling",
    "upsampling_demo",
]

OPERATIONS = ("nearest", "bed_of_nails", "max_unpool", "transpose_conv")


def _grid(rows) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in rows)


# The lecture's own examples (lecture_lib.lecture): the 2 x 2 input of "In-Network Upsampling",
# the quiz's 3 x 3 filter, and the 4 x 4 map that max pooling saw earlier in the network
# ("Max Unpooling": its 2 x 2 maxima 5, 6, 7, 8 decide where unpooling puts 1, 2, 3, 4).
DEFAULT_INPUT = _grid(NEAREST_EXAMPLE["input"])
DEFAULT_FILTER = _grid(TRANSPOSE_CONV_QUIZ["filter"])
DEFAULT_SWITCH_SOURCE = _grid(MAX_UNPOOL_EXAMPLE["pool_input"])


def parse_grid(grid, name: str = "grid") -> Tensor:
    """A 2-D grid of numbers as ``Tensor[h, w]`` float64.

    Accepts a tensor, nested lists/tuples, or text with one row per line (or rows separated by
    ``;``) and numbers separated by spaces or commas: ``"1 2; 3 4"``.
    """
    if isinstance(grid, str):
        rows = [r for r in grid.replace(";", "\n").splitlines() if r.strip()]
        try:
            grid = [[float(v) for v in r.replace(",", " ").split()] for r in rows]
        except ValueError as err:
            raise ValueError(f"{name} must hold numbers, got {grid!r}") from err
        if len({len(r) for r in grid}) > 1:
            raise ValueError(f"{name} rows must all have the same length, got lengths {[len(r) for r in grid]}")
    try:
        values = torch.as_tensor(grid, dtype=torch.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a rectangular 2-D grid of numbers, got {grid!r}") from err
    if values.dim() != 2 or values.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 2-D grid [h, w], got shape {list(values.shape)}")
    return values


@dataclass
class UpsamplingResult:
    """Input and output grids of one upsampling operation.

    Attributes:
        op: the operation.
        input (Tensor[h, w]): the grid that is upsampled.
        output (Tensor[H, W]): the result.
        switch_source (Tensor[H, W] | None): for "max_unpool", the earlier map whose max
            pooling chose the positions; ``switches`` are their flat indices (Tensor[h, w]).
        filter (Tensor[k, k] | None): for "transpose_conv".
    """

    op: str
    input: Tensor
    output: Tensor
    scale: int = 2
    switch_source: Tensor | None = None
    switches: Tensor | None = None
    filter: Tensor | None = None
    stride: int = 2
    padding: int = 0


def compute_upsampling(grid=DEFAULT_INPUT, op: str = "nearest", scale: int = 2, filter=DEFAULT_FILTER,
                       stride: int = 2, padding: int = 0, switch_source=DEFAULT_SWITCH_SOURCE) -> UpsamplingResult:
    """Apply one upsampling operation to a single-channel grid.

    Args:
        grid: the input ``[h, w]`` (see :func:`parse_grid`).
        op: "nearest", "bed_of_nails", "max_unpool" or "transpose_conv".
        scale: the factor of "nearest", "bed_of_nails" and "max_unpool" (pooling kernel = stride = scale).
        filter: the ``[k_h, k_w]`` filter of "transpose_conv".
        stride, padding: of "transpose_conv".
        switch_source: for "max_unpool", the ``[h * scale, w * scale]`` map that was max pooled;
            the positions of its maxima decide where the input values go.

    Returns:
        UpsamplingResult.
    """
    if op not in OPERATIONS:
        raise ValueError(f"op must be one of {OPERATIONS}, got {op!r}")
    x = parse_grid(grid, "grid")
    x4 = x[None, None]
    if op == "nearest":
        return UpsamplingResult(op, x, nearest_upsample(x4, scale)[0, 0], scale=scale)
    if op == "bed_of_nails":
        return UpsamplingResult(op, x, bed_of_nails(x4, scale)[0, 0], scale=scale)
    if op == "max_unpool":
        source = parse_grid(switch_source, "switch_source")
        expected = (x.shape[0] * scale, x.shape[1] * scale)
        if tuple(source.shape) != expected:
            raise ValueError(f"switch_source must have shape {list(expected)} (input {list(x.shape)} times "
                             f"scale {scale}), got {list(source.shape)}")
        _, switches = max_pool2d_with_indices(source[None, None], scale)
        out = max_unpool2d(x4, switches, scale, output_size=expected)[0, 0]
        return UpsamplingResult(op, x, out, scale=scale, switch_source=source, switches=switches[0, 0])
    weight = parse_grid(filter, "filter")
    out = conv_transpose2d(x4, weight[None, None], stride=stride, padding=padding)[0, 0]
    return UpsamplingResult(op, x, out, filter=weight, stride=stride, padding=padding)


@dataclass
class TransposeConvStep:
    """One input value's contribution to a transpose convolution (no padding cropped yet).

    Attributes:
        position: ``(i, j)`` of the input value.
        value: ``x[i, j]``.
        region: ``(row, col)`` of the top-left corner where ``value * filter`` is added.
        contribution (Tensor[H, W]): ``value * filter`` placed at ``region``, zeros elsewhere.
        partial (Tensor[H, W]): sum of the contributions so far.
    """

    position: tuple[int, int]
    value: float
    region: tuple[int, int]
    contribution: Tensor
    partial: Tensor


def compute_transpose_conv_steps(grid=DEFAULT_INPUT, filter=DEFAULT_FILTER, stride: int = 2) -> list[TransposeConvStep]:
    """The transpose convolution built up one input value at a time, in row-major order.

    Each step adds ``x[i, j] * filter`` with its top-left corner at ``(i * stride, j * stride)``;
    the last step's ``partial`` equals ``conv_transpose2d(x, filter, stride=stride)``.
    """
    x = parse_grid(grid, "grid")
    weight = parse_grid(filter, "filter")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"stride must be an int >= 1, got {stride!r}")
    kh, kw = weight.shape
    size = conv_transpose2d_output_size(tuple(x.shape), (kh, kw), stride)
    partial = torch.zeros(size, dtype=torch.float64)
    steps = []
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            contribution = torch.zeros(size, dtype=torch.float64)
            contribution[i * stride:i * stride + kh, j * stride:j * stride + kw] = x[i, j] * weight
            partial = partial + contribution
            steps.append(TransposeConvStep((i, j), float(x[i, j]), (i * stride, j * stride), contribution, partial))
    return steps


def _format(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def plot_grids(grids, ax=None, title: str | None = None, cmap: str = "viridis", annotate: bool = True):
    """Draw several grids side by side on one axis, each as a heatmap with its values written in.

    Args:
        grids: sequence of ``(label, values [h, w], highlight)`` where ``highlight`` is None or a
            boolean ``[h, w]`` mask of cells to outline in red; or of ``(label, values)``.
            ``values`` may hold NaN for a cell to leave blank, or be paired with a dict
            ``{(row, col): "text"}`` via a 4th element to override a cell's text.
        ax: matplotlib axis (a new figure when None). title: the axis title.

    Returns:
        the matplotlib axis.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    items = []
    for g in grids:
        label, values = g[0], parse_grid(g[1], "values") if not isinstance(g[1], Tensor) else g[1].double()
        highlight = g[2] if len(g) > 2 else None
        texts = g[3] if len(g) > 3 else {}
        items.append((label, values, highlight, texts))
    if not items:
        raise ValueError("grids must hold at least one grid")
    if ax is None:
        width = sum(v.shape[1] for _, v, _, _ in items) + 1.5 * (len(items) - 1)
        height = max(v.shape[0] for _, v, _, _ in items)
        _, ax = plt.subplots(figsize=(min(1.0 + 0.55 * width, 16), 1.2 + 0.55 * height))
    left, max_rows = 0.0, max(v.shape[0] for _, v, _, _ in items)
    colormap = plt.get_cmap(cmap)
    for k, (label, values, highlight, texts) in enumerate(items):
        h, w = values.shape
        # each grid gets its own colour scale: a filter of 1s and 4s next to outputs of 100s
        finite = values[~values.isnan()]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 1.0)
        if vmax == vmin:
            vmax = vmin + 1
        # extent: cell (r, c) spans [left + c, left + c + 1] x [r, r + 1] in data coordinates
        ax.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, extent=(left, left + w, h, 0),
                  interpolation="nearest")
        ax.add_patch(Rectangle((left, 0), w, h, fill=False, lw=1.0, ec="black"))
        if annotate:
            for r in range(h):
                for c in range(w):
                    v = float(values[r, c])
                    text = texts.get((r, c), "" if v != v else _format(v))
                    red, green, blue, _ = (1.0, 1.0, 1.0, 1.0) if v != v else colormap((v - vmin) / (vmax - vmin))
                    # dark text on light (or blank) cells, light text on dark cells
                    colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
                    ax.text(left + c + 0.5, r + 0.5, text, ha="center", va="center", fontsize=9, color=colour)
        if highlight is not None:
            for r, c in torch.as_tensor(highlight).nonzero().tolist():
                ax.add_patch(Rectangle((left + c, r), 1, 1, fill=False, lw=2.5, ec="red"))
        ax.text(left + w / 2, -0.3, label, ha="center", va="bottom", fontsize=10)
        if k < len(items) - 1:
            ax.annotate("", xy=(left + w + 1.2, max_rows / 2), xytext=(left + w + 0.3, max_rows / 2),
                        arrowprops=dict(arrowstyle="->", lw=1.5))
        left += w + 1.5
    ax.set_xlim(-0.2, left - 1.3)
    ax.set_ylim(max_rows + 0.2, -1.3)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("column (one square = one pixel)")
    ax.set_ylabel("row")
    if title:
        ax.set_title(title)
    return ax


_TITLES = {
    "nearest": "Nearest neighbour: copy each value into its {s}x{s} block",
    "bed_of_nails": "Bed of nails: value at the block's top-left, zeros elsewhere",
    "max_unpool": "Max unpooling: values return to where the {s}x{s} maxima were",
    "transpose_conv": "Transpose convolution: input value x filter, added {s} pixels apart",
}


def plot_upsampling(result: UpsamplingResult, ax=None):
    """Draw an :class:`UpsamplingResult`: (switch source ->) input -> (filter ->) output."""
    s = result.stride if result.op == "transpose_conv" else result.scale
    grids = []
    if result.op == "max_unpool":
        src = result.switch_source
        mask = torch.zeros(src.shape, dtype=torch.bool).view(-1)
        mask[result.switches.reshape(-1)] = True
        grids.append(("earlier map (max pooled)", src, mask.view(src.shape)))
        grids.append(("input", result.input, None))
        grids.append(("output", result.output, result.output != 0))
    elif result.op == "transpose_conv":
        grids.append(("input", result.input, None))
        grids.append(("filter", result.filter, None))
        title = "output" + (f" (padding {result.padding} cropped)" if result.padding else "")
        grids.append((title, result.output, None))
    else:
        grids.append(("input", result.input, None))
        grids.append(("output", result.output, None))
    return plot_grids(grids, ax=ax, title=_TITLES[result.op].format(s=s))


def upsampling_demo(grid=DEFAULT_INPUT, op: str = "nearest"):
    """Pick the operation, edit the input grid (and the transpose convolution's filter, stride
    and padding); the heatmaps follow.

    Returns an ``ipywidgets.VBox`` whose attribute ``controls`` maps names ("op", "grid",
    "filter", "scale", "stride", "padding") to the widgets and ``status`` is an HTML widget
    holding the output grid as text (or the error message) — handy in tests.
    """
    import ipywidgets as widgets

    def as_text(g):
        return "\n".join(" ".join(_format(v) for v in row) for row in parse_grid(g).tolist())

    controls = {
        "op": widgets.Dropdown(options=[("nearest neighbour", "nearest"), ("bed of nails", "bed_of_nails"),
                                        ("max unpooling", "max_unpool"), ("transpose convolution", "transpose_conv")],
                               value=op, description="operation"),
        "grid": widgets.Textarea(value=as_text(grid), description="input", rows=3),
        "filter": widgets.Textarea(value=as_text(DEFAULT_FILTER), description="filter", rows=3),
        "scale": widgets.IntSlider(value=2, min=1, max=4, description="scale"),
        "stride": widgets.IntSlider(value=2, min=1, max=4, description="stride"),
        "padding": widgets.IntSlider(value=0, min=0, max=2, description="padding"),
    }
    status = widgets.HTML()
    out, redraw = figure_output(plot_upsampling)

    def update(*_):
        c = {k: w.value for k, w in controls.items()}
        transpose = c["op"] == "transpose_conv"
        for name in ("filter", "stride", "padding"):
            controls[name].layout.display = None if transpose else "none"
        controls["scale"].layout.display = "none" if transpose else None
        try:
            kwargs = dict(filter=c["filter"], stride=c["stride"], padding=c["padding"], scale=c["scale"])
            x = parse_grid(c["grid"], "input")
            if c["op"] == "max_unpool" and (c["scale"] != 2 or tuple(x.shape) != (2, 2)):
                # the lecture's earlier map fits a 2x2 input at scale 2; otherwise draw one
                size = (x.shape[0] * c["scale"], x.shape[1] * c["scale"])
                kwargs["switch_source"] = torch.randint(0, 10, size, generator=torch.Generator().manual_seed(0)).double()
            result = compute_upsampling(c["grid"], c["op"], **kwargs)
        except (ValueError, TypeError) as err:
            status.value = f"<span style='color: #b42318'>{err}</span>"
            return
        status.value = "<pre>" + as_text(result.output) + "</pre>"
        redraw(result)

    watch(controls.values(), update)
    box = widgets.VBox([widgets.HBox([controls["op"], controls["scale"], controls["stride"], controls["padding"]]),
                        widgets.HBox([controls["grid"], controls["filter"]]), out, status])
    box.controls = controls
    box.status = status
    return box

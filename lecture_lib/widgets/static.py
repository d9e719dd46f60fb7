"""Precomputed interactive figures that respond in the static book, with no kernel.

An ipywidgets demo needs a running Python kernel: in the rendered (static, offline) book its
sliders move but nothing redraws. ``static_interact`` renders a figure for *every* combination
of a few control values while the notebook executes, and emits HTML + JavaScript with sliders
and menus that swap between the precomputed pictures in the browser. It works in the static
book, in JupyterLab and in Colab alike; it suits demos with a few hundred states at most.

    static_interact(lambda iou_threshold, score_threshold: plot_pr(...).figure,
                    {"iou_threshold": [0.5, 0.75, 0.9], "score_threshold": [0.0, 0.3, 0.6]})

compute / plot / demo: ``compute_frames`` (pure: parameters -> PNG bytes) is tested; the
returned HTML is driven in a real browser by tests/test_browser.py.
"""

from __future__ import annotations

import base64
import html as html_lib
import io
import itertools
import json
import uuid
from typing import Callable, Mapping, Sequence

__all__ = ["compute_frames", "static_interact", "MAX_FRAMES"]

MAX_FRAMES = 400


def _check_controls(controls) -> dict[str, list]:
    if not isinstance(controls, Mapping) or not controls:
        raise TypeError(f"controls must be a non-empty dict name -> list of values, got {controls!r}")
    checked = {}
    for name, values in controls.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"control names must be Python identifiers, got {name!r}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"control {name!r} needs a non-empty list of values, got {values!r}")
        for v in values:
            if not isinstance(v, (int, float, str, bool)):
                raise TypeError(f"control {name!r} values must be numbers or strings, got {type(v).__name__}")
        checked[name] = list(values)
    n_frames = 1
    for values in checked.values():
        n_frames *= len(values)
    if n_frames > MAX_FRAMES:
        sizes = " x ".join(str(len(v)) for v in checked.values())
        raise ValueError(f"at most {MAX_FRAMES} combinations can be precomputed, got {sizes} = {n_frames}")
    return checked


def _render_full(figure, dpi: int):
    """Figure -> (RGB image of the whole figure, tight bounding box in inches clipped to it)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    if hasattr(figure, "figure") and not hasattr(figure, "savefig"):
        figure = figure.figure  # an Axes was returned
    if not hasattr(figure, "savefig"):
        raise TypeError(f"render must return a matplotlib Figure or Axes, got {type(figure).__name__}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)  # the whole figure: same size for every frame
    width, height = figure.get_size_inches()
    tight = figure.get_tightbbox()  # what bbox_inches="tight" would keep, in inches
    plt.close(figure)
    pad = 0.1  # savefig's default pad_inches
    box = (max(tight.x0 - pad, 0.0), max(tight.y0 - pad, 0.0),
           min(tight.x1 + pad, width), min(tight.y1 + pad, height))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB"), box, height


def _same_size_pngs(rendered: list, dpi: int) -> list[bytes]:
    """Crop every frame to the union of their tight boxes, pad to one size, encode as PNG.

    One crop for all frames (not ``bbox_inches="tight"`` per frame) keeps the axes at the same
    pixels in every frame, so the picture does not jump when a control moves.
    """
    from PIL import Image

    x0 = min(box[0] for _, box, _ in rendered)
    x1 = max(box[2] for _, box, _ in rendered)
    # rows are counted from the top edge of each figure (the top of its image), in inches
    top = min(height - box[3] for _, box, height in rendered)
    bottom = max(height - box[1] for _, box, height in rendered)
    size = (round((x1 - x0) * dpi), round((bottom - top) * dpi))
    pngs = []
    for image, _, _ in rendered:
        left, upper = round(x0 * dpi), round(top * dpi)
        crop = image.crop((left, upper, min(left + size[0], image.width), min(upper + size[1], image.height)))
        frame = Image.new("RGB", size, "white")
        frame.paste(crop, (0, 0))
        buffer = io.BytesIO()
        frame.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs


def compute_frames(render: Callable[..., object], controls: Mapping[str, Sequence], dpi: int = 110,
                   progress: bool = False) -> list[bytes]:
    """Render one PNG per combination of control values, all of the same pixel size.

    Args:
        render: called as ``render(**params)``; returns a matplotlib Figure (or Axes).
        controls: ``{name: [value, ...]}``; at most ``MAX_FRAMES`` combinations in all.
        dpi: resolution of the PNGs (110: 8-point text is about 12 pixels tall).
        progress: show a tqdm bar over the frames.

    Returns:
        list[bytes]: PNG data in ``itertools.product`` order of the controls (last name fastest);
        every frame is cropped to the same region (the union of the frames' tight bounding boxes),
        so all have the same width and height and the axes do not move between frames.
    """
    controls = _check_controls(controls)
    names = list(controls)
    combos = list(itertools.product(*controls.values()))
    if progress:
        from tqdm.auto import tqdm

        combos = tqdm(combos, desc="precomputing frames")
    rendered = [_render_full(render(**dict(zip(names, combo))), dpi) for combo in combos]
    return _same_size_pngs(rendered, dpi)


_TEMPLATE = """
<div class="lecture-static-interact" id="{uid}" style="font-family: sans-serif">
  {title}
  <div data-role="controls" style="display: flex; flex-wrap: wrap; gap: 6px 18px; margin-bottom: 6px">{controls}</div>
  <img data-role="frame" alt="{alt}" style="max-width: 100%">
</div>
<script>
(function () {{
  var root = document.getElementById("{uid}");
  var frames = {frames};
  var values = {values};
  var names = Object.keys(values);
  var alt = {alt_json};
  function index() {{
    var i = 0;
    names.forEach(function (name) {{
      var input = root.querySelector('[data-control="' + name + '"]');
      var k = parseInt(input.value, 10);
      root.querySelector('[data-value-of="' + name + '"]').textContent = values[name][k];
      i = i * values[name].length + k;
    }});
    return i;
  }}
  function show() {{
    var frame = root.querySelector('[data-role="frame"]');
    frame.src = "data:image/png;base64," + frames[index()];
    // the alt text says which figure is shown: its description and the current control values
    frame.alt = alt + " (" + names.map(function (name) {{
      return name.replace(/_/g, " ") + ": " + root.querySelector('[data-value-of="' + name + '"]').textContent;
    }}).join(", ") + ")";
  }}
  root.querySelectorAll("[data-control]").forEach(function (input) {{
    input.addEventListener("input", show); input.addEventListener("change", show);
  }});
  show();
}})();
</script>
"""


def _control_html(name: str, values: list, initial: int) -> str:
    label = html_lib.escape(name.replace("_", " "))
    shown = html_lib.escape(str(values[initial]))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        widget = (f'<input type="range" data-control="{name}" min="0" max="{len(values) - 1}" step="1" '
                  f'value="{initial}" style="vertical-align: middle">')
    else:
        options = "".join(f'<option value="{i}"{" selected" if i == initial else ""}>{html_lib.escape(str(v))}</option>'
                          for i, v in enumerate(values))
        widget = f'<select data-control="{name}">{options}</select>'
    return f'<label>{label} {widget} <b data-value-of="{name}">{shown}</b></label>'


def _describe_first_frame(render, params: dict, title: str | None) -> str:
    """The title (if any) and what the first frame's figure shows (its titles, axis labels)."""
    import matplotlib.pyplot as plt

    from lecture_lib.widgets.alt_text import describe_figure

    figure = render(**params)
    figure = figure.figure if hasattr(figure, "figure") and not hasattr(figure, "savefig") else figure
    described = describe_figure(figure).removeprefix("Figure: ")
    plt.close(figure)
    parts = [p.rstrip(".") for p in (title, described) if p]
    return ". ".join(parts) if parts else "precomputed figure"


def static_interact(render: Callable[..., object], controls: Mapping[str, Sequence], *,
                    initial: Mapping[str, object] | None = None, title: str | None = None,
                    dpi: int = 110, progress: bool = False, alt: str | None = None):
    """An interactive figure from precomputed frames: sliders (numbers) or menus (strings).

    Args:
        render: ``render(**params) -> Figure | Axes`` for one combination of control values.
        controls: ``{name: [values]}`` (numbers give a slider over the listed values, strings a menu).
        initial: starting value per control (default: the first value of each).
        title: optional heading shown above the controls.
        dpi: resolution of the frames (all of them have the same pixel size).
        progress: show a tqdm bar while the frames are rendered.
        alt: what the figure shows, for readers who cannot see it (default: the title and what the
            first frame's figure shows, from its titles and axis labels, see ``alt_text``); the
            image's alt text is this plus the current control values, updated on every change.

    Returns:
        ``IPython.display.HTML`` (its ``.data`` is the HTML text).
    """
    from IPython.display import HTML

    controls = _check_controls(controls)
    initial = dict(initial or {})
    unknown = set(initial) - set(controls)
    if unknown:
        raise ValueError(f"initial names {sorted(unknown)} are not controls {list(controls)}")
    start = {}
    for name, values in controls.items():
        if name in initial and initial[name] not in values:
            raise ValueError(f"initial {name}={initial[name]!r} is not one of {values}")
        start[name] = values.index(initial[name]) if name in initial else 0
    frames = [base64.b64encode(png).decode("ascii") for png in compute_frames(render, controls, dpi, progress)]
    description = alt or _describe_first_frame(render, {name: values[start[name]] for name, values in controls.items()},
                                               title)
    text = _TEMPLATE.format(
        alt=html_lib.escape(description, quote=True),
        alt_json=json.dumps(description),
        uid=f"interact-{uuid.uuid4().hex[:8]}",
        title=f"<b>{html_lib.escape(title)}</b>" if title else "",
        controls="".join(_control_html(name, values, start[name]) for name, values in controls.items()),
        frames=json.dumps(frames),
        values=json.dumps(controls),
    )
    return HTML(text)

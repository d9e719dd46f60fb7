"""Alt text for the notebooks' matplotlib figures: what a figure shows, in words.

A plot in the rendered book is an ``<img>``; a reader who cannot see it hears its alt text.
MyST-NB takes that text only from a cell's metadata (``mystnb: image: alt: ...``), so every
plot of the book was announced by its file name. The figure itself knows what it shows (its
titles, axis labels, legend entries):

- ``describe_figure(fig)`` (pure, tested) puts those into one sentence;
- ``record_figure_alt_text()`` makes an IPython kernel attach that sentence to every figure's
  PNG output, as the output's metadata ``{"image/png": {"alt": ...}}``, which the book's
  Sphinx extension (_ext/course_html.py) uses when the cell's metadata gives no ``alt``.

A figure whose axes carry no title says too little to be described this way: give its cell an
``alt`` in the metadata (or give it titles).
"""

from __future__ import annotations

import sys

__all__ = ["describe_figure", "record_figure_alt_text"]


def _clean(text: str) -> str:
    return " ".join(str(text).replace("$", "").split())


def _describe_axes(ax) -> str:
    title = " ".join(t for t in (_clean(ax.get_title(loc)) for loc in ("left", "center", "right")) if t)
    xlabel, ylabel = _clean(ax.get_xlabel()), _clean(ax.get_ylabel())
    if xlabel and ylabel:
        axes = f"{ylabel} against {xlabel}"
    else:
        axes = f"x axis: {xlabel}" if xlabel else (f"y axis: {ylabel}" if ylabel else "")
    legend = ax.get_legend()
    entries = [_clean(t.get_text()) for t in legend.get_texts()] if legend is not None else []
    entries = [e for e in entries if e]
    parts = [p for p in (title, axes) if p]
    text = ": ".join(parts[:1]) + (f" ({parts[1]})" if len(parts) == 2 else "")
    if entries:
        text += (", " if text else "") + "legend: " + ", ".join(entries)
    return text


def describe_figure(figure, max_panels: int = 8) -> str:
    """One sentence saying what a matplotlib figure shows, from its own texts.

    Args:
        figure: a matplotlib Figure (or an Axes, whose figure is used).
        max_panels: describe at most this many panels; the rest are counted.

    Returns:
        str: "<suptitle>. <n> panels: <title> (<y label> against <x label>), legend: a, b; ..."
        for the panels that carry a title, axis labels or a legend (colour bars are named by
        their label). "" when the figure has no text to describe it by.
    """
    if hasattr(figure, "figure") and not hasattr(figure, "savefig"):
        figure = figure.figure
    if not hasattr(figure, "axes") or not hasattr(figure, "savefig"):
        raise TypeError(f"figure must be a matplotlib Figure or Axes, got {type(figure).__name__}")
    suptitle = _clean(figure._suptitle.get_text()) if getattr(figure, "_suptitle", None) is not None else ""
    panels, colour_scales = [], []
    for ax in figure.axes:
        if not ax.get_visible():
            continue
        if ax.get_label() == "<colorbar>":
            label = _clean(ax.get_ylabel() or ax.get_xlabel())
            if label:
                colour_scales.append(label)
            continue
        described = _describe_axes(ax)
        if described:
            panels.append(described)
    if not (suptitle or panels):
        return ""
    shown = list(dict.fromkeys(panels))
    more = len(shown) - max_panels
    shown = shown[:max_panels] + ([f"{more} more"] if more > 0 else [])
    sentence = suptitle + ("." if suptitle and not suptitle.endswith((".", ":", "?", "!")) else "")
    if shown:
        lead = f"{len(panels)} panels: " if len(panels) > 1 else ""
        sentence += (" " if sentence else "") + lead + "; ".join(shown)
    if colour_scales:
        sentence += f"; colour scale: {', '.join(colour_scales)}"
    return "Figure: " + sentence


def record_figure_alt_text(shell=None) -> bool:
    """In an IPython kernel, store ``describe_figure(fig)`` with every figure's PNG output.

    Wraps the shell's ``display_formatter.format``: when the object shown is a matplotlib Figure
    and the result holds a PNG, the sentence is added to the PNG's metadata, which IPython
    writes into the notebook as ``{"image/png": {"alt": ...}}``. Wrapping the formatter rather
    than the inline backend's PNG function works whichever is set up first (the backend
    registers its function only when the first figure is drawn). Nothing changes for figures
    with no text to describe.

    Cheap to call on every ``import lecture_lib``: outside IPython it does nothing.

    Returns:
        bool: True if a shell was found (also when it was already wrapped), False outside IPython.
    """
    if shell is None:
        ipython = sys.modules.get("IPython")  # a kernel has it loaded; elsewhere: cost nothing
        shell = ipython.get_ipython() if ipython is not None else None
    formatter = getattr(shell, "display_formatter", None)
    if formatter is None:
        return False
    if getattr(formatter.format, "_lecture_alt_text", False):
        return True
    original = formatter.format

    def format(obj, include=None, exclude=None):
        data, metadata = original(obj, include=include, exclude=exclude)
        figure_module = sys.modules.get("matplotlib.figure")
        if "image/png" not in data or figure_module is None or not isinstance(obj, figure_module.Figure):
            return data, metadata
        try:
            alt = describe_figure(obj)
        except Exception:  # a description must never break the plot itself
            alt = ""
        if alt:
            metadata = dict(metadata or {})
            metadata["image/png"] = {**(metadata.get("image/png") or {}), "alt": alt}
        return data, metadata

    format._lecture_alt_text = True
    formatter.format = format
    return True

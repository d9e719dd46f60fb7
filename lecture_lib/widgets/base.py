"""What every ipywidgets demo of the course shares: an output area that shows one matplotlib
figure and redraws it when a control moves.

    out, redraw = figure_output(lambda value: plot_something(value).figure)
    watch([slider], lambda *_: redraw(slider.value))   # observes "value", draws once now

The demos (``iou_demo``, ``map_demo``, ``matching_demo``, ``upsampling_demo``, ``quiz_demo``)
differ only in their controls and in what they draw.
"""

from __future__ import annotations

from typing import Callable, Iterable

__all__ = ["as_figure", "figure_output", "watch"]


def as_figure(drawn):
    """The figure of what a drawing function returned: a Figure, an Axes (or a list of them),
    or None (the current figure)."""
    import matplotlib.pyplot as plt

    if drawn is None:
        return plt.gcf()
    if isinstance(drawn, (list, tuple)) and drawn:
        drawn = drawn[0]
    figure = getattr(drawn, "figure", drawn)
    if not hasattr(figure, "savefig"):
        raise TypeError(f"a drawing function must return a Figure, an Axes or None, got {type(drawn).__name__}")
    return figure


def figure_output(draw: Callable) -> tuple:
    """An ``ipywidgets.Output`` and a ``redraw(*args)`` that replaces its content by the figure
    ``draw(*args)`` returns (then closes that figure, so that redraws do not pile up figures).

    Returns:
        (output widget, redraw function).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    out = widgets.Output()

    def redraw(*args):
        with out:
            out.clear_output(wait=True)
            figure = as_figure(draw(*args))
            display(figure)
            plt.close(figure)

    return out, redraw


def watch(controls: Iterable, callback: Callable, call_now: bool = True) -> None:
    """Call ``callback(change)`` whenever the value of one of ``controls`` changes (and once now,
    with no argument, unless ``call_now`` is False)."""
    for control in controls:
        control.observe(callback, names="value")
    if call_now:
        callback()

"""lecture_lib.widgets.base: the output area shows exactly the latest figure and closes the
ones it showed; watch() calls back on every change of a control's value."""

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lecture_lib.widgets.base import as_figure, figure_output, watch  # noqa: E402


def test_figure_output_shows_the_latest_figure_and_closes_it(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda figure: shown.append(figure))
    drawn = []

    def draw(value):
        fig, ax = plt.subplots()
        ax.set_title(f"value {value}")
        drawn.append(fig)
        return ax  # an Axes is fine too

    out, redraw = figure_output(draw)
    assert isinstance(out, widgets.Output)
    before = set(plt.get_fignums())
    redraw(1)
    redraw(2)
    assert shown == drawn and [f.axes[0].get_title() for f in shown] == ["value 1", "value 2"]
    assert set(plt.get_fignums()) == before  # no figure left open by the redraws


def test_watch_calls_back_now_and_on_each_change():
    slider, toggle = widgets.IntSlider(value=1), widgets.ToggleButtons(options=["a", "b"], value="a")
    calls = []
    watch([slider, toggle], lambda change=None: calls.append(None if change is None else change["new"]))
    assert calls == [None]
    slider.value = 5
    toggle.value = "b"
    slider.description = "not a value change"
    assert calls == [None, 5, "b"]
    watch([slider], lambda change=None: calls.append("second"), call_now=False)
    assert calls[-1] == "b"


def test_as_figure():
    fig, axes = plt.subplots(1, 2)
    assert as_figure(fig) is fig and as_figure(axes[1]) is fig and as_figure(list(axes)) is fig
    assert as_figure(None) is plt.gcf()
    with pytest.raises(TypeError, match="must return a Figure, an Axes or None, got int"):
        as_figure(3)
    plt.close("all")

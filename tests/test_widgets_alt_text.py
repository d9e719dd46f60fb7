"""Alt text of the notebooks' figures: lecture_lib.widgets.alt_text and the book's fallback
(_ext/course_html.py: the titles a cell's code gives its figure)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lecture_lib.widgets.alt_text import describe_figure, record_figure_alt_text  # noqa: E402
from lecture_lib.widgets.static import static_interact  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_describe_figure_names_titles_axes_and_legend():
    fig, (left, right) = plt.subplots(1, 2)
    left.plot([0, 1], [1, 0], label="with BN")
    left.plot([0, 1], [1, 1], label="without")
    left.legend()
    left.set(title="Training loss", xlabel="step", ylabel="loss")
    right.set(title="Validation accuracy", xlabel="epoch")
    fig.suptitle("BatchNorm against none")
    assert describe_figure(fig) == ("Figure: BatchNorm against none. 2 panels: Training loss (loss against step), "
                                    "legend: with BN, without; Validation accuracy (x axis: epoch)")
    assert describe_figure(left) == describe_figure(fig)  # an Axes stands for its figure


def test_describe_figure_colour_scale_and_nothing_to_say():
    fig, ax = plt.subplots()
    image = ax.imshow([[0.0, 1.0], [0.5, 0.2]])
    fig.colorbar(image, label="IoU")
    assert describe_figure(fig) == ""  # a colour bar alone does not say what the figure shows
    ax.set_title("IoU of shifted boxes")
    assert describe_figure(fig) == "Figure: IoU of shifted boxes; colour scale: IoU"


def test_describe_figure_counts_panels_past_the_limit():
    fig, axes = plt.subplots(1, 5)
    for k, ax in enumerate(axes):
        ax.set_title(f"step {k}")
    text = describe_figure(fig, max_panels=3)
    assert text == "Figure: 5 panels: step 0; step 1; step 2; 2 more"


def test_describe_figure_rejects_other_objects():
    with pytest.raises(TypeError, match="matplotlib Figure or Axes, got str"):
        describe_figure("a plot")


def test_record_figure_alt_text_adds_the_description_to_png_metadata():
    from IPython.core.formatters import DisplayFormatter
    from matplotlib.figure import Figure

    formatter = DisplayFormatter()
    formatter.formatters["image/png"].for_type(Figure, lambda fig: b"\x89PNG fake")
    shell = SimpleNamespace(display_formatter=formatter)
    assert record_figure_alt_text(shell) is True
    assert record_figure_alt_text(shell) is True  # wrapped once only
    fig, ax = plt.subplots()
    ax.set(title="Loss", xlabel="epoch", ylabel="loss")
    data, metadata = formatter.format(fig)
    assert data["image/png"] == b"\x89PNG fake"
    assert metadata == {"image/png": {"alt": "Figure: Loss (loss against epoch)"}}
    bare, _ = plt.subplots()
    assert formatter.format(bare)[1] == {}  # nothing to describe
    assert formatter.format("text")[1] == {}
    assert record_figure_alt_text(SimpleNamespace()) is False  # not an IPython shell
    assert record_figure_alt_text() is False  # no kernel here: nothing to do


def test_static_interact_describes_its_figure_by_default():
    def render(k):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.set(title=f"k = {k}", xlabel="x (px)", ylabel="y (px)")
        return fig

    html = static_interact(render, {"k": [1, 2]}, initial={"k": 2}, title="Demo").data
    assert 'alt="Demo. k = 2 (y (px) against x (px))"' in html


def test_book_extension_reads_plain_titles_from_code():
    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        from course_html import titles_in_code
    finally:
        sys.path.remove(str(ROOT / "_ext"))
    source = ('fig, ax = plt.subplots()\nax.set_title("Loss   per step")\nfig.suptitle("Run A")\n'
              'ax.set_title(f"value {x}")\nplt.title(f"plain")\nplot(title="keyword")\nax.set_title("Loss per step")')
    assert titles_in_code(source) == ["Run A", "Loss per step", "plain", "keyword"]
    assert titles_in_code("%matplotlib inline\nplt.title('x')") == []  # not Python: no guess

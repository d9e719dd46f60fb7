"""lecture_lib.widgets.iou: compute against box_iou/torchvision, plot and demo wiring."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
import torchvision.ops as tvops
from hypothesis import given, settings
from hypothesis import strategies as st

from lecture_lib.widgets.iou import compute_iou, compute_iou_grid, iou_demo, iou_drag_html, plot_iou, plot_iou_grid

side = st.integers(min_value=1, max_value=60)
corner = st.integers(min_value=0, max_value=100)
box = st.tuples(corner, corner, side, side).map(lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))


@settings(max_examples=200, deadline=None)
@given(box, box)
def test_compute_iou_equals_torchvision(a, b):
    parts = compute_iou(a, b)
    expected = tvops.box_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)).item()
    assert parts.iou == pytest.approx(expected, abs=1e-12)
    assert parts.union == pytest.approx(parts.area_a + parts.area_b - parts.intersection)
    assert (parts.intersection_box is None) == (parts.intersection == 0)


def test_compute_iou_hand_computed():
    parts = compute_iou((20, 20, 60, 70), (35, 30, 80, 80))
    # overlap (35, 30)-(60, 70): 25 x 40 = 1000; areas 2000 and 2250; union 3250
    assert parts.intersection_box == (35, 30, 60, 70)
    assert (parts.intersection, parts.union) == (1000, 3250)
    assert parts.iou == pytest.approx(1000 / 3250)


def test_compute_iou_grid_equals_pairwise_loop():
    a, b = (10, 10, 50, 40), (0, 0, 30, 30)
    xs, ys = torch.arange(-5, 40, 5.0), torch.arange(0, 30, 7.0)
    grid = compute_iou_grid(a, b, xs, ys)
    assert grid.shape == (len(ys), len(xs))
    for i, dy in enumerate(ys.tolist()):
        for j, dx in enumerate(xs.tolist()):
            shifted = torch.tensor([[b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy]], dtype=torch.float64)
            assert grid[i, j].item() == pytest.approx(tvops.box_iou(torch.tensor([a], dtype=torch.float64), shifted).item())


def test_plot_iou_draws_boxes_and_title():
    fig, ax = plt.subplots()
    returned = plot_iou((20, 20, 60, 70), (35, 30, 80, 80), iou_threshold=0.5, ax=ax)
    assert returned is ax
    assert len(ax.patches) == 3  # A, B and the intersection
    assert "0.308" in ax.get_title() and "no match" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close(fig)
    ax = plot_iou((0, 0, 10, 10), (20, 20, 30, 30), iou_threshold=None)
    assert len(ax.patches) == 2 and "0.000" in ax.get_title()
    plt.close(ax.figure)


def test_plot_iou_grid_labels():
    ax = plot_iou_grid((10, 10, 50, 40), (10, 10, 50, 40), [-5, 0, 5], [-5, 0, 5])
    assert ax.get_title() and "pixels" in ax.get_xlabel()
    image = ax.get_images()[0].get_array()
    assert image[1, 1] == pytest.approx(1.0)  # zero shift in the middle of the grid
    plt.close(ax.figure)


def test_demo_slider_updates_iou_label():
    demo = iou_demo(box_a=(20, 20, 60, 70), box_b=(35, 30, 80, 80))
    sliders = [c for c in demo.children if hasattr(c, "min")]
    label = next(c for c in demo.children if type(c).__name__ == "HTML")
    assert "0.308" in label.value
    x_slider = next(s for s in sliders if s.description == "B: x1")
    y_slider = next(s for s in sliders if s.description == "B: y1")
    w_slider = next(s for s in sliders if s.description == "B: width")
    h_slider = next(s for s in sliders if s.description == "B: height")
    x_slider.value, y_slider.value, w_slider.value, h_slider.value = 20, 20, 40, 50
    assert "IoU = 1.000" in label.value
    plt.close("all")


def test_drag_html_contains_boxes_and_validates():
    html = iou_drag_html(box_a=(10, 10, 50, 50), box_b=(20, 20, 60, 60)).data
    assert "[10, 10, 50, 50]" in html and "[20, 20, 60, 60]" in html and "<script>" in html
    with pytest.raises(ValueError, match="integer pixel"):
        iou_drag_html(box_a=(10.5, 10, 50, 50))
    with pytest.raises(ValueError, match="inside the canvas"):
        iou_drag_html(box_b=(300, 10, 400, 50), image_size=(100, 100))
    with pytest.raises(ValueError, match=r"iou_threshold must be in \[0, 1\]"):
        iou_drag_html(iou_threshold=1.5)


def test_bad_boxes_raise():
    with pytest.raises(ValueError, match=r"4 numbers"):
        compute_iou((1, 2, 3), (0, 0, 1, 1))
    with pytest.raises(ValueError, match="x1 <= x2"):
        compute_iou((5, 0, 1, 1), (0, 0, 1, 1))


@pytest.mark.browser
def test_drag_html_moves_and_resizes_with_the_keyboard(tmp_path):
    """Tab to box B, arrow keys move it by 5 px, shift + arrows resize it; the readout is box_iou's."""
    from pathlib import Path

    import torch

    from lecture_lib.boxes import box_iou

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "iou.html"
    page_file.write_text("<html><body>" + iou_drag_html(box_a=(40, 40, 160, 140), box_b=(100, 80, 230, 190)).data
                         + "</body></html>")

    def read(page):
        parse = lambda role: [float(v) for v in page.inner_text(f'[data-role="{role}"]').strip("()").split(",")]
        return parse("box-a"), parse("box-b"), float(page.inner_text('[data-role="iou"]'))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_file.as_uri())
        page.focus('rect[data-role="box"][data-name="b"]')
        for key in ["ArrowLeft"] * 4 + ["ArrowUp"] * 2 + ["Shift+ArrowLeft"] * 3:
            page.keyboard.press(key)
        box_a, box_b, shown = read(page)
        browser.close()
    assert box_a == [40, 40, 160, 140]
    assert box_b == [80, 70, 195, 180]  # moved by (-20, -10), then 15 px narrower
    assert shown == pytest.approx(box_iou(torch.tensor([box_a]), torch.tensor([box_b])).item(), abs=5e-4)
    assert errors == []

"""lecture_lib.widgets.static: precomputed frames and their HTML."""

import matplotlib.pyplot as plt
import pytest

from lecture_lib.widgets.static import MAX_FRAMES, compute_frames, static_interact


def test_frames_follow_product_order_and_are_png():
    calls = []

    def render(a, b):
        calls.append((a, b))
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(f"{a}{b}")
        return ax  # an Axes is accepted too

    frames = compute_frames(render, {"a": [1, 2], "b": ["x", "y", "z"]})
    assert calls == [(1, "x"), (1, "y"), (1, "z"), (2, "x"), (2, "y"), (2, "z")]
    assert len(frames) == 6 and all(f.startswith(b"\x89PNG") for f in frames)
    assert len(set(frames)) == 6  # different titles, different pictures
    assert plt.get_fignums() == []  # every figure closed


def test_html_holds_every_frame_and_control():
    html = static_interact(lambda k, mode: plt.figure(figsize=(1, 1)), {"k": [0.1, 0.2, 0.3], "mode": ["a", "b"]},
                           initial={"k": 0.2}, title="demo").data
    assert html.count('data-control="k"') == 1 and 'type="range"' in html and "<select" in html
    assert 'value="1"' in html  # k starts at its second value
    assert html.count("iVBOR") == 6  # six base64 PNGs


def test_bad_controls_raise():
    with pytest.raises(TypeError, match="non-empty dict"):
        compute_frames(lambda: None, {})
    with pytest.raises(ValueError, match="non-empty list"):
        compute_frames(lambda a: None, {"a": []})
    with pytest.raises(ValueError, match="identifiers"):
        compute_frames(lambda **k: None, {"a b": [1]})
    with pytest.raises(ValueError, match=f"at most {MAX_FRAMES} combinations .* 30 x 30 = 900"):
        compute_frames(lambda a, b: None, {"a": list(range(30)), "b": list(range(30))})
    with pytest.raises(TypeError, match="Figure or Axes, got NoneType"):
        compute_frames(lambda a: None, {"a": [1]})
    with pytest.raises(ValueError, match="not one of"):
        static_interact(lambda a: plt.figure(), {"a": [1, 2]}, initial={"a": 3})
    with pytest.raises(ValueError, match="not controls"):
        static_interact(lambda a: plt.figure(), {"a": [1, 2]}, initial={"b": 1})


def _png_size(png: bytes) -> tuple[int, int]:
    # width and height from the PNG header (IHDR chunk), independent of any image library
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_all_frames_have_the_same_size_and_the_axes_do_not_move():
    import io

    import numpy as np

    def render(label):
        fig = plt.figure(figsize=(3, 2))
        ax = fig.add_axes((0.25, 0.2, 0.6, 0.6))  # fixed axes: only the text around it changes
        ax.set_ylabel(label)
        ax.set_title(label * 3)
        return fig

    frames = compute_frames(render, {"label": ["a", "a much longer label"]}, dpi=100)
    sizes = {_png_size(png) for png in frames}
    assert len(sizes) == 1, sizes  # per-frame tight boxes would give two widths
    width, height = sizes.pop()
    assert 200 < width <= 300 and 100 < height <= 200  # at most the 3 x 2 inch figure at 100 dpi

    def left_spine_column(png):
        # the axes' spines are the longest dark vertical lines; the first of them is the left one
        counts = (plt.imread(io.BytesIO(png))[..., :3].mean(-1) < 0.2).sum(0)
        return int(np.argmax(counts > 0.9 * counts.max()))

    assert left_spine_column(frames[0]) == left_spine_column(frames[1])


def test_default_dpi_is_readable():
    frames = compute_frames(lambda k: plt.figure(figsize=(4, 3)), {"k": [1, 2]})
    width, height = _png_size(frames[0])
    assert width >= 4 * 100  # an empty figure keeps its whole area; at least 100 dpi


@pytest.mark.browser
def test_alt_text_describes_the_figure_and_follows_the_controls(tmp_path):
    """Readers who cannot see the figure get its description and the current control values."""
    from pathlib import Path

    html = static_interact(lambda k, mode: plt.figure(figsize=(1, 1)), {"k": [1, 2], "mode": ["a", "b"]},
                           title="demo", alt='IoU of two "boxes"').data
    assert 'alt="IoU of two &quot;boxes&quot;"' in html
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "alt.html"
    page_file.write_text("<html><body>" + html + "</body></html>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(page_file.as_uri())
        frame = page.locator('[data-role="frame"]')
        assert frame.get_attribute("alt") == 'IoU of two "boxes" (k: 1, mode: a)'
        page.locator('[data-control="mode"]').select_option("1")
        assert frame.get_attribute("alt") == 'IoU of two "boxes" (k: 1, mode: b)'
        browser.close()


def test_alt_text_defaults_to_the_title():
    html = static_interact(lambda k: plt.figure(figsize=(1, 1)), {"k": [1]}, title="Upsampling").data
    assert 'alt="Upsampling"' in html

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

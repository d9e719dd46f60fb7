"""lecture_lib.widgets.upsampling and .transpose_conv_quiz: compute vs torch, plot, demo wiring."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from lecture_lib.widgets.transpose_conv_quiz import (
    CORRECT_OPTION,
    QUIZ_CELLS,
    QUIZ_FEEDBACK,
    QUIZ_OPTIONS,
    check_answer,
    plot_quiz,
    quiz_demo,
    quiz_output,
    quiz_steps,
)
from lecture_lib.widgets.upsampling import (
    OPERATIONS,
    compute_transpose_conv_steps,
    compute_upsampling,
    parse_grid,
    plot_grids,
    plot_upsampling,
    upsampling_demo,
)

X = [[1.0, 2.0, 0.5], [3.0, 4.0, -1.0]]


def _4d(grid):
    return torch.as_tensor(grid, dtype=torch.float64)[None, None]


# --------------------------------------------------------------------------- compute

def test_parse_grid_formats():
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    for grid in ("1 2\n3 4", "1, 2; 3, 4", [[1, 2], [3, 4]], expected):
        torch.testing.assert_close(parse_grid(grid), expected)
    with pytest.raises(ValueError, match="same length"):
        parse_grid("1 2\n3")
    with pytest.raises(ValueError, match="must hold numbers"):
        parse_grid("1 a")
    with pytest.raises(ValueError, match="2-D grid"):
        parse_grid([1, 2, 3])


@pytest.mark.parametrize("scale", [2, 3])
def test_nearest_and_bed_of_nails_against_torch(scale):
    r = compute_upsampling(X, "nearest", scale=scale)
    torch.testing.assert_close(r.output, F.interpolate(_4d(X), scale_factor=scale, mode="nearest")[0, 0])
    r = compute_upsampling(X, "bed_of_nails", scale=scale)
    assert r.output.shape == (2 * scale, 3 * scale)
    torch.testing.assert_close(r.output[::scale, ::scale], torch.tensor(X, dtype=torch.float64))
    assert r.output.sum() == torch.tensor(X).sum()


def test_max_unpool_uses_the_remembered_switches():
    r = compute_upsampling([[1, 2], [3, 4]], "max_unpool")
    # the default earlier map is the lecture's: maxima 5, 6, 7, 8 at (1, 1), (0, 2), (3, 0), (3, 3),
    # so the output is the slide's [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]]
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[1, 1], expected[0, 2], expected[3, 0], expected[3, 3] = 1, 2, 3, 4
    torch.testing.assert_close(r.output, expected)
    _, idx = F.max_pool2d(_4d(r.switch_source), 2, return_indices=True)
    torch.testing.assert_close(r.switches, idx[0, 0])
    with pytest.raises(ValueError, match=r"switch_source must have shape \[6, 6\]"):
        compute_upsampling(torch.ones(3, 3), "max_unpool")


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 0), (2, 1), (3, 1)])
def test_transpose_conv_against_torch(stride, padding):
    w = [[1.0, -1.0, 2.0], [0.5, 3.0, 1.0]]
    r = compute_upsampling(X, "transpose_conv", filter=w, stride=stride, padding=padding)
    torch.testing.assert_close(r.output, F.conv_transpose2d(_4d(X), _4d(w), stride=stride, padding=padding)[0, 0])


def test_bad_operation():
    with pytest.raises(ValueError, match="op must be one of"):
        compute_upsampling(X, "bilinear")


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_steps_sum_to_the_transpose_conv(stride):
    w = [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0]]
    steps = compute_transpose_conv_steps(X, w, stride)
    assert len(steps) == 6 and [s.position for s in steps][:2] == [(0, 0), (0, 1)]
    torch.testing.assert_close(steps[-1].partial, F.conv_transpose2d(_4d(X), _4d(w), stride=stride)[0, 0])
    torch.testing.assert_close(sum(s.contribution for s in steps), steps[-1].partial)
    assert steps[1].region == (0, stride)
    with pytest.raises(ValueError, match="stride must be an int >= 1"):
        compute_transpose_conv_steps(X, w, 0)


# --------------------------------------------------------------------------- quiz

# The slide "Learnable Upsampling: Transpose Convolution" and its "Oops!" / "Correct!" slides,
# typed here from the slides (independently of lecture_lib.lecture) so that a drift in either fails.
SLIDE_OPTIONS = {"A": (20, 20, 20), "B": (20, 30, 40), "C": (40, 60, 80), "D": (80, 60, 40)}
SLIDE_FEEDBACK = {"A": "No, the input is not constant horizontally", "B": "No, but correct for the row above",
                  "C": "Correct!", "D": "No, wrong horizontal order"}


def test_quiz_options_and_feedback_are_the_lectures():
    assert QUIZ_OPTIONS == SLIDE_OPTIONS and CORRECT_OPTION == "C"
    assert QUIZ_FEEDBACK == SLIDE_FEEDBACK
    for key in "ABCD":
        verdict = check_answer(key)
        assert verdict.message == SLIDE_FEEDBACK[key] and verdict.values == SLIDE_OPTIONS[key]
        assert verdict.correct is (key == "C") and verdict.text.startswith(SLIDE_FEEDBACK[key])


def test_quiz_numbers_from_the_lecture():
    out = quiz_output()
    torch.testing.assert_close(out, F.conv_transpose2d(_4d([[10, 20], [30, 40]]), _4d([[1, 2, 1], [2, 4, 2], [1, 2, 1]]),
                                                       stride=2)[0, 0])
    assert out.shape == (5, 5)
    assert out[0].tolist() == [10, 20, 30, 40, 20]
    xyz = tuple(float(out[cell]) for cell in QUIZ_CELLS)
    assert xyz == (40, 60, 80) == QUIZ_OPTIONS["C"] and CORRECT_OPTION == "C"
    # the lecture's feedback, checked: B is row 0's values at the same columns, D is C reversed
    assert QUIZ_OPTIONS["B"] == tuple(out[0, 1:4].tolist())
    assert QUIZ_OPTIONS["D"] == xyz[::-1]


@pytest.mark.parametrize("choice,correct,phrase", [
    ("A", False, "scale the filter by different amounts"),
    ("b", False, "row 0 is 10 20 30 40 20"),
    ("C", True, "X, Y, Z = 40, 60, 80"),
    (" d ", False, "larger numbers are on the right"),
])
def test_feedback_explains_with_computed_numbers(choice, correct, phrase):
    fb = check_answer(choice)
    assert fb.correct is correct and phrase in fb.explanation


def test_bad_choice():
    with pytest.raises(ValueError, match="choice must be one of"):
        check_answer("E")
    with pytest.raises(ValueError, match="choice must be one of"):
        check_answer(3)


def test_quiz_steps_fill_in_stride_by_stride():
    steps = quiz_steps()
    assert [s.region for s in steps] == [(0, 0), (0, 2), (2, 0), (2, 2)]
    assert [s.value for s in steps] == [10, 20, 30, 40]
    torch.testing.assert_close(steps[-1].partial, quiz_output())
    # X, Y, Z are final after the first two steps: the bottom input row never reaches row 1
    torch.testing.assert_close(steps[1].partial[1], quiz_output()[1])


# --------------------------------------------------------------------------- plot

def _texts(ax):
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize("op", OPERATIONS)
def test_plot_upsampling(op):
    fig, ax = plt.subplots()
    r = compute_upsampling([[1, 2], [3, 4]], op)
    assert plot_upsampling(r, ax=ax) is ax
    n_grids = 3 if op in ("max_unpool", "transpose_conv") else 2
    assert len(ax.images) == n_grids
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    # every output value is written in its cell
    assert _texts(ax).count("4") >= 1 and len(ax.texts) >= r.output.numel() + r.input.numel()
    plt.close(fig)


def test_plot_grids_highlight_and_errors():
    ax = plot_grids([("a", torch.ones(2, 2), torch.eye(2, dtype=torch.bool))], title="t")
    assert sum(1 for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)) == 2
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="at least one grid"):
        plot_grids([])


def test_plot_quiz_hides_then_reveals():
    fig, ax = plt.subplots()
    plot_quiz(0, ax=ax)
    assert {"X", "Y", "Z"} <= set(_texts(ax)) and "?" in _texts(ax)
    assert "X, Y, Z" in ax.get_title()
    plt.close(fig)
    fig, ax = plt.subplots()
    plot_quiz(2, ax=ax)
    assert "X" in _texts(ax) and "step 2/4" in ax.get_title()
    plt.close(fig)
    fig, ax = plt.subplots()
    plot_quiz(4, ax=ax)
    assert "X" not in _texts(ax) and {"40", "60", "80", "160"} <= set(_texts(ax))
    plt.close(fig)
    with pytest.raises(ValueError, match="step must be an int in"):
        plot_quiz(5)


# --------------------------------------------------------------------------- demo

def test_upsampling_demo_updates(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda: plt.close("all"))
    demo = upsampling_demo()
    assert "1 1 2 2" in demo.status.value  # nearest by default
    demo.controls["op"].value = "bed_of_nails"
    assert "1 0 2 0" in demo.status.value
    demo.controls["op"].value = "transpose_conv"
    assert "10 12 6" in demo.status.value and demo.controls["filter"].layout.display is None
    demo.controls["filter"].value = "1 1\n1 1"
    assert "1 1 2 2" in demo.status.value  # 2x2 ones, stride 2: nearest neighbour again
    demo.controls["filter"].value = "1 x"
    assert "must hold numbers" in demo.status.value
    demo.controls["op"].value = "max_unpool"
    demo.controls["grid"].value = "1 2\n3 4"
    assert "0 0 2 0" in demo.status.value
    demo.controls["scale"].value = 3  # another switch source is drawn; still works
    assert demo.status.value.count("\n") == 5


def test_quiz_demo_flow(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda: plt.close("all"))
    demo = quiz_demo()
    assert demo.step.disabled
    demo.on_check()
    assert "Choose an option" in demo.feedback.value
    for key in "ABD":
        demo.choice.value = key
        demo.check.click()
        assert SLIDE_FEEDBACK[key] in demo.feedback.value and not demo.step.disabled and demo.step.value == 0
    demo.choice.value = "C"
    demo.check.click()
    assert "Correct!" in demo.feedback.value and demo.step.value == 1
    demo.step.value = 4  # reveal everything


# --------------------------------------------------------------------------- static HTML quiz

def test_quiz_html_holds_the_library_numbers():
    from lecture_lib.widgets.transpose_conv_quiz import quiz_html

    text = quiz_html().data
    for key in "ABCD":
        assert f"value='{key}'" in text
        assert f"{key}: X, Y, Z = {', '.join(str(v) for v in SLIDE_OPTIONS[key])}" in text
        assert SLIDE_FEEDBACK[key] in text
    assert "60, 60, 60" not in text and '"1,1": "X"' in text
    assert '["40", "80", "100", "120", "60"]' in text  # row 2 of the final output


@pytest.mark.browser
def test_quiz_html_in_a_browser(tmp_path):
    """Choose, check, feedback, then step to the end: the grid shows the library's output."""
    from pathlib import Path

    from lecture_lib.widgets.transpose_conv_quiz import quiz_html

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("needs /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "quiz.html"
    page_file.write_text("<html><body>" + quiz_html().data + "</body></html>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_file.as_uri())
        page.click('[data-role="check"]')
        assert "Choose an option" in page.inner_text('[data-role="feedback"]')
        for key in "ABDC":
            page.check(f"input[value='{key}']")
            page.click('[data-role="check"]')
            assert f"{key}: {SLIDE_FEEDBACK[key]}" in page.inner_text('[data-role="feedback"]')
        for _ in range(4):
            page.click('[data-role="next"]')
        cells = page.locator('[data-role="grid"] td').all_inner_texts()
        browser.close()
    expected = [f"{v:.0f}" for v in quiz_output().flatten().tolist()]
    assert cells == expected
    assert errors == []

"""The lecture's transpose-convolution quiz, as a widget.

Everything the quiz shows -- input, filter, stride, which cells are X, Y, Z, the four options,
the answer and the feedback on each option -- comes from ``lecture_lib.lecture.TRANSPOSE_CONV_QUIZ``
(the slide "Learnable Upsampling: Transpose Convolution" and its "Oops!" / "Correct!" slides),
so the widget, its kernel-free HTML version, the chapter page and the exercise cannot drift
from the lecture. The numbers are recomputed here with the library's transpose convolution.

Row 1 only receives the filter's middle row ``[2, 4, 2]`` scaled by the top input row:
``10 * [2, 4, 2]`` in columns 0-2 and ``20 * [2, 4, 2]`` in columns 2-4, overlapping in
column 2. So X, Y, Z = 40, 20 + 40, 80 = 40, 60, 80 (answer C).

compute / plot / demo: ``quiz_output()``, ``check_answer(choice)`` and ``quiz_steps()`` are
pure and tested; ``plot_quiz(step, ax=None)`` draws the partly filled output; ``quiz_demo()``
is the ipywidgets quiz; ``quiz_html()`` is the same quiz in plain HTML + JavaScript (numbers
computed here, in Python), which works in the static book without a kernel.
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass

import torch
from torch import Tensor

from lecture_lib.lecture import TRANSPOSE_CONV_QUIZ
from lecture_lib.upsampling import conv_transpose2d
from lecture_lib.widgets.base import figure_output, watch
from lecture_lib.widgets.upsampling import TransposeConvStep, compute_transpose_conv_steps, plot_grids

__all__ = [
    "QUIZ_INPUT",
    "QUIZ_FILTER",
    "QUIZ_STRIDE",
    "QUIZ_CELLS",
    "QUIZ_OPTIONS",
    "CORRECT_OPTION",
    "QUIZ_FEEDBACK",
    "QUIZ_QUESTION",
    "Feedback",
    "quiz_output",
    "check_answer",
    "quiz_steps",
    "plot_quiz",
    "quiz_demo",
    "quiz_html",
]

_QUIZ = TRANSPOSE_CONV_QUIZ
QUIZ_INPUT: tuple[tuple[float, ...], ...] = tuple(tuple(float(v) for v in row) for row in _QUIZ["input"])
QUIZ_FILTER: tuple[tuple[float, ...], ...] = tuple(tuple(float(v) for v in row) for row in _QUIZ["filter"])
QUIZ_STRIDE: int = _QUIZ["stride"]
QUIZ_CELLS: tuple[tuple[int, int], ...] = tuple((_QUIZ["xyz_row"], col) for col in _QUIZ["xyz_columns"])
# the lecture's options, answer and feedback, as on the slides
QUIZ_OPTIONS: dict[str, tuple[int, int, int]] = dict(_QUIZ["options"])
CORRECT_OPTION: str = _QUIZ["answer"]
QUIZ_FEEDBACK: dict[str, str] = dict(_QUIZ["feedback"])
QUIZ_QUESTION = (f"Transpose convolution of the input {_QUIZ['input']} with the {len(_QUIZ['filter'])} x "
                 f"{len(_QUIZ['filter'])} filter {_QUIZ['filter']} and stride {QUIZ_STRIDE} gives a "
                 f"{_QUIZ['output_size']} x {_QUIZ['output_size']} output. What are X, Y, Z, the entries in "
                 f"row {_QUIZ['xyz_row']}, columns {_QUIZ['xyz_columns'][0]}-{_QUIZ['xyz_columns'][-1]} "
                 f"(counting from 0)?")


def _fmt(values) -> str:
    return ", ".join(f"{float(v):.0f}" for v in values)


def _explanations() -> dict[str, str]:
    """The course's "why" after the lecture's feedback, with the numbers computed here."""
    out = quiz_output()
    row, cols = _QUIZ["xyz_row"], list(_QUIZ["xyz_columns"])
    middle = _fmt(QUIZ_FILTER[len(QUIZ_FILTER) // 2])
    top = QUIZ_INPUT[0]
    return {
        "A": f"The two input values of the top row, {top[0]:.0f} and {top[1]:.0f}, scale the filter by "
             f"different amounts, so X, Y, Z cannot all be equal.",
        "B": f"{_fmt(QUIZ_OPTIONS['B'])} are the same columns of row {row - 1}: row {row - 1} is "
             f"{' '.join(f'{v:.0f}' for v in out[row - 1].tolist())} (the filter's top row scaled by "
             f"{top[0]:.0f} and {top[1]:.0f}); row {row} gets the middle row [{middle}].",
        "C": f"Row {row} gets the filter's middle row [{middle}] scaled by {top[0]:.0f} (columns 0-2) and by "
             f"{top[1]:.0f} (columns {QUIZ_STRIDE}-{QUIZ_STRIDE + 2}): X, Y, Z = {_fmt(out[row, cols].tolist())}.",
        "D": f"The larger input value {top[1]:.0f} is on the right, so the larger numbers are on the right too.",
    }


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer.

    ``message`` is the lecture's own feedback on that option, word for word ("No, wrong
    horizontal order", "Correct!"); ``explanation`` is the course's reason, with the numbers.
    """

    choice: str
    correct: bool
    message: str
    values: tuple[int, int, int]
    explanation: str = ""

    @property
    def text(self) -> str:
        """The message followed by the explanation, as the quiz shows it."""
        stop = "" if self.message.endswith((".", "!")) else "."
        return f"{self.message}{stop} {self.explanation}".strip()


def quiz_output() -> Tensor:
    """The 5x5 output of the quiz (``Tensor[5, 5]`` float64), by the library's transpose conv."""
    x = torch.tensor(QUIZ_INPUT, dtype=torch.float64)[None, None]
    w = torch.tensor(QUIZ_FILTER, dtype=torch.float64)[None, None]
    return conv_transpose2d(x, w, stride=QUIZ_STRIDE)[0, 0]


def check_answer(choice: str) -> Feedback:
    """Check one option ("A" .. "D", case-insensitive) and explain the verdict."""
    if not isinstance(choice, str) or choice.strip().upper() not in QUIZ_OPTIONS:
        raise ValueError(f"choice must be one of {tuple(QUIZ_OPTIONS)}, got {choice!r}")
    key = choice.strip().upper()
    return Feedback(key, key == CORRECT_OPTION, QUIZ_FEEDBACK[key], QUIZ_OPTIONS[key], _explanations()[key])


def quiz_steps() -> list[TransposeConvStep]:
    """The quiz output built up one input value (= one stride step) at a time: 4 steps."""
    return compute_transpose_conv_steps(QUIZ_INPUT, QUIZ_FILTER, QUIZ_STRIDE)


def plot_quiz(step: int = 0, ax=None, hide_answer: bool = True):
    """Draw input, filter and the output after ``step`` of the 4 input values were added.

    ``step = 0`` shows the empty output with X, Y, Z marked (the question); with
    ``hide_answer`` they stay letters until the last step. The cells the current step adds to
    are outlined in red. Returns the matplotlib axis.
    """
    steps = quiz_steps()
    if not isinstance(step, int) or not 0 <= step <= len(steps):
        raise ValueError(f"step must be an int in [0, {len(steps)}], got {step!r}")
    output = steps[step - 1].partial.clone() if step else torch.zeros_like(steps[0].partial)
    texts = {}
    if step == 0 or (hide_answer and step < len(steps)):
        texts = {cell: name for cell, name in zip(QUIZ_CELLS, "XYZ")}
        for cell in QUIZ_CELLS:
            output[cell] = float("nan")  # blank: the cell's colour would give the answer away
    if step == 0:
        output[:] = float("nan")
        texts |= {(r, c): "?" for r in range(output.shape[0]) for c in range(output.shape[1])
                  if (r, c) not in QUIZ_CELLS}
    highlight = steps[step - 1].contribution != 0 if step else None
    input_highlight = None
    if step:
        input_highlight = torch.zeros(2, 2, dtype=torch.bool)
        input_highlight[steps[step - 1].position] = True
    title = ("Which values are X, Y, Z?" if step == 0 else
             f"step {step}/{len(steps)}: input value {steps[step - 1].value:.0f} x filter, added at "
             f"row {steps[step - 1].region[0]}, column {steps[step - 1].region[1]}")
    return plot_grids([("input", torch.tensor(QUIZ_INPUT), input_highlight),
                       ("filter", torch.tensor(QUIZ_FILTER), None),
                       (f"output (stride {QUIZ_STRIDE})", output, highlight, texts)], ax=ax, title=title)


def quiz_demo():
    """The quiz: radio buttons A-D, a Check button, feedback, then a step slider (with a Play
    button) that reveals the output filling in stride by stride.

    Returns an ``ipywidgets.VBox`` with attributes ``choice`` (RadioButtons), ``check``
    (Button), ``feedback`` (HTML) and ``step`` (IntSlider) for tests.
    """
    import ipywidgets as widgets

    labels = [(f"{k}: X, Y, Z = {', '.join(f'{v:.0f}' for v in vals)}", k) for k, vals in QUIZ_OPTIONS.items()]
    choice = widgets.RadioButtons(options=labels, value=None, description="", layout={"width": "max-content"})
    check = widgets.Button(description="Check", button_style="primary")
    feedback = widgets.HTML()
    n_steps = len(quiz_steps())
    step = widgets.IntSlider(value=0, min=0, max=n_steps, description="step", disabled=True)
    play = widgets.Play(value=0, min=0, max=n_steps, interval=1200, disabled=True)
    widgets.jslink((play, "value"), (step, "value"))
    out, redraw = figure_output(plot_quiz)

    def on_check(_=None):
        if choice.value is None:
            feedback.value = "<i>Choose an option first.</i>"
            return
        verdict = check_answer(choice.value)
        colour = "#1a7f37" if verdict.correct else "#b42318"  # dark enough for WCAG AA on white
        feedback.value = (f"<b style='color: {colour}'>{verdict.choice}: {html.escape(verdict.message)}</b><br>"
                          f"{html.escape(verdict.explanation)}")
        # after a first check, the reveal is unlocked: step through (or play) the filling in
        step.disabled = play.disabled = False
        if verdict.correct and step.value == 0:
            step.value = 1

    check.on_click(on_check)
    watch([step], lambda *_: redraw(step.value))
    box = widgets.VBox([widgets.HTML(f"<p>{QUIZ_QUESTION}</p>"), choice, check, feedback,
                        widgets.HBox([play, step]), out])
    box.choice, box.check, box.feedback, box.step = choice, check, feedback, step
    box.on_check = on_check
    return box


_HTML_TEMPLATE = """
<div id="{uid}" class="lecture-tconv-quiz" style="font-family: sans-serif; max-width: 640px">
<p>{question}</p>
<div data-role="options" role="radiogroup" aria-label="options A to D">{options}</div>
<button data-role="check" style="margin: 6px 0">Check</button>
<div data-role="feedback" aria-live="polite" style="min-height: 1.5em"></div>
<div data-role="reveal" style="display: none">
  <button data-role="prev">&#9664; step</button> <button data-role="next">step &#9654;</button>
  <span data-role="caption" style="margin-left: 8px"></span>
  <table data-role="grid" style="border-collapse: collapse; margin-top: 6px"></table>
</div>
</div>
<script>
(function () {{
  var root = document.getElementById("{uid}");
  var data = {data};
  var step = 0;
  function q(sel) {{ return root.querySelector(sel); }}
  function draw() {{
    var grid = step ? data.steps[step - 1].partial : null;
    var changed = step ? data.steps[step - 1].changed : null;
    var rows = "";
    for (var r = 0; r < data.size[0]; r++) {{
      rows += "<tr>";
      for (var c = 0; c < data.size[1]; c++) {{
        var label = "?", style = "border: 1px solid #888; width: 2.6em; height: 2.2em; text-align: center;";
        var key = r + "," + c;
        if (grid) label = grid[r][c];
        if (data.cells[key] && step < data.steps.length) label = data.cells[key];
        if (changed && changed[r][c]) style += " background: #ffd8a8;";
        if (data.cells[key]) style += " font-weight: bold;";
        rows += "<td style='" + style + "'>" + label + "</td>";
      }}
      rows += "</tr>";
    }}
    q('[data-role="grid"]').innerHTML = rows;
    q('[data-role="caption"]').textContent = step ? data.steps[step - 1].caption : "the empty 5x5 output";
  }}
  q('[data-role="check"]').addEventListener("click", function () {{
    var chosen = root.querySelector("input[type=radio]:checked");
    var fb = q('[data-role="feedback"]');
    if (!chosen) {{ fb.innerHTML = "<i>Choose an option first.</i>"; return; }}
    var f = data.feedback[chosen.value];
    fb.innerHTML = "<b style='color: " + (f.correct ? "#1a7f37" : "#b42318") + "'>" + chosen.value + ": " + f.message + "</b><br>" + f.explanation;
    q('[data-role="reveal"]').style.display = "block";
    draw();
  }});
  q('[data-role="next"]').addEventListener("click", function () {{ step = Math.min(step + 1, data.steps.length); draw(); }});
  q('[data-role="prev"]').addEventListener("click", function () {{ step = Math.max(step - 1, 0); draw(); }});
}})();
</script>
"""


def quiz_html():
    """The quiz in plain HTML + JavaScript: choose, check, feedback, then step through the output
    filling in. Runs in any browser without a Python kernel (the static book).

    Returns:
        ``IPython.display.HTML``; its ``.data`` is the HTML text.
    """
    from IPython.display import HTML

    uid = f"tconv-quiz-{uuid.uuid4().hex[:8]}"
    explanations = _explanations()
    options = "".join(
        f"<label style='display: block'><input type='radio' name='{uid}' value='{key}'> {key}: X, Y, Z = "
        f"{', '.join(f'{v:.0f}' for v in values)}</label>"
        for key, values in QUIZ_OPTIONS.items()
    )
    all_steps = quiz_steps()
    steps = [{
        "partial": [[f"{v:.0f}" for v in row] for row in s.partial.tolist()],
        "changed": (s.contribution != 0).tolist(),
        "caption": f"step {k}/{len(all_steps)}: {s.value:.0f} x filter added at row {s.region[0]}, column {s.region[1]}",
    } for k, s in enumerate(all_steps, start=1)]
    data = {
        "size": list(quiz_output().shape),
        "cells": {f"{r},{c}": name for (r, c), name in zip(QUIZ_CELLS, "XYZ")},
        "steps": steps,
        "feedback": {k: {"correct": k == CORRECT_OPTION, "message": html.escape(QUIZ_FEEDBACK[k]),
                         "explanation": html.escape(explanations[k])} for k in QUIZ_OPTIONS},
    }
    text = _HTML_TEMPLATE.format(uid=uid, question=html.escape(QUIZ_QUESTION), options=options,
                                 data=json.dumps(data))
    return HTML(text)

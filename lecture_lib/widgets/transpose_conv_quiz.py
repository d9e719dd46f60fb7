"""The lecture's transpose-convolution quiz, as a widget.

Input ``[[10, 20], [30, 40]]``, filter ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]]``, stride 2: the
output is 5x5. Which values are X, Y, Z, the middle three entries of row 1? Choose A-D, check,
read the feedback, then watch the output fill in stride by stride.

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

from lecture_lib.upsampling import conv_transpose2d
from lecture_lib.widgets.upsampling import TransposeConvStep, compute_transpose_conv_steps, plot_grids

__all__ = [
    "QUIZ_INPUT",
    "QUIZ_FILTER",
    "QUIZ_STRIDE",
    "QUIZ_CELLS",
    "QUIZ_OPTIONS",
    "CORRECT_OPTION",
    "QUIZ_QUESTION",
    "Feedback",
    "quiz_output",
    "check_answer",
    "quiz_steps",
    "plot_quiz",
    "quiz_demo",
    "quiz_html",
]

QUIZ_INPUT = ((10.0, 20.0), (30.0, 40.0))
QUIZ_FILTER = ((1.0, 2.0, 1.0), (2.0, 4.0, 2.0), (1.0, 2.0, 1.0))
QUIZ_STRIDE = 2
QUIZ_CELLS = ((1, 1), (1, 2), (1, 3))  # (row, col) of X, Y, Z in the 5x5 output
QUIZ_QUESTION = ("Transpose convolution of the input [[10, 20], [30, 40]] with the filter "
                 "[[1, 2, 1], [2, 4, 2], [1, 2, 1]] and stride 2 gives a 5x5 output. "
                 "What are X, Y, Z, the entries in row 1, columns 1-3 (counting from 0)?")
QUIZ_OPTIONS: dict[str, tuple[float, float, float]] = {
    "A": (60.0, 60.0, 60.0),
    "B": (20.0, 30.0, 40.0),
    "C": (40.0, 60.0, 80.0),
    "D": (80.0, 60.0, 40.0),
}
CORRECT_OPTION = "C"
_FEEDBACK = {
    "A": "Not quite: the input is not constant horizontally. 10 and 20 scale the filter by "
         "different amounts, so X, Y, Z cannot all be equal.",
    "B": "Not quite: that is correct for the row above. Row 0 is 10 20 30 40 20 (the filter's "
         "top row [1, 2, 1] scaled by 10 and 20); row 1 gets the middle row [2, 4, 2].",
    "C": "Correct! Row 1 gets the filter's middle row [2, 4, 2] scaled by 10 (columns 0-2) and "
         "by 20 (columns 2-4): X = 10*4 = 40, Y = 10*2 + 20*2 = 60, Z = 20*4 = 80.",
    "D": "Not quite: wrong horizontal order. The larger input value 20 is on the right, so "
         "the larger numbers are on the right too.",
}


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer."""

    choice: str
    correct: bool
    message: str
    values: tuple[float, float, float]


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
    return Feedback(key, key == CORRECT_OPTION, _FEEDBACK[key], QUIZ_OPTIONS[key])


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
    import matplotlib.pyplot as plt

    labels = [(f"{k}: X, Y, Z = {', '.join(f'{v:.0f}' for v in vals)}", k) for k, vals in QUIZ_OPTIONS.items()]
    choice = widgets.RadioButtons(options=labels, value=None, description="", layout={"width": "max-content"})
    check = widgets.Button(description="Check", button_style="primary")
    feedback = widgets.HTML()
    n_steps = len(quiz_steps())
    step = widgets.IntSlider(value=0, min=0, max=n_steps, description="step", disabled=True)
    play = widgets.Play(value=0, min=0, max=n_steps, interval=1200, disabled=True)
    widgets.jslink((play, "value"), (step, "value"))
    out = widgets.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            plot_quiz(step.value)
            plt.show()

    def on_check(_=None):
        if choice.value is None:
            feedback.value = "<i>Choose an option first.</i>"
            return
        verdict = check_answer(choice.value)
        colour = "#2ca02c" if verdict.correct else "#d62728"
        feedback.value = f"<b style='color: {colour}'>{verdict.choice}:</b> {verdict.message}"
        # after a first check, the reveal is unlocked: step through (or play) the filling in
        step.disabled = play.disabled = False
        if verdict.correct and step.value == 0:
            step.value = 1

    check.on_click(on_check)
    step.observe(draw, names="value")
    draw()
    box = widgets.VBox([widgets.HTML(f"<p>{QUIZ_QUESTION}</p>"), choice, check, feedback,
                        widgets.HBox([play, step]), out])
    box.choice, box.check, box.feedback, box.step = choice, check, feedback, step
    box.on_check = on_check
    return box


_HTML_TEMPLATE = """
<div id="{uid}" class="lecture-tconv-quiz" style="font-family: sans-serif; max-width: 640px">
<p>{question}</p>
<div data-role="options">{options}</div>
<button data-role="check" style="margin: 6px 0">Check</button>
<div data-role="feedback" style="min-height: 1.5em"></div>
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
    fb.innerHTML = "<b style='color: " + (f.correct ? "#2ca02c" : "#d62728") + "'>" + chosen.value + ":</b> " + f.message;
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
    options = "".join(
        f"<label style='display: block'><input type='radio' name='{uid}' value='{key}'> {key}: X, Y, Z = "
        f"{', '.join(f'{v:.0f}' for v in values)}</label>"
        for key, values in QUIZ_OPTIONS.items()
    )
    steps = [{
        "partial": [[f"{v:.0f}" for v in row] for row in s.partial.tolist()],
        "changed": (s.contribution != 0).tolist(),
        "caption": f"step {k}/4: {s.value:.0f} x filter added at row {s.region[0]}, column {s.region[1]}",
    } for k, s in enumerate(quiz_steps(), start=1)]
    data = {
        "size": list(quiz_output().shape),
        "cells": {f"{r},{c}": name for (r, c), name in zip(QUIZ_CELLS, "XYZ")},
        "steps": steps,
        "feedback": {k: {"correct": k == CORRECT_OPTION, "message": html.escape(_FEEDBACK[k])} for k in QUIZ_OPTIONS},
    }
    text = _HTML_TEMPLATE.format(uid=uid, question=html.escape(QUIZ_QUESTION), options=options,
                                 data=json.dumps(data))
    return HTML(text)

"""Keep what nbval executed, so that `make test` runs every notebook only once.

When ``LECTURE_EXECUTED_DIR`` is set, each notebook that nbval runs is written there, with
the outputs nbval collected and the kernel's widget state, as ``<dir>/<path relative to the
repository>``. The strict book build of ``make test`` then renders those executed copies
instead of executing every notebook a second time (scripts/build_test_book.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent
_WIDGET_MARKER = "__LECTURE_WIDGET_STATE__"
_WIDGET_SNIPPET = f"""
def _lecture_widget_state():
    import json, sys
    if "ipywidgets" not in sys.modules:
        return
    import ipywidgets
    state = ipywidgets.Widget.get_manager_state(drop_defaults=False)
    print("{_WIDGET_MARKER}" + json.dumps(state, default=str))
_lecture_widget_state()
del _lecture_widget_state
"""


def _widget_state(kernel, timeout: float = 30.0) -> dict | None:
    """Ask the notebook's kernel for the state of its widgets (what nbclient stores on save)."""
    msg_id = kernel.execute_cell_input(_WIDGET_SNIPPET, allow_stdin=False)
    kernel.await_reply(msg_id, timeout=timeout)
    text = []
    while True:
        msg = kernel.get_message(stream="iopub", timeout=timeout)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            text.append(msg["content"]["text"])
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    joined = "".join(text)
    if _WIDGET_MARKER not in joined:
        return None
    return json.loads(joined.split(_WIDGET_MARKER, 1)[1])


def _save_executed(notebook_item, cells) -> None:
    out_dir = Path(os.environ["LECTURE_EXECUTED_DIR"])
    source = Path(str(notebook_item.fspath)).resolve()
    nb = nbformat.read(source, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for number, cell in enumerate(code_cells, start=1):
        outputs = cells.get(number - 1)
        if outputs is not None:
            cell.outputs = [nbformat.from_dict(o) for o in outputs]
            for output in cell.outputs:
                if output.get("output_type") == "execute_result":
                    output["execution_count"] = number
            cell.execution_count = number
    kernel = getattr(notebook_item, "kernel", None)
    if kernel is not None and kernel.is_alive():
        try:
            state = _widget_state(kernel)
        except Exception:  # the outputs matter more than the widget state
            state = None
        if state and state.get("state"):
            nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    target = out_dir / source.relative_to(ROOT)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)


@pytest.hookimpl(tryfirst=True)  # before pytest tears the notebook (and its kernel) down
def pytest_runtest_teardown(item, nextitem):
    if not os.environ.get("LECTURE_EXECUTED_DIR") or not hasattr(item, "test_outputs"):
        return
    notebook = item.parent
    collected = notebook.__dict__.setdefault("_lecture_outputs", {})
    if item.test_outputs is not None:
        collected[item.cell_num] = item.test_outputs
    if nextitem is None or nextitem.parent is not notebook:  # the notebook's last cell
        _save_executed(notebook, collected)

"""The kernel-backed widgets where students use them: a real JupyterLab, driven by Chromium.

A module fixture starts ``jupyter lab`` (a free port, a token, no browser, ``LECTURE_QUICK=1``)
on copies of the widget notebooks in a temporary folder, so that nothing is written into the
repository's notebooks, and stops it when the module ends, also when a test fails. Each test
opens one notebook, runs all its cells, moves a slider with the keyboard (or picks an answer)
and checks that the widget now shows what lecture_lib computes for the new setting.

Playwright drives Debian's chromium (never a browser of its own). JupyterLab is started with
``expose_app_in_browser`` so that the test can run commands and wait for the kernel the way
JupyterLab's own UI tests do; the widgets themselves are found by their labels.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium from phoning home on a machine without a network (as in test_browser.py).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOKS = {
    "upsampling": "book/05_segmentation/02_upsampling.ipynb",
    "quiz": "book/05_segmentation/03_transpose_convolution.ipynb",
    "iou": "book/06_localization/01_iou.ipynb",
    "map": "book/07_evaluation/02_mean_average_precision.ipynb",
}
START_TIMEOUT = 120    # s: JupyterLab's first start on a busy machine
RUN_ALL_TIMEOUT = 300  # s: one notebook, all cells, quick mode, on a shared 2-core machine
UPDATE_TIMEOUT = 30_000  # ms: a widget's round trip to the kernel and back


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``(base_url, token, folder)`` of a JupyterLab serving copies of the widget notebooks."""
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("jupyterlab is not installed: `pip install -e '.[test]'` (make test does)")
    tmp = tmp_path_factory.mktemp("lab")
    work = tmp / "course"
    for rel in NOTEBOOKS.values():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, work / rel)
    # JupyterLab settings of its own: every cell in the page (no windowing), no news, no
    # update check, no workspace restored from an earlier session.
    settings = tmp / "settings"
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, LECTURE_QUICK="1", JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp / "config"), PYTHONPATH=os.pathsep.join(
                   [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
        "--ServerApp.port_retries=0", "--allow-root", "--ServerApp.terminals_enabled=False", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
    ]
    log = (tmp / "lab.log").open("w")
    server = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # its kernels in its process group
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n{(tmp / 'lab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT} s:\n{(tmp / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token, work
    finally:
        # stop the server and the kernels it started, also when a test failed
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


_KERNEL_READY = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle' && w.content.widgets.length > 0; }"""
_RUN_FINISHED = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const code = w.content.widgets.filter(c => c.model.type === 'code');
    const failed = code.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
    const done = code.every(c => c.model.executionCount !== null
        && !(c.node.querySelector('.jp-InputArea-prompt') || {textContent: ''}).textContent.includes('*'));
    return failed || (done && w.sessionContext.session.kernel.status === 'idle'); }"""


@pytest.fixture(scope="module")
def notebooks(browser, lab):
    """Every widget notebook open in its own tab, all cells started at once (the kernels share
    the cores rather than wait for each other); ``_finished(page)`` waits for one of them."""
    base, token, _ = lab
    contexts, pages = [], {}
    try:
        for name, rel in NOTEBOOKS.items():
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            contexts.append(context)
            page = context.new_page()
            # nothing may leave the machine: JupyterLab and the widgets come from the local server
            page.route(re.compile(r"^(https?|wss?)://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
            page.goto(f"{base}/lab/tree/{rel}?token={token}&reset", wait_until="domcontentloaded")
            pages[name] = page
        for page in pages.values():
            page.wait_for_function(_KERNEL_READY, timeout=START_TIMEOUT * 1000, polling=500)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        yield pages
    finally:
        for context in contexts:
            context.close()


def _finished(page):
    """Wait until every cell of the page's notebook ran; fail with the traceback of an error."""
    page.wait_for_function(_RUN_FINISHED, timeout=RUN_ALL_TIMEOUT * 1000, polling=500)
    errors = page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
        .filter(c => c.model.type === 'code')
        .flatMap(c => c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                       .map(o => o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n')))""")
    assert errors == [], "a cell failed in JupyterLab:\n" + re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(errors))[-3000:]
    return page


def _cell(page, source: str):
    """The code cell whose source is exactly ``source`` (marked so that Playwright finds it)."""
    index = page.evaluate("""(source) => {
        const cells = window.jupyterapp.shell.currentWidget.content.widgets;
        const i = cells.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().trim() === source);
        if (i >= 0) cells[i].node.setAttribute('data-test-cell', source);
        return i; }""", source)
    assert index >= 0, f"no cell `{source}` in the notebook"
    cell = page.locator(f'[data-test-cell="{source}"]')
    cell.scroll_into_view_if_needed()
    return cell


def _slider(cell, description: str):
    """The ipywidgets slider labelled ``description`` (its noUiSlider handle is focusable)."""
    widget = cell.locator(".widget-slider").filter(has=cell.page.locator("label.widget-label", has_text=re.compile(
        rf"^\s*{re.escape(description)}\s*$")))
    assert widget.count() == 1, f"expected one slider '{description}', found {widget.count()}"
    return widget.locator('[role="slider"]')


def _press(handle, key: str, times: int = 1) -> float:
    """Move a slider with the keyboard (as a reader without a mouse would); return its value."""
    handle.focus()
    for _ in range(times):
        handle.press(key)
        handle.page.wait_for_timeout(150)  # one step at a time, as a person presses
    handle.page.wait_for_timeout(500)  # the kernel's echo of the new value
    return float(handle.get_attribute("aria-valuenow"))


def _wait_text(locator, predicate, what: str) -> str:
    deadline = time.monotonic() + UPDATE_TIMEOUT / 1000
    text = ""
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if predicate(text):
            return text
        time.sleep(0.2)
    pytest.fail(f"{what}: still shows {text!r}")


def test_upsampling_demo_shows_the_library_output(notebooks):
    from lecture_lib.widgets.upsampling import DEFAULT_INPUT, _format, compute_upsampling

    def as_text(tensor):
        return "\n".join(" ".join(_format(v) for v in row) for row in tensor.tolist())

    page = _finished(notebooks["upsampling"])
    cell = _cell(page, "upsampling_demo()")
    status = cell.locator(".widget-html-content pre")
    assert status.inner_text().strip() == as_text(compute_upsampling(DEFAULT_INPUT, "nearest", scale=2).output)
    scale = _press(_slider(cell, "scale"), "ArrowRight")
    assert scale == 3
    expected = as_text(compute_upsampling(DEFAULT_INPUT, "nearest", scale=3).output)
    _wait_text(status, lambda t: t.strip() == expected, "nearest neighbour at scale 3")
    # another operation from the menu: transpose convolution, then stride 2 -> 1
    cell.locator(".widget-dropdown").filter(has_text="operation").locator("select").select_option(
        label="transpose convolution")
    expected = as_text(compute_upsampling(DEFAULT_INPUT, "transpose_conv", stride=2).output)
    _wait_text(status, lambda t: t.strip() == expected, "transpose convolution, stride 2")
    stride = _press(_slider(cell, "stride"), "ArrowLeft")
    assert stride == 1
    expected = as_text(compute_upsampling(DEFAULT_INPUT, "transpose_conv", stride=1).output)
    _wait_text(status, lambda t: t.strip() == expected, "transpose convolution, stride 1")


def test_transpose_conv_quiz_gives_the_lecture_feedback(notebooks):
    from lecture_lib.lecture import TRANSPOSE_CONV_QUIZ

    page = _finished(notebooks["quiz"])
    cell = _cell(page, "quiz_demo()")
    feedback = cell.locator(".widget-html-content").filter(has_text=re.compile(r"^[A-D]: "))
    check = cell.get_by_role("button", name="Check")
    for option in "ABDC":  # the right answer last: it also unlocks the reveal
        cell.locator(".widget-radio-box label").filter(has_text=re.compile(rf"^\s*{option}:")).click()
        check.click()
        message = TRANSPOSE_CONV_QUIZ["feedback"][option]
        text = _wait_text(feedback, lambda t: t.startswith(f"{option}: {message}"), f"feedback on {option}")
        if option == TRANSPOSE_CONV_QUIZ["answer"]:
            assert "correct" in text.split("\n")[0].lower()
        else:
            assert text.startswith(f"{option}: No"), text


def test_iou_demo_follows_box_iou(notebooks):
    from lecture_lib.boxes import box_iou

    page = _finished(notebooks["iou"])
    cell = _cell(page, "iou_demo(box_a=(20, 20, 60, 70), box_b=(35, 30, 80, 80), iou_threshold=MAP_IOU_THRESHOLD)")
    readout = cell.locator(".widget-html-content").filter(has_text="IoU =")
    box_a = torch.tensor([[20.0, 20.0, 60.0, 70.0]])
    seen = set()
    for description, key, times in [("B: x1", "ArrowLeft", 10), ("B: width", "ArrowRight", 5),
                                    ("B: y1", "ArrowLeft", 4)]:
        _press(_slider(cell, description), key, times)
        x, y, w, h = (float(_slider(cell, d).get_attribute("aria-valuenow"))
                      for d in ("B: x1", "B: y1", "B: width", "B: height"))
        expected = box_iou(box_a, torch.tensor([[x, y, x + w, y + h]])).item()
        text = _wait_text(readout, lambda t: t.startswith(f"IoU = {expected:.3f}"),
                          f"IoU readout after moving {description} (B = {x, y, x + w, y + h})")
        seen.add(text.split()[2])
    assert len(seen) == 3, f"the readout did not change with every move: {seen}"


def test_map_widgets_follow_the_library(notebooks):
    from lecture_lib.widgets.map import compute_map_demo, compute_matching_steps, demo_matching_scene, make_demo_scenes

    page = _finished(notebooks["map"])
    # the step-through of the greedy matching: two steps further, then a stricter threshold
    cell = _cell(page, "matching_demo()")
    summary = cell.locator(".widget-html-content").filter(has_text="d0:")
    scene = demo_matching_scene()
    step = int(_press(_slider(cell, "step"), "ArrowRight", 2))
    iou = round(_press(_slider(cell, "IoU threshold"), "ArrowRight", 4), 2)
    assert step > 1 and iou > 0.5, (step, iou)
    steps = compute_matching_steps(*scene, iou_threshold=iou, method="coco").steps[:step]
    expected = " ".join(f"d{s.detection}:{s.status.upper()}" for s in steps)
    _wait_text(summary, lambda t: t.strip() == expected, f"matching summary at step {step}, IoU {iou}")

    # AP over four images: stricter IoU threshold, then a score threshold
    cell = _cell(page, "map_demo()")
    summary = cell.locator(".widget-html-content").filter(has_text="AP =")
    preds, targets = make_demo_scenes(4, 0)
    before = summary.inner_text()
    iou = round(_press(_slider(cell, "IoU threshold"), "ArrowRight", 5), 2)
    score = round(_press(_slider(cell, "score threshold"), "ArrowRight", 6), 2)
    assert iou > 0.5 and score > 0, (iou, score)
    result = compute_map_demo(preds, targets, iou, score, "coco")
    tp = int(result.ranked_tp.sum())
    after = _wait_text(summary, lambda t: t.startswith(f"AP = {result.ap:.3f}") and f"{tp} TP" in t,
                       f"AP at IoU {iou}, score {score} (AP {result.ap:.3f}, {tp} TP)")
    assert after != before

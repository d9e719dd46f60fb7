"""`make dashboard` in a real browser: `lecture-tune dashboard` serves optuna-dashboard on the
chapter's study (running the chapter's search first when the study is missing); headless
Chromium (Debian's, driven by Playwright, offline) finds the study and its trials.

    python tests/test_dashboard.py book/02_hyperparameters/optuna_dashboard.png [STORAGE]
writes the chapter's screenshot: a study filled by two `lecture-tune worker` processes at once.
"""

import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# the flags of tests/test_browser.py: no phoning home on a machine without a network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TUNE = [sys.executable, "-m", "lecture_lib.tuning.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dashboard(storage: str, trials: int, timeout: float = 900):
    """``lecture-tune dashboard`` (what ``make dashboard`` runs) on a free port: (process, URL)."""
    port = _free_port()
    server = subprocess.Popen([*TUNE, "dashboard", "--storage", storage, "--trials", str(trials), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/dashboard/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"lecture-tune dashboard exited: {server.stdout.read()}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise AssertionError(f"optuna-dashboard did not answer on {url} within {timeout} s")


def open_browser(playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def offline_page(browser, width=1280, height=800):
    """A page that may load from 127.0.0.1 only; ``page.external`` lists what it tried elsewhere."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(180_000)  # a machine shared by many: generous waits, never a sleep
    page.external = []

    def guard(route):
        page.external.append(route.request.url)
        route.abort()

    page.route(re.compile(r"^(https?|wss?)://(?!127\.0\.0\.1[:/])"), guard)
    return page


def test_dashboard_shows_the_chapters_study_and_its_trials(tmp_path):
    from playwright.sync_api import sync_playwright

    from lecture_lib.tuning import load_study

    storage = f"sqlite:///{tmp_path / 'chapter.db'}"
    server, url = start_dashboard(storage, trials=6)
    try:
        study = load_study("two-layer-net", storage)
        states = [t.state.name for t in study.trials]
        assert len([s for s in states if s in ("COMPLETE", "PRUNED")]) == 6
        with sync_playwright() as p:
            browser = open_browser(p)
            page = offline_page(browser)
            page.goto(url)
            page.get_by_text("two-layer-net").first.wait_for()
            page.get_by_text("two-layer-net").first.click()
            page.wait_for_url(re.compile(r"/dashboard/studies/\d+$"))
            page.goto(page.url + "/trials")
            page.get_by_text(f"{len(states)} Trials").wait_for()
            listed = page.locator("text=/^Trial \\d+$/").all_inner_texts()
            assert sorted(listed) == sorted(f"Trial {t.number}" for t in study.trials)
            body = page.inner_text("body")
            assert "Complete" in body and "lr" in body and "reg" in body
            assert page.external == [], f"the dashboard reached out: {page.external}"
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def write_screenshot(path: Path, storage: str | None = None, n_trials: int = 40) -> None:
    """The chapter's figure: the study of `lecture-tune create` + two `lecture-tune worker`
    processes (made in a temporary SQLite file, or in ``storage`` when it does not hold it yet)."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from lecture_lib.tuning import make_storage

    with tempfile.TemporaryDirectory() as folder:
        storage = storage or f"sqlite:///{folder}/chapter.db"
        if "two-layer-net" not in [s.study_name for s in __import__("optuna").get_all_study_summaries(make_storage(storage))]:
            subprocess.run([*TUNE, "create", "--storage", storage, "--study", "two-layer-net", "--trials", str(n_trials)],
                           check=True, cwd=ROOT)
            workers = [subprocess.Popen([*TUNE, "worker", "--storage", storage, "--study", "two-layer-net",
                                         "--seed", str(i)], cwd=ROOT) for i in range(2)]
            assert all(w.wait() == 0 for w in workers)
        server, url = start_dashboard(storage, trials=0)
        try:
            with sync_playwright() as p:
                browser = open_browser(p)
                page = offline_page(browser, 1280, 1400)
                page.goto(url)
                page.get_by_text("two-layer-net").first.click()
                page.get_by_text("Timeline").first.wait_for()
                page.wait_for_load_state("networkidle")  # the importance plot comes from its own request
                page.wait_for_timeout(3000)  # plots finish drawing
                page.screenshot(path=str(path))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    write_screenshot(Path(sys.argv[1]), *sys.argv[2:3])

"""The built book for every reader: an axe-core scan of every page, keyboard use of the widgets,
figures that say what they show.

These read the book that ``make test`` builds (``LECTURE_BOOK_HTML``, as tests/test_browser.py,
whose fixtures they share) and run in its browser step. axe-core comes with
axe-playwright-python (its own copy of axe.min.js, nothing downloaded). The scan writes the
number of violations per page and impact to ``_build/accessibility.json``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import test_browser

# the browser tests' fixtures (the built book, Chromium, a page that stays offline), shared
book_html, browser, offline_page = test_browser.book_html, test_browser.browser, test_browser.offline_page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "_build" / "accessibility.json"
IMPACTS = ("critical", "serious", "moderate", "minor")
BLOCKING = {"serious", "critical"}
# Plots whose alt text is still their file name (no ``alt`` in the cell's metadata, no recorded
# description, no plain-string title in the cell's code): none since ``import lecture_lib``
# records a description of every figure in a kernel (105 of 105 plots described, December 2026).
MAX_FIGURES_WITHOUT_ALT = 0


def _pages(book_html: Path) -> list[Path]:
    pages = sorted(p for p in book_html.rglob("*.html")
                   if not {"_static", "_sources", "_images"} & set(p.relative_to(book_html).parts))
    return [p for p in pages if 'http-equiv="refresh"' not in p.read_text(encoding="utf-8").lower()]


def _load(page, path: Path) -> None:
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    if page.locator("script[type='application/vnd.jupyter.widget-view+json']").count():
        # the widget manager renders after "load"; course_a11y.js names the sliders it draws
        page.wait_for_timeout(1000)


# Colour contrast is most of axe's time (about 80 % on a chapter page): it checks every one of the
# thousands of highlighted tokens in the code cells, whose colours come from one Pygments style and
# repeat on every line. So the code cells' contrast is checked on one token of each kind (class,
# colour, background, weight) per page, plus the page's first code cell whole (its plain text);
# everything else, and every other rule in the code cells, is checked node by node.
_CODE = "div.cell_input"
_MARK_CODE_SAMPLES = """() => {
  const seen = new Set();
  const cells = document.querySelectorAll("div.cell_input");
  if (cells.length) cells[0].setAttribute("data-axe-sample", "");
  for (const token of document.querySelectorAll("div.cell_input pre span")) {
    const style = getComputedStyle(token);
    const key = [token.className, style.color, style.backgroundColor, style.fontWeight].join("|");
    if (!seen.has(key)) { seen.add(key); token.setAttribute("data-axe-sample", ""); }
  }
  return seen.size;
}"""


def _scan(axe, page) -> list[dict]:
    """axe-core's violations on the page (all rules), the code cells' contrast by sample."""
    runs = [axe.run(page, options={"resultTypes": ["violations"], "rules": {"color-contrast": {"enabled": False}}}),
            axe.run(page, context={"exclude": [[_CODE]]},
                    options={"resultTypes": ["violations"], "runOnly": ["color-contrast"]})]
    if page.evaluate(_MARK_CODE_SAMPLES):
        runs.append(axe.run(page, context={"include": [["[data-axe-sample]"]]},
                            options={"resultTypes": ["violations"], "runOnly": ["color-contrast"]}))
    merged = {}
    for run in runs:
        for violation in run.response["violations"]:
            if violation["id"] in merged:
                merged[violation["id"]]["nodes"] += violation["nodes"]
            else:
                merged[violation["id"]] = violation
    return list(merged.values())


def test_every_page_passes_axe(book_html, offline_page):
    """No serious or critical axe-core violation on any page (WCAG 2.x A/AA and best practice)."""
    from axe_playwright_python.sync_playwright import Axe

    page, external, _ = offline_page  # console errors: tests/test_browser.py checks every page for them
    axe = Axe()
    counts, blocking = {}, []
    pages = _pages(book_html)
    assert len(pages) >= 30, f"only {len(pages)} pages in {book_html}"
    for path in pages:
        name = str(path.relative_to(book_html))
        _load(page, path)
        violations = _scan(axe, page)
        by_impact = Counter(v["impact"] for v in violations for _ in v["nodes"])
        counts[name] = {impact: by_impact[impact] for impact in IMPACTS}
        counts[name]["rules"] = {v["id"]: len(v["nodes"]) for v in violations}
        blocking += [f"{name}: {v['id']} ({v['impact']}, {len(v['nodes'])}x): {v['help']} - "
                     f"{v['nodes'][0]['html'][:160]}" for v in violations if v["impact"] in BLOCKING]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    assert blocking == [], f"{len(blocking)} serious/critical accessibility violations:\n" + "\n".join(blocking[:20])
    assert external == [], f"pages tried to reach the network: {sorted(set(external))[:5]}"


def test_widgets_have_names_and_work_with_the_keyboard(book_html, offline_page):
    """On the IoU page: every ipywidgets slider handle has a name and moves with the arrow keys,
    and box B of the drag widget moves with them too."""
    page, external, errors = offline_page
    _load(page, book_html / "book/06_localization/01_iou.html")
    page.wait_for_selector('.widget-slider [role="slider"][aria-label]', state="attached", timeout=20_000)
    handles = page.locator('.widget-slider [role="slider"]')
    assert handles.count() >= 5
    names = [handles.nth(i).get_attribute("aria-label") for i in range(handles.count())]
    assert all(names) and "B: x1" in names, names
    first = handles.first
    first.scroll_into_view_if_needed()
    before = float(first.get_attribute("aria-valuenow"))
    first.focus()
    first.press("ArrowRight")
    first.press("ArrowRight")
    assert float(first.get_attribute("aria-valuenow")) > before

    drag = page.locator(".lecture-iou-drag").first
    box_b = drag.locator('[data-role="box-b"]')
    before = box_b.inner_text()
    drag.locator('rect[data-role="box"][data-name="b"]').focus()
    page.keyboard.press("ArrowLeft")
    assert box_b.inner_text() != before, "box B did not move with the arrow key"
    assert external == [] and errors == []


def test_precomputed_figures_work_with_the_keyboard(book_html, offline_page):
    """static_interact's slider (a native range input, named by its label) changes the frame
    and the frame's alt text when moved with the arrow keys."""
    page, external, errors = offline_page
    _load(page, book_html / "book/07_evaluation/02_mean_average_precision.html")
    widget = page.locator(".lecture-static-interact").first
    slider = widget.locator('input[type="range"]').first
    frame = widget.locator('[data-role="frame"]')
    slider.scroll_into_view_if_needed()
    before = frame.get_attribute("src"), frame.get_attribute("alt")
    slider.focus()
    page.keyboard.press("ArrowRight")
    after = frame.get_attribute("src"), frame.get_attribute("alt")
    assert after[0] != before[0] and after[1] != before[1], "the arrow key changed neither the figure nor its alt"
    assert external == [] and errors == []


def test_figures_say_what_they_show(book_html):
    """A plot's alt text describes it (cell metadata, the figure's recorded description or its
    titles, see _ext/course_html.py) rather than naming its file. Lists the plots still without."""
    missing, total = [], 0
    for path in sorted(book_html.glob("book/**/*.html")):
        html = path.read_text(encoding="utf-8")
        for img in re.findall(r"<img [^>]*>", html):
            src = re.search(r'src="([^"]*_images/[^"]+)"', img)
            if not src:
                continue
            total += 1
            alt = re.search(r'alt="([^"]*)"', img)
            if not alt or "_images/" in alt.group(1) or not alt.group(1).strip():
                missing.append(f"{path.relative_to(book_html)}: {src.group(1).rsplit('/', 1)[-1][:16]}")
    assert total >= 40, f"only {total} plots in {book_html}"
    assert len(missing) <= MAX_FIGURES_WITHOUT_ALT, (
        f"{len(missing)} of {total} plots have no alt text (at most {MAX_FIGURES_WITHOUT_ALT}):\n" + "\n".join(missing))

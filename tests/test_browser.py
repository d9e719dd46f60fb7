"""The rendered book in a real browser (Debian's chromium driven by Playwright), offline.

These tests read the book that ``make test`` builds (``LECTURE_BOOK_HTML``, default
``_build/test/src/_build/html``); ``make test`` runs them after the build.
"""

import os
import re
from pathlib import Path

import pytest
import torch

from lecture_lib.boxes import box_iou

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium from phoning home on a machine without a network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def book_html() -> Path:
    configured = os.environ.get("LECTURE_BOOK_HTML")
    path = ROOT / (configured or "_build/test/src/_build/html")
    if not (path / "index.html").exists():
        if configured:
            pytest.fail(f"LECTURE_BOOK_HTML={configured} holds no built book (no index.html)")
        pytest.skip("the book is not built: run `make book-strict` (or `make test`) first")
    return path


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def offline_page(browser):
    """A page that refuses anything but local files and records, as ``errors``, every JS
    exception, every console error and every local file that failed to load (a font the
    widget manager looks for in the wrong folder, say)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    page = context.new_page()
    external = []

    def guard(route):
        external.append(route.request.url)
        route.abort()

    def failed(request):
        if not re.match(r"^(https?|wss?)://", request.url):  # those are `external` already
            errors.append(f"failed to load {request.url}: {request.failure}")

    page.route(re.compile(r"^(https?|wss?)://"), guard)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", failed)
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)
    yield page, external, errors
    context.close()


def test_iou_page_shows_outputs_and_renders_offline(book_html, offline_page):
    page, external, errors = offline_page
    page.goto((book_html / "book/06_localization/01_iou.html").as_uri())
    page.wait_for_selector("mjx-container", timeout=20_000)  # MathJax from the vendored copy
    page.wait_for_selector(".widget-slider", timeout=20_000)  # ipywidgets via the vendored manager
    assert page.locator("img[src*='_images/']").count() >= 2, "the notebook's plots are missing"
    assert "agree with lecture_lib and torchvision" in page.content()
    assert external == [], f"the page tried to reach the network: {external}"
    assert errors == [], f"JavaScript errors on the page: {errors}"


def _read_drag_widget(widget):
    parse = lambda role: [float(v) for v in widget.locator(f'[data-role="{role}"]').inner_text().strip("()").split(",")]
    return parse("box-a"), parse("box-b"), float(widget.locator('[data-role="iou"]').inner_text())


def test_dragging_a_box_updates_iou_like_box_iou(book_html, offline_page):
    page, external, errors = offline_page
    page.goto((book_html / "book/06_localization/01_iou.html").as_uri())
    widget = page.locator(".lecture-iou-drag").first
    widget.scroll_into_view_if_needed()
    box_a, box_b, shown = _read_drag_widget(widget)
    assert shown == pytest.approx(box_iou(torch.tensor([box_a]), torch.tensor([box_b])).item(), abs=5e-4)

    seen = {shown}
    # Move box B by a few drags (and resize it once); after each, the readout must equal box_iou.
    for role, dx, dy in [("box", -40, -25), ("box", -30, -20), ("handle", -35, -30), ("box", 60, 70)]:
        target = widget.locator(f'rect[data-role="{role}"][data-name="b"]')
        bbox = target.bounding_box()
        start_x, start_y = (bbox["x"] + 3, bbox["y"] + 3) if role == "box" else (bbox["x"] + 6, bbox["y"] + 6)
        page.mouse.move(start_x, start_y)
        page.mouse.down()
        page.mouse.move(start_x + dx / 2, start_y + dy / 2, steps=3)
        page.mouse.move(start_x + dx, start_y + dy, steps=3)
        page.mouse.up()
        new_a, new_b, shown = _read_drag_widget(widget)
        assert new_a == box_a, "dragging B must not move A"
        assert new_b != box_b, f"dragging the {role} of B did not change it"
        expected = box_iou(torch.tensor([new_a]), torch.tensor([new_b])).item()
        assert shown == pytest.approx(expected, abs=5e-4), (new_a, new_b)
        box_b = new_b
        seen.add(shown)
    assert len(seen) >= 3, f"the IoU readout barely changed: {seen}"
    assert external == [] and errors == []


def test_static_interact_swaps_frames_in_the_browser(offline_page, tmp_path):
    """Moving the slider / menu shows the frame precomputed for exactly that combination."""
    import base64

    import matplotlib.pyplot as plt

    from lecture_lib.widgets.static import compute_frames, static_interact

    def render(size, colour):
        fig, ax = plt.subplots(figsize=(1 + size, 1))
        ax.set_facecolor(colour)
        return fig

    controls = {"size": [0, 1, 2], "colour": ["red", "blue"]}
    expected = [base64.b64encode(f).decode() for f in compute_frames(render, controls)]
    page_file = tmp_path / "interact.html"
    page_file.write_text("<html><body>" + static_interact(render, controls).data + "</body></html>")

    page, external, errors = offline_page
    page.goto(page_file.as_uri())
    frame = page.locator('[data-role="frame"]')

    def shown():
        return frame.get_attribute("src").split(",", 1)[1]

    assert shown() == expected[0]
    page.locator('[data-control="size"]').fill("2")  # range input: dispatches input + change
    assert shown() == expected[2 * 2 + 0]
    assert page.locator('[data-value-of="size"]').inner_text() == "2"
    page.locator('[data-control="colour"]').select_option("1")
    assert shown() == expected[2 * 2 + 1]
    assert page.locator('[data-value-of="colour"]').inner_text() == "blue"
    assert external == [] and errors == []


def test_precomputed_figures_respond_on_the_map_page(book_html, offline_page):
    """The mAP page's static_interact figures (matching steps, thresholds) swap frames offline."""
    page, external, errors = offline_page
    page.goto((book_html / "book/07_evaluation/02_mean_average_precision.html").as_uri())
    widgets = page.locator(".lecture-static-interact")
    assert widgets.count() == 2, "expected the two precomputed figures (matching, thresholds)"
    for index, (control, value) in enumerate([("step", "5"), ("score_threshold", "2")]):
        widget = widgets.nth(index)
        widget.scroll_into_view_if_needed()
        frame = widget.locator('[data-role="frame"]')
        before = frame.get_attribute("src")
        widget.locator(f'[data-control="{control}"]').fill(value)
        assert frame.get_attribute("src") != before, f"moving {control} did not change the figure"
        assert frame.get_attribute("src").startswith("data:image/png;base64,")
    assert external == [] and errors == []


def test_every_page_renders_offline_without_errors(book_html, offline_page):
    """Every page of the book loads from disk alone: no request leaves the machine, no JS error,
    and notebook pages show their outputs."""
    page, external, errors = offline_page
    pages = sorted(p for p in book_html.rglob("*.html")
                   if not {"_static", "_sources", "_images"} & set(p.relative_to(book_html).parts)
                   and p.name not in {"genindex.html", "search.html"})
    assert len(pages) >= 30, f"only {len(pages)} pages in {book_html}"
    for path in pages:
        if 'http-equiv="refresh"' in path.read_text(encoding="utf-8").lower():
            continue  # the root index.html only redirects to the first page
        before = len(errors)
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        if page.locator("script[type='application/vnd.jupyter.widget-view+json']").count():
            page.wait_for_timeout(500)  # the widget manager renders after "load"; let it ask for its fonts
        errors[before:] = [f"{path.relative_to(book_html)}: {e}" for e in errors[before:]]
        assert page.locator("article.bd-article").count() == 1, f"{path.relative_to(book_html)}: no article"
        if path.with_suffix("").name[:2].isdigit() and path.parent.name[:2].isdigit():
            # a chapter notebook: something was executed and kept
            assert page.locator(".cell_output").count() > 0, f"{path.relative_to(book_html)}: no cell outputs"
    assert external == [], f"pages tried to reach the network: {sorted(set(external))[:5]}"
    assert errors == [], f"{len(errors)} errors (JS, console, failed local files): {errors[:8]}"


def test_code_cells_show_whole_lines_on_a_wide_screen(book_html, browser):
    """On a 1920 px screen nearly every code cell shows its whole lines (course.css widens the
    page and shrinks the code font; with the theme's defaults 80% of the cells scrolled)."""
    context = browser.new_context(viewport={"width": 1920, "height": 1000})
    page = context.new_page()
    page.route(re.compile(r"^(https?|wss?)://"), lambda route: route.abort())
    cells = scrolling = 0
    for path in sorted(book_html.glob("book/[0-9]*/[0-9]*.html")):
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        n, wide = page.evaluate("""() => {
            const pres = [...document.querySelectorAll('div.cell_input pre')];
            return [pres.length, pres.filter(p => p.scrollWidth > p.clientWidth + 1).length]; }""")
        cells, scrolling = cells + n, scrolling + wide
    context.close()
    assert cells >= 150, f"only {cells} code cells in {book_html}"
    assert scrolling <= 0.05 * cells, f"{scrolling} of {cells} code cells scroll sideways at 1920 px"


def test_markdown_tables_in_outputs_render_as_tables(book_html):
    """display(Markdown(table)) needs myst-nb's gfm output format (nb_render_markdown_format in
    _config.yml); with CommonMark the table came out as one paragraph of raw pipes."""
    raw = re.compile(r"<p>\|[^<]*\|\s*-{3,}")
    pages = [p for p in book_html.glob("book/**/*.html") if raw.search(p.read_text(encoding="utf-8"))]
    assert pages == [], f"raw markdown tables in {[str(p.relative_to(book_html)) for p in pages]}"
    assert "<table" in (book_html / "book/01_recap/04_ensembles.html").read_text(encoding="utf-8")


def test_bibliography_labels_read_like_the_citations(book_html):
    """A citation "[Long et al., 2015]" in the text leads to the entry labelled the same way
    (the course_author_year style of _ext/course_html.py; the default alpha labels read "[LSD15]")."""
    bib = (book_html / "book/appendix/bibliography.html").read_text(encoding="utf-8")
    labels = dict(re.findall(r'<div class="citation" id="([^"]+)"[^>]*>\s*<span class="label">'
                             r'<span class="fn-bracket">\[</span>([^<]+)<', bib))
    assert len(labels) >= 20, f"only {len(labels)} bibliography entries"
    cited = 0
    for page in book_html.glob("book/[0-9]*/*.html"):
        for target, text in re.findall(r'href="\.\./appendix/bibliography\.html#([^"]+)"[^>]*>(.*?)</a>',
                                       page.read_text(encoding="utf-8")):
            shown = re.sub(r"<[^>]+>", "", text)
            assert labels.get(target) == shown, f"{page.name}: cites [{shown}], the entry reads [{labels.get(target)}]"
            cited += 1
    assert cited >= 20

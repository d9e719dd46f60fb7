"""Screenshot a page of the built book with Debian's chromium (for the README).

    python scripts/screenshot.py [PAGE] [OUT]     # defaults: the IoU page -> docs/screenshot.png
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def main(page_path="book/06_localization/01_iou.html", out="docs/screenshot.png", anchor=".lecture-iou-drag"):
    html = ROOT / "_build/html" / page_path
    if not html.exists():
        html = ROOT / "_build/test/src/_build/html" / page_path
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(html.as_uri())
        page.wait_for_timeout(1500)
        if anchor and page.locator(anchor).count():
            page.locator(anchor).first.scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -220)")
            page.wait_for_timeout(500)
        page.screenshot(path=str(ROOT / out))
        browser.close()
    print(ROOT / out)


if __name__ == "__main__":
    main(*sys.argv[1:])

"""Walk a Snakemake HTML report in headless Chromium as a reader would: the first view, then every menu entry,
every link inside a page, and what each entry shows (a page with tables, or a picture that fits the screen).

Used by tests/test_report_browser.py; run it on any report for screenshots:
    PYTHONPATH=workflow:tests python -m helpers.report_walk results/report.html docs/
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from helpers.browser import chromium_page

SHOWN = {"text/html", "image/png", "image/jpeg", "image/svg+xml"}  # what the viewer shows; anything else downloads


@dataclass
class Entry:
    category: str
    label: str
    path: str
    mime: str
    kind: str = ""  # "html" or "img": what the content pane showed after the click
    tables: int = 0
    links: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    image_box: dict | None = None
    text: str = ""


@dataclass
class Walk:
    first_view: str  # text of the page shown on opening
    first_path: str
    entries: list[Entry]
    menu: list[str]
    errors: list[str]
    workflow_view: str = ""


def _frame_text(page) -> tuple[object, str]:
    page.wait_for_selector("iframe", timeout=10_000)
    frame = page.frame_locator("iframe").first
    frame.locator("body").wait_for(timeout=10_000)
    return frame, frame.locator("body").inner_text()


def _check_links(page, entry: Entry) -> None:
    """Click every link of the shown page; a link that leaves it (about:blank#blocked in the report) is broken."""
    frame = page.frames[-1]
    hrefs = frame.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    entry.links = hrefs
    for i, href in enumerate(hrefs):
        frame.locator("a[href]").nth(i).click()
        page.wait_for_timeout(150)
        frame = page.frames[-1]
        url = frame.url
        body = frame.locator("body").inner_text() if not url.startswith("about:") else ""
        target = href[1:] if href.startswith("#") else None
        ok = url.startswith("data:") and body.strip() and target and frame.locator(f"[id='{target}']").count() == 1
        if not ok:
            entry.broken_links.append(f"{href} -> {url[:40]}")


def walk_report(report: Path, shots: Path | None = None, viewport=(1366, 768)) -> Walk:
    """Open the report, record the first view, then click every category and every entry's view button."""
    with chromium_page(viewport=viewport) as page:
        page.goto(Path(report).resolve().as_uri())
        page.wait_for_selector("iframe", timeout=15_000)
        page.wait_for_timeout(500)
        _, first = _frame_text(page)
        first_path = page.evaluate("app.state.resultPath || ''")
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "report-summary.png"))
        results = page.evaluate("results")
        categories = page.evaluate("categories")
        entries, menu = [], []
        for category in sorted(categories):
            page.locator("nav ol li a").first.click()  # home of the menu
            menu_item = page.get_by_text(category, exact=True)
            menu.append(category)
            menu_item.click()
            page.wait_for_timeout(200)
            rows = page.locator("table tbody tr")
            for r in range(rows.count()):
                row = rows.nth(r)
                label = row.locator("td").first.inner_text().strip()
                row.locator("td").last.locator("a").first.click()
                page.wait_for_timeout(400)
                path = page.evaluate("app.state.resultPath")
                entry = Entry(category, label, path, results[path]["mime_type"])
                entry.kind = page.evaluate("app.state.content")
                if entry.kind == "html":
                    frame, entry.text = _frame_text(page)
                    entry.tables = frame.locator("table").count()
                    _check_links(page, entry)
                elif entry.kind == "img":
                    img = page.locator("img[src^='data:image']").last
                    img.wait_for(timeout=10_000)
                    entry.image_box = img.evaluate(
                        "e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, "
                        "left: r.left, right: r.right, natural_height: e.naturalHeight, "
                        "viewport_height: window.innerHeight, viewport_width: window.innerWidth}; }"
                    )
                if shots:
                    name = f"{category}-{label}".lower().replace(" ", "-").replace(":", "").replace(".", "")
                    page.screenshot(path=str(shots / f"walk-{name[:60]}.png"))
                entries.append(entry)
        page.locator("nav ol li a").first.click()
        page.get_by_text("Workflow", exact=True).click()
        page.wait_for_timeout(500)
        workflow_view = page.locator("div.prose").first.inner_text() if page.locator("div.prose").count() else ""
        return Walk(first, first_path, entries, menu, list(page.errors), workflow_view)


if __name__ == "__main__":
    walk = walk_report(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print("first view:", walk.first_path, "| errors:", walk.errors)
    for e in walk.entries:
        print(f"{e.category:28s} {e.label:55s} {e.kind:5s} tables={e.tables} broken={e.broken_links} {e.image_box}")

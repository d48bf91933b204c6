"""The demo's `snakemake --report` opened in headless Chromium (Debian's chromium driven by Playwright), as a
researcher opens it: the first view, every menu entry, every link inside a page, every figure on a laptop screen."""

import os
from pathlib import Path

import pytest
from helpers.browser import chromium_path
from helpers.workflow import snakemake

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

REPORT_LIMIT = 4_000_000  # bytes: the demo's report, viewer (~3 MB) included
SCREEN = (1366, 768)


@pytest.fixture(scope="module")
def walked(demo_run, tmp_path_factory):
    """The demo's report, built once, walked once; screenshots land in $CXLSEG_SCREENSHOTS or a temporary folder."""
    from helpers.report_walk import walk_report

    report = demo_run / "report-browser.html"
    snakemake(demo_run, "--report", str(report))
    shots = Path(os.environ.get("CXLSEG_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    return report, walk_report(report, shots, viewport=SCREEN), shots


def test_the_report_opens_on_the_run_summary(walked):
    _, walk, shots = walked
    assert walk.first_path.endswith("report/summary.html")
    first = walk.first_view
    assert "CXLSeg run summary" in first and "Synthetic demo run" in first
    for answer in ("masks made by", "test Dice", "Dice vs demo truth", "QC catches bad masks", "wall clock"):
        assert answer in first, answer
    assert "n = " in first and (shots / "report-summary.png").is_file()
    assert "segmented every frontal MIMIC-CXR-JPG image" not in walk.workflow_view
    assert "Synthetic demo run" in walk.workflow_view  # the Workflow view stays reachable and tells the truth


def test_every_entry_shows_inline_without_console_errors(walked):
    _, walk, _ = walked
    assert not walk.errors, walk.errors
    assert walk.menu == sorted(walk.menu) and walk.menu[0] == "0. Run summary"
    labels = [e.label for e in walk.entries]
    assert labels[0].startswith("1. Run summary") and not any("/" in label or ".csv" in label for label in labels)
    for entry in walk.entries:
        assert entry.kind in ("html", "img"), f"{entry.path} ({entry.mime}) would download"
        if entry.kind == "html":
            assert entry.tables >= 1, f"{entry.label}: no table rendered"
            assert "Synthetic demo run" in entry.text, f"{entry.label}: no demo banner"
    names = {Path(e.path).name for e in walk.entries}
    for page in ("summary.html", "datasets.html", "comparison.html", "table3.html", "table3_all_labels.html"):
        assert page in names, page
    assert "qc_report.html" in names and "counts.html" in names


def test_links_inside_pages_work(walked):
    _, walk, _ = walked
    summary = next(e for e in walk.entries if e.path.endswith("report/summary.html"))
    assert len(summary.links) >= 4  # the summary's table of contents
    for entry in walk.entries:
        assert not entry.broken_links, f"{entry.label}: {entry.broken_links}"


def test_figures_fit_a_laptop_screen(walked):
    _, walk, _ = walked
    figures = [e for e in walk.entries if e.kind == "img"]
    assert len(figures) >= 6
    for entry in figures:
        box = entry.image_box
        assert box["top"] >= 0 and box["bottom"] <= box["viewport_height"], f"{entry.label} cut: {box}"
        assert box["right"] <= box["viewport_width"] + 1, f"{entry.label} cut: {box}"


def test_the_report_stays_small(walked):
    report, _, _ = walked
    assert report.stat().st_size < REPORT_LIMIT

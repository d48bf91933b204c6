"""The review page (cxlseg.reporting.review_page): order, filters and paged data files, and, in headless Chromium,
filters, paging and decisions exported as the CSV that tables.review_file applies. The end-to-end loop on a demo run
(page -> CSV -> rerun without inference) is test_workflow.py's."""

from __future__ import annotations

import csv
import io as _io
import re
from pathlib import Path

import cv2
import cxlseg
import numpy as np
import pandas as pd
import pytest
from cxlseg import io
from cxlseg.inference.outputs import thumbnail_dir, thumbnail_path
from cxlseg.reporting.review_page import (
    ReviewFiles,
    archive_review_frame,
    build_archive_review_page,
    build_review_page,
    thumb_url,
    view_members,
    worst_first,
)
from cxlseg.tables.archive import COLUMNS as ARCHIVE_COLUMNS
from cxlseg.tables.review import ReviewFileError, read_decisions
from helpers.browser import chromium_page, chromium_path

FLAG_CYCLE = ["", "", "", "low_predicted_dice;low_soft_dice", "not_frontal", "empty_mask;low_predicted_dice"]


def review_files(folder) -> ReviewFiles:
    """The review_page rule's files in `folder`."""
    return ReviewFiles(folder / "index.html", folder / "data", folder / "thumbs")


def qc_frame(n: int, shards=("p10", "p11")) -> pd.DataFrame:
    """n masks over `shards`, every third flagged, with decreasing predicted Dice."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        flags = FLAG_CYCLE[i % len(FLAG_CYCLE)]
        rows.append(
            {
                "dicom_id": f"img{i:04d}",
                "subject_id": 10000000 + i,
                "study_id": 50000000 + i,
                "shard": shards[(i // 2) % len(shards)],
                "status": "flagged" if flags else "ok",
                "qc_predicted_dice": 0.0 if "empty" in flags else round(float(rng.uniform(0.5, 1.0)), 4),
                "p_not_frontal": 0.9 if "not_frontal" in flags else 0.01,
                "qc_flags": flags,
                "models": "unet+sa_unet",
                "model_id": "unet-abc+sa_unet-def",
                "review": "",
                "review_note": "",
                "in_tables": True,
            }
        )
    return pd.DataFrame(rows)


def write_run(root, qc: pd.DataFrame, thumbs: bool = True):
    """CXLSeg-qc and -split tables and thumbnails as a run leaves them; returns (qc_csv, split_csv, review_dir)."""
    io.write_csv(qc, root / "CXLSeg" / "CXLSeg-qc.csv.gz")
    split = qc[["dicom_id", "subject_id", "study_id"]].assign(
        split=np.where(np.arange(len(qc)) % 10 == 0, "test", "train")
    )
    io.write_csv(split, root / "CXLSeg" / "CXLSeg-split.csv.gz")
    review = root / "review"
    if thumbs:
        film = np.full((128, 104, 3), 90, np.uint8)
        cv2.rectangle(film, (20, 20), (80, 100), (40, 230, 60), 1)
        for rec in qc.itertuples():
            io.write_image(thumbnail_path(thumbnail_dir(review / "thumbs", rec.shard), rec.dicom_id), film)
    return root / "CXLSeg" / "CXLSeg-qc.csv.gz", root / "CXLSeg" / "CXLSeg-split.csv.gz", review


def test_worst_first_puts_flags_on_top_then_lowest_predicted_dice():
    qc = pd.DataFrame(
        {
            "dicom_id": ["a", "b", "c", "d", "e"],
            "qc_flags": ["", "x", "", "y", ""],
            "qc_predicted_dice": [0.5, 0.95, np.nan, 0.2, 0.97],
        }
    )
    assert worst_first(qc)["dicom_id"].tolist() == ["d", "b", "a", "e", "c"]


def test_every_filter_is_a_list_of_small_page_files(tmp_path):
    qc = qc_frame(250)
    views = view_members(worst_first(qc))
    assert len(views["all.all"]) == 250 and len(views["p10.all"]) == 126
    assert len(views["all.flagged"]) == len(views["all.low_predicted_dice"]) + len(views["all.not_frontal"])
    assert "p10.not_frontal" in views and all(len(v) for v in views.values())
    qc_csv, split_csv, review = write_run(tmp_path, qc)
    summary = build_review_page(qc_csv, split_csv, review_files(review), min_predicted_dice=0.9, page_size=60)
    data = tmp_path / "review" / "data"
    assert sorted(p.name for p in (data / "all.all").iterdir()) == ["1.js", "2.js", "3.js", "4.js", "5.js"]
    assert summary["page_files"] == sum(-(-len(v) // 60) for v in views.values()) + 2  # + run.js, ids.js
    assert summary["masks"] == 250 and summary["missing_thumbnails"] == 0
    # bounded: a page file holds page_size records whatever the run's size; the data grow linearly with images
    page_bytes = max(p.stat().st_size for p in data.rglob("*.js") if p.name != "run.js")
    assert page_bytes < 60 * 200
    assert summary["data_bytes"] < 250 * 6 * 200
    first = (data / "all.all" / "1.js").read_text()
    assert first.startswith('CXLSEG_REVIEW.page("all.all", 1, [["img0005",')  # the empty mask, Dice 0, first
    html = (tmp_path / "review" / "index.html").read_text()
    assert "/*SCRIPT*/" not in html and "CXLSEG_REVIEW" in html and 'src="data/run.js"' in html
    assert not re.search(r"https?://", html)  # no network: works from file://


def test_the_page_finds_each_thumbnail_where_inference_wrote_it(tmp_path):
    """A thumbnail's name is decided once (inference.outputs): the page's script fills `thumb_url` from run.js, and
    review.js spells no path of its own."""
    files = review_files(tmp_path / "review")
    url = thumb_url(files).replace("{shard}", "p12").replace("{dicom_id}", "ab-cd")
    assert files.page.parent / url == thumbnail_path(thumbnail_dir(files.thumbs, "p12"), "ab-cd")
    qc_csv, split_csv, review = write_run(tmp_path, qc_frame(12))
    build_review_page(qc_csv, split_csv, files, min_predicted_dice=0.9)
    assert f'"thumb_url":"{thumb_url(files)}"' in (review / "data" / "run.js").read_text()
    script = (Path(cxlseg.__file__).parent / "data" / "review" / "review.js").read_text()
    assert ".jpg" not in script and "RUN.thumb_url" in script


def test_a_rebuild_leaves_no_stale_page(tmp_path):
    qc_csv, split_csv, review = write_run(tmp_path, qc_frame(130))
    build_review_page(qc_csv, split_csv, review_files(review), min_predicted_dice=0.9)
    assert (review / "data" / "all.all" / "3.js").is_file()
    qc_csv, split_csv, review = write_run(tmp_path, qc_frame(50), thumbs=False)
    summary = build_review_page(qc_csv, split_csv, review_files(review), min_predicted_dice=0.9)
    assert not (review / "data" / "all.all" / "2.js").exists()
    assert summary["missing_thumbnails"] == 0  # thumbnails of the earlier build are still there


needs_chromium = pytest.mark.skipif(chromium_path() is None, reason="Debian chromium is not installed")


def card_ids(page) -> list[str]:
    return page.locator("#grid .card").evaluate_all("cards => cards.map(c => c.dataset.id)")


@needs_chromium
def test_filters_paging_and_a_clicked_decision_in_the_exported_csv(tmp_path):
    qc = qc_frame(150)
    qc.loc[qc["dicom_id"] == "img0002", ["review", "review_note", "status"]] = ["rejected", "earlier, kept", "rejected"]
    qc_csv, split_csv, review = write_run(tmp_path, qc)
    build_review_page(qc_csv, split_csv, review_files(review), min_predicted_dice=0.9, demo=True)
    order = worst_first(qc)["dicom_id"].tolist()
    with chromium_page() as page:
        page.goto((review / "index.html").as_uri())
        page.wait_for_selector("#grid .card")
        assert card_ids(page) == order[:60]
        assert page.locator("#banner").is_visible()
        assert page.locator("#pages").inner_text() == "3"
        assert page.locator(".card img").first.evaluate("img => img.complete && img.naturalWidth") == 104

        page.click("#next")
        page.wait_for_function("document.querySelector('#grid').dataset.view === 'all.all/2'")
        assert card_ids(page) == order[60:120]
        page.fill("#pageno", "3")
        page.press("#pageno", "Enter")
        page.wait_for_function("document.querySelector('#grid').dataset.view === 'all.all/3'")
        assert card_ids(page) == order[120:] and page.locator("#next").is_disabled()

        page.select_option("#flag", "not_frontal")
        page.wait_for_function("document.querySelector('#grid').dataset.view === 'all.not_frontal/1'")
        want = [d for d in order if "not_frontal" in qc.set_index("dicom_id").at[d, "qc_flags"]]
        assert card_ids(page) == want and len(want) == 25
        page.select_option("#shard", "p11")
        page.wait_for_function("document.querySelector('#grid').dataset.view === 'p11.not_frontal/1'")
        assert card_ids(page) == [d for d in want if qc.set_index("dicom_id").at[d, "shard"] == "p11"] != []
        assert "shard=p11&flag=not_frontal&page=1" in page.url

        target = card_ids(page)[0]
        card = page.locator(f'.card[data-id="{target}"]')
        card.locator("button.reject").click()
        card.locator("input.note").fill('lateral film, "not a PA"')
        card.locator("input.note").press("Tab")
        page.locator(".card").nth(1).focus()
        page.keyboard.press("a")
        second = card_ids(page)[1]
        assert "rejected" in card.get_attribute("class")
        assert page.locator("#decided").inner_text() == "3 decided: 1 accepted, 2 rejected"

        page.reload()  # decisions survive a reload (localStorage) and the view comes back from the URL
        page.wait_for_function("document.querySelector('#grid').dataset.view === 'p11.not_frontal/1'")
        assert page.locator(f'.card[data-id="{target}"] button.reject').get_attribute("aria-pressed") == "true"

        with page.expect_download() as download:
            page.click("#export")
        text = download.value.path().read_text()

        # another browser: empty storage, the exported file imported, nothing lost; a bad file is refused, named
        page.evaluate("localStorage.clear()")
        page.reload()
        page.wait_for_function("document.querySelector('#grid').dataset.view === 'p11.not_frontal/1'")
        assert page.locator("#decided").inner_text() == "1 decided: 0 accepted, 1 rejected"  # the applied file's
        (tmp_path / "exported.csv").write_text(text)
        page.set_input_files("#import", tmp_path / "exported.csv")
        page.wait_for_function("document.querySelector('#decided').textContent.startsWith('3 decided')")
        assert page.locator(f'.card[data-id="{target}"] input.note').input_value() == 'lateral film, "not a PA"'
        (tmp_path / "bad.csv").write_text("dicom_id,decision\nimg0001,maybe\n")
        page.set_input_files("#import", tmp_path / "bad.csv")
        page.wait_for_selector("#problem:not([hidden])")
        assert page.locator("#problem").inner_text() == (
            "bad.csv:2: unknown decision 'maybe' for 'img0001' (allowed: accepted, rejected)"
        )
        assert page.locator("#decided").inner_text() == "3 decided: 1 accepted, 2 rejected"
        assert page.errors == []
    rows = list(csv.DictReader(_io.StringIO(text)))
    assert rows == sorted(rows, key=lambda r: r["dicom_id"])
    assert {r["dicom_id"]: (r["decision"], r["note"]) for r in rows} == {
        target: ("rejected", 'lateral film, "not a PA"'),
        second: ("accepted", ""),
        "img0002": ("rejected", "earlier, kept"),  # the applied review file's decision is not lost
    }
    exported = tmp_path / "decisions.csv"
    exported.write_text(text)
    assert len(read_decisions(exported, qc["dicom_id"])) == 3  # what the merge will read


REFUSED = {
    "unknown.csv": 'dicom_id,decision,note\nimg0001,accepted,\nimg0003,rejected,"two\nlines"\n\nnot-in-run,rejected,\n',
    "twice.csv": "dicom_id,decision\r\nimg0001,accepted\r\nimg0004,rejected\r\nimg0001,rejected\r\n",
    "failed.csv": "dicom_id,decision,note\nimg0001,accepted\nimg0003,rejected,\n",
    "columns.csv": "dicom_id,decision,reviewer\nimg0001,accepted,me\n",
}


@needs_chromium
def test_import_refuses_what_the_quality_table_would_refuse_naming_the_line(tmp_path):
    """Import CSV reads a file as cxlseg.tables.review does, the same message (the file's name for its path):
    an id of no mask of this run or one decided twice is refused, and none of the file's decisions is kept."""
    qc_csv, split_csv, review = write_run(tmp_path, qc_frame(30))
    build_review_page(qc_csv, split_csv, review_files(review), min_predicted_dice=0.9)
    with chromium_page() as page:
        page.goto((review / "index.html").as_uri())
        page.wait_for_selector("#grid .card")
        for name, text in REFUSED.items():
            path = tmp_path / name
            path.write_bytes(text.encode())
            with pytest.raises(ReviewFileError) as refused:
                read_decisions(path, pd.Series(qc_frame(30)["dicom_id"]))
            page.set_input_files("#import", path)
            page.wait_for_function(
                "name => document.querySelector('#problem').textContent.startsWith(name)", arg=name + ":"
            )
            assert page.locator("#problem").inner_text() == str(refused.value).replace(str(path), name)
            assert page.locator("#decided").inner_text() == "no decisions yet"  # none of the file kept
            if name == "unknown.csv":
                assert page.locator("#problem").inner_text() == (
                    "unknown.csv:6: unknown dicom_id 'not-in-run' (not in this run)"
                )
                page.screenshot(path=str(tmp_path.parent / "review-import-refused.png"))
        assert page.errors == []


def archive_table_rows() -> pd.DataFrame:
    """Another archive's table (cxlseg.tables.archive) as archive_table writes it: text ids, one failed image."""
    rows = []
    for i in range(7):
        flags = FLAG_CYCLE[i % len(FLAG_CYCLE)]
        rows.append(
            {
                **{c: "" for c in ARCHIVE_COLUMNS},
                "image_id": f"patient{i:05d}_study1_view1_frontal",
                "patient_id": f"patient{i:05d}",
                "study_id": "study1",
                "view": "PA",
                "path": f"train/patient{i:05d}/study1/view1_frontal.jpg",
                "shard": f"{i % 2:02d}",
                "split": "test" if i == 3 else "train",
                "status": "ok",
                "qc_predicted_dice": round(0.95 - 0.05 * i, 3),
                "p_not_frontal": 0.9 if "not_frontal" in flags else 0.02,
                "qc_flags": flags,
            }
        )
    rows[-1].update(status="failed", error="unreadable image", qc_predicted_dice="", p_not_frontal="")
    return pd.DataFrame(rows, columns=ARCHIVE_COLUMNS)


@needs_chromium
def test_another_archive_gets_the_same_page_from_its_own_table(tmp_path):
    """archive.kind other than mimic (#34): the page of archive_review_page, built from the archive's table, shows
    its masked images worst first with the thumbnails infer_archive_shard wrote, its text ids where MIMIC's
    numbers go, and exports the same decisions CSV; a failed image (no mask) is not on it."""
    table = archive_table_rows()
    io.write_csv(table, tmp_path / "archives" / "chexpert" / "chexpert-masks.csv.gz")
    review = tmp_path / "archives" / "chexpert" / "review"
    film = np.full((120, 100, 3), 70, np.uint8)
    cv2.ellipse(film, (50, 60), (30, 45), 0, 0, 360, (40, 230, 60), 2)
    masked = table[table.status == "ok"]
    for rec in masked.itertuples():
        io.write_image(thumbnail_path(thumbnail_dir(review / "thumbs", rec.shard), rec.image_id), film)
    summary = build_archive_review_page(
        tmp_path / "archives" / "chexpert" / "chexpert-masks.csv.gz", review_files(review), min_predicted_dice=0.9
    )
    assert summary["masks"] == 6 and summary["missing_thumbnails"] == 0
    frame = archive_review_frame(tmp_path / "archives" / "chexpert" / "chexpert-masks.csv.gz")
    order = worst_first(frame)["dicom_id"].tolist()
    assert set(order) == set(masked.image_id) and order[0] == "patient00005_study1_view1_frontal"  # flagged, lowest
    with chromium_page() as page:
        page.goto((review / "index.html").as_uri())
        page.wait_for_selector("#grid .card")
        assert card_ids(page) == order
        images = page.locator(".card img")
        assert images.count() == 6
        for n in range(6):
            assert images.nth(n).evaluate("img => img.complete && img.naturalWidth") == 100
        assert page.locator("#counts").inner_text().startswith("6 masks (")
        first = page.locator(f'.card[data-id="{order[0]}"]')
        assert "subject patient00005, study study1" in first.inner_html()
        page.select_option("#shard", "01")
        page.wait_for_function("document.querySelector('#grid').dataset.view === '01.all/1'")
        assert card_ids(page) == [d for d in order if masked.set_index("image_id").at[d, "shard"] == "01"]
        page.screenshot(path=str(tmp_path.parent / "review-archive.png"), full_page=True)
        page.locator(f'.card[data-id="{order[0]}"] button.reject').click()
        with page.expect_download() as download:
            page.click("#export")
        text = download.value.path().read_text()
        assert page.errors == []
    assert text == f"dicom_id,decision,note\n{order[0]},rejected,\n"

"""Another archive's run report page and QC report (#34): MIMIC's sections on the archive's own files."""

from __future__ import annotations

import re

import cv2
import numpy as np
from cxlseg import io
from cxlseg.archives.settings import ArchiveSettings
from cxlseg.inference.outputs import thumbnail_dir, thumbnail_path
from cxlseg.reporting.archive_pages import run_page, write_archive_qc_report
from cxlseg.reporting.archive_summary import write_archive_run_summary
from cxlseg.reporting.inputs import ReportFiles
from cxlseg.tables.archive import archive_table
from test_archive_review import IMAGES, an_archive_run


def a_run(tmp_path, qc_model):
    """The table of test_archive_review's run (one mask rejected), its thumbnails, QC model and run summary."""
    files = an_archive_run(tmp_path, "dicom_id,decision,note\nc1,rejected,lateral\n")
    archive_table(files, tmp_path / "out", "vindr")
    film = np.full((80, 60, 3), 90, np.uint8)
    cv2.ellipse(film, (30, 40), (15, 25), 0, 0, 360, (40, 230, 60), 2)
    for image_id, (_, _, status) in IMAGES.items():
        if status == "ok":
            io.write_image(thumbnail_path(thumbnail_dir(tmp_path / "thumbs", "p00"), image_id), film)
    qc_model.save(tmp_path / "qc.json")
    listing = {"kind": "vindr", "images": 4, "skipped": 2, "skip_reasons": {"file is empty": 2},
               "not_frontal": {"L": 3}, "per_shard": {"p00": 4}}  # fmt: skip
    io.write_json(tmp_path / "listing.json", listing)
    settings = ArchiveSettings(kind="vindr", shards=2)
    write_archive_run_summary(
        tmp_path / "listing.json", files.table, tmp_path / "run.json", settings, min_predicted_dice=0.9
    )
    return files


def test_the_qc_report_lists_failed_and_flagged_images_with_overlays_and_a_dice_histogram(tmp_path, qc_model):
    files = a_run(tmp_path, qc_model)
    out = {"html_path": tmp_path / "qc.html", "overlays_path": tmp_path / "o.jpg", "histogram_path": tmp_path / "h.png"}
    summary = write_archive_qc_report(
        files.table, tmp_path / "thumbs", tmp_path / "qc.json", **out, summary_path=tmp_path / "qc.json.out"
    )
    assert summary == {**summary, "images": 4, "masks": 3, "failed": 1, "flagged": 2}
    assert io.read_json(tmp_path / "qc.json.out")["flag_bar"]["min_predicted_dice"] == 0.9
    page = (tmp_path / "qc.html").read_text()
    assert "Failed images (1)" in page and "DICOM: the codec is unknown" in page and "pd/d1.png" in page
    assert "QC-flagged images (2)" in page and "low_predicted_dice" in page and "rejected" in page
    assert "Predicted Dice model" in page and "Film check" in page
    sheet = io.read_image(tmp_path / "o.jpg", cv2.IMREAD_COLOR)
    assert sheet.shape[0] > 100 and (sheet[..., 1] > 200).any()  # the thumbnails' green outline is on the sheet
    assert io.read_image(tmp_path / "h.png").shape[0] > 100


def test_the_run_page_says_listed_segmented_failed_skipped_flagged_per_shard_and_the_bar(tmp_path, qc_model):
    a_run(tmp_path, qc_model)
    bench = tmp_path / "benchmarks" / "archives" / "vindr"
    io.write_text(bench / "p00.tsv", "s\th:m:s\tmax_rss\n2.0\t0:00:02\t100\n")
    io.write_text(bench / "archive_table.tsv", "s\th:m:s\tmax_rss\n1.0\t0:00:01\t50\n")
    io.write_text(bench.parents[1] / "select_model.tsv", "s\th:m:s\tmax_rss\n3.0\t0:00:03\t70\n")
    io.write_json(tmp_path / "selected.json", {"architecture": "unet", "metric": "dice", "value": 0.93})
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (tmp_path / "p00.parquet").rename(manifests / "p00.parquet")
    files = ReportFiles(
        selected=tmp_path / "selected.json",
        qc_model=tmp_path / "qc.json",
        manifests=[manifests / "p00.parquet"],
        benchmarks=sorted(bench.parents[1].rglob("*.tsv")),
    )
    page = run_page(tmp_path / "run.json", files)
    assert "vindr: run summary" in page
    for text in ("file is empty", "DICOM: the codec is unknown", "not_frontal", "low_predicted_dice", "unet"):
        assert text in page
    assert "predicted Dice &lt; 0.900" in page  # the flag bar, a fixed one
    rows = re.findall(r"<tr>(.*?)</tr>", page.split("Per shard", 1)[1].split("</table>", 1)[0], re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows]
    assert [c for c in cells if c] == [["p00", "4", "3", "1", "2"], ["p01", "0", "0", "0", "0"]]
    times = page.split("Time per stage", 1)[1]
    for stage in ("infer", "archive_table", "select_model"):  # every job's time, the shards as inference's
        assert f"<td>{stage}</td>" in times
    throughput = re.findall(r"<td>(.*?)</td>", times.split("throughput per shard", 1)[1].split("</table>", 1)[0])
    assert throughput[:3] == ["p00", "4", "2.0"]  # 4 manifest rows in the shard job's 2 s

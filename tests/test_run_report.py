"""The run report pages, built from a tiny synthetic results folder."""

import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg.inference.qc_model import QCModel
from cxlseg.reporting import pages, run_report, run_stats
from cxlseg.reporting.inputs import DATASET_TABLES
from helpers.reporting import report_files
from helpers.shards import fit_toy_qc_model

IDS = [f"d{i:02d}aaaaaa" for i in range(6)]
RAW_HEADERS = ("peak_rss_mb", "images_per_s", "dice_p5", "n_test", "bad_caught", "good_flagged")


def _manifest(ids, statuses, flags):
    rows = []
    for dicom_id, status, flag in zip(ids, statuses, flags):
        rel = f"files/p10/p10000001/s50000001/{dicom_id}"
        rows.append(
            {
                "dicom_id": dicom_id,
                "subject_id": "10000001",
                "study_id": "50000001",
                "source_path": f"{rel}.jpg",
                "image_path": f"{rel}.jpg" if status == "ok" else None,
                "mask_path": f"{rel}-mask.png" if status == "ok" else None,
                "status": status,
                "error": None if status == "ok" else "file not found",
                "qc_flags": flag,
                "qc_predicted_dice": 0.5 if flag else 0.95,
            }
        )
    return pd.DataFrame(rows)


def _film(size: int = 64) -> np.ndarray:
    """A film with a left-to-right gradient: the grid must show it, not the lung-cropped image."""
    return np.tile(np.linspace(30, 220, size, dtype=np.uint8), (size, 1))


@pytest.fixture
def results(tmp_path):
    r = tmp_path / "results"
    (r / "CXLSeg").mkdir(parents=True)
    ok = IDS[:5]
    base = pd.DataFrame({"dicom_id": ok, "subject_id": 10000001, "study_id": 50000001})
    base.assign(Reports=["FINDINGS: " + "x" * 200] * 5, StudyDate=21220309, StudyTime=122523.418).to_csv(
        r / "CXLSeg/CXLSeg-metadata.csv.gz", index=False
    )
    base.assign(DicomPath="files/x.jpg", Atelectasis=1.0).to_csv(r / "CXLSeg/CXLSeg-segmented.csv.gz", index=False)
    base.assign(split=["train", "train", "train", "validate", "test"]).to_csv(
        r / "CXLSeg/CXLSeg-split.csv.gz", index=False
    )
    base.assign(DicomPath="files/x-mask.jpg").to_csv(r / "CXLSeg/CXLSeg-mask.csv.gz", index=False)
    pd.DataFrame({"dicom_id": [IDS[5]], "status": ["failed"], "reason": ["file not found"]}).to_csv(
        r / "CXLSeg/CXLSeg-failed.csv.gz", index=False
    )
    (r / "CXLSeg/summary.json").write_text(json.dumps({"rows": {"segmented": 5}}))
    (r / "infer/manifests").mkdir(parents=True)
    _manifest(IDS[:3], ["ok"] * 3, ["low_predicted_dice", "", None]).to_parquet(r / "infer/manifests/p10.parquet")
    _manifest(IDS[3:], ["ok", "ok", "failed"], ["low_predicted_dice;small_lung", "", ""]).to_parquet(
        r / "infer/manifests/p11.parquet"
    )
    (r / "infer/selection_summary.json").write_text(
        json.dumps(
            {
                "images_in_shards": 1234567,
                "studies_no_file": 2,
                "images_no_file": 3,
                "studies_unreadable_file": 6,
                "images_unreadable_file": 7,
                "studies_empty_report": 4,
                "images_empty_report": 5,
            }
        )
    )
    mimic = tmp_path / "mimic"
    for dicom_id in ok:
        rel = "files/p10/p10000001/s50000001"
        (mimic / rel).mkdir(parents=True, exist_ok=True)
        (r / "CXLSeg" / rel).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(mimic / rel / f"{dicom_id}.jpg"), _film())
        mask = np.zeros((32, 32), np.uint8)
        mask[8:24, 4:14], mask[8:24, 18:28] = 128, 255  # right and left lung labels
        cv2.imwrite(str(r / "CXLSeg" / rel / f"{dicom_id}-mask.png"), mask)
    (r / "models/inference").mkdir(parents=True)
    pd.DataFrame(
        {
            "model": ["unet", "sa_unet"],
            "loss": [0.123456789, 0.2],
            "dice": [0.912345678, 0.87654321],
            "dice_p5": [0.85, 0.8],
            "iou": [0.8, 0.7],
            "hd95": [3.14159, 5.0],
            "params": [12451753, 121131],
            "val_dice": [0.93337777, 0.9],
            "n_test": [6, 6],
            "checkpoint": ["a", "b"],
        }
    ).to_csv(r / "models/comparison.csv", index=False)
    (r / "models/selected.json").write_text(
        json.dumps({"architecture": "unet", "metric": "dice", "split": "validate", "value": 0.93337777})
    )
    metric = lambda mean, p5=None: {"mean": mean, "p5": p5 if p5 is not None else mean, "n": 6}  # noqa: E731
    (r / "models/inference/test_summary.json").write_text(
        json.dumps(
            {
                "members": ["unet", "sa_unet"],
                "model_id": "unet-1+sa_unet-2",
                "n_images": 6,
                "metrics": {"dice": metric(0.95123, 0.9011), "hd95": metric(2.5), "loss": metric(0.1)},
            }
        )
    )
    # written by the real writer, fitted with good Dice 0.85 (not the 0.9 a reader might assume) and a picked bar
    table, dice = fit_toy_qc_model()[1:]
    info = {
        "model_id": "unet-1+sa_unet-2",
        "n_masks": 54,
        "cross_validated": {
            "clean": {"n": 6, "pearson": 0.266, "mae": 0.021},
            "all": {"n": 54, "n_bad": 23, "n_good": 31, "bad_caught": 0.696, "good_flagged": 0.194},
        },
    }
    model = QCModel.fit(table, dice, good_dice=0.85, info=info).with_bar(0.8734, 0.03)
    model.save(r / "models/qc_calibration.json")
    (r / "qc").mkdir()
    (r / "qc/qc_summary.json").write_text(
        json.dumps({"truth": {"n": 49, "mean_dice": 0.9661, "n_good": 49, "n_bad": 0, "good_flagged": 0.0}})
    )
    (r / "training/store").mkdir(parents=True)
    np.save(r / "training/store/test_images.npy", np.zeros((2, 224, 224), np.uint8))
    (r / "classify").mkdir()
    pd.DataFrame({"model": ["resnet50"], "input": ["segmented"], "n_test": [6], "Atelectasis AUC": [0.512345]}).to_csv(
        r / "classify/table3.csv", index=False
    )
    pd.DataFrame(
        {
            "label": ["Atelectasis", "Edema"],
            "resnet50 original accuracy": [0.5, 0.6],
            "resnet50 original AUC": [0.55, np.nan],
            "resnet50 segmented accuracy": [0.4, 0.7],
            "resnet50 segmented AUC": [0.45, np.nan],
        }
    ).to_csv(r / "classify/table3_all_labels.csv", index=False)
    pd.DataFrame(
        {
            "split": ["train", "val"],
            "label": ["normal", "normal"],
            "originals": [1500, 2],
            "augmented": [0, 0],
            "total": [1500, 2],
        }
    ).to_csv(r / "training/counts.csv", index=False)
    (r / "benchmarks/infer").mkdir(parents=True)
    head = "s\th:m:s\tmax_rss\tmax_vms\n"
    (r / "benchmarks/infer/p10.tsv").write_text(head + "6.0\t0:00:06\t1000.5\t2000\n")
    (r / "benchmarks/infer/p11.tsv").write_text(head + "4.0\t0:00:04\t1200.0\t2000\n")
    (r / "benchmarks/merge_tables.tsv").write_text(head + "3725.0\t1:02:05\t164.9\t2000\n")
    (r / "benchmarks/demo.tsv").write_text(head + "12.5\t0:00:12\t99.0\t2000\n")
    now = time.time()  # demo ran first, then the shards side by side, then the merge after a pause
    for name, end in (
        ("demo", now - 5000),
        ("infer/p10", now - 4000),
        ("infer/p11", now - 3998),
        ("merge_tables", now),
    ):
        os.utime(r / "benchmarks" / f"{name}.tsv", (end, end))
    return r


def _links(page: str) -> list[str]:
    return re.findall(r"href='([^']*)'", page) + re.findall(r'href="([^"]*)"', page)


def test_the_first_page_answers(results):
    page = run_report.summary_page(report_files(results), demo=True)
    glance = page.split("id='images'")[0]  # what the first screen shows
    assert "Synthetic demo run" in glance and "phantoms" in glance
    assert "1,234,567" in glance and ">segmented<b>5</b><small>failed 1, flagged 2</small>" in glance
    assert "masks made by<b>unet + sa_unet</b>" in glance
    assert "test Dice<b>0.951</b><small>n = 6 test images</small>" in glance
    assert "Dice vs demo truth<b>0.966</b><small>n = 49 masks</small>" in glance
    assert "QC catches bad masks<b>70 %</b><small>of 23 calibration masks, Dice &lt; 0.85</small>" in glance
    assert "QC flags good masks<b>19 %</b><small>of 31 calibration masks, Dice ≥ 0.85</small>" in glance
    assert "flag bar<b>predicted Dice &lt; 0.873</b><small>picked to flag 3 % of good calibration masks" in glance
    assert "wall clock<b>1:02:26</b>" in glance  # time with a job running: the pause before the merge excluded
    assert all(link.startswith("#") for link in _links(page))  # only anchors work inside the report's frames
    for anchor in ("images", "segmenter", "qc", "time"):
        assert f"href='#{anchor}'" in page and f"id='{anchor}'" in page


def test_summary_details_with_their_n(results):
    page = run_report.summary_page(report_files(results), demo=True)
    assert "file not found" in page
    assert "no report file" in page and "empty report" in page and "report file unreadable" in page
    assert ">train<b>3</b>" in page and ">validate<b>1</b>" in page and ">test<b>1</b>" in page
    assert "test Dice, 5th percentile<b>0.9011</b><small>n = 6</small>" in page
    assert "selected on validation<b>unet</b><small>validation dice 0.9334</small>" in page
    assert "Pearson r, clean<b>0.266</b><small>n = 6 clean masks</small>" in page
    assert "good masks flagged<b>0 %</b><small>n = 49 masks with Dice ≥ 0.85</small>" in page  # the model's level
    assert page.split("id='qc'")[1].count("flag bar<b>predicted Dice &lt; 0.873</b>") == 1  # stated in the QC section
    assert "<td>merge_tables</td>" in page and "<td>demo</td>" in page  # every rule with a benchmark file
    assert "<td>3,725.0</td>" in page and "<td>1:02:05</td>" in page  # seconds as seconds, and h:mm:ss beside
    assert "Peak memory (MB)" in page and "Images per second" in page and "Time (s)" in page
    assert not any(raw in page for raw in RAW_HEADERS)
    assert "Hardware" in page and "cores" in page


def test_summary_without_demo_old_selection_and_no_evaluation(results):
    (results / "infer/selection_summary.json").write_text(json.dumps({"images_in_shards": 6}))
    (results / "models/inference/test_summary.json").unlink()
    (results / "qc/qc_summary.json").unlink()
    page = run_report.summary_page(report_files(results), demo=False)
    assert "Synthetic demo run" not in page and "demo truth" not in page
    assert "does not split dropped studies" in page
    assert "test Dice was not measured" in page and "masks made by<b>unet</b>" in page


def test_wall_clock_and_stage_times_come_from_the_benchmark_files(results):
    clock = run_stats.wall_clock(report_files(results).benchmarks)
    assert clock["jobs"] == 4
    assert clock["seconds"] == pytest.approx(5000 + 12.5, abs=0.5)  # first start to last end
    assert clock["busy_seconds"] == pytest.approx(12.5 + 8.0 + 3725.0, abs=0.5)  # overlaps once, gaps not
    times = run_stats.benchmark_times(report_files(results).benchmarks).set_index("stage")
    assert times.loc["infer", "jobs"] == 2 and times.loc["infer", "seconds"] == 10.0
    assert times.loc["infer", "peak_rss_mb"] == 1200.0
    shards = run_stats.shard_throughput(
        report_files(results).benchmarks, run_report.shard_manifests(report_files(results))
    )
    assert shards.set_index("shard")["images_per_s"].round(3).to_dict() == {"p10": 0.5, "p11": 0.75}
    assert run_stats.hardware()["cores"] >= 1


def test_table_iv_marks_the_selected_model_and_adds_the_ensemble(results):
    page = pages.comparison_page(report_files(results), demo=True)
    assert "<td class='sel'>selected</td>" in page and page.count(">selected<") == 1
    assert "<td>unet+sa_unet</td>" in page and "<td class='sel'>made the masks</td>" in page
    assert "<td>0.9123</td>" in page and "<td>0.9512</td>" in page and "<td>0.123</td>" in page  # loss: 3 decimals
    assert "HD95 (px, 224²)" in page and "<td>3.14</td>" in page
    assert "<th>n</th>" in page and "Dice p5" in page and "n: test images" in page and "12,451,753" in page
    assert "checkpoint" not in page and not any(raw in page for raw in RAW_HEADERS)
    assert "Synthetic demo run" in page


def test_table_iii_pages_render_every_label_as_tables(results):
    page = pages.table3_page(report_files(results), demo=True)
    assert "<table" in page and "Atelectasis" in page and "<td>0.512</td>" in page and "n = test images" in page
    assert "id='AUC'" in page and "<th>n</th>" in page
    every = pages.table3_all_labels_page(report_files(results))
    assert every.count("<table") == 2  # one table per metric
    assert "id='AUC'" in every and "Edema" in every and "–" in every
    (results / "classify/table3.csv").unlink()
    assert "Classification disabled" in pages.table3_page(report_files(results))


def test_training_counts_use_one_split_vocabulary(results):
    page = pages.counts_page(report_files(results))
    assert "1,500" in page and ">validate<" in page and ">val<" not in page and "Original images" in page


def test_dataset_previews_stay_inside_the_page(results):
    page = pages.datasets_page(report_files(results), demo=True)
    assert "Synthetic demo run" in page  # the MIMIC-style ids must not pass for real data
    assert not _links(page)
    for name in DATASET_TABLES:
        assert f"CXLSeg-{name}.csv.gz" in page
    assert "5 rows · 6 columns" in page and "1 rows · 3 columns" in page
    assert "2122-03-09" in page and "12:25:23" in page and "21220309" not in page
    assert "1 = positive, 0 = negative, −1 = uncertain" in page
    assert "x" * 200 not in page and "…" in page  # long report text is cut
    assert page.count("<table") == 5


def test_sample_grid_shows_films_with_outlined_masks(results, tmp_path):
    path = tmp_path / "grid.jpg"
    assert run_report.sample_grid(report_files(results), path, mimic_root=results.parent / "mimic", n=4, seed=1) == 4
    data = path.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) < 300_000
    grid = cv2.imread(str(path))
    assert grid.shape[0] <= 700  # fits a 1366x768 screen
    b, g, r = (grid[..., i].astype(int) for i in range(3))
    assert ((g - r > 80) & (g - b > 80)).sum() > 50  # green outline of the right lung on the film
    assert ((r - g > 60) & (b - g > 60)).sum() > 50  # magenta outline of the left lung
    again = tmp_path / "again.jpg"
    run_report.sample_grid(report_files(results), again, mimic_root=results.parent / "mimic", n=4, seed=1)
    assert again.read_bytes() == data  # seeded


def test_write_pages_writes_self_contained_pages(results):
    out = {name: results / "report" / f"{name}.html" for name in run_report.PAGES} | {
        "samples": results / "report" / "samples.jpg"
    }
    paths = run_report.write_pages(
        report_files(results), out, mimic_root=results.parent / "mimic", demo=True, n_samples=3
    )
    assert sorted(p.name for p in paths.values()) == [
        "comparison.html",
        "counts.html",
        "datasets.html",
        "samples.jpg",
        "summary.html",
    ]
    assert sum(p.stat().st_size for p in paths.values()) < 1_000_000
    for path in paths.values():
        if path.suffix == ".html":
            text = path.read_text()
            assert "Synthetic demo run" in text, path.name  # the banner on every page of a demo run
            assert all(link.startswith("#") for link in _links(text)), path.name


_OPENED: list[str] | None = None


def _audit(event, args):
    if _OPENED is not None and event in ("open", "os.scandir") and args and isinstance(args[0], (str, os.PathLike)):
        _OPENED.append(os.fspath(args[0]))


sys.addaudithook(_audit)  # records only while a test sets _OPENED


def test_the_pages_read_only_the_files_the_rule_declares(results):
    """Every file under the results folder the report opens is one of its ReportFiles (or, under the manifests'
    image root's folders, a mask a manifest names): a page reading an undeclared result fails here."""
    global _OPENED
    files = report_files(results)
    out = {name: results / "report" / f"{name}.html" for name in run_report.PAGES} | {
        "samples": results / "report" / "samples.jpg"
    }
    _OPENED = []
    try:
        run_report.write_pages(files, out, mimic_root=results.parent / "mimic", demo=True, n_samples=3)
        pages.table3_page(files), pages.table3_all_labels_page(files)
        opened = [Path(p).resolve() for p in _OPENED]
    finally:
        _OPENED = None
    declared = {Path(v).resolve() for f in dataclasses.fields(files) for v in _paths(getattr(files, f.name))}
    images = [d.resolve() for d in files.images_root.iterdir() if d.is_dir()]
    written = {Path(p).resolve().parent for p in out.values()}
    read = [p for p in opened if results.resolve() in p.parents and p.parent not in written]
    undeclared = [p for p in read if p not in declared and not any(d == p or d in p.parents for d in images)]
    assert read and undeclared == []
    assert declared & set(read) >= {files.selected.resolve(), files.table3.resolve(), files.counts.resolve()}


def _paths(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, tuple) else [value]

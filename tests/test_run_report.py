"""The run report pages, built from a tiny synthetic results folder."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg.reporting import run_report

IDS = [f"d{i:02d}aaaaaa" for i in range(6)]


def _manifest(ids, statuses, flags):
    rows = []
    for dicom_id, status, flag in zip(ids, statuses, flags):
        rel = f"files/p10/p10000001/s50000001/{dicom_id}"
        rows.append(
            {
                "dicom_id": dicom_id,
                "subject_id": "10000001",
                "study_id": "50000001",
                "image_path": f"{rel}.jpg" if status == "ok" else None,
                "mask_path": f"{rel}-mask.jpg" if status == "ok" else None,
                "status": status,
                "error": None if status == "ok" else "file not found",
                "qc_flags": flag,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def results(tmp_path):
    r = tmp_path / "results"
    (r / "CXLSeg").mkdir(parents=True)
    ok = IDS[:5]
    base = pd.DataFrame({"dicom_id": ok, "subject_id": 10000001, "study_id": 50000001})
    base.assign(Reports=["FINDINGS: " + "x" * 200] * 5).to_csv(r / "CXLSeg/CXLSeg-metadata.csv.gz", index=False)
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
    for dicom_id in ok:
        folder = r / "CXLSeg/files/p10/p10000001/s50000001"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{dicom_id}.jpg"), np.full((32, 32), 120, np.uint8))
        cv2.imwrite(str(folder / f"{dicom_id}-mask.jpg"), np.eye(32, dtype=np.uint8) * 255)
    (r / "models").mkdir()
    pd.DataFrame(
        {
            "model": ["unet", "sa_unet"],
            "dice": [0.912345678, 0.87654321],
            "iou": [0.8, 0.7],
            "hd95": [3.14159, 5.0],
            "params": [12451753, 121131],
            "checkpoint": ["a", "b"],
        }
    ).to_csv(r / "models/comparison.csv", index=False)
    (r / "models/selected.json").write_text(
        json.dumps({"architecture": "unet", "metric": "dice", "split": "val", "value": 0.93337777})
    )
    (r / "classify").mkdir()
    pd.DataFrame({"model": ["resnet50"], "input": ["segmented"], "n_test": [6], "mean AUC": [0.512345]}).to_csv(
        r / "classify/table3.csv", index=False
    )
    (r / "training").mkdir()
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
    return r


def test_summary_counts_model_times_and_banner(results):
    page = run_report.summary_page(results, demo=True)
    assert page.startswith("<!DOCTYPE html>") and "<table" in page
    assert "Synthetic demo run" in page and "phantoms" in page
    assert "1,234,567" in page  # images selected, with thousands separator
    assert ">segmented<b>5</b>" in page and ">failed<b>1</b>" in page and ">QC-flagged<b>2</b>" in page
    assert "file not found" in page
    assert "no report file" in page and "empty report" in page and "report file unreadable" in page
    assert ">train<b>3</b>" in page and ">validate<b>1</b>" in page and ">test<b>1</b>" in page
    assert "<b>unet</b>" in page and "test Dice<b>0.9123</b>" in page and "validate Dice<b>0.9334</b>" in page
    assert "merge_tables" in page and "1:02:05" in page  # stage time as h:mm:ss
    assert "<td>p11</td>" in page and "0.75" in page  # images per second of a shard
    shards = run_report.shard_throughput(results, run_report.read_manifests(results))
    assert shards.set_index("shard")["images_per_s"].round(3).to_dict() == {"p10": 0.5, "p11": 0.75}
    times = run_report.benchmark_times(results).set_index("stage")
    assert times.loc["infer", "jobs"] == 2 and times.loc["infer", "seconds"] == 10.0
    assert times.loc["infer", "peak_rss_mb"] == 1200.0
    assert "predicted Dice" not in page  # no calibration file in this run


def test_summary_describes_the_predicted_dice_model(results, qc_model):
    import dataclasses

    info = {"model_id": "unet+sa_unet", "n_masks": 54, "cross_validated": {"clean": {"pearson": 0.61, "mae": 0.02}}}
    dataclasses.replace(qc_model, info=info).save(results / "models/qc_calibration.json")
    page = run_report.summary_page(results, demo=False)
    assert "Quality control: predicted Dice" in page and "<b>unet+sa_unet</b>" in page
    assert "<b>54</b>" in page and "<b>0.610</b>" in page and "<b>0.020</b>" in page and "–" in page


def test_summary_without_demo_and_old_selection_summary(results):
    summary = results / "infer/selection_summary.json"
    summary.write_text(json.dumps({"images_in_shards": 6}))
    page = run_report.summary_page(results, demo=False)
    assert "Synthetic demo run" not in page
    assert "does not split dropped studies" in page


def test_tables_inline_with_selected_model_marked(results):
    page = run_report.tables_page(results)
    assert page.count("<table") == 4
    assert "<td class='sel'>✔ selected</td>" in page
    assert page.count("✔ selected") == 1
    assert "<td>0.9123</td>" in page and "<td>0.8765</td>" in page and "<td>3.14</td>" in page
    assert "12,451,753" in page
    assert "<td>0.512</td>" in page  # Table III to 3 decimals
    assert "flag: low_predicted_dice" in page and "flag: small_lung" in page
    assert "1,500" in page and ">validate<" in page and ">val<" not in page
    assert "checkpoint" not in page


def test_tables_without_classification(results):
    (results / "classify/table3.csv").unlink()
    assert "Classification disabled" in run_report.tables_page(results)


def test_dataset_previews(results, tmp_path):
    out = results / "report"
    page = run_report.datasets_page(results, out)
    for name in run_report.DATASET_TABLES:
        assert f"href='../CXLSeg/CXLSeg-{name}.csv.gz'" in page
    assert "5 rows · 5 columns" in page and "5 rows · 4 columns" in page and "1 rows · 3 columns" in page
    assert "Reports" in page and "Atelectasis" in page and "DicomPath" in page
    assert "x" * 200 not in page and "…" in page  # long report text is cut
    assert page.count("<table") == 5


def test_sample_grid_is_a_small_jpeg(results, tmp_path):
    path = tmp_path / "grid.jpg"
    assert run_report.sample_grid(results, path, n=4, seed=1) == 4
    data = path.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and len(data) < 300_000
    again = tmp_path / "again.jpg"
    run_report.sample_grid(results, again, n=4, seed=1)
    assert again.read_bytes() == data  # seeded


def test_write_pages_writes_the_four_files(results):
    paths = run_report.write_pages(results, results / "report", demo=True, n_samples=3)
    assert sorted(p.name for p in paths.values()) == ["datasets.html", "samples.jpg", "summary.html", "tables.html"]
    assert all(p.is_file() for p in paths.values())
    assert sum(p.stat().st_size for p in paths.values()) < 4_000_000
    assert "Synthetic demo run" in paths["summary"].read_text()

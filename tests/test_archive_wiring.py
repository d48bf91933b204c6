"""Other archives wired into the DAG (#34): the listing's shard lists, full-depth reads on the shard path, output
paths mirroring the archive, and the per-archive table (CheXmask's lung RLEs, split by patient)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg import io
from cxlseg.archives import pixels, rle
from cxlseg.archives.listing import SHARD_LIST_COLUMNS, ListingFiles, write_listing
from cxlseg.archives.settings import ArchiveSettings
from cxlseg.inference.manifest import write_manifest
from cxlseg.inference.outputs import output_paths
from cxlseg.inference.shard import _list_items
from cxlseg.phantoms.archives import write_archive
from cxlseg.reporting.archive_summary import archive_run_summary, write_archive_run_summary
from cxlseg.tables.archive import COLUMNS, ArchiveTableFiles, archive_table, lungs_at_original_size, patient_split


def listing_files(tmp_path: Path, n: int) -> ListingFiles:
    ids = ArchiveSettings(kind="padchest", shards=n).shard_ids()
    lists = {s: tmp_path / "lists" / f"{s}.parquet" for s in ids}
    return ListingFiles(tmp_path / "records.parquet", tmp_path / "skipped.csv", tmp_path / "summary.json", lists)


def test_the_listing_writes_one_list_per_shard_that_the_shard_loop_reads(tmp_path):
    expected = write_archive("padchest", tmp_path / "archive", seed=3, n_patients=4, side=(80, 96))
    files = listing_files(tmp_path, 3)
    summary = write_listing("padchest", tmp_path / "archive", None, files)
    records = pd.read_parquet(files.records)
    assert summary["images"] == len(records) == len(expected["kept"]) and summary["skipped"] >= 1
    skipped = pd.read_csv(files.skipped)
    assert set(skipped.path) >= set(expected["skipped"]) and skipped.reason.str.len().min() > 0
    lists = [pd.read_parquet(p) for p in files.lists.values()]
    assert sum(len(x) for x in lists) == len(records)
    for shard, frame in zip(files.lists, lists):
        assert list(frame.columns) == SHARD_LIST_COLUMNS
        assert set(records[records.image_id.isin(frame.dicom_id)].shard) <= {shard}  # a patient in one shard
    items = _list_items(next(p for p, f in zip(files.lists.values(), lists) if len(f)))
    item = items[0]
    assert item["out_stem"].endswith(item["dicom_id"]) and "rows" in item
    image, mask = output_paths(item, "png")
    folder = str(Path(item["image_path"]).parent)
    assert image == f"{folder}/{item['dicom_id']}.jpg" and mask == f"{folder}/{item['dicom_id']}-mask.png"


def test_mimic_output_paths_are_unchanged():
    item = {"dicom_id": "ab-cd", "subject_id": "10000032", "study_id": "50414267", "image_path": "x"}
    assert output_paths(item, "jpg") == (
        "files/p10/p10000032/s50414267/ab-cd.jpg",
        "files/p10/p10000032/s50414267/ab-cd-mask.jpg",
    )


def test_the_shard_path_reads_a_16_bit_png_at_full_depth(tmp_path):
    """PadChest's values sit in a narrow band of 16 bits: an 8-bit cut leaves a flat image, the window does not."""
    ramp = np.linspace(30000, 34000, 120 * 100).reshape(120, 100).astype(np.uint16)
    path = tmp_path / "x.png"
    assert cv2.imwrite(str(path), ramp)
    resized, true_hw, factor, note = pixels.decode_for_inference(path, 64, "area")
    assert resized.shape == (64, 64) and true_hw == (120, 100) and factor == 1
    assert int(resized.max()) - int(resized.min()) > 200 and "16-bit" in note
    with pytest.raises(pixels.PixelReadError, match="x.txt"):
        (tmp_path / "x.txt").write_text("not an image")
        pixels.decode_for_inference(tmp_path / "x.txt", 64)


def two_lungs(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[10:50, 8:26] = 1  # image left: the patient's right lung
    mask[12:54, 38:58] = 1  # image right: the patient's left lung
    return mask


def test_each_lung_comes_back_at_the_original_size_in_chexmask_form(tmp_path):
    mask_file = tmp_path / "m.png"
    io.write_image(mask_file, two_lungs() * np.uint8(255))
    cols = lungs_at_original_size(mask_file, 300, 200)
    assert (cols["Height"], cols["Width"]) == (300, 200)
    left, right = rle.decode(cols["Left Lung"], 300, 200), rle.decode(cols["Right Lung"], 300, 200)
    assert left.sum() > 0 and right.sum() > 0 and not (left & right).any()
    assert np.nonzero(left)[1].min() > 100 > np.nonzero(right)[1].max()  # patient's left = image right
    whole = cv2.resize(two_lungs().astype(np.float32), (200, 300), interpolation=cv2.INTER_LINEAR) >= 0.5
    assert np.array_equal(left | right, whole.astype(np.uint8))


def test_the_split_is_by_patient_stable_and_80_10_10():
    splits = pd.Series([patient_split(f"patient{i}") for i in range(4000)])
    shares = splits.value_counts(normalize=True)
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["validate"] - 0.1) < 0.02
    assert patient_split("patient7") == patient_split("patient7")


def test_the_table_keeps_a_failed_file_with_its_reason(tmp_path):
    records = pd.DataFrame(
        [
            {"image_id": i, "patient_id": p, "study_id": f"{p}_s1", "view": "PA", "path": f"{p}/{i}.png",
             "shard": "p00", "source_id": f"{p}/{i}.png"}
            for i, p in (("a1", "pa"), ("b1", "pb"))
        ]
    )  # fmt: skip
    io.write_parquet(records, tmp_path / "records.parquet")
    io.write_image(tmp_path / "out" / "pa" / "a1-mask.png", two_lungs() * np.uint8(255))
    ok = {"dicom_id": "a1", "subject_id": "pa", "study_id": "pa_s1", "image_path": "pa/a1.jpg",
          "mask_path": "pa/a1-mask.png", "status": "ok", "orig_height": 90, "orig_width": 70,
          "qc_predicted_dice": 0.91, "p_not_frontal": 0.02, "qc_flags": "", "film_inverted": False}  # fmt: skip
    bad = {"dicom_id": "b1", "subject_id": "pb", "study_id": "pb_s1", "image_path": None, "mask_path": None,
           "status": "failed", "error": "DICOM: the codec is unknown"}  # fmt: skip
    write_manifest([ok, bad], tmp_path / "p00.parquet")
    files = ArchiveTableFiles(
        tmp_path / "records.parquet", [tmp_path / "p00.parquet"], tmp_path / "t.csv.gz", tmp_path / "s.json"
    )
    summary = archive_table(files, tmp_path / "out", "padchest")
    table = pd.read_csv(files.table, keep_default_na=False)
    assert list(table.columns) == COLUMNS and summary["ok"] == 1 and summary["failed"] == 1
    row = table.set_index("image_id")
    assert row.loc["b1", "error"] == "DICOM: the codec is unknown" and row.loc["b1", "Left Lung"] == ""
    assert rle.decode(row.loc["a1", "Left Lung"], 90, 70).sum() > 0 and row.loc["a1", "Height"] == "90"
    assert row.loc["a1", "split"] == patient_split("pa")


def test_the_run_summary_counts_kept_skipped_failed_and_flagged_per_shard(tmp_path):
    """Rule archive_run_summary: what list_archive kept and skipped (with reasons) and what archive_table segmented,
    failed (with reasons) and flagged, in total and per shard, with the QC model's bar."""
    write_archive("padchest", tmp_path / "archive", seed=3, n_patients=4, side=(80, 96))
    files = listing_files(tmp_path, 3)
    listing = write_listing("padchest", tmp_path / "archive", None, files)
    records = pd.read_parquet(files.records)
    table = records.assign(status="ok", error="", qc_flags="").reindex(columns=COLUMNS, fill_value="")
    table.loc[0, ["status", "error"]] = ["failed", "unreadable image"]
    table.loc[1:2, "qc_flags"] = "low_predicted_dice;not_frontal"
    io.write_csv(table, tmp_path / "padchest-masks.csv.gz")
    summary = write_archive_run_summary(
        files.summary,
        tmp_path / "padchest-masks.csv.gz",
        tmp_path / "run_summary.json",
        ArchiveSettings(kind="padchest", shards=4),  # one shard more than listed: it is counted, empty
        min_predicted_dice=0.83,
    )
    assert io.read_json(tmp_path / "run_summary.json") == summary
    assert summary["listed"] == len(records) >= 3 and summary["skipped"] == listing["skipped"] > 0
    assert summary["skip_reasons"] == listing["skip_reasons"] and summary["not_frontal"] == listing["not_frontal"]
    assert (summary["segmented"], summary["failed"], summary["flagged"]) == (len(records) - 1, 1, 2)
    assert summary["failure_reasons"] == {"unreadable image": 1}
    assert summary["flag_counts"] == {"low_predicted_dice": 2, "not_frontal": 2}
    assert summary["flag_bar"] == {"min_predicted_dice": 0.83}
    assert summary["kind"] == "padchest" and set(summary["per_shard"]) == set(files.lists) | {"p03"}
    assert summary["per_shard"]["p03"] == {"listed": 0, "segmented": 0, "failed": 0, "flagged": 0}
    for shard, counts in summary["per_shard"].items():
        in_shard = table[table.shard == shard]
        assert counts["listed"] == len(in_shard) == counts["segmented"] + counts["failed"]
        assert counts["flagged"] == int((in_shard.qc_flags != "").sum())
    assert sum(c["failed"] for c in summary["per_shard"].values()) == 1


def test_the_run_summary_names_a_file_that_is_no_archive_table(tmp_path):
    io.write_json(tmp_path / "summary.json", {"kind": "padchest", "images": 1, "per_shard": {"p00": 1}})
    io.write_csv(pd.DataFrame({"dicom_id": ["a"], "status": ["ok"]}), tmp_path / "CXLSeg-qc.csv.gz")
    with pytest.raises(ValueError, match=r"CXLSeg-qc\.csv\.gz: not an archive table, no column image_id, shard"):
        archive_run_summary(
            tmp_path / "summary.json",
            tmp_path / "CXLSeg-qc.csv.gz",
            ArchiveSettings(kind="padchest", shards=1),
            min_predicted_dice=0.8,
        )

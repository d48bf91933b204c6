"""The merge's files, named as the merge_tables and quality_table rules name them, and the shard manifests, review
files and tables settings both rules' tests build."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
from cxlseg.config import default_config
from cxlseg.tables.settings import TableFiles, TablesSettings

TABLE_NAMES = {name: f"CXLSeg-{name}.csv.gz" for name in ("metadata", "segmented", "split", "mask")}
FAILED_TABLE = "CXLSeg-failed.csv.gz"
QC_TABLE = "CXLSeg-qc.csv.gz"
SUMMARY = "summary.json"


def table_files(folder: Path):
    """The merge_tables rule's outputs, in `folder`."""
    folder = Path(folder)
    return TableFiles(
        **{k: folder / v for k, v in TABLE_NAMES.items()}, failed=folder / FAILED_TABLE, summary=folder / SUMMARY
    )


def image_row(subject, study, dicom, status="ok", error="", flags=()):
    folder = f"files/p{str(subject)[:2]}/p{subject}/s{study}"
    return {
        "dicom_id": dicom,
        "subject_id": subject,
        "study_id": study,
        "source_path": f"{folder}/{dicom}.jpg",
        "image_path": f"{folder}/{dicom}.jpg",
        "mask_path": f"{folder}/{dicom}-mask.jpg",
        "orig_height": 3056,
        "orig_width": 2544,
        "lung_area_fraction": 0.3,
        "n_components": 2,
        "left_right_ratio": 1.1,
        "mean_fg_prob": 0.95,
        "qc_predicted_dice": 0.9,
        "qc_flags": list(flags),
        "status": status,
        "error": error,
        "model_id": "unet",
    }


def write_manifest(path, rows, flags_as_string=False):
    frame = pd.DataFrame(rows)
    if flags_as_string:
        frame["qc_flags"] = frame["qc_flags"].map(";".join)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def write_decisions(path, text: str):
    path.write_text(text, encoding="utf-8")
    return str(path)


def archive_rows() -> tuple[list[dict], list[dict]]:
    """Two shards' rows: three subjects in three pXX prefixes; d2 flagged, d3 turned upright by the film check, d5
    failed, d8 with an unsafe path."""
    rows_a = [
        image_row(10000032, 50414267, "d1"),
        image_row(10000032, 50414267, "d2", flags=["low_lung_area", "one_component"]),
        dict(image_row(10000032, 53189527, "d3"), film_inverted=True, film_cropped=False),  # the film check undid it
    ]
    rows_b = [
        image_row(11000011, 51000001, "d4"),
        image_row(11000011, 51000001, "d5", status="failed", error="truncated JPEG (no end-of-image marker)"),
        image_row(12000022, 52000002, "d6"),
        image_row(12000022, 52000003, "d7"),
        dict(image_row(12000022, 52000003, "d8"), image_path="../../etc/passwd"),
    ]
    return rows_a, rows_b


def tables_settings(**changes) -> TablesSettings:
    """The tables section at its schema defaults (as the merge rule builds it), with `changes` (unvalidated, so
    merge_tables' own checks are what a bad value meets)."""
    return dataclasses.replace(TablesSettings.from_config(default_config()), **changes)

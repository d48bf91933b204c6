"""Merge the shard manifests into the four CXLSeg tables, the failed table and the merge's summary (the quality
table is `tables.quality`'s, a rule of its own).

The tables are laid out so that the CXLSeg authors' scripts work unchanged:
``pd.merge(segmented, split)`` and ``pd.merge(.., mask.rename(DicomPath=DicomPathMask))``
join on (dicom_id, subject_id, study_id) only, and dropping the id and split
columns from segmented + split leaves DicomPath and the 14 CheXpert labels.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import pandas as pd

from cxlseg.io import write_csv, write_json
from cxlseg.mimic import CHEXPERT_LABELS
from cxlseg.mimic.radiology_text import REPORT_FILE_PROBLEMS
from cxlseg.mimic.sources import extract_study_reports, read_chexpert, read_metadata
from cxlseg.tables import provenance, quality
from cxlseg.tables.settings import TableFiles, TablesSettings
from cxlseg.training.splits import assign_split

log = logging.getLogger(__name__)

IDS = quality.IDS

_METADATA_LEADING = ["PatientOrientation", "ViewPosition", "StudyDate", "StudyTime"]
_ORIENTATION_SOURCE = "PatientOrientationCodeSequence_CodeMeaning"
FAILED_COLUMNS = quality.FAILED_COLUMNS
# How many threads the merge uses: speed only, never the tables' bytes, so not config keys. Report reads wait on
# the file system (a network share on a cluster), so more threads than the job's cores keep it busy; gzip level 9
# dominates the writes and zlib releases the GIL, so each of the five tables compresses on a thread of its own.
REPORT_WORKERS = 8
WRITE_WORKERS = len(TableFiles.TABLES) + 1  # the four CXLSeg tables and the failed table


@contextlib.contextmanager
def _step(name: str):
    """Log each merge step's duration, so a slow archive shows where the minute goes."""
    start = time.perf_counter()
    yield
    log.info("%s: %.1f s", name, time.perf_counter() - start)


# ---------------------------------------------------------------- tables


def build_tables(
    images: pd.DataFrame, study_reports: pd.DataFrame, metadata: pd.DataFrame, chexpert: pd.DataFrame, split
) -> dict[str, pd.DataFrame]:
    """The four CXLSeg tables, rows in (subject_id, study_id, dicom_id) order."""
    ids = images[IDS].reset_index(drop=True)
    meta = ids.merge(study_reports, on=["subject_id", "study_id"], how="left", validate="many_to_one")
    meta = meta.merge(metadata, on="dicom_id", how="left", validate="one_to_one")
    if _ORIENTATION_SOURCE in meta and "PatientOrientation" not in meta:
        meta.insert(0, "PatientOrientation", meta[_ORIENTATION_SOURCE])
    other = [c for c in metadata.columns if c not in IDS and c not in _METADATA_LEADING]
    for column in _METADATA_LEADING + other:
        if column not in meta:
            meta[column] = ""
    meta[_METADATA_LEADING + other] = meta[_METADATA_LEADING + other].fillna("")
    metadata_table = meta[IDS + ["Reports"] + _METADATA_LEADING + other + ["ReportRule"]]
    labels = [c for c in chexpert.columns if c in CHEXPERT_LABELS]
    segmented = ids.assign(DicomPath=images["image_path"].to_numpy())
    segmented = segmented.merge(chexpert, on=["subject_id", "study_id"], how="left", validate="many_to_one")
    for column in labels:  # a study without a CheXpert row: every label blank
        segmented[column] = segmented[column].fillna("")
    return {
        "metadata": metadata_table,
        "segmented": segmented[IDS + ["DicomPath"] + labels],
        "split": ids.assign(split=split).dropna(subset=["split"]).reset_index(drop=True),  # unlisted: no row
        "mask": ids.assign(DicomPath=images["mask_path"].to_numpy()),
    }


def merge_tables(
    manifest_paths: Iterable[os.PathLike | str],
    metadata_csv: os.PathLike | str,
    chexpert_csv: os.PathLike | str,
    reports_root: os.PathLike | str,
    out: TableFiles,
    settings: "TablesSettings",
    *,
    official_split_csv: os.PathLike | str | None = None,
    cxlseg_split_csv: os.PathLike | str | None = None,
    review_csv: os.PathLike | str | None = None,
    run: dict | None = None,
    report_workers: int = REPORT_WORKERS,
    write_workers: int = WRITE_WORKERS,
    progress: bool = True,
) -> dict:
    """Write the four CXLSeg tables, the failed table and the summary (`out`); return the summary.

    The four tables list every image with a mask, minus QC-flagged ones nobody accepted when
    include_flagged is False and those a person rejected when drop_rejected is True (`review_csv`, the rule's
    input `review`). `cxlseg_split_csv` is the published split that `split_source: cxlseg` copies (input
    `cxlseg_split`); the settings hold the choices, the files read are the ones the rule declares.
    Every image without a mask is a row of CXLSeg-failed.csv.gz with its reason. CXLSeg-qc.csv.gz
    is `quality.write_qc_table`'s. summary.json's `provenance` says which run the tables describe: `run` (config hash,
    code), and a hash of every manifest read and table written.
    """
    manifest_paths = [Path(p) for p in manifest_paths]
    with _step("read and validate manifests"):
        rows, duplicates = quality.manifest_rows(manifest_paths)
    with _step("quality and review"):
        images = quality.masked_images(rows, settings, review_csv)
        images = images[images["in_tables"]].reset_index(drop=True)

    with _step("reports"):
        studies = images[["subject_id", "study_id"]].drop_duplicates().reset_index(drop=True)
        study_reports = extract_study_reports(
            studies, reports_root, workers=report_workers, progress=progress, fallbacks=settings.report_text
        )
    with _step("metadata and CheXpert"):
        metadata = read_metadata(metadata_csv, images["dicom_id"])
        chexpert = read_chexpert(chexpert_csv)
    with _step("split"):
        split, split_info = assign_split(
            images,
            source=settings.split_source,
            ratios=settings.ratios,
            seed=settings.seed,
            official_split_csv=official_split_csv,
            split_unit=settings.split_unit,
            cxlseg_split_csv=cxlseg_split_csv,
            missing=settings.cxlseg_split_missing,
        )
    with _step("build tables"):
        tables = build_tables(images, study_reports, metadata, chexpert, split)
        failed = quality.failed_table(rows[rows["reason"] != ""])
    with _step("write tables"):
        outputs = [(tables[key], path) for key, path in out.tables().items()] + [(failed, out.failed)]
        _write_all(outputs, write_workers)
    summary = {
        **_row_counts(manifest_paths, rows, duplicates, tables, failed, settings),
        **_source_counts(images, study_reports, metadata, chexpert),
        "split": split_info,
        "provenance": provenance.provenance(run, manifest_paths, [p for _, p in outputs]),
    }
    write_json(out.summary, summary)
    log.info(
        "wrote %d images to %s (%d failed, %d flagged)",
        len(images),
        out.segmented,
        summary["failed"],
        summary["flagged"],
    )
    return summary


def _write_all(outputs: list[tuple[pd.DataFrame, Path]], workers: int) -> None:
    """gzip level 9 dominates the merge; zlib releases the GIL, so the tables compress side by side."""
    if workers <= 1:
        for frame, path in outputs:
            write_csv(frame, path)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(write_csv, frame, path) for frame, path in outputs]:
            future.result()


def _row_counts(manifest_paths, rows, duplicates, tables, failed, settings: TablesSettings) -> dict:
    """summary.json's image counts: manifest rows in, table rows out, failed (flagged: `quality_counts`)."""
    # group by the reason's kind: the text after ':' names files and would make one key per image
    reasons = failed.loc[failed["status"] == "failed", "reason"].str.replace("segmentation failed: ", "", regex=False)
    failure_kinds = reasons.str.split(":").str[0].value_counts()
    return {
        "manifests": [p.name for p in manifest_paths],
        "manifest_rows": int(len(rows) + duplicates),
        "duplicate_rows_dropped": int(duplicates),
        "rows": {key: int(len(table)) for key, table in tables.items()},
        "images_ok": int((rows["reason"] == "").sum()),
        "failed": int((failed["status"] == "failed").sum()),
        "failed_by_reason": {k: int(v) for k, v in failure_kinds.sort_index().items()},
        "flagged": int(((rows["reason"] == "") & (rows["qc_flags"] != "")).sum()),
        "flagged_in_tables": bool(settings.include_flagged),
        "rejected_dropped": bool(settings.drop_rejected),
    }


def _source_counts(images, study_reports, metadata, chexpert) -> dict:
    """summary.json's counts of what the MIMIC sources lacked for the tabled images: reports, metadata, labels."""
    why = {
        "none": "no extractable section",
        "study_rule_none": "MIT-LCP rule: no report text",
        **REPORT_FILE_PROBLEMS,
    }
    no_report = study_reports[study_reports["ReportRule"].isin(list(why))]
    with_labels = images[["subject_id", "study_id"]].drop_duplicates().merge(chexpert[["subject_id", "study_id"]])
    return {
        "subjects": int(images["subject_id"].nunique()),
        "studies": int(len(study_reports)),
        "reports_by_rule": {k: int(v) for k, v in study_reports["ReportRule"].value_counts().sort_index().items()},
        "studies_without_report_count": int(len(no_report)),
        "studies_without_report": [
            {"subject_id": int(s), "study_id": int(t), "reason": why[r]}
            for s, t, r in zip(no_report["subject_id"], no_report["study_id"], no_report["ReportRule"])
        ],
        "images_without_metadata": int((~images["dicom_id"].isin(metadata["dicom_id"])).sum()),
        "studies_without_chexpert": int(len(study_reports) - len(with_labels)),
    }

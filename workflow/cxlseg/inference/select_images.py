"""Which MIMIC-CXR-JPG images to segment, and in which shard: frontal views of studies with a usable report.

No torch here, so the `select_images` rule runs in the light environment. A study counts as reported only
when its report file exists AND the CXLSeg report text (findings + impression, comparison as fallback) is
not empty: that is where CXLSeg's 243,334 frontal images become 243,324. Every filter's count, and each
cause of a dropped study, lands in `selection_summary.json`.

`cxlseg.view_check.samples` draws the view check's real films from the same metadata: side views (LATERAL/LL) as
non-frontal and as many PA/AP films as frontal, so real MIMIC texture never tells the two classes apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxlseg import io
from cxlseg.config import RuleSettings, build_settings, shard_ids
from cxlseg.mimic import id_problem, image_relpath, report_relpath, shard_of
from cxlseg.mimic import radiology_text as reports

log = logging.getLogger(__name__)

METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
LIST_COLUMNS = ("dicom_id", "subject_id", "study_id", "image_path")
# Why a study's frontal images are dropped (keys of selection_summary.json's counts, with what to call them):
# the report file's problems as the tables name them, or a readable report with no CXLSeg text.
NO_REPORT_FILE, UNREADABLE_REPORT = reports.NO_REPORT_FILE, reports.UNREADABLE_REPORT
EMPTY_REPORT = "empty_report"
DROP_CAUSES = {**reports.REPORT_FILE_PROBLEMS, EMPTY_REPORT: "empty report"}


@dataclass(frozen=True)
class SelectionSettings(RuleSettings):
    """Rule select_images: the `mimic:` config section as far as selection needs it (defaults: the schema)."""

    views: tuple[str, ...]
    shards: tuple[str, ...]
    chunks_per_shard: int
    report_text: str

    @classmethod
    def from_config(cls, config: dict) -> "SelectionSettings":
        return build_settings(cls, config["mimic"])

    @property
    def shard_ids(self) -> list[str]:
        return shard_ids(self.shards, self.chunks_per_shard)


def read_view_metadata(metadata_csv) -> pd.DataFrame:
    meta = pd.read_csv(metadata_csv, dtype=str, keep_default_na=False)
    missing = [c for c in METADATA_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"{metadata_csv}: missing column(s) {missing}")
    for col in ("Rows", "Columns"):
        meta[col] = pd.to_numeric(meta[col], errors="coerce").astype("Int64") if col in meta else pd.NA
    return meta


def exclude_bad_ids(frontal: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    problems = [id_problem(d, s, t) for d, s, t in zip(frontal.dicom_id, frontal.subject_id, frontal.study_id)]
    problems = pd.Series(problems, index=frontal.index)
    dup = frontal.dicom_id.duplicated(keep="first") & (problems == "")
    problems[dup] = "duplicate dicom_id (first occurrence kept)"
    bad = frontal[problems != ""]
    excluded = [
        {"dicom_id": d, "subject_id": s, "study_id": t, "reason": r}
        for d, s, t, r in zip(bad.dicom_id, bad.subject_id, bad.study_id, problems[problems != ""])
    ]
    return frontal[problems == ""], excluded


def study_report_status(subject_id: str, study_id: str, reports_root, fallbacks: str = "project") -> str:
    """'' when the study has a usable report (mimic.report_text's rules), else why not (one of DROP_CAUSES)."""
    path = io.safe_join(reports_root, report_relpath(subject_id, study_id))
    report, rule = reports.study_report(path, study_id, fallbacks)
    if rule in reports.REPORT_FILE_PROBLEMS:
        return rule
    return "" if report.strip() else EMPTY_REPORT


def _report_status(images: pd.DataFrame, reports_root, fallbacks: str) -> dict[tuple[str, str], str]:
    """One report read per study, not per image."""
    studies = images[["subject_id", "study_id"]].drop_duplicates()
    return {
        (s, t): study_report_status(s, t, reports_root, fallbacks)
        for s, t in tqdm(
            zip(studies.subject_id, studies.study_id), total=len(studies), desc="reports", unit="study", mininterval=5
        )
    }


def _assign_chunks(df: pd.DataFrame, chunks: int) -> pd.Series:
    """Contiguous, balanced blocks of the (subject, study, dicom) order inside each prefix: stable and
    keeps a subject's folders together on one worker."""
    rank = df.groupby("prefix").cumcount()
    size = df.groupby("prefix")["dicom_id"].transform("size")
    return (rank * chunks // size).astype(int)


def _shard_table(images: pd.DataFrame, shards, chunks: int) -> pd.DataFrame:
    """The images of the configured prefixes in (prefix, subject, study, dicom) order, with shard ids and paths."""
    images = images.assign(prefix=[shard_of(s) for s in images.subject_id])
    selected = images[images.prefix.isin(list(shards))]
    selected = selected.sort_values(["prefix", "subject_id", "study_id", "dicom_id"], kind="stable")
    selected = selected.reset_index(drop=True)
    chunk = _assign_chunks(selected, chunks) if len(selected) else pd.Series(dtype="int64")
    return pd.DataFrame(
        {
            "dicom_id": selected.dicom_id,
            "subject_id": selected.subject_id,
            "study_id": selected.study_id,
            "view_position": selected.ViewPosition,
            "rows": selected.Rows,
            "columns": selected.Columns,
            "prefix": selected.prefix,
            "chunk": chunk.astype("int64"),
            "shard_id": selected.prefix if chunks == 1 else selected.prefix + "-c" + chunk.astype(str),
            "image_path": [
                image_relpath(s, t, d) for s, t, d in zip(selected.subject_id, selected.study_id, selected.dicom_id)
            ],
            "report_path": [report_relpath(s, t) for s, t in zip(selected.subject_id, selected.study_id)],
        }
    )


def select_images(metadata_csv, mimic_root, reports_root, settings: SelectionSettings) -> tuple[pd.DataFrame, dict]:
    """Frontal images whose study has a usable report, assigned to shards; returns (images, summary).

    Image paths in the table are relative to `mimic_root`. Rows with unsafe ids are excluded and
    listed in the summary with the reason.
    """
    ids = settings.shard_ids  # bad shard names fail before the slow report scan
    reports_root = reports_root if reports_root is not None else mimic_root
    meta = read_view_metadata(metadata_csv)
    summary = {
        "metadata_csv": str(metadata_csv),
        "mimic_root": str(mimic_root),
        "reports_root": str(reports_root),
        "views": list(settings.views),
        "shards": list(settings.shards),
        "chunks_per_shard": int(settings.chunks_per_shard),
        "metadata_images": int(len(meta)),
    }
    frontal = meta[meta.ViewPosition.isin(list(settings.views))]
    summary["frontal_images"] = int(len(frontal))
    valid, excluded = exclude_bad_ids(frontal)
    summary["valid_id_images"] = int(len(valid))
    summary["excluded"] = excluded
    status = _report_status(valid, reports_root, settings.report_text)
    per_image = np.array([status[k] for k in zip(valid.subject_id, valid.study_id)], dtype=object)
    summary["frontal_studies"] = int(len(status))
    for cause in DROP_CAUSES:
        dropped = sorted(k for k, v in status.items() if v == cause)
        summary[f"studies_{cause}"] = int(len(dropped))
        summary[f"images_{cause}"] = int((per_image == cause).sum())
        summary[f"studies_{cause}_ids"] = [{"subject_id": s, "study_id": t} for s, t in dropped]
    summary["frontal_studies_with_report"] = int(sum(v == "" for v in status.values()))
    reported = valid[per_image == ""].copy()
    summary["images_with_report"] = int(len(reported))

    table = _shard_table(reported, settings.shards, settings.chunks_per_shard)
    summary["images_in_shards"] = int(len(table))
    per_shard = table.shard_id.value_counts().reindex(ids, fill_value=0)
    summary["images_per_shard"] = {s: int(n) for s, n in per_shard.items()}
    log.info(
        "selection: %d metadata -> %d frontal -> %d valid ids -> %d with a usable report (dropped images: %s) "
        "-> %d in shards",
        summary["metadata_images"],
        summary["frontal_images"],
        summary["valid_id_images"],
        summary["images_with_report"],
        ", ".join(f"{summary[f'images_{cause}']} {why}" for cause, why in DROP_CAUSES.items()),
        summary["images_in_shards"],
    )
    return table, summary


def write_selection(table: pd.DataFrame, summary: dict, selection_path, summary_path, lists: dict) -> None:
    """selection.parquet, selection_summary.json and the list of every configured shard (`lists`: shard id ->
    path, the rule's outputs; a shard without images gets an empty list)."""
    io.write_parquet(table, selection_path)
    io.write_json(summary_path, summary)
    for shard, path in lists.items():
        io.write_parquet(table[table.shard_id == shard].reset_index(drop=True), path)

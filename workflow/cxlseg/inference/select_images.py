"""Which MIMIC-CXR-JPG images to segment, and in which shard: frontal views of studies with a usable report.

No torch here, so the `select_images` rule runs in the light environment. A study counts as reported only
when its report file exists AND the CXLSeg report text (findings + impression, comparison as fallback) is
not empty: that is where CXLSeg's 243,334 frontal images become 243,324. Every filter's count, and each
cause of a dropped study, lands in `selection_summary.json`.

`pick_view_samples` draws the view check's real films from the same metadata: side views (LATERAL/LL) as
non-frontal and as many PA/AP films as frontal, so real MIMIC texture never tells the two classes apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxlseg import io
from cxlseg.config import build_settings, shard_ids
from cxlseg.mimic import FRONTAL_VIEWS, LATERAL_VIEWS, SPLITS, id_problem, image_relpath, report_relpath, shard_of
from cxlseg.tables import report_text as reports

log = logging.getLogger(__name__)

METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
LIST_COLUMNS = ("dicom_id", "subject_id", "study_id", "image_path")
VIEW_SAMPLE_COLUMNS = ("dicom_id", "subject_id", "study_id", "image_path", "view", "rows", "columns", "split")
VIEW_SAMPLE_VALIDATE_SHARE = 0.2  # share of a view sample's subjects held out to validate the view check
# Why a study's frontal images are dropped (keys of selection_summary.json's counts, with what to call them):
# the report file's problems as the tables name them, or a readable report with no CXLSeg text.
NO_REPORT_FILE, UNREADABLE_REPORT = reports.NO_REPORT_FILE, reports.UNREADABLE_REPORT
EMPTY_REPORT = "empty_report"
DROP_CAUSES = {**reports.REPORT_FILE_PROBLEMS, EMPTY_REPORT: "empty report"}


@dataclass(frozen=True)
class SelectionSettings:
    """The `mimic:` config section as far as selection needs it (defaults live in the schema)."""

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


def _read_metadata(metadata_csv) -> pd.DataFrame:
    meta = pd.read_csv(metadata_csv, dtype=str, keep_default_na=False)
    missing = [c for c in METADATA_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"{metadata_csv}: missing column(s) {missing}")
    for col in ("Rows", "Columns"):
        meta[col] = pd.to_numeric(meta[col], errors="coerce").astype("Int64") if col in meta else pd.NA
    return meta


def _exclude_bad_ids(frontal: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
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
    meta = _read_metadata(metadata_csv)
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
    valid, excluded = _exclude_bad_ids(frontal)
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


def write_selection(
    table: pd.DataFrame, summary: dict, selection_path, summary_path, lists_dir, shard_ids_: list[str]
) -> None:
    """selection.parquet, selection_summary.json and one list per configured shard (empty when absent)."""
    io.write_parquet(table, selection_path)
    io.write_json(summary_path, summary)
    for shard in shard_ids_:
        io.write_parquet(
            table[table.shard_id == shard].reset_index(drop=True), io.safe_join(lists_dir, f"{shard}.parquet")
        )


def run_selection(metadata_csv, mimic_root, reports_root, out_dir, settings: SelectionSettings) -> dict:
    """The select_images stage: `selection.parquet`, `selection_summary.json` and `lists/{shard}.parquet`."""
    table, summary = select_images(metadata_csv, mimic_root, reports_root, settings)
    out_dir = Path(out_dir)
    write_selection(
        table,
        summary,
        out_dir / "selection.parquet",
        out_dir / "selection_summary.json",
        out_dir / "lists",
        settings.shard_ids,
    )
    return summary


# --------------------------------------------------------------------------- view check samples


def _draw(images: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n rows drawn without replacement from a (dicom_id)-sorted copy: the CSV's row order never matters."""
    images = images.sort_values("dicom_id", kind="stable").reset_index(drop=True)
    return images.iloc[np.sort(rng.choice(len(images), n, replace=False))]


def _subject_split(subjects: pd.Series, rng: np.random.Generator, share: float) -> list[str]:
    """'validate' for a seeded `share` of the subjects (at least one when there are two), else 'train': no
    validation subject's films were trained on."""
    unique = np.sort(subjects.unique())
    n_val = min(len(unique) - 1, max(1, round(share * len(unique)))) if len(unique) > 1 else 0
    held_out = set(rng.permutation(unique)[:n_val])
    return [SPLITS[1] if s in held_out else SPLITS[0] for s in subjects]


def _sole_frontals(frontal: pd.DataFrame) -> pd.DataFrame:
    """Frontal films that are their study's only PA/AP image: a side view mislabelled PA/AP usually shows up
    as a study's second frontal, so skipping those studies keeps most label noise out of the positives."""
    return frontal[frontal.groupby("study_id")["dicom_id"].transform("size") == 1]


def pick_view_samples(metadata_csv, n_per_class: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """The view check's real archive films: up to `n_per_class` seeded side views (LATERAL/LL: not frontal)
    and exactly as many PA/AP films (frontal), split by subject into train/validate; returns (table, summary).

    Metadata labels are trusted (a few wrong ones are noise the training tolerates); frontal films come from
    studies with one PA/AP image only. Rows with unsafe ids are dropped. No side view at all gives an empty table: the view check then trains on phantoms only.
    """
    meta = _read_metadata(metadata_csv) if n_per_class > 0 else pd.DataFrame(columns=list(METADATA_COLUMNS))
    valid, excluded = _exclude_bad_ids(meta[meta.ViewPosition.isin(LATERAL_VIEWS + FRONTAL_VIEWS)])
    lateral = valid[valid.ViewPosition.isin(LATERAL_VIEWS)]
    frontal = _sole_frontals(valid[valid.ViewPosition.isin(FRONTAL_VIEWS)])
    n = min(n_per_class, len(lateral), len(frontal))
    rng = np.random.default_rng([seed, 14, 3])
    picked = pd.concat([_draw(lateral, n, rng), _draw(frontal, n, rng)], ignore_index=True)
    table = pd.DataFrame(
        {
            "dicom_id": picked.dicom_id,
            "subject_id": picked.subject_id,
            "study_id": picked.study_id,
            "image_path": [
                image_relpath(s, t, d) for s, t, d in zip(picked.subject_id, picked.study_id, picked.dicom_id)
            ],
            "view": picked.ViewPosition,
            "rows": picked.get("Rows", pd.Series(pd.NA, index=picked.index)).astype("Int64"),
            "columns": picked.get("Columns", pd.Series(pd.NA, index=picked.index)).astype("Int64"),
            "split": _subject_split(picked.subject_id, rng, VIEW_SAMPLE_VALIDATE_SHARE),
        },
        columns=list(VIEW_SAMPLE_COLUMNS),
    )
    summary = {
        "n_per_class": int(n_per_class),
        "seed": int(seed),
        "lateral_available": int(len(lateral)),
        "frontal_available": int(len(frontal)),
        "picked_per_class": int(n),
        "validate_images": int((table.split == SPLITS[1]).sum()),
        "excluded": excluded,
    }
    if n_per_class > 0 and n < n_per_class:
        log.warning(
            "view samples: %d of %d per class (%d side views, %d sole frontal films with valid ids)%s",
            n,
            n_per_class,
            len(lateral),
            len(frontal),
            "; no side view in the archive: the view check trains on phantoms only" if not len(lateral) else "",
        )
    log.info(
        "view samples: %d lateral + %d frontal archive films (%d held out by subject), %d rows excluded",
        n,
        n,
        summary["validate_images"],
        len(excluded),
    )
    return table, summary


def write_view_samples(metadata_csv, n_per_class: int, seed: int, out_path) -> dict:
    """Rule view_samples: the picked films as a parquet list (see `pick_view_samples`)."""
    table, summary = pick_view_samples(metadata_csv, n_per_class, seed)
    io.write_parquet(table, out_path)
    return summary

"""CXLSeg-qc.csv.gz and CXLSeg-failed.csv.gz: what is known about each mask's quality, and what failed.

Rule quality_table's job (`write_qc_table`), and the rows both it and the merge start from: the shard manifests'
rows, each with the reason it has no usable mask (`manifest_rows`), and the masks with the review file applied
(`masked_images`). `check_review_file` reads the review file as this rule will, at DAG build.

The four CXLSeg tables stay exactly as published; quality sits in a fifth table that joins them on
(dicom_id, subject_id, study_id): one row per image that has a mask, with its predicted Dice,
p_not_frontal, whether the film check turned the film upright or cropped a light-box border, QC flags, the
models that made it and a person's review decision. `status` says which
one applies, review first: rejected / accepted (a person decided), flagged (QC flagged it), ok.
Images without a mask are the failed table's, with the reason.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from cxlseg.inference.manifest import PATH_COLUMNS, read_manifests
from cxlseg.io import UnsafePathError, safe_join, write_csv, write_json
from cxlseg.tables import provenance
from cxlseg.tables.review import read_decisions
from cxlseg.tables.settings import TablesSettings

log = logging.getLogger(__name__)

IDS = ["dicom_id", "subject_id", "study_id"]
QC_COLUMNS = IDS + [
    "shard",
    "status",
    "qc_predicted_dice",
    "p_not_frontal",
    "film_inverted",
    "film_cropped",
    "qc_flags",
    "models",
    "model_id",
    "review",
    "review_note",
    "in_tables",
]
FAILED_COLUMNS = IDS + ["status", "reason", "source_path"]
STATUSES = ("rejected", "accepted", "flagged", "ok")


def model_names(model_ids: pd.Series) -> pd.Series:
    """'unetplusplus-1a2b+sa_unet-3c4d' (the predictor's id: members joined by '+') -> 'unetplusplus+sa_unet'."""
    return model_ids.fillna("").str.replace(r"-[0-9a-f]{6,}(?=\+|$)", "", regex=True)


def apply_review(images: pd.DataFrame, decisions: pd.DataFrame | None) -> pd.DataFrame:
    """`images` (rows with a mask) plus review / review_note columns ('' where nobody decided)."""
    out = images.assign(review="", review_note="")
    if decisions is None or decisions.empty:
        return out
    by_id = decisions.set_index("dicom_id")
    hit = out["dicom_id"].isin(by_id.index)
    out.loc[hit, "review"] = by_id.loc[out.loc[hit, "dicom_id"], "decision"].to_numpy()
    out.loc[hit, "review_note"] = by_id.loc[out.loc[hit, "dicom_id"], "note"].to_numpy()
    return out


def image_status(images: pd.DataFrame) -> np.ndarray:
    """rejected / accepted / flagged / ok per row of `apply_review`'s frame: a person's decision wins over QC."""
    review, flagged = images["review"].to_numpy(), images["qc_flags"].to_numpy() != ""
    return np.select(
        [review == "rejected", review == "accepted", flagged], ["rejected", "accepted", "flagged"], "ok"
    ).astype(object)


def in_tables(status: np.ndarray, include_flagged: bool, drop_rejected: bool) -> np.ndarray:
    """Which masked images the four tables list: all, less flagged ones a person did not accept when
    include_flagged is off, less rejected ones when drop_rejected is on."""
    keep = np.ones(len(status), dtype=bool)
    if not include_flagged:
        keep &= status != "flagged"
    if drop_rejected:
        keep &= status != "rejected"
    return keep


def qc_table(images: pd.DataFrame) -> pd.DataFrame:
    """The fifth table from the masked images (with review, status and in_tables), in (subject, study, dicom) order."""
    table = images.assign(models=model_names(images["model_id"]))
    for column in ("qc_predicted_dice", "p_not_frontal"):
        table[column] = table[column].astype(float).round(4)
    return table[QC_COLUMNS].sort_values(IDS, kind="stable").reset_index(drop=True)


def failed_table(failures: pd.DataFrame) -> pd.DataFrame:
    """Images without a usable mask, each with the first reason found."""
    table = failures.assign(status="failed")[FAILED_COLUMNS]
    return table.sort_values(IDS, kind="stable").reset_index(drop=True)


def quality_counts(qc: pd.DataFrame, review_file) -> dict:
    """The quality table in numbers: masks per status, flagged by QC (whatever the review said), the review."""
    status = qc["status"].value_counts()
    return {
        "masks": int(len(qc)),
        "flagged": int((qc["qc_flags"] != "").sum()),
        "by_status": {s: int(status.get(s, 0)) for s in STATUSES},
        "review": {
            "file": str(review_file) if review_file else None,
            "accepted": int((qc["review"] == "accepted").sum()),
            "rejected": int((qc["review"] == "rejected").sum()),
            "rejected_in_tables": int(((qc["review"] == "rejected") & qc["in_tables"]).sum()),
        },
    }


def _path_errors(frame: pd.DataFrame, column: str) -> pd.Series:
    """Reason per row whose path would leave the output root, '' for the others.

    The root is a fixed label so the failed table does not depend on where it is written.
    """
    reasons = pd.Series("", index=frame.index, dtype=object)
    for idx in frame.index[frame[f"{column}_suspect"].to_numpy()]:
        try:
            safe_join("<output root>", frame.at[idx, column])
        except UnsafePathError as exc:
            reasons.at[idx] = f"unsafe {column}: {exc}"
    return reasons


def validate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a `reason` column: non-empty, with the first problem found, for rows that cannot go into the tables."""
    reason = np.full(len(frame), "", dtype=object)

    def note(mask, text) -> None:
        mask = np.asarray(mask, dtype=bool) & (reason == "")
        reason[mask] = text[mask] if isinstance(text, np.ndarray) else text

    for column in ["subject_id", "study_id"]:
        note(~frame[f"{column}_valid"].to_numpy(), f"invalid {column}")
    note(frame["dicom_id"].to_numpy() == "", "empty dicom_id")
    status = frame["status"].to_numpy()
    error = frame["error"].to_numpy()
    note(status == "failed", "segmentation failed: " + np.where(error == "", "no error recorded", error).astype(object))
    note(~np.isin(status, ["ok", "failed"]), "unknown status " + status.astype(object))
    for column in PATH_COLUMNS:
        path_reason = _path_errors(frame, column).to_numpy()
        note(path_reason != "", path_reason)
    helper = [c for c in frame.columns if c.endswith(("_valid", "_suspect"))]
    return frame.drop(columns=helper).assign(reason=reason)


def _drop_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A re-run shard can list an image twice: keep the first usable row per dicom_id."""
    order = frame.assign(_bad=frame["reason"] != "").sort_values(["_bad"], kind="stable")
    kept = order.drop_duplicates("dicom_id", keep="first").drop(columns="_bad").sort_index()
    return kept, len(frame) - len(kept)


def manifest_rows(manifest_paths: Iterable[os.PathLike | str]) -> tuple[pd.DataFrame, int]:
    """Validated rows of the shard manifests (`reason` says why a row has no usable mask), one per dicom_id in
    (subject_id, study_id, dicom_id) order, and how many duplicate rows were dropped."""
    rows, duplicates = _drop_duplicates(validate_rows(read_manifests(manifest_paths, normalised=True)))
    return rows.sort_values(IDS, kind="stable").reset_index(drop=True), duplicates


def review_decisions(rows: pd.DataFrame, review_file) -> pd.DataFrame:
    """`review_file` read against the manifest rows: only an id with a mask can be decided, and a failed id is
    refused as such (one reading for rule quality_table and for the check at DAG build)."""
    good = rows["reason"] == ""
    return read_decisions(review_file, rows.loc[good, "dicom_id"], rows.loc[~good, "dicom_id"])


def masked_images(rows: pd.DataFrame, settings: TablesSettings, review_file) -> pd.DataFrame:
    """The rows with a mask, with the review decisions of `review_file` (None: no review), `status` and
    `in_tables`."""
    masked = rows[rows["reason"] == ""].reset_index(drop=True)
    decisions = review_decisions(rows, review_file) if review_file else None
    if decisions is not None:
        log.info("%s: %d decisions (%s)", review_file, len(decisions), decisions["decision"].value_counts().to_dict())
    masked = apply_review(masked, decisions)
    masked["status"] = image_status(masked)
    masked["in_tables"] = in_tables(masked["status"].to_numpy(), settings.include_flagged, settings.drop_rejected)
    return masked


def check_review_file(review_file: os.PathLike | str, manifest_paths: Iterable[os.PathLike | str], rows=None) -> None:
    """Read `review_file` as rule quality_table will, against the shard manifests on disk (the ids checked only
    when every manifest is there): raises ReviewFileError. Why: run at DAG build, a typo stops the run before
    Snakemake deletes the quality table it would rebuild, and with one line instead of a job's traceback.
    `rows`: manifest paths -> (dicom_id, reason) rows, for another archive's manifests (default: MIMIC's)."""
    paths = [Path(p) for p in manifest_paths]
    if paths and all(p.is_file() for p in paths):
        review_decisions(rows(paths) if rows else manifest_rows(paths)[0], review_file)
    else:
        read_decisions(review_file, None)


def write_qc_table(
    manifest_paths: Iterable[os.PathLike | str],
    out_path,
    settings: TablesSettings,
    *,
    merged: os.PathLike | str | None = None,
    summary: os.PathLike | str | None = None,
    review_csv: os.PathLike | str | None = None,
) -> dict:
    """Write CXLSeg-qc.csv.gz (one row per mask: quality, models, review); return its counts for the log.

    A rule of its own: applying a review rewrites this table (and the review page) but not the four tables,
    so nothing that reads them (the classifiers) reruns, unless the review can change them (drop_rejected, or
    include_flagged off, where an accepted flagged image comes back). With `merged` (the merge's summary) and
    `summary`, it writes summary.json: the merge's, plus the quality counts and, in its provenance, the quality
    table's hash and the review file's, so `cxlseg check-run` sees either change after the run."""
    rows, _ = manifest_rows(manifest_paths)
    qc = qc_table(masked_images(rows, settings, review_csv))
    write_csv(qc, out_path)
    counts = quality_counts(qc, review_csv)
    log.info("wrote %s: %d masks, %s", out_path, len(qc), counts)
    if summary is not None:
        record = json.loads(Path(merged).read_text())
        record["quality"] = counts
        record["provenance"]["quality"] = provenance.quality_record(out_path, review_csv)
        write_json(summary, record)
    return counts

"""CXLSeg-qc.csv.gz and CXLSeg-failed.csv.gz: what is known about each mask's quality, and what failed.

The four CXLSeg tables stay exactly as published; quality sits in a fifth table that joins them on
(dicom_id, subject_id, study_id): one row per image that has a mask, with its predicted Dice,
p_not_frontal, whether the film check turned the film upright or cropped a light-box border, QC flags, the
models that made it and a person's review decision. `status` says which
one applies, review first: rejected / accepted (a person decided), flagged (QC flagged it), ok.
Images without a mask are the failed table's, with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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

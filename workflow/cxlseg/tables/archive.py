"""Rule archive_table: one table per archive other than MIMIC-CXR-JPG, in the form CheXmask users compare with.

Per listed image: its id, patient, study, view and the archive's own key (`source_id`, CheXmask's row key), the
segmented image and mask, each lung at the original Height x Width as CheXmask's run-length string (`Left Lung`
= the patient's left, on the image's right), the predicted Dice, `p_not_frontal`, the film check and the QC flags
(as CXLSeg-qc), and a split by patient. A file inference could not read is a row with its reason, no mask.

A person's review (`archive.review_file`, the CSV the archive's review page exports) is applied here, as rule
quality_table applies MIMIC's, and through the same reader and checks (`tables.quality`): `review`, `review_note`,
`qc_status` (CXLSeg-qc's status: rejected / accepted / flagged / ok, a person's decision first) and `excluded`.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.archives import rle
from cxlseg.inference.manifest import read_manifests, split_flags
from cxlseg.inference.outputs import at_original_size
from cxlseg.inference.postprocess import LEFT_LUNG, RIGHT_LUNG, label_lungs
from cxlseg.tables.quality import apply_review, image_status, in_tables, review_decisions

COLUMNS = [
    "image_id",
    "patient_id",
    "study_id",
    "view",
    "source_id",
    "path",
    "shard",
    "split",
    "status",
    "error",
    "image_path",
    "mask_path",
    "Height",
    "Width",
    "Left Lung",
    "Right Lung",
    "qc_predicted_dice",
    "p_not_frontal",
    "film_inverted",
    "film_cropped",
    "qc_flags",
    "review",
    "review_note",
    "qc_status",
    "excluded",
]
SPLIT_BOUNDS = ((0.8, "train"), (0.9, "validate"), (1.0, "test"))  # a patient's hash in [0, 1): 80/10/10
_MASK_LEVEL = 64  # lung in a mask file: 128 or 255 (lungs labelled apart) or 255; JPEG noise stays far below


@dataclass(frozen=True)
class ArchiveTableFiles:
    """What rule archive_table reads and writes."""

    records: Path
    manifests: list[Path]
    table: Path
    summary: Path
    review: Path | None = None  # archive.review_file, when set

    @classmethod
    def from_rule(cls, input, output) -> "ArchiveTableFiles":
        review = next(iter(input.review), None)  # declared only when archive.review_file is set
        manifests = [Path(p) for p in input.manifests]
        return cls(Path(input.records), manifests, Path(output.table), Path(output.summary), review and Path(review))


def patient_split(patient_id: str) -> str:
    """train / validate / test from a stable hash of the patient: the same on every run, whatever else the
    archive holds, so adding images never moves a patient."""
    digest = hashlib.sha256(str(patient_id).encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return next(name for bound, name in SPLIT_BOUNDS if u < bound)


def lungs_at_original_size(mask_file: os.PathLike | str, height: int, width: int) -> dict:
    """A mask file (at the output size) -> CheXmask's columns: each lung apart (components by side, as
    inference labels them), brought back to Height x Width as inference's own full-resolution RLE does."""
    mask = (io.read_gray(mask_file) >= _MASK_LEVEL).astype(np.uint8)
    labels = label_lungs(mask)

    left, right = (at_original_size(labels == label, (height, width)) for label in (LEFT_LUNG, RIGHT_LUNG))
    return checked_lungs(rle.lung_columns(left, right), (height, width), str(mask_file))


def checked_lungs(columns: dict, image_hw: tuple[int, int], what: str) -> dict:
    """The RLE columns as they go into the table, their Height x Width checked against the image's shape as the
    shard read it (the manifest's original size), and each RLE decoded at that shape: a swapped or wrong size
    stops the table (naming the mask) instead of writing masks CheXmask users would decode scrambled."""
    rle.check_shape(int(columns["Height"]), int(columns["Width"]), image_hw, what)
    for lung in ("Left Lung", "Right Lung"):
        rle.decode(columns[lung], *image_hw)  # a run past the image raises
    return columns


def _row(record: dict, done: dict | None, out_root: Path) -> dict:
    row = {k: record[k] for k in ("image_id", "patient_id", "study_id", "view", "source_id", "path", "shard")}
    row.update(split=patient_split(record["patient_id"]), **{c: None for c in COLUMNS[8:]})
    if done is None:
        return {**row, "status": "failed", "error": "no manifest row: the shard did not list this image"}
    row.update({k: done.get(k) for k in ("status", "error", "qc_predicted_dice", "p_not_frontal", "qc_flags")})
    row.update(film_inverted=done.get("film_inverted"), film_cropped=done.get("film_cropped"))
    if done.get("status") == "ok":
        row.update(image_path=done["image_path"], mask_path=done["mask_path"], error="")
        mask = io.safe_join(out_root, done["mask_path"])
        row.update(lungs_at_original_size(mask, int(done["orig_height"]), int(done["orig_width"])))
    return row


def review_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows as `tables.quality.review_decisions` reads them: the image id, and why it has no mask ('' if it has)."""
    ok = manifest["status"].fillna("").astype(str) == "ok"
    reason = np.where(ok, "", "segmentation failed")
    return pd.DataFrame({"dicom_id": manifest["dicom_id"].astype(str).to_numpy(), "reason": reason})


def manifest_review_rows(manifest_paths) -> pd.DataFrame:
    """`review_rows` of the archive's shard manifests: what the DAG build checks the review file against."""
    return review_rows(read_manifests(manifest_paths))


def with_review(table: pd.DataFrame, review_file) -> pd.DataFrame:
    """The table with a person's decisions (`review_file`: None for none), read and checked as MIMIC's are.
    `excluded`: no mask, rejected, or flagged and not accepted (MIMIC's in_tables with include_flagged off and
    drop_rejected on), so one column tells a dataset user which masks to leave out."""
    masked = table["status"] == "ok"
    decisions = None
    if review_file:
        decisions = review_decisions(review_rows(table.rename(columns={"image_id": "dicom_id"})), review_file)
    reviewed = apply_review(table.rename(columns={"image_id": "dicom_id"}), decisions)
    reviewed["qc_flags"] = reviewed["qc_flags"].fillna("")
    status = np.where(masked, image_status(reviewed), "")
    keep = in_tables(status, include_flagged=False, drop_rejected=True) & masked.to_numpy()
    out = table.assign(review=reviewed["review"].to_numpy(), review_note=reviewed["review_note"].to_numpy())
    return out.assign(qc_status=status, excluded=~keep)


def archive_table(files: ArchiveTableFiles, out_root: os.PathLike | str, kind: str) -> dict:
    """Write the archive's table (the review file applied, when given) and its summary; returns the summary."""
    records = pd.read_parquet(files.records)
    manifest = read_manifests(files.manifests)
    done = {r["dicom_id"]: r for r in manifest.astype(object).where(manifest.notna(), None).to_dict("records")}
    rows = [_row(r, done.get(r["image_id"]), Path(out_root)) for r in records.to_dict("records")]
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"Height": "Int64", "Width": "Int64"})
    table = with_review(table, files.review)[COLUMNS]
    io.write_csv(table, files.table)
    ok = table[table.status == "ok"]
    summary = {
        "kind": kind,
        "images": int(len(table)),
        "ok": int(len(ok)),
        "failed": int((table.status != "ok").sum()),
        "failure_reasons": dict(Counter(table.loc[table.status != "ok", "error"].astype(str))),
        "split_patients": {s: int(table[table.split == s].patient_id.nunique()) for _, s in SPLIT_BOUNDS},
        "flag_counts": dict(sorted(Counter(f for fl in ok.qc_flags.fillna("") for f in split_flags(fl)).items())),
        "views": {str(k): int(v) for k, v in table.view.value_counts().sort_index().items()},
        "review": {
            "file": str(files.review) if files.review else None,
            **{d: int((table.review == d).sum()) for d in ("accepted", "rejected")},
        },
        "excluded": int(table.excluded.sum()),
    }
    io.write_json(files.summary, summary)
    return summary

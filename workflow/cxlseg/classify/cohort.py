"""Who is in the comparison: labels from CXLSeg-segmented.csv.gz, splits from CXLSeg-split.csv.gz, image files.

As in the authors' split.py the two tables are joined on the image, blank CheXpert labels mean "not
mentioned" and count as negative (0), and uncertain (-1) labels follow the ``uncertain`` policy
(the authors map them to 1: ``ones``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from cxlseg.io import safe_join
from cxlseg.mimic import CHEXPERT_LABELS, SPLITS, image_relpath

log = logging.getLogger(__name__)

INPUT_KINDS = ("original", "segmented")
UNCERTAIN_POLICIES = ("ones", "zeros", "ignore")
ID_COLUMNS = ["dicom_id", "subject_id", "study_id", "DicomPath"]


@dataclass
class Labels:
    """One row per image: identifiers (+ split once attached), 0/1 targets, and 1/0 mask of entries that count."""

    frame: pd.DataFrame
    targets: np.ndarray
    mask: np.ndarray
    labels: tuple[str, ...]

    def rows(self, split: str) -> np.ndarray:
        """Boolean row selector of one split."""
        return (self.frame["split"] == split).to_numpy()


def encode_labels(values: np.ndarray, uncertain: str) -> tuple[np.ndarray, np.ndarray]:
    """CheXpert values (1, 0, -1, NaN) -> (targets, mask); blank = not mentioned = 0."""
    if uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"unknown uncertain-label policy {uncertain!r}; valid: {', '.join(UNCERTAIN_POLICIES)}")
    values = np.asarray(values, dtype=np.float64)
    targets = (values == 1.0).astype(np.float32)
    mask = np.ones(values.shape, np.float32)
    uncertain_entries = values == -1.0
    if uncertain == "ones":
        targets[uncertain_entries] = 1.0
    elif uncertain == "ignore":
        mask[uncertain_entries] = 0.0
    return targets, mask


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """`labels` as a tuple if every one is a CheXpert label."""
    labels = tuple(labels)
    if not labels:
        raise ValueError("labels must name at least one CheXpert label")
    unknown = [c for c in labels if c not in CHEXPERT_LABELS]
    if unknown:
        raise ValueError(f"unknown CheXpert label(s) {unknown}; valid: {', '.join(CHEXPERT_LABELS)}")
    return labels


def load_labels(segmented_csv: os.PathLike | str, labels: Sequence[str], uncertain: str) -> Labels:
    """Targets and mask for `labels` from CXLSeg-segmented.csv.gz."""
    labels = check_labels(labels)
    frame = _read_table(segmented_csv, [*ID_COLUMNS, *labels])
    values = frame[list(labels)].apply(pd.to_numeric, errors="coerce")
    _check_values(segmented_csv, frame[list(labels)], values)
    targets, mask = encode_labels(values.to_numpy(), uncertain)
    return Labels(frame[ID_COLUMNS].reset_index(drop=True), targets, mask, labels)


def _check_values(path, raw: pd.DataFrame, values: pd.DataFrame) -> None:
    bad = (values.notna() & ~values.isin([1.0, 0.0, -1.0])) | (values.isna() & raw.notna())
    if bad.any().any():
        column = bad.any().idxmax()
        example = raw.loc[bad[column], column].iloc[0]
        raise ValueError(f"{path}: column {column!r} holds '{example}'; CheXpert labels must be 1, 0, -1 or blank")


def load_cohort(
    segmented: os.PathLike | str, split: os.PathLike | str, labels: Sequence[str], uncertain: str
) -> Labels:
    """Labels of the segmented table (CXLSeg-segmented) with the split table's split attached (one row per image)."""
    found = load_labels(segmented, labels, uncertain)
    split = _read_split(Path(split))
    frame = found.frame.merge(split, on=["dicom_id", "subject_id", "study_id"], how="left", validate="one_to_one")
    keep = frame["split"].notna().to_numpy()
    if not keep.all():
        log.warning("%d image(s) of CXLSeg-segmented have no split row and are left out", int((~keep).sum()))
    return Labels(frame[keep].reset_index(drop=True), found.targets[keep], found.mask[keep], found.labels)


def _read_split(path: Path) -> pd.DataFrame:
    split = _read_table(path, ["dicom_id", "subject_id", "study_id", "split"])
    odd = sorted(set(split["split"].astype(str)) - set(SPLITS))
    if odd:
        raise ValueError(f"{path}: split values {odd} not in {list(SPLITS)}")
    if split["dicom_id"].duplicated().any():
        twice = split.loc[split["dicom_id"].duplicated(), "dicom_id"].iloc[0]
        raise ValueError(f"{path}: dicom_id {twice} listed twice")
    return split[["dicom_id", "subject_id", "study_id", "split"]]


def _read_table(path: os.PathLike | str, columns: Sequence[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table not found")
    frame = pd.read_csv(path, dtype={"dicom_id": str, "DicomPath": str, "split": str})
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    for column in ("subject_id", "study_id"):
        ids = pd.to_numeric(frame[column], errors="coerce")
        if ids.isna().any():
            raise ValueError(f"{path}: column {column!r} has a blank or non-numeric value")
        frame[column] = ids.astype(np.int64)
    return frame


def image_path(
    input_kind: str,
    cxlseg_dir: os.PathLike | str,
    mimic_root: os.PathLike | str,
    subject_id: int,
    study_id: int,
    dicom_id: str,
    dicom_path: str,
) -> Path:
    """The file one input kind reads: the CXLSeg image (DicomPath) or the MIMIC-CXR-JPG original.

    Both paths come from data, so both go through safe_join (no absolute paths, no '..').
    """
    if input_kind == "segmented":
        return safe_join(cxlseg_dir, dicom_path)
    if input_kind == "original":
        return safe_join(mimic_root, image_relpath(int(subject_id), int(study_id), dicom_id))
    raise ValueError(f"unknown input {input_kind!r}; valid: {', '.join(INPUT_KINDS)}")

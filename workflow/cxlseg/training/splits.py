"""Patient- and subject-level splits, so no person's images sit on two sides of a split.

Training data (ingest manifests) is split by patient, stratified by class; the CXLSeg tables are split
by MIMIC subject (or, to reproduce the published counts, by image). Split names are CXLSeg's:
train / validate / test (`cxlseg.mimic.SPLITS`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.config import RuleSettings
from cxlseg.mimic import SPLITS
from cxlseg.mimic.sources import read_official_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSplitSettings(RuleSettings):
    """Rule split_training: the `training_split` ratios (by patient) and the run's seed."""

    SECTIONS = ("training_split",)

    train: float
    validate: float
    test: float
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> "TrainingSplitSettings":
        return cls(**config["training_split"], seed=config["seed"])

    @property
    def ratios(self) -> tuple[float, float, float]:
        return (self.train, self.validate, self.test)


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or (r < 0).any() or abs(r.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"ratios must be three non-negative numbers (train, validate, test) summing to 1, got {ratios}"
        )
    return r


def _patient_groups(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, patient_id): its image count and its (most frequent) label."""

    def majority(labels: pd.Series) -> str:
        counts = labels.value_counts()
        return sorted(counts[counts == counts.max()].index)[0]

    grouped = df.groupby(["dataset", "patient_id"], sort=True)["label"]
    return pd.DataFrame({"n": grouped.size(), "label": grouped.agg(majority)}).reset_index()


def _assign_stratum(sizes: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Greedy: each patient (in shuffled order) goes to the split furthest below its image target."""
    targets = ratios * sizes.sum()
    filled = np.zeros(3)
    out = np.empty(len(sizes), dtype=np.int64)
    for i, n in enumerate(sizes):
        deficit = np.where(ratios > 0, targets - filled, -np.inf)
        out[i] = int(np.argmax(deficit))
        filled[out[i]] += n
    return out


def _fill_empty_splits(groups: pd.DataFrame, ratios: np.ndarray) -> None:
    """Small data: make every split with a positive ratio non-empty by moving single patients."""
    for split in np.flatnonzero(ratios > 0):
        if (groups["split_idx"] == split).any():
            continue
        counts = groups["split_idx"].value_counts()
        donors = counts[counts > 1]
        if donors.empty:
            return
        donor = groups[groups["split_idx"] == donors.idxmax()]
        # prefer a patient whose class stays represented in the donor split
        spare = donor[donor.groupby("label")["label"].transform("size") > 1]
        moved = (spare if not spare.empty else donor).sort_values(["n", "order"]).index[0]
        groups.loc[moved, "split_idx"] = split


def split_by_patient(df: pd.DataFrame, *, ratios: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """Add `split` (train/validate/test): every image of a patient on one side, stratified by label.

    Deterministic for a given seed regardless of row order.
    """
    r = _check_ratios(ratios)
    if df.empty:
        return df.assign(split=pd.Series(dtype=str))
    groups = _patient_groups(df)
    rng = np.random.default_rng(seed)
    groups["order"] = rng.permutation(len(groups))
    groups = groups.sort_values("order").reset_index(drop=True)
    groups["split_idx"] = -1
    for _label, stratum in groups.groupby("label", sort=True):
        groups.loc[stratum.index, "split_idx"] = _assign_stratum(stratum["n"].to_numpy(), r)
    _fill_empty_splits(groups, r)
    groups["split"] = [SPLITS[i] for i in groups["split_idx"]]
    out = df.merge(groups[["dataset", "patient_id", "split"]], on=["dataset", "patient_id"], how="left")
    log.info("split by patient: %s", out.groupby(["split", "label"]).size().to_dict())
    return out


def combine_and_split(
    manifest_paths: list[os.PathLike | str],
    out_path: os.PathLike | str,
    *,
    ratios: tuple[float, float, float],
    seed: int,
) -> pd.DataFrame:
    """Concatenate ingest manifests, split by patient, write the training dataset table."""
    frames = [pd.read_parquet(p) for p in manifest_paths]
    if not frames:
        raise ValueError("combine_and_split: no manifests given")
    df = pd.concat(frames, ignore_index=True)
    dupes = df[df.duplicated(["dataset", "image_id"], keep=False)]
    if not dupes.empty:
        raise ValueError(
            f"duplicate (dataset, image_id) across manifests: {dupes[['dataset', 'image_id']].values.tolist()[:5]}"
        )
    df = df.sort_values(["dataset", "image_id"], kind="stable").reset_index(drop=True)
    out = split_by_patient(df, ratios=tuple(ratios), seed=seed)
    io.write_parquet(out, out_path)
    return out


# --- the CXLSeg tables: by subject or by image ----------------------------------------------


def split_by_subject(subject_ids: Iterable[int], ratios: Sequence[float], seed: int) -> pd.Series:
    """Seeded train/validate/test assignment of whole patients, so no subject is on two sides.

    Subjects are sorted before shuffling, so the result depends only on the set
    of subjects and the seed, not on manifest order.
    """
    ratios = _check_ratios(ratios)
    subjects = np.sort(pd.unique(np.asarray(list(subject_ids), dtype=np.int64)))
    order = np.random.default_rng(seed).permutation(len(subjects))
    cuts = np.round(np.cumsum(ratios)[:2] * len(subjects)).astype(int)
    labels = np.empty(len(subjects), dtype=object)
    labels[order[: cuts[0]]] = SPLITS[0]
    labels[order[cuts[0] : cuts[1]]] = SPLITS[1]
    labels[order[cuts[1] :]] = SPLITS[2]
    return pd.Series(labels, index=pd.Index(subjects, name="subject_id"), name="split")


def image_split_sizes(n: int, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[int, int, int]:
    """(train, validate, test) image counts of the authors' per-image split.

    The published CXLSeg split has 194,660 / 24,332 / 24,332 of 243,324 images. Rounding the cumulative
    80% / 90% cuts (as split_by_subject does) would give 194,659 / 24,333 / 24,332, so validate and test
    are floor(ratio * n) each and train takes the rest (the 1e-9 guards products like 0.1 * 30 = 3.0000000000000004
    and 0.7 * 10 = 6.999999999999999).
    """
    ratios = _check_ratios(ratios)
    validate, test = (int(np.floor(r * n + 1e-9)) for r in ratios[1:])
    return n - validate - test, validate, test


def split_by_image(dicom_ids: Iterable[str], ratios: Sequence[float], seed: int) -> pd.Series:
    """Seeded train/validate/test assignment of single images, as the published CXLSeg split is.

    A patient's images may fall into different splits (the published split has that too). Images are
    sorted by dicom_id before shuffling, so the result depends only on the set of images and the seed.
    """
    images = np.sort(pd.unique(np.asarray(list(dicom_ids), dtype=object)))
    n_train, n_validate, _ = image_split_sizes(len(images), ratios)
    order = np.random.default_rng(seed).permutation(len(images))
    labels = np.empty(len(images), dtype=object)
    labels[order[:n_train]] = SPLITS[0]
    labels[order[n_train : n_train + n_validate]] = SPLITS[1]
    labels[order[n_train + n_validate :]] = SPLITS[2]
    return pd.Series(labels, index=pd.Index(images, name="dicom_id"), name="split")


SPLIT_UNITS = ("subject", "image")


def assign_split(
    images: pd.DataFrame,
    *,
    source: str,
    ratios: Sequence[float],
    seed: int,
    split_unit: str,
    missing: str,
    official_split_csv=None,
    cxlseg_split_csv=None,
) -> tuple[pd.Series, dict]:
    """Split label per image row (NaN: no split row), and counts for the summary.

    `split_unit` applies to source 'random': whole subjects (no patient on two sides) or single images
    (the published CXLSeg counts). The official split and its fallback for missing images are by subject.
    Source 'cxlseg' copies a published CXLSeg-split.csv.gz (see `_published_split`).
    """
    if split_unit not in SPLIT_UNITS:
        raise ValueError(f"split_unit must be 'subject' or 'image', got {split_unit!r}")
    info: dict = {"source": source, "seed": seed, "ratios": [float(r) for r in ratios]}
    if source == "random" and split_unit == "image":
        info["unit"] = "image"
        split = images["dicom_id"].map(split_by_image(images["dicom_id"], ratios, seed))
    elif source == "random":
        info["unit"] = "subject"
        split = images["subject_id"].map(split_by_subject(images["subject_id"], ratios, seed))
    elif source == "official":
        if official_split_csv is None:
            raise ValueError("split_source 'official' needs official_split_csv (the mimic.split table)")
        official = read_official_split(official_split_csv).set_index("dicom_id")["split"]
        split = images["dicom_id"].map(official)
        # an image missing from the official file follows its patient, else a seeded patient split
        by_subject = pd.Series(split.values, index=images["subject_id"].values).dropna()
        by_subject = by_subject[~by_subject.index.duplicated()]
        split = split.fillna(images["subject_id"].map(by_subject))
        unassigned = split.isna()
        if unassigned.any():
            fallback = split_by_subject(images.loc[unassigned, "subject_id"], ratios, seed)
            split = split.fillna(images["subject_id"].map(fallback))
        info["images_not_in_official_split"] = int(images["dicom_id"].map(official).isna().sum())
    elif source == "cxlseg":
        split = _published_split(images, info, cxlseg_split_csv, missing, ratios, seed, split_unit)
    else:
        raise ValueError(f"split_source must be 'random', 'official' or 'cxlseg', got {source!r}")
    sides = images.assign(split=split).groupby("subject_id")["split"].nunique()
    info["subjects_on_several_sides"] = int((sides > 1).sum())
    info["images"] = {s: int((split == s).sum()) for s in SPLITS}
    info["images_without_split"] = int(pd.isna(split).sum())
    info["subjects"] = {s: int(images.loc[split == s, "subject_id"].nunique()) for s in SPLITS}
    return pd.Categorical(split, categories=list(SPLITS)), info


MISSING_POLICIES = ("omit", "random")


def _published_split(images, info: dict, path, missing: str, ratios, seed: int, split_unit: str) -> pd.Series:
    """The membership of a published CXLSeg-split.csv.gz, copied image by image.

    Nothing is assigned silently: selected images the file does not list, and listed images this run did not
    select (or segment), are counted in `info` and logged. `missing` says what the unlisted ones get: 'omit'
    (no row in CXLSeg-split, so nobody mistakes them for published membership) or 'random' (a seeded split
    of their own, by `split_unit`, counted as such).
    """
    if path is None:
        raise ValueError("split_source 'cxlseg' needs tables.cxlseg_split (a published CXLSeg-split.csv.gz)")
    if missing not in MISSING_POLICIES:
        raise ValueError(f"cxlseg_split_missing must be one of {', '.join(MISSING_POLICIES)}, got {missing!r}")
    published = read_official_split(path, "CXLSeg split", strict=True).set_index("dicom_id")["split"]
    split = images["dicom_id"].map(published)
    unlisted = split.isna()
    not_selected = ~published.index.isin(images["dicom_id"])
    info.update(
        unit="image",
        cxlseg_split=str(path),
        cxlseg_split_rows=int(len(published)),
        selected_not_in_cxlseg_split=int(unlisted.sum()),
        cxlseg_split_not_selected=int(not_selected.sum()),
        examples_selected_not_in_cxlseg_split=sorted(images.loc[unlisted, "dicom_id"])[:10],
        examples_cxlseg_split_not_selected=sorted(published.index[not_selected])[:10],
        missing_policy=missing,
        assigned_outside_cxlseg_split=0,
    )
    if unlisted.any():
        log.warning(
            "%s: %d selected image(s) are not in the published split (%s): %s",
            path,
            int(unlisted.sum()),
            "no split row" if missing == "omit" else f"seeded {split_unit} split",
            ", ".join(info["examples_selected_not_in_cxlseg_split"]),
        )
    if not_selected.any():
        log.warning(
            "%s: %d listed image(s) were not selected or not segmented in this run: %s",
            path,
            int(not_selected.sum()),
            ", ".join(info["examples_cxlseg_split_not_selected"]),
        )
    if missing == "random" and unlisted.any():
        rest = images[unlisted]
        if split_unit == "image":
            drawn = rest["dicom_id"].map(split_by_image(rest["dicom_id"], ratios, seed))
        else:
            drawn = rest["subject_id"].map(split_by_subject(rest["subject_id"], ratios, seed))
        split = split.fillna(drawn)
        info["assigned_outside_cxlseg_split"] = int(len(rest))
    return split

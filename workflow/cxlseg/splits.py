"""Patient- and subject-level splits, so no person's images sit on two sides of a split.

Training data (ingest manifests) is split by patient, stratified by class; the CXLSeg tables are split
by MIMIC subject (or, to reproduce the published counts, by image). Split names are CXLSeg's:
train / validate / test (`cxlseg.mimic.SPLITS`).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from . import io
from .mimic import SPLITS

log = logging.getLogger(__name__)


def _check_ratios(ratios: tuple[float, float, float]) -> np.ndarray:
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or (r < 0).any() or abs(r.sum() - 1.0) > 1e-6:
        raise ValueError(f"ratios must be three non-negative numbers (train, validate, test) summing to 1, got {ratios}")
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


def combine_and_split(manifest_paths: list[os.PathLike | str], out_path: os.PathLike | str, *,
                      ratios: tuple[float, float, float], seed: int) -> pd.DataFrame:
    """Concatenate ingest manifests, split by patient, write the training dataset table."""
    frames = [pd.read_parquet(p) for p in manifest_paths]
    if not frames:
        raise ValueError("combine_and_split: no manifests given")
    df = pd.concat(frames, ignore_index=True)
    dupes = df[df.duplicated(["dataset", "image_id"], keep=False)]
    if not dupes.empty:
        raise ValueError(f"duplicate (dataset, image_id) across manifests: {dupes[['dataset', 'image_id']].values.tolist()[:5]}")
    df = df.sort_values(["dataset", "image_id"], kind="stable").reset_index(drop=True)
    out = split_by_patient(df, ratios=tuple(ratios), seed=seed)
    io.write_parquet(out, out_path)
    return out

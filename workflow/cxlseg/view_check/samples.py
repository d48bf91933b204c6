"""The view check's real archive films: a seeded sample of the archive's own side views and frontal films,
split by subject, so the view check learns this archive's look and not only the phantoms'."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.config import RuleSettings
from cxlseg.inference.select_images import METADATA_COLUMNS, exclude_bad_ids, read_view_metadata
from cxlseg.mimic import FRONTAL_VIEWS, LATERAL_VIEWS, SPLITS, image_relpath

log = logging.getLogger(__name__)

VIEW_SAMPLE_COLUMNS = ("dicom_id", "subject_id", "study_id", "image_path", "view", "rows", "columns", "split")
VIEW_SAMPLE_VALIDATE_SHARE = 0.2  # share of a view sample's subjects held out to validate the view check


@dataclass(frozen=True)
class ViewSamplesSettings(RuleSettings):
    """Rule view_samples: films per class (`view_check.archive_samples`) and the run's seed."""

    n_per_class: int
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> "ViewSamplesSettings":
        return cls(config["view_check"]["archive_samples"], config["seed"])


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
    meta = read_view_metadata(metadata_csv) if n_per_class > 0 else pd.DataFrame(columns=list(METADATA_COLUMNS))
    valid, excluded = exclude_bad_ids(meta[meta.ViewPosition.isin(LATERAL_VIEWS + FRONTAL_VIEWS)])
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

"""Read one public lung-mask dataset in its native layout into the common manifest.

Every source (Shenzhen, Montgomery, V7-labs) ends up looking the same downstream:
a manifest row per accepted radiograph, a normalised 0/255 lung mask per row in
the masks folder (``<image_id>.png``, its path in the manifest relative to the manifest's
folder), and a rejects table that says, for every file
that was not accepted, which file and why.  Nothing is dropped silently, and
one bad file never stops the others.  The patient-level split is `cxlseg.training.splits`'s job.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from cxlseg import io
from cxlseg.config import RuleSettings
from cxlseg.ingest.candidates import Candidate, Rejected, images_in, require_dir
from cxlseg.ingest.labels import LABELS
from cxlseg.ingest.lung_masks import MaskError, read_binary_mask
from cxlseg.ingest.v7 import read_v7

log = logging.getLogger(__name__)

DATASETS = ("shenzhen", "montgomery", "v7")
MANIFEST_COLUMNS = [
    "dataset",
    "image_id",
    "patient_id",
    "label",
    "image_path",
    "mask_path",
    "width",
    "height",
    "bit_depth",
    "view",
]
REJECT_COLUMNS = ["dataset", "image_id", "file", "reason"]


@dataclass(frozen=True)
class IngestSettings(RuleSettings):
    """Rule ingest: which set, and for V7 where its masks come from (`datasets.<name>`; defaults in the schema)."""

    SECTIONS = ("datasets",)

    dataset: str
    mask_source: str | None

    @classmethod
    def from_config(cls, config: dict, dataset: str) -> "IngestSettings":
        return cls(dataset=dataset, mask_source=config["datasets"][dataset].get("mask_source"))


@dataclass
class IngestResult:
    manifest: pd.DataFrame
    rejects: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- layouts


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _shenzhen(root: Path, **_) -> Iterator[Candidate | Rejected]:
    """CXR_png/CHNCXR_####_[01].png with mask/CHNCXR_####_[01]_mask.png (one image per patient)."""
    image_dir = require_dir(root / "CXR_png", "Shenzhen images")
    mask_dir = root / "mask"
    seen, no_reading = set(), []
    for image in images_in(image_dir):
        match = re.fullmatch(r"(CHNCXR_(\d{4}))_([01])", image.stem)
        if not match:
            yield Rejected(image, "file name does not match CHNCXR_####_[01].png")
            continue
        seen.add(image.stem)
        mask = mask_dir / f"{image.stem}_mask.png"
        if not mask.is_file():
            yield Rejected(image, "no mask")
            continue
        if not (root / "ClinicalReadings" / f"{image.stem}.txt").is_file():
            no_reading.append(image.stem)
        label = "tuberculosis" if match.group(3) == "1" else "normal"
        yield Candidate(image.stem, match.group(1), label, image, "PA", lambda _shape, m=mask: read_binary_mask(m))
    if no_reading:
        log.warning(
            "Shenzhen: %d image(s) without ClinicalReadings/<stem>.txt (label taken from the file name), e.g. %s",
            len(no_reading),
            no_reading[0],
        )
    if mask_dir.is_dir():
        for mask in sorted(mask_dir.glob("*_mask.png")):
            if mask.name[: -len("_mask.png")] not in seen:
                yield Rejected(mask, "mask without image")


def _montgomery_mask(left: Path, right: Path) -> np.ndarray:
    """Union of the separately drawn left and right lung masks."""
    left_mask, right_mask = read_binary_mask(left), read_binary_mask(right)
    if left_mask.shape != right_mask.shape:
        raise MaskError(f"left and right masks differ in size ({left_mask.shape} vs {right_mask.shape})", right)
    return left_mask | right_mask


def _montgomery(root: Path, **_) -> Iterator[Candidate | Rejected]:
    """MontgomerySet/CXR_png/MCUCXR_####_[01].png; mask = ManualMask/leftMask | rightMask."""
    base = root / "MontgomerySet" if (root / "MontgomerySet").is_dir() else root
    image_dir = require_dir(base / "CXR_png", "Montgomery images")
    for image in images_in(image_dir):
        match = re.fullmatch(r"(MCUCXR_(\d{4}))_([01])", image.stem)
        if not match:
            yield Rejected(image, "file name does not match MCUCXR_####_[01].png")
            continue
        left = base / "ManualMask" / "leftMask" / image.name
        right = base / "ManualMask" / "rightMask" / image.name
        missing = [side for side, p in (("left", left), ("right", right)) if not p.is_file()]
        if missing:
            yield Rejected(image, f"no mask ({' and '.join(missing)} lung mask missing)")
            continue
        label = "tuberculosis" if match.group(3) == "1" else "normal"
        yield Candidate(
            image.stem, match.group(1), label, image, "PA", lambda _shape, a=left, b=right: _montgomery_mask(a, b)
        )


LAYOUTS = {"shenzhen": _shenzhen, "montgomery": _montgomery, "v7": read_v7}


# --------------------------------------------------------------------------- ingest


@dataclass(frozen=True)
class IngestFiles:
    """What one ingest writes (the rule's outputs): the manifest (parquet), the rejects (CSV), the counts (JSON) and
    the masks folder, which sits under the manifest's folder because manifest mask paths are relative to it."""

    manifest: Path
    rejects: Path
    counts: Path
    masks: Path

    def __post_init__(self) -> None:
        for name in ("manifest", "rejects", "counts", "masks"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if not self.masks.resolve().is_relative_to(self.manifest.parent.resolve()):
            raise ValueError(f"{self.masks}: the masks folder must sit under the manifest's folder")

    def mask_path(self, image_id: str) -> str:
        """A mask's path as the manifest records it: relative to the manifest's folder."""
        return (self.masks / f"{image_id}.png").relative_to(self.manifest.parent).as_posix()


def mask_root(manifest: os.PathLike | str) -> Path:
    """The folder a manifest's mask paths are relative to (its own): what a reader of the manifest joins them to."""
    return Path(manifest).parent


def _accept(candidate: Candidate, root: Path, files: IngestFiles, dataset: str) -> dict:
    """Decode and check one candidate; write its normalised mask; return its manifest row."""
    raw = io.read_image(candidate.image_file)
    io.to_gray_uint8(raw, candidate.image_file)  # refuses channel layouts nobody downstream can read
    height, width = raw.shape[:2]
    mask = candidate.load_mask((height, width))
    if mask.shape[:2] != (height, width):
        raise MaskError(f"image/mask size mismatch (image {width}x{height}, mask {mask.shape[1]}x{mask.shape[0]})")
    if not mask.any():
        raise MaskError("empty mask")
    io.write_image(files.masks / f"{candidate.image_id}.png", mask * np.uint8(255))
    return {
        "dataset": dataset,
        "image_id": candidate.image_id,
        "patient_id": candidate.patient_id,
        "label": candidate.label,
        "image_path": _rel(root, candidate.image_file),
        "mask_path": files.mask_path(candidate.image_id),
        "width": int(width),
        "height": int(height),
        "bit_depth": io.bit_depth(raw),
        "view": candidate.view,
    }


def _reason(err: Exception) -> str:
    """The bare reason; the rejects table holds the file in its own column."""
    if isinstance(err, io.ImageReadError):
        return f"unreadable: {err.reason}"
    if isinstance(err, MaskError):
        return err.reason
    return f"unreadable: {err}"


def ingest_dataset(
    dataset: str, root: os.PathLike | str, files: IngestFiles, *, mask_source: str = "json"
) -> IngestResult:
    """Read `dataset` ("shenzhen", "montgomery" or "v7") from `root` into `files`.

    Writes the manifest, rejects, counts and one <image_id>.png per accepted image in the masks folder
    (0/255, the image's own size), each atomically.
    """
    if dataset not in LAYOUTS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    root = Path(root)
    files.masks.mkdir(parents=True, exist_ok=True)
    kwargs = {"mask_source": mask_source} if dataset == "v7" else {}
    rows, rejects, seen = [], [], {}
    for item in tqdm(list(LAYOUTS[dataset](root, **kwargs)), desc=f"ingest {dataset}", unit="img"):
        if isinstance(item, Rejected):
            rejects.append((Path(item.file).stem, _rel(root, Path(item.file)), item.reason))
            continue
        if item.image_id in seen:
            rejects.append(
                (
                    item.image_id,
                    _rel(root, item.image_file),
                    f"duplicate image id (already taken by {seen[item.image_id]})",
                )
            )
            continue
        try:
            rows.append(_accept(item, root, files, dataset))
            seen[item.image_id] = _rel(root, item.image_file)
        except (io.ImageReadError, MaskError, OSError, cv2.error) as err:
            file = getattr(err, "path", None) or str(item.image_file)
            rejects.append((item.image_id, _rel(root, Path(file)), _reason(err)))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    reject_df = pd.DataFrame([(dataset, *r) for r in rejects], columns=REJECT_COLUMNS)
    _remove_stale_masks(files.masks, set(manifest["image_id"]))
    result = IngestResult(manifest, reject_df, _class_counts(manifest))
    _write_outputs(result, dataset, files)
    return result


def _remove_stale_masks(masks_dir: Path, keep: set[str]) -> None:
    """A rerun with fewer accepted images must not leave masks of rejected ones behind."""
    for path in masks_dir.glob("*.png"):
        if path.stem not in keep:
            path.unlink()


def _class_counts(manifest: pd.DataFrame) -> dict[str, int]:
    counts = manifest["label"].value_counts()
    return {label: int(counts.get(label, 0)) for label in LABELS if counts.get(label, 0)}


def reject_summary(rejects: pd.DataFrame) -> dict[str, int]:
    """Rejects per reason category (the text before any detail in parentheses or after a colon)."""
    keys = rejects["reason"].str.replace(r"\s*\(.*$", "", regex=True).str.split(":").str[0].str.strip()
    return {str(k): int(v) for k, v in sorted(keys.value_counts().items())}


def _write_outputs(result: IngestResult, dataset: str, files: IngestFiles) -> None:
    summary = {
        "dataset": dataset,
        "accepted": int(len(result.manifest)),
        "rejected": int(len(result.rejects)),
        "per_class": result.counts,
        "rejects_by_reason": reject_summary(result.rejects),
        "patients": int(result.manifest["patient_id"].nunique()),
    }
    log.info(
        "%s: %d accepted (%s), %d rejected (%s)",
        dataset,
        summary["accepted"],
        ", ".join(f"{k} {v}" for k, v in result.counts.items()) or "none",
        summary["rejected"],
        ", ".join(f"{k} {v}" for k, v in summary["rejects_by_reason"].items()) or "none",
    )
    for row in result.rejects.itertuples():
        log.warning("%s rejected %s: %s", dataset, row.file, row.reason)
    io.write_parquet(result.manifest, files.manifest)
    io.write_csv(result.rejects, files.rejects)
    io.write_json(files.counts, summary)

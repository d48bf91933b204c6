"""Read one public lung-mask dataset in its native layout into the common manifest.

Every source (Shenzhen, Montgomery, V7-labs) ends up looking the same downstream:
a manifest row per accepted radiograph, a normalised 0/255 lung mask per row in
``out_dir/masks/<image_id>.png``, and a rejects table that says, for every file
that was not accepted, which file and why.  Nothing is dropped silently, and
one bad file never stops the others.  The patient-level split is `cxlseg.splits`'s job.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from . import io
from .labels import LABELS, label_from_finding, label_from_tags, view_exclusion  # noqa: F401 (used below)
from .lung_masks import MaskError, binarise_mask, read_binary_mask, render_polygons  # noqa: F401 (used below)

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
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Annotation class names that hold lung outlines in V7 Darwin JSON (matched case-insensitively).
LUNG_CLASSES = ("lung", "left lung", "right lung")

MaskLoader = Callable[[tuple[int, int]], np.ndarray]


class Rejected(Exception):
    """One candidate image is not usable; `file` is the offending file, `reason` says why."""

    def __init__(self, file: os.PathLike | str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


@dataclass
class Candidate:
    """An image found in a layout, with everything but its pixels checked."""

    image_id: str
    patient_id: str
    label: str
    image_file: Path
    view: str
    load_mask: MaskLoader


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


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: directory {path} not found")
    return path


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _shenzhen(root: Path, **_) -> Iterator[Candidate | Rejected]:
    """CXR_png/CHNCXR_####_[01].png with mask/CHNCXR_####_[01]_mask.png (one image per patient)."""
    image_dir = _require_dir(root / "CXR_png", "Shenzhen images")
    mask_dir = root / "mask"
    seen, no_reading = set(), []
    for image in _images_in(image_dir):
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
    image_dir = _require_dir(base / "CXR_png", "Montgomery images")
    for image in _images_in(image_dir):
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


def _read_index(root: Path) -> pd.DataFrame | None:
    path = root / "index.csv"
    if not path.is_file():
        return None
    index = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"image"} - set(index.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    return index


def _json_patient_id(data: dict) -> str | None:
    for holder in (data, data.get("image") or {}, data.get("item") or {}, data.get("metadata") or {}):
        for key in ("patient_id", "patientid", "patient"):
            value = holder.get(key) if isinstance(holder, dict) else None
            if value not in (None, ""):
                return str(value)
    return None


def _json_shape(data: dict, image_shape: tuple[int, int]) -> tuple[int, int]:
    """(height, width) the polygons were drawn on: Darwin 1.0 `image`, 2.0 `item.slots[0]`."""
    info = data.get("image") or {}
    if "width" not in info:
        slots = (data.get("item") or {}).get("slots") or [{}]
        info = slots[0]
    if info.get("width") and info.get("height"):
        return int(info["height"]), int(info["width"])
    return image_shape


def _darwin_mask(path: Path, data: dict, lungs: list[dict], image_shape: tuple[int, int]) -> np.ndarray:
    shape = _json_shape(data, image_shape)
    if shape != tuple(image_shape):
        raise MaskError(
            f"image/mask size mismatch (annotation drawn on {shape[1]}x{shape[0]}, "
            f"image is {image_shape[1]}x{image_shape[0]})",
            path,
        )
    try:
        return render_polygons(lungs, shape)
    except (KeyError, TypeError, ValueError) as err:
        raise MaskError(f"malformed polygon ({err})", path) from err


def _v7_json(root: Path, index: pd.DataFrame | None) -> Iterator[Candidate | Rejected]:
    """images/<name>.* + annotations/<name>.json (Darwin JSON: Lung polygons and class tags)."""
    image_dir = _require_dir(root / "images", "V7 images")
    ann_dir = _require_dir(root / "annotations", "V7 annotations")
    patients = {}
    if index is not None and "patient_id" in index.columns:
        patients = {Path(r.image).stem: r.patient_id for r in index.itertuples() if r.patient_id}
    stems = set()
    for image in _images_in(image_dir):
        stems.add(image.stem)
        ann = ann_dir / f"{image.stem}.json"
        if not ann.is_file():
            yield Rejected(image, "no mask (no annotation JSON)")
            continue
        try:
            data = io.read_json(ann)
            annotations = list(data.get("annotations") or [])
        except (OSError, ValueError, AttributeError) as err:
            yield Rejected(ann, f"unreadable annotation JSON ({err})")
            continue
        tags = [str(a.get("name", "")) for a in annotations if "tag" in a]
        excluded = next((why for why in map(view_exclusion, tags) if why), None)
        if excluded:
            yield Rejected(image, excluded)
            continue
        lungs = [
            a
            for a in annotations
            if str(a.get("name", "")).strip().lower() in LUNG_CLASSES and ("polygon" in a or "complex_polygon" in a)
        ]
        if not lungs:
            yield Rejected(image, "no lung polygons (CT slice or unannotated)")
            continue
        label = label_from_tags(tags)
        if label is None:
            yield Rejected(ann, f"no class tag (tags: {', '.join(tags) or 'none'})")
            continue
        view = next((t for t in tags if t.upper() in {"PA", "AP", "AP SUPINE"}), "unknown")
        patient = patients.get(image.stem) or _json_patient_id(data) or image.stem
        yield Candidate(
            image.stem,
            str(patient),
            label,
            image,
            view,
            lambda shape, p=ann, d=data, lu=lungs: _darwin_mask(p, d, lu, shape),
        )
    for ann in sorted(ann_dir.glob("*.json")):
        if ann.stem not in stems:
            yield Rejected(ann, "annotation without image")


def _v7_png(root: Path, index: pd.DataFrame | None) -> Iterator[Candidate | Rejected]:
    """index.csv rows (image, mask, patient_id, view, finding) with PNG semantic masks."""
    if index is None:
        raise FileNotFoundError(f"V7 PNG masks: {root / 'index.csv'} not found (needed for mask_source='png')")
    if "mask" not in index.columns:
        raise ValueError(f"{root / 'index.csv'}: missing column 'mask'")
    for row in index.to_dict("records"):
        image_rel = row["image"]
        image_id = Path(str(image_rel).replace("\\", "/")).stem or str(image_rel)
        try:
            image = io.safe_join(root, image_rel)
        except io.UnsafePathError as err:
            yield Rejected(image_rel, f"unsafe path ({err})")
            continue
        excluded = view_exclusion(row.get("view", "")) or view_exclusion(row.get("modality", ""))
        if excluded:
            yield Rejected(image, excluded)
            continue
        if not str(row["mask"]).strip():
            yield Rejected(image, "no mask")
            continue
        try:
            mask = io.safe_join(root, row["mask"])
        except io.UnsafePathError as err:
            yield Rejected(row["mask"], f"unsafe path ({err})")
            continue
        if not mask.is_file():
            yield Rejected(mask, "no mask")
            continue
        label = label_from_finding(row.get("finding", ""))
        if label is None:
            yield Rejected(image, f"unknown finding ({row.get('finding', '')!r})")
            continue
        patient = str(row.get("patient_id", "")).strip() or image_id
        yield Candidate(
            image_id,
            patient,
            label,
            image,
            str(row.get("view", "")).strip() or "unknown",
            lambda _shape, m=mask: read_binary_mask(m),
        )


def _v7(root: Path, mask_source: str = "json") -> Iterator[Candidate | Rejected]:
    index = _read_index(root)
    if mask_source == "json":
        return _v7_json(root, index)
    if mask_source == "png":
        return _v7_png(root, index)
    raise ValueError(f"mask_source must be 'json' or 'png', got {mask_source!r}")


LAYOUTS = {"shenzhen": _shenzhen, "montgomery": _montgomery, "v7": _v7}


# --------------------------------------------------------------------------- ingest


def _accept(candidate: Candidate, root: Path, masks_dir: Path, dataset: str) -> dict:
    """Decode and check one candidate; write its normalised mask; return its manifest row."""
    raw = io.read_image(candidate.image_file)
    io.to_gray_uint8(raw, candidate.image_file)  # refuses channel layouts nobody downstream can read
    height, width = raw.shape[:2]
    mask = candidate.load_mask((height, width))
    if mask.shape[:2] != (height, width):
        raise MaskError(f"image/mask size mismatch (image {width}x{height}, mask {mask.shape[1]}x{mask.shape[0]})")
    if not mask.any():
        raise MaskError("empty mask")
    io.write_image(masks_dir / f"{candidate.image_id}.png", mask * np.uint8(255))
    return {
        "dataset": dataset,
        "image_id": candidate.image_id,
        "patient_id": candidate.patient_id,
        "label": candidate.label,
        "image_path": _rel(root, candidate.image_file),
        "mask_path": f"masks/{candidate.image_id}.png",
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
    dataset: str, root: os.PathLike | str, out_dir: os.PathLike | str, *, mask_source: str = "json"
) -> IngestResult:
    """Read `dataset` ("shenzhen", "montgomery" or "v7") from `root` into `out_dir`.

    Writes manifest.parquet, rejects.csv, counts.json and masks/<image_id>.png
    (0/255, the image's own size), each atomically.
    """
    if dataset not in LAYOUTS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    root, out_dir = Path(root), Path(out_dir)
    masks_dir = out_dir / "masks"
    masks_dir.mkdir(parents=True, exist_ok=True)
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
            rows.append(_accept(item, root, masks_dir, dataset))
            seen[item.image_id] = _rel(root, item.image_file)
        except (io.ImageReadError, MaskError, OSError, cv2.error) as err:
            file = getattr(err, "path", None) or str(item.image_file)
            rejects.append((item.image_id, _rel(root, Path(file)), _reason(err)))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    reject_df = pd.DataFrame([(dataset, *r) for r in rejects], columns=REJECT_COLUMNS)
    _remove_stale_masks(masks_dir, set(manifest["image_id"]))
    result = IngestResult(manifest, reject_df, _class_counts(manifest))
    _write_outputs(result, dataset, out_dir)
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


def _write_outputs(result: IngestResult, dataset: str, out_dir: Path) -> None:
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
    io.write_parquet(result.manifest, out_dir / "manifest.parquet")
    io.write_csv(result.rejects, out_dir / "rejects.csv")
    io.write_json(out_dir / "counts.json", summary)

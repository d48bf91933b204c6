"""Read the V7-labs COVID-19 lung dataset: Darwin JSON polygons, or PNG masks listed in index.csv.

Its own module because the two V7 mask sources hold most of the layout-specific parsing; `cxlseg.ingest.readers`
turns what they yield into the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.ingest.candidates import Candidate, Rejected, images_in, require_dir
from cxlseg.ingest.labels import label_from_finding, label_from_tags, view_exclusion
from cxlseg.ingest.lung_masks import MaskError, read_binary_mask, render_polygons

# Annotation class names that hold lung outlines in V7 Darwin JSON (matched case-insensitively).
LUNG_CLASSES = ("lung", "left lung", "right lung")


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
    image_dir = require_dir(root / "images", "V7 images")
    ann_dir = require_dir(root / "annotations", "V7 annotations")
    patients = {}
    if index is not None and "patient_id" in index.columns:
        patients = {Path(r.image).stem: r.patient_id for r in index.itertuples() if r.patient_id}
    stems = set()
    for image in images_in(image_dir):
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


def read_v7(root: Path, mask_source: str = "json") -> Iterator[Candidate | Rejected]:
    """The V7 layout's candidates and rejects, masks from Darwin JSON (`json`) or index.csv's PNGs (`png`)."""
    index = _read_index(root)
    if mask_source == "json":
        return _v7_json(root, index)
    if mask_source == "png":
        return _v7_png(root, index)
    raise ValueError(f"mask_source must be 'json' or 'png', got {mask_source!r}")

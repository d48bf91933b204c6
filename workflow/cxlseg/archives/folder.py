"""Any folder of DICOM, PNG or JPEG files, the way a hospital exports its own films.

With a CSV (`path` relative to the root, and optionally `patient_id`, `study_id`, `view`) only the files it
names are listed; otherwise the tree is walked (hidden entries ignored).  Patient, study and view come from
the CSV, else from a DICOM's PatientID, StudyInstanceUID and ViewPosition, else from the folders: patient =
the first folder under the root, study = the image's folder (a file loose in the root is its own patient
and study).  A view that says frontal (PA, AP, AP supine, frontal) is kept as it is; a blank or absent view
is kept as `unknown` for the view check to decide; any other view (lateral, oblique, decubitus) is dropped.
Id = the path without suffix, made file-name safe, plus 8 hex of its sha1 (so two paths never share an id).
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from cxlseg.archives.pixels import RASTER_SUFFIXES, PixelReadError, is_dicom
from cxlseg.archives.records import (
    UNKNOWN_VIEW,
    ImageRecord,
    Listing,
    file_problem,
    read_table,
    relative_path,
    safe_id,
    shard_of,
)

KIND = "folder"
FRONTAL = {"PA": "PA", "AP": "AP", "AP SUPINE": "AP", "AP_HORIZONTAL": "AP", "FRONTAL": "frontal", "PA/AP": "frontal"}
BLANK = {"", "UNKNOWN", "UNK", "NONE", "NAN"}
CSV_COLUMNS = ("patient_id", "study_id", "view")


def list_images(root: Path, n_shards: int, metadata: Path | None = None) -> Listing:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: archive folder not found")
    listing = Listing(KIND)
    if metadata is not None:
        for rel, given in _csv_rows(root, Path(metadata)):
            _file(root, rel, given, listing, n_shards)
    else:
        for path in _walk(root):
            _file(root, path.relative_to(root).as_posix(), {}, listing, n_shards)
    return listing.check()


def _csv_rows(root: Path, metadata: Path):
    table = read_table(metadata, ["path"])
    for row in table.to_dict("records"):
        rel = relative_path(root, row["path"].strip(), str(metadata))
        yield rel, {c: str(row.get(c, "")).strip() for c in CSV_COLUMNS}


def _walk(root: Path):
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts):
            yield path


def _file(root: Path, rel: str, given: dict, listing: Listing, n_shards: int) -> None:
    if problem := file_problem(root, rel):
        listing.skip(rel, problem)
        return
    path = root / rel
    if path.name.upper() == "DICOMDIR":
        listing.skip(rel, "DICOMDIR: an index of the export, not an image")
        return
    if path.suffix.lower() in RASTER_SUFFIXES:
        tags = {}
    elif is_dicom(path):
        try:
            tags = _dicom_tags(path)
        except PixelReadError as exc:
            listing.skip(rel, exc.reason)
            return
    else:
        listing.skip(rel, "not a DICOM, PNG or JPEG file")
        return
    view = _view(given.get("view") or tags.get("view", ""))
    if view is None:
        listing.drop_view(given.get("view") or tags.get("view", ""))
        return
    patient, study = _patient_study(rel, given, tags)
    listing.add(ImageRecord(image_id(rel), patient, study, view, rel, shard_of(patient, n_shards), rel))


def _dicom_tags(path: Path) -> dict:
    from cxlseg.archives.dicom import read_tags

    ds = read_tags(path)
    return {
        "patient_id": str(ds.get("PatientID", "") or "").strip(),
        "study_id": str(ds.get("StudyInstanceUID", "") or "").strip(),
        "view": str(ds.get("ViewPosition", "") or "").strip(),
    }


def _view(value: str) -> str | None:
    """The view kept (frontal, or unknown when nothing says), or None for a view that is not frontal."""
    key = " ".join(value.upper().split())
    if key in BLANK:
        return UNKNOWN_VIEW
    return FRONTAL.get(key)


def _patient_study(rel: str, given: dict, tags: dict) -> tuple[str, str]:
    folders = PurePosixPath(rel).parts[:-1]
    loose = PurePosixPath(rel).stem
    patient = given.get("patient_id") or tags.get("patient_id") or (folders[0] if folders else loose)
    study = given.get("study_id") or tags.get("study_id") or ("/".join(folders) if folders else loose)
    return patient, study


def image_id(rel: str) -> str:
    stem = PurePosixPath(rel).with_suffix("").as_posix().replace("/", "__")
    return f"{safe_id(stem)[:100]}-{hashlib.sha1(rel.encode('utf-8')).hexdigest()[:8]}"

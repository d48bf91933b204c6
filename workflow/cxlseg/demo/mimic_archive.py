"""The MIMIC-CXR-JPG archive on disk: JPEGs, reports, the three CSV.gz tables, and true masks beside it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import io
from ..mimic import CHEXPERT_LABELS, FRONTAL_VIEWS, image_relpath, report_relpath
from .layouts import write_mask
from .mimic_plan import DRAWN_CLASSES, plan_mimic
from .mimic_report import mimic_report
from .render import Phantom, render_phantom
from .spec import DemoSpec, stream, film_size

METADATA_COLUMNS = [
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns",
    "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
]
SPLIT_COLUMNS = ["dicom_id", "study_id", "subject_id", "split"]
VIEW_CODES = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral", "": ""}


def _image_size(rng: np.random.Generator, spec: DemoSpec, view: str) -> tuple[int, int]:
    """MIMIC's detector shapes: mostly 3056x2544 portrait; portable AP films are often landscape."""
    if view in ("PA", "LATERAL", "LL", ""):
        aspect = float(rng.choice([3056 / 2544, 1.25, 1.0], p=[0.7, 0.2, 0.1]))
    else:
        aspect = float(rng.choice([3056 / 2544, 2544 / 3056, 1.0], p=[0.5, 0.35, 0.15]))
    return film_size(rng, spec.mimic_long_side, aspect)


def _write_jpeg(path: Path, phantom: Phantom, special: str | None, quality: int, rng: np.random.Generator) -> None:
    """The JPEG, or the damage the special case asks for: none, garbage, cut short, or RGB-encoded."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if special == "missing":
        return
    if special == "corrupt":
        io.write_bytes(path, b"\x00\x00GARBAGE" + rng.bytes(2048))
        return
    image = cv2.cvtColor(phantom.image, cv2.COLOR_GRAY2BGR) if special == "rgb" else phantom.image
    ok, buf = cv2.imencode(".jpg", image, params)
    if not ok:
        raise IOError(f"{path}: OpenCV could not encode the JPEG")
    data = buf.tobytes()
    io.write_bytes(path, data[: len(data) * 55 // 100] if special == "truncated" else data)


def _metadata_row(st: dict, im: dict, height: int, width: int) -> dict:
    view = im["view"]
    return {
        "dicom_id": im["dicom_id"], "subject_id": st["subject_id"], "study_id": st["study_id"],
        "PerformedProcedureStepDescription": st["procedure"], "ViewPosition": view,
        "Rows": height, "Columns": width, "StudyDate": st["date"], "StudyTime": st["time"],
        "ProcedureCodeSequence_CodeMeaning": st["procedure"], "ViewCodeSequence_CodeMeaning": VIEW_CODES[view],
        "PatientOrientationCodeSequence_CodeMeaning": st["orientation"] if view else "",
    }


def _write_image(root: Path, truth_dir: Path, spec: DemoSpec, st: dict, im: dict, index: int) -> tuple[dict, dict]:
    """One image of a study (its own random stream) and its true mask; returns its metadata row and the
    finding sites it drew (the report describes those of the study's first frontal image)."""
    rng = stream(spec, 4, index)
    view = im["view"]
    height, width = _image_size(rng, spec, view)
    frontal = view in FRONTAL_VIEWS
    drawn = {c: st["labels"][c] in (1.0, -1.0) for c in DRAWN_CLASSES} if frontal else {}
    phantom = render_phantom(rng, height, width, findings=drawn, view=view if frontal else "LATERAL",
                             devices=st["devices"], finding_seed=st["finding_seed"])
    if frontal:
        write_mask(truth_dir / f"{im['dicom_id']}.png", phantom.mask)
    path = root / image_relpath(st["subject_id"], st["study_id"], im["dicom_id"])
    _write_jpeg(path, phantom, im.get("special"), spec.jpeg_quality, rng)
    return _metadata_row(st, im, height, width), phantom.sites if frontal else {}


def _write_tables(root: Path, meta: list[dict], chexpert: list[dict], studies: list[dict]) -> None:
    io.write_csv(pd.DataFrame(meta, columns=METADATA_COLUMNS), root / "mimic-cxr-2.0.0-metadata.csv.gz")
    io.write_csv(pd.DataFrame(chexpert, columns=["subject_id", "study_id", *CHEXPERT_LABELS]),
                 root / "mimic-cxr-2.0.0-chexpert.csv.gz")
    split = [{"dicom_id": im["dicom_id"], "study_id": st["study_id"], "subject_id": st["subject_id"],
              "split": st["split"]} for st in studies for im in st["images"]]
    io.write_csv(pd.DataFrame(split, columns=SPLIT_COLUMNS), root / "mimic-cxr-2.0.0-split.csv.gz")


def _summary(spec: DemoSpec, studies: list[dict], meta: list[dict]) -> dict:
    views = pd.Series([m["ViewPosition"] for m in meta]).value_counts().to_dict()
    positives = {c: int(sum(st["labels"][c] == 1.0 for st in studies if st["report"])) for c in CHEXPERT_LABELS}
    return {"subjects": spec.n_mimic_subjects, "studies": len(studies), "images": len(meta),
            "views": {str(k) if k else "blank": int(v) for k, v in views.items()},
            "frontal": int(sum(m["ViewPosition"] in FRONTAL_VIEWS for m in meta)),
            "chexpert_positive": positives}


def write_mimic(root: Path, truth_dir: Path, spec: DemoSpec) -> dict:
    """files/pXX/pN/sM/<dicom_id>.jpg + reports + the three CSV.gz tables; true masks into truth_dir."""
    studies, special = plan_mimic(spec)
    meta, chexpert = [], []
    bar = tqdm(total=sum(len(st["images"]) for st in studies), desc="demo mimic", leave=False)
    for st in studies:
        sites: dict[str, str] = {}
        for im in st["images"]:
            row, drawn_sites = _write_image(root, truth_dir, spec, st, im, len(meta) + 1)
            meta.append(row)
            sites = sites or drawn_sites
            bar.update()
        if st["report"]:
            text = mimic_report(stream(spec, 5, st["study_id"]), st, sites)
            io.write_text(root / report_relpath(st["subject_id"], st["study_id"]), text)
            chexpert.append({"subject_id": st["subject_id"], "study_id": st["study_id"], **st["labels"]})
    bar.close()
    _write_tables(root, meta, chexpert, studies)
    return {**_summary(spec, studies, meta), "special": special}

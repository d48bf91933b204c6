"""The MIMIC-CXR-JPG archive on disk: JPEGs, reports, the three CSV.gz tables, and true masks beside it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from cxlseg import io
from cxlseg.config import section_defaults
from cxlseg.mimic import CHEXPERT_LABELS, FRONTAL_VIEWS, image_relpath, report_relpath
from cxlseg.phantoms.layouts import write_mask
from cxlseg.phantoms.mimic_plan import DRAWN_CLASSES, plan_mimic
from cxlseg.phantoms.mimic_report import empty_report, mimic_report
from cxlseg.phantoms.render import Phantom, render_phantom
from cxlseg.phantoms.spec import DemoSpec, film_size, stream
from cxlseg.qc.degradations import degrade

METADATA_COLUMNS = [
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
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
        "dicom_id": im["dicom_id"],
        "subject_id": st["subject_id"],
        "study_id": st["study_id"],
        "PerformedProcedureStepDescription": st["procedure"],
        "ViewPosition": view,
        "Rows": height,
        "Columns": width,
        "StudyDate": st["date"],
        "StudyTime": st["time"],
        "ProcedureCodeSequence_CodeMeaning": st["procedure"],
        "ViewCodeSequence_CodeMeaning": VIEW_CODES[view],
        "PatientOrientationCodeSequence_CodeMeaning": st["orientation"] if view else "",
    }


def _render(rng: np.random.Generator, spec: DemoSpec, st: dict, im: dict) -> Phantom:
    """The image as its true view shows it: frontal films carry the study's findings; LL and blank views
    render as laterals; a mislabelled image renders as its `true_view` (lateral or a CT slice)."""
    true_view = im.get("true_view", im["view"])
    if true_view == "CT":
        height = width = min(512, int(rng.integers(spec.mimic_long_side[0], spec.mimic_long_side[1] + 1)))
    else:
        height, width = _image_size(rng, spec, true_view)
    frontal = true_view in FRONTAL_VIEWS
    drawn = {c: st["labels"][c] in (1.0, -1.0) for c in DRAWN_CLASSES} if frontal else {}
    render_view = true_view if frontal or true_view == "CT" else "LATERAL"
    return render_phantom(
        rng, height, width, findings=drawn, view=render_view, devices=st["devices"], finding_seed=st["finding_seed"]
    )


def _write_image(root: Path, truth_dir: Path, spec: DemoSpec, st: dict, im: dict) -> tuple[dict, dict]:
    """One image of a study (its own random stream) and, for a true frontal film, its true mask; returns its
    metadata row and the finding sites it drew (the report describes those of the study's first frontal)."""
    rng = stream(spec, *im["stream"])
    phantom = _render(rng, spec, st, im)
    if "hard_film" in im:  # seeded by the image's own stream, after the render: nothing else changes
        image, mask = degrade(phantom.image, phantom.mask, im["hard_film"], 0.8, int(rng.integers(2**31)))
        phantom = dataclasses.replace(phantom, image=image, mask=mask)
    true_frontal = phantom.view in FRONTAL_VIEWS
    if true_frontal:
        write_mask(truth_dir / f"{im['dicom_id']}.png", phantom.mask)
    path = root / image_relpath(st["subject_id"], st["study_id"], im["dicom_id"])
    _write_jpeg(path, phantom, im.get("special"), spec.jpeg_quality, rng)
    return _metadata_row(st, im, *phantom.image.shape), phantom.sites if true_frontal else {}


def _write_report(root: Path, spec: DemoSpec, st: dict, sites: dict[str, str]) -> None:
    rng = stream(spec, 5, st["study_id"])
    text = empty_report(rng, st) if st["empty_report"] else mimic_report(rng, st, sites)
    io.write_text(root / report_relpath(st["subject_id"], st["study_id"]), text)


def _write_tables(root: Path, meta: list[dict], chexpert: list[dict], studies: list[dict]) -> None:
    """MIMIC-CXR-JPG's three tables under their own names, the schema's `mimic.*` defaults (decided there)."""
    names = section_defaults("mimic")
    io.write_csv(pd.DataFrame(meta, columns=METADATA_COLUMNS), root / names["metadata"])
    io.write_csv(
        pd.DataFrame(chexpert, columns=["subject_id", "study_id", *CHEXPERT_LABELS]),
        root / names["chexpert"],
    )
    split = [
        {"dicom_id": im["dicom_id"], "study_id": st["study_id"], "subject_id": st["subject_id"], "split": st["split"]}
        for st in studies
        for im in st["images"]
    ]
    io.write_csv(pd.DataFrame(split, columns=SPLIT_COLUMNS), root / names["split"])


def _labelled(st: dict) -> bool:
    """A study whose report has text, so CheXpert labels exist for it."""
    return st["report"] and not st["empty_report"]


def _summary(spec: DemoSpec, studies: list[dict], meta: list[dict]) -> dict:
    """Counts; `views` and `frontal` follow the metadata's ViewPosition (mislabelled images count as frontal)."""
    views = pd.Series([m["ViewPosition"] for m in meta]).value_counts().to_dict()
    positives = {c: int(sum(st["labels"][c] == 1.0 for st in studies if _labelled(st))) for c in CHEXPERT_LABELS}
    n_empty = sum(st["empty_report"] for st in studies)
    return {
        "subjects": spec.n_mimic_subjects,
        "studies": len(studies),
        "images": len(meta),
        "views": {str(k) if k else "blank": int(v) for k, v in views.items()},
        "frontal": int(sum(m["ViewPosition"] in FRONTAL_VIEWS for m in meta)),
        "chexpert_positive": positives,
        "reports": {
            "with_text": sum(map(_labelled, studies)),
            "empty": n_empty,
            "absent": sum(not st["report"] for st in studies),
        },
        "truth_masks": sum(
            im["view"] in FRONTAL_VIEWS and "true_view" not in im for st in studies for im in st["images"]
        ),
    }


def write_mimic(root: Path, truth_dir: Path, spec: DemoSpec) -> dict:
    """files/pXX/pN/sM/<dicom_id>.jpg + reports + the three CSV.gz tables; true masks into truth_dir
    (true frontal films only: a lateral or CT image labelled PA/AP has no lung mask that makes sense)."""
    studies, special = plan_mimic(spec)
    meta, chexpert = [], []
    bar = tqdm(total=sum(len(st["images"]) for st in studies), desc="demo mimic", leave=False)
    for st in studies:
        sites: dict[str, str] = {}
        for im in st["images"]:
            row, drawn_sites = _write_image(root, truth_dir, spec, st, im)
            meta.append(row)
            sites = sites or drawn_sites
            bar.update()
        if st["report"]:
            _write_report(root, spec, st, sites)
        if _labelled(st):
            chexpert.append({"subject_id": st["subject_id"], "study_id": st["study_id"], **st["labels"]})
    bar.close()
    _write_tables(root, meta, chexpert, studies)
    return {**_summary(spec, studies, meta), "special": special}

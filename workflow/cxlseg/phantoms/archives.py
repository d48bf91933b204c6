"""Small synthetic archives of CheXpert, ChestX-ray14 and PadChest in their exact layouts and metadata files
(DICOM archives: :mod:`.archive_dicom`), for the archive adapters' tests and the demo.

Each holds frontal films the adapter must keep, non-frontal ones it must drop, and a known-bad file it must
skip with a reason; `write_archive` returns what the adapter should find (`expected`).  Films are phantoms
(:func:`render_phantom`) of `side` px, drawn from one stream per image: same seed, same bytes.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.mimic import CHEXPERT_LABELS
from cxlseg.phantoms.layouts import write_png
from cxlseg.phantoms.render import Phantom, render_phantom, to_uint16

CHEXPERT_PREFIX = "CheXpert-v1.0-small/"
NIH_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
)
PADCHEST_CSV = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"
PADCHEST_COLUMNS = [
    "ImageID", "ImageDir", "StudyDate_DICOM", "StudyID", "PatientID", "PatientBirth", "PatientSex_DICOM",
    "ViewPosition_DICOM", "Projection", "PhotometricInterpretation_DICOM", "BitsStored_DICOM",
    "WindowCenter_DICOM", "WindowWidth_DICOM", "Rows_DICOM", "Columns_DICOM", "SpatialResolution_DICOM",
    "Report", "MethodLabel", "Labels",
]  # fmt: skip
PADCHEST_BAD = "216840111366964012373310883942009152114636712_00-102-045.png"  # torchxrayvision: truncated


def film(seed: int, key: tuple, side: tuple[int, int], view: str) -> Phantom:
    """One phantom film of the view, its size and content drawn from its own stream."""
    rng = np.random.default_rng([seed, *key])
    height, width = (int(v) for v in rng.integers(side[0], side[1] + 1, size=2))
    return render_phantom(rng, height, width, view="LATERAL" if view not in ("PA", "AP") else view)


def _expected() -> dict:
    return {"kept": {}, "dropped": 0, "skipped": {}}


# --------------------------------------------------------------------------- CheXpert


def write_chexpert(root: Path, seed: int, n_patients: int, side: tuple[int, int]) -> dict:
    """train.csv + valid.csv (Path with the small release's prefix) and {train,valid}/patientN/studyN/viewN_*.jpg:
    each patient a PA/AP frontal and a lateral; patient 1 a second study whose frontal is `view2_frontal`;
    the last patient in valid; one train row whose file is not on disk."""
    rows: dict[str, list] = {"train": [], "valid": []}
    expected = _expected()
    for p in range(1, n_patients + 1):
        split = "valid" if p == n_patients else "train"
        patient = f"patient{p + (64540 if split == 'valid' else 0):05d}"
        views = [("view1_frontal", "PA" if p % 2 else "AP"), ("view2_lateral", "")]
        studies = [("study1", views)]
        if p == 1:
            studies.append(("study2", [("view1_lateral", ""), ("view2_frontal", "AP")]))
        if p == 2:
            studies.append(("study2", [("view1_frontal", "PA")]))  # listed, never written: the known-bad row
        for s, (study, images) in enumerate(studies):
            for v, (name, appa) in enumerate(images):
                rel = f"{split}/{patient}/{study}/{name}.jpg"
                frontal = name.endswith("frontal")
                rows[split].append(_chexpert_row(CHEXPERT_PREFIX + rel, frontal, appa, p))
                if p == 2 and study == "study2":
                    expected["skipped"][rel] = "not on disk"
                    continue
                image = film(seed, (31, p, s, v), side, appa or "LATERAL").image
                io.write_image(root / rel, image)
                if frontal:
                    expected["kept"][f"{patient}_{study}_{name}"] = rel
                else:
                    expected["dropped"] += 1
    columns = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", *CHEXPERT_LABELS]
    for split, table in rows.items():
        io.write_csv(pd.DataFrame(table, columns=columns), root / f"{split}.csv")
    return expected


def _chexpert_row(path: str, frontal: bool, appa: str, p: int) -> dict:
    labels = {c: "" for c in CHEXPERT_LABELS}
    labels["Pleural Effusion"] = "1.0" if p % 3 == 0 else ""
    return {
        "Path": path,
        "Sex": "Unknown" if p == 3 else ("Male" if p % 2 else "Female"),
        "Age": 0 if p == 3 else 40 + p,
        "Frontal/Lateral": "Frontal" if frontal else "Lateral",
        "AP/PA": appa,
        "No Finding": "" if p % 3 == 0 else "1.0",
        **labels,
    }


# --------------------------------------------------------------------------- ChestX-ray14


def write_chestxray14(root: Path, seed: int, n_patients: int, side: tuple[int, int]) -> dict:
    """Data_Entry_2017_v2020.csv (its header's bracketed commas included) and the Kaggle layout
    images_00N/images/NNNNNNNN_NNN.png, 8-bit; two visits per patient, the second's `Follow-up #` not its
    file suffix; one row whose PNG is missing; one `LL` row (the real archive has none: it tests the filter)."""
    expected = _expected()
    lines = [NIH_HEADER]
    for p in range(1, n_patients + 1):
        for visit in range(2):
            name = f"{p:08d}_{visit:03d}.png"
            view = "LL" if (p, visit) == (1, 1) else ("PA" if visit == 0 else "AP")
            phantom = film(seed, (32, p, visit), side, view)
            height, width = phantom.image.shape
            follow_up = 0 if visit == 1 and p == 2 else visit
            lines.append(f"{name},No Finding,{follow_up},{p},{30 + p},M,{view},{width},{height},0.143,0.143")
            rel = f"images_{1 + (p - 1) * 2 // n_patients:03d}/images/{name}"
            if (p, visit) == (n_patients, 1):
                expected["skipped"][name] = "not on disk"
                continue
            write_png(root / rel, phantom.image)
            if view == "LL":
                expected["dropped"] += 1
            else:
                expected["kept"][name[:-4]] = rel
    io.write_text(root / "Data_Entry_2017_v2020.csv", "\n".join(lines) + "\n")
    return expected


# --------------------------------------------------------------------------- PadChest


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, size=n))


def _padchest_id(rng: np.random.Generator, k: int) -> str:
    digits = "2168401113669640" + _digits(rng, 29)
    return f"{digits}_{'l7czww' if k == 1 else f'0{k % 3}-{k:03d}-{(7 * k) % 200:03d}'}.png"


def write_padchest(root: Path, seed: int, n_patients: int, side: tuple[int, int]) -> dict:
    """The labels CSV (gzip, as torchxrayvision ships it) and <ImageDir>/<ImageID> 16-bit PNGs using the full
    16-bit range, each patient one study with a PA or AP_horizontal film and an `L` lateral; a row of
    torchxrayvision's truncated-file list (written truncated); a row whose file is missing."""
    expected = _expected()
    rows = []
    rng = np.random.default_rng([seed, 33])
    for p in range(1, n_patients + 1):
        study, patient = _digits(rng, 32), _digits(rng, 32)
        for k, projection in enumerate(("AP_horizontal" if p % 2 == 0 else "PA", "L")):
            image_id = _padchest_id(rng, 2 * p + k)
            folder = str(p % 3)
            rows.append(_padchest_row(image_id, folder, study, patient, projection))
            phantom = film(seed, (33, p, k), side, projection[:2])
            data = to_uint16(phantom.signal, np.random.default_rng([seed, 33, p, k, 1]), bits=16)
            rel = f"{folder}/{image_id}"
            if (p, k) == (n_patients, 0):
                expected["skipped"][rel] = "not on disk"
                continue
            write_png(root / rel, data)
            if projection == "L":
                expected["dropped"] += 1
            else:
                expected["kept"][image_id[:-4]] = rel
    rows.append(_padchest_row(PADCHEST_BAD, "0", "1" * 31, "2" * 31, "PA"))
    ok, png = cv2.imencode(".png", to_uint16(film(seed, (33, 0, 0), side, "PA").signal, rng, bits=16))
    io.write_bytes(root / "0" / PADCHEST_BAD, png.tobytes()[:200] if ok else b"")
    expected["skipped"][f"0/{PADCHEST_BAD}"] = "truncated"
    csv = pd.DataFrame(rows, columns=PADCHEST_COLUMNS).to_csv(index=False).encode("utf-8")
    io.write_bytes(root / f"{PADCHEST_CSV}.gz", gzip.compress(csv, mtime=0))
    return expected


def _padchest_row(image_id: str, folder: str, study: str, patient: str, projection: str) -> dict:
    return {
        "ImageID": image_id,
        "ImageDir": folder,
        "StudyDate_DICOM": "20140915",
        "StudyID": study,
        "PatientID": patient,
        "PatientBirth": "1950.0",
        "PatientSex_DICOM": "F",
        "ViewPosition_DICOM": {"L": "LATERAL", "AP_horizontal": "AP"}.get(projection, projection),
        "Projection": projection,
        "PhotometricInterpretation_DICOM": "MONOCHROME2",
        "BitsStored_DICOM": "12",
        "WindowCenter_DICOM": "2048",
        "WindowWidth_DICOM": "4096",
        "Rows_DICOM": "2828",
        "Columns_DICOM": "2320",
        "SpatialResolution_DICOM": "0.139",
        "Report": "sin hallazgos",
        "MethodLabel": "Physician",
        "Labels": "['normal']",
    }


def write_archive(kind: str, root: Path, seed: int, n_patients: int, side: tuple[int, int]) -> dict:
    """The synthetic archive of `kind` under root; returns what its adapter should find: `kept` (id or path ->
    path or view), `dropped` (non-frontal count) and `skipped` (path -> a word of the reason)."""
    from cxlseg.phantoms.archive_dicom import write_folder, write_vindr  # pydicom only for DICOM archives

    writers = {
        "chexpert": write_chexpert,
        "chestxray14": write_chestxray14,
        "padchest": write_padchest,
        "vindr": write_vindr,
        "folder": write_folder,
    }
    if kind not in writers:
        raise ValueError(f"no synthetic archive of kind {kind!r}; expected one of {sorted(writers)}")
    if n_patients < 3:
        raise ValueError(f"a synthetic archive needs >= 3 patients (its special cases), got {n_patients}")
    return writers[kind](Path(root), seed, n_patients, side)


def write_demo_archive(root: Path, summary_path: Path, spec) -> dict:
    """Rule demo_archive: the synthetic archive of `spec.kind` under root (cleared first, so a smaller archive
    leaves no stale files), and what its adapter should find, saved as `summary_path` (JSON)."""
    root = Path(root)
    if root.is_dir():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    expected = write_archive(spec.kind, root, spec.seed, spec.archive_patients, tuple(spec.archive_side))
    io.write_json(summary_path, {"kind": spec.kind, "expected": expected})
    return expected

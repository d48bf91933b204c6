"""The synthetic demo archive: Shenzhen, Montgomery, V7-labs and MIMIC-CXR-JPG in their native layouts.

Every image is a :mod:`cxlseg.phantom` radiograph with an exact lung mask, and
the archive carries what real copies carry and the pipeline must survive:
images without masks, 16-bit PNGs holding 12-bit data, portrait and landscape
films, Darwin JSON in both polygon spellings (with a hole and an "Ignore"
region), lateral views and a CT slice, MIMIC studies without reports, a
corrupt, a truncated, a missing and an RGB-encoded JPEG.

MIMIC CheXpert labels are drawn first and the images follow them: a study
labelled Pneumonia, Lung Lesion, Atelectasis or Pleural Effusion (1.0 or
-1.0) shows that finding inside the lungs of each of its frontal images, and
its report says so; the clutter outside the lungs is drawn independently.

Layout choices that differ from the real archives (documented in demo.json):
MIMIC reports live beside the study folders (``files/pXX/pN/sM.txt``), and
``mimic-truth/<dicom_id>.png`` holds the true lung mask of every frontal image
for checking the pipeline's quality control.  Same spec, same bytes.
"""

from __future__ import annotations

import logging
import shutil
import textwrap
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from . import io
from .phantom import SUPPORT_DEVICES, Phantom, render_phantom, to_uint16

log = logging.getLogger(__name__)

CHEXPERT_COLUMNS = [
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
    "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
    "Pneumothorax", "Support Devices",
]
METADATA_COLUMNS = [
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns",
    "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
]
SPLIT_COLUMNS = ["dicom_id", "study_id", "subject_id", "split"]
V7_INDEX_COLUMNS = ["image", "mask", "patient_id", "view", "finding"]
DRAWN_CLASSES = ("Atelectasis", "Lung Lesion", "Pleural Effusion", "Pneumonia")  # labels with visible findings
V7_CLASSES = ("COVID-19", "No Pneumonia", "Bacterial Pneumonia", "Viral Pneumonia", "COVID-19",
              "Fungal Pneumonia", "No Pneumonia", "Bacterial Pneumonia")
V7_FINDINGS = {"COVID-19": {"COVID-19": True}, "Viral Pneumonia": {"Pneumonia": True},
               "Bacterial Pneumonia": {"Pneumonia": True}, "Fungal Pneumonia": {"Pneumonia": True, "Lung Lesion": True},
               "No Pneumonia": {}}
VIEW_CODES = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral", "": ""}


@dataclass
class DemoSpec:
    """What the demo archive holds; every field is a config key (`demo.*`)."""

    seed: int = 7
    n_shenzhen: int = 12
    n_montgomery: int = 8
    n_v7: int = 16
    n_mimic_subjects: int = 24
    shenzhen_side: tuple[int, int] = (512, 1024)  # square-ish films, side range in px
    montgomery_long_side: tuple[int, int] = (512, 1024)  # 4892:4020 films, portrait or landscape
    v7_side: tuple[int, int] = (400, 900)
    mimic_long_side: tuple[int, int] = (600, 2500)
    tb_fraction: float = 0.5  # Shenzhen/Montgomery share of tuberculosis films
    finding_rate: float = 0.3  # MIMIC: chance per study that each drawn CheXpert class is present
    uncertain_rate: float = 0.15  # ... and that a present finding is reported as uncertain (-1.0)
    max_studies_per_subject: int = 3
    jpeg_quality: int = 95

    @classmethod
    def from_dict(cls, values: Mapping) -> "DemoSpec":
        """Build from a config section (lists become ranges); an unknown key is named, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown demo setting(s) {unknown}; known: {sorted(known)}")
        spec = cls(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()})
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.n_shenzhen < 3:
            raise ValueError(f"demo n_shenzhen must be >= 3 (normal, TB, one without mask), got {self.n_shenzhen}")
        if self.n_montgomery < 2:
            raise ValueError(f"demo n_montgomery must be >= 2 (8-bit and 16-bit), got {self.n_montgomery}")
        if self.n_v7 < 6:
            raise ValueError(f"demo n_v7 must be >= 6 (variants, two laterals, one CT), got {self.n_v7}")
        if self.n_mimic_subjects < 4:
            raise ValueError(f"demo n_mimic_subjects must be >= 4 (three prefixes and the special cases), "
                             f"got {self.n_mimic_subjects}")
        for name in ("shenzhen_side", "montgomery_long_side", "v7_side", "mimic_long_side"):
            lo, hi = getattr(self, name)
            if not 64 <= lo <= hi:
                raise ValueError(f"demo {name} must be a range 64 <= lo <= hi, got {(lo, hi)}")
        if self.max_studies_per_subject < 1:
            raise ValueError(f"demo max_studies_per_subject must be >= 1, got {self.max_studies_per_subject}")
        if not 50 <= self.jpeg_quality <= 100:
            raise ValueError(f"demo jpeg_quality must be within [50, 100], got {self.jpeg_quality}")
        for name in ("tb_fraction", "finding_rate", "uncertain_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"demo {name} must be within [0, 1], got {getattr(self, name)}")


def _rng(spec: DemoSpec, *keys: int) -> np.random.Generator:
    """One independent stream per (dataset, item): adding a dataset or an image never reshuffles the others."""
    return np.random.default_rng([spec.seed, *keys])


def _size(rng: np.random.Generator, long_range: tuple[int, int], aspect: float) -> tuple[int, int]:
    """(height, width) with the given height/width ratio and a long side drawn from the range."""
    long_side = int(rng.integers(long_range[0], long_range[1] + 1))
    if aspect >= 1:
        return long_side, max(64, int(round(long_side / aspect)))
    return max(64, int(round(long_side * aspect))), long_side


def _png(path: Path, image: np.ndarray) -> None:
    io.write_image(path, image, [cv2.IMWRITE_PNG_COMPRESSION, 3])


def _mask_png(path: Path, mask: np.ndarray) -> None:
    _png(path, (mask > 0).astype(np.uint8) * 255)


def _age_sex(rng: np.random.Generator) -> tuple[str, int]:
    return ("M" if rng.random() < 0.6 else "F"), int(rng.integers(18, 86))


def _tb_text(phantom: Phantom) -> str:
    site = phantom.sites.get("Tuberculosis", "right upper")
    if site.startswith("bilateral"):
        return "bilateral PTB, infiltrates in both upper fields"
    return f"PTB in the {site.split()[0]} upper field"


# --------------------------------------------------------------------------- Shenzhen


def write_shenzhen(root: Path, spec: DemoSpec) -> dict:
    """CXR_png/CHNCXR_####_[01].png, mask/..._mask.png and ClinicalReadings/*.txt; one film lacks a mask."""
    plan = _rng(spec, 1, 0)
    n_tb = int(round(spec.tb_fraction * spec.n_shenzhen))
    labels = [1] * n_tb + [0] * (spec.n_shenzhen - n_tb)
    if 0 not in labels or 1 not in labels:
        labels[0], labels[-1] = 0, 1
    plan.shuffle(labels)
    without_mask = int(plan.integers(spec.n_shenzhen))
    rgb = (without_mask + 1) % spec.n_shenzhen
    summary = {"normal": 0, "tuberculosis": 0, "without_mask": [], "rgb": []}
    for i, tb in enumerate(tqdm(labels, desc="demo shenzhen", leave=False)):
        rng = _rng(spec, 1, i + 1)
        side = int(rng.integers(spec.shenzhen_side[0], spec.shenzhen_side[1] + 1))
        height, width = side, int(side * rng.uniform(0.9, 1.05))
        phantom = render_phantom(rng, height, width, findings={"Tuberculosis": bool(tb)}, view="PA")
        stem = f"CHNCXR_{i + 1:04d}_{tb}"
        image = cv2.cvtColor(phantom.image, cv2.COLOR_GRAY2BGR) if i == rgb else phantom.image
        _png(root / "CXR_png" / f"{stem}.png", image)
        if i == without_mask:
            summary["without_mask"].append(stem)
        else:
            _mask_png(root / "mask" / f"{stem}_mask.png", phantom.mask)
        if i == rgb:
            summary["rgb"].append(stem)
        sex, age = _age_sex(rng)
        finding = _tb_text(phantom) if tb else "normal"
        io.write_text(root / "ClinicalReadings" / f"{stem}.txt",
                      f"{'male' if sex == 'M' else 'female'} {age}yrs\n{finding}\n")
        summary["tuberculosis" if tb else "normal"] += 1
    return summary


# --------------------------------------------------------------------------- Montgomery


def write_montgomery(root: Path, spec: DemoSpec) -> dict:
    """MontgomerySet/CXR_png + ManualMask/{left,right}Mask + ClinicalReadings; some 16-bit, some landscape."""
    base = root / "MontgomerySet"
    plan = _rng(spec, 2, 0)
    n_tb = int(round(spec.tb_fraction * spec.n_montgomery))
    labels = [1] * n_tb + [0] * (spec.n_montgomery - n_tb)
    plan.shuffle(labels)
    deep = set(range(0, spec.n_montgomery, 2))  # every other film keeps its 12-bit detector data
    landscape = {i for i in range(spec.n_montgomery) if i % 3 == 1}
    summary = {"normal": 0, "tuberculosis": 0, "16bit": [], "landscape": []}
    for i, tb in enumerate(tqdm(labels, desc="demo montgomery", leave=False)):
        rng = _rng(spec, 2, i + 1)
        aspect = 4020 / 4892 if i in landscape else 4892 / 4020
        height, width = _size(rng, spec.montgomery_long_side, aspect)
        phantom = render_phantom(rng, height, width, findings={"Tuberculosis": bool(tb)}, view="PA")
        stem = f"MCUCXR_{i + 1:04d}_{tb}"
        image = to_uint16(phantom.signal, rng, bits=12) if i in deep else phantom.image
        _png(base / "CXR_png" / f"{stem}.png", image)
        _mask_png(base / "ManualMask" / "leftMask" / f"{stem}.png", phantom.left_mask)
        _mask_png(base / "ManualMask" / "rightMask" / f"{stem}.png", phantom.right_mask)
        sex, age = _age_sex(rng)
        finding = _tb_text(phantom) if tb else "normal"
        io.write_text(base / "ClinicalReadings" / f"{stem}.txt",
                      f"Patient's Sex: {sex}\nPatient's Age: {age:03d}Y\n{finding}\n")
        summary["tuberculosis" if tb else "normal"] += 1
        if i in deep:
            summary["16bit"].append(stem)
        if i in landscape:
            summary["landscape"].append(stem)
    return summary


# --------------------------------------------------------------------------- V7 (Darwin JSON)


def mask_to_paths(mask: np.ndarray, epsilon: float = 1.0) -> list[list[dict]]:
    """Outer outlines of a 0/1 mask as Darwin vertex paths (what V7's own export recipe does)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    paths = []
    for contour in sorted(contours, key=lambda c: (int(c[:, 0, 0].min()), int(c[:, 0, 1].min()))):
        if cv2.contourArea(contour) < 4:
            continue
        poly = cv2.approxPolyDP(contour, epsilon, True)[:, 0, :]
        paths.append([{"x": float(x), "y": float(y)} for x, y in poly])
    return paths


def paths_to_mask(paths: list[list[dict]], shape: tuple[int, int]) -> np.ndarray:
    """Even-odd fill of the paths of one annotation, the way Darwin encodes holes."""
    mask = np.zeros(shape, np.uint8)
    for path in paths:
        layer = np.zeros(shape, np.uint8)
        cv2.fillPoly(layer, [np.round([[p["x"], p["y"]] for p in path]).astype(np.int32)], 1)
        mask ^= layer
    return mask


def _bbox(paths: list[list[dict]]) -> dict:
    xs = [p["x"] for path in paths for p in path]
    ys = [p["y"] for path in paths for p in path]
    return {"x": min(xs), "y": min(ys), "w": max(xs) - min(xs), "h": max(ys) - min(ys)}


def _hole(rng: np.random.Generator, lung: np.ndarray) -> list[dict]:
    """A small region the annotator cut out of a lung (drawn as an inner path of a complex polygon)."""
    inner = cv2.erode(lung, np.ones((3, 3), np.uint8), iterations=max(2, lung.shape[0] // 25))
    ys, xs = np.nonzero(inner)
    i = int(rng.integers(ys.size))
    r = max(4, lung.shape[0] // 40)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    return [{"x": float(xs[i] + r * np.cos(a)), "y": float(ys[i] + r * 0.8 * np.sin(a))} for a in angles]


def _v7_name(kind: str, patient: int, k: int, view: str) -> str:
    """File names in the styles the V7 set inherited from its sources (COVID collections, Kermany, NIH)."""
    if view == "CT":
        return f"covid-19-ct-{patient}.png"
    names = {
        "COVID-19": f"covid-19-pneumonia-{patient}-day{k + 1}-{view}.jpg",
        "Viral Pneumonia": f"person{patient}_virus_{k + 1}.jpeg",
        "Bacterial Pneumonia": f"person{patient}_bacteria_{k + 1}.jpeg",
        "Fungal Pneumonia": f"fungal-pneumonia-{patient}-{k + 1}.jpg",
        "No Pneumonia": f"{patient:08d}_{k:03d}.png",
    }
    return names[kind]


def _v7_plan(spec: DemoSpec) -> list[dict]:
    """Which image is which: class, patient, view and annotation variant."""
    plan = _rng(spec, 3, 0)
    items, last_patient, counts = [], {}, {}
    n_frontal = spec.n_v7 - 3
    for j in range(n_frontal):
        kind = V7_CLASSES[j % len(V7_CLASSES)]
        reuse = kind in last_patient and plan.random() < 0.4
        patient = last_patient[kind] if reuse else int(plan.integers(100, 30000))
        last_patient[kind] = patient
        k = counts.get((kind, patient), 0)
        counts[(kind, patient)] = k + 1
        view = "AP" if plan.random() < 0.4 else "PA"
        variant = ("two_polygons", "complex_polygon")[j % 2]
        items.append({"kind": kind, "patient": patient, "k": k, "view": view, "variant": variant})
    items[1]["variant"] = "complex_with_hole"
    items[2]["ignore"] = True
    covid = next(it for it in items if it["kind"] == "COVID-19")
    for k in range(2):  # follow-up laterals of a COVID-19 patient
        items.append({"kind": "COVID-19", "patient": covid["patient"], "k": 10 + k, "view": "Lateral",
                      "variant": "lateral"})
    items.append({"kind": "COVID-19", "patient": int(plan.integers(30000, 40000)), "k": 0, "view": "CT",
                  "variant": "ct"})
    return items


def _lung_annotations(rng: np.random.Generator, phantom: Phantom, variant: str) -> list[dict]:
    """"Lung" as one polygon per lung, or one complex polygon with several paths (optionally a hole)."""
    if variant in ("two_polygons", "lateral"):
        parts = [phantom.mask] if variant == "lateral" else [phantom.right_mask, phantom.left_mask]
        return [{"name": "Lung", "polygon": {"path": path}, "bounding_box": _bbox([path])}
                for part in parts for path in mask_to_paths(part)]
    if variant in ("complex_polygon", "complex_with_hole"):
        paths = mask_to_paths(phantom.mask)
        if variant == "complex_with_hole":
            paths.append(_hole(rng, phantom.left_mask))
        return [{"name": "Lung", "complex_polygon": {"path": paths}, "bounding_box": _bbox(paths)}]
    return []


def _annotation_mask(annotations: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """The PNG twin of the Darwin JSON: lungs united, each complex polygon filled even-odd."""
    mask = np.zeros(shape, np.uint8)
    for a in annotations:
        paths = a["complex_polygon"]["path"] if "complex_polygon" in a else [a["polygon"]["path"]]
        mask |= paths_to_mask(paths, shape)
    return mask


def _darwin_document(j: int, name: str, width: int, height: int, annotations: list[dict]) -> dict:
    return {
        "dataset": "covid-19-chest-x-ray-dataset",
        "image": {"width": width, "height": height, "original_filename": name, "filename": name,
                  "url": f"https://darwin.v7labs.com/api/images/{j + 1}/original", "thumbnail_url": None,
                  "path": "/", "workview_url": None, "seq": j + 1},
        "annotations": annotations,
    }


def write_v7(root: Path, spec: DemoSpec) -> dict:
    """images/, annotations/ (Darwin JSON 1.0), masks/ (PNG) and index.csv."""
    rows, summary = [], {"classes": {}, "variants": {}, "lateral": [], "ct": [], "ignore": [], "hole": []}
    for j, item in enumerate(tqdm(_v7_plan(spec), desc="demo v7", leave=False)):
        rng = _rng(spec, 3, j + 1)
        kind, view, variant = item["kind"], item["view"], item["variant"]
        side = int(rng.integers(spec.v7_side[0], spec.v7_side[1] + 1))
        height, width = side, int(side * rng.uniform(0.85, 1.15))
        render_view = {"Lateral": "LATERAL", "CT": "CT"}.get(view, view)
        phantom = render_phantom(rng, height, width, findings=V7_FINDINGS[kind] if render_view != "CT" else {},
                                 view=render_view)
        name = _v7_name(kind, item["patient"], item["k"], view)
        stem = Path(name).stem
        params = [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality] if Path(name).suffix in (".jpg", ".jpeg") else []
        io.write_image(root / "images" / name, phantom.image, params)

        lungs = _lung_annotations(rng, phantom, variant)
        annotations = list(lungs)
        if item.get("ignore"):  # an excluded region (burned-in text) that is not lung
            box = [{"x": 0.0, "y": 0.0}, {"x": width * 0.25, "y": 0.0}, {"x": width * 0.25, "y": height * 0.08},
                   {"x": 0.0, "y": height * 0.08}]
            annotations.append({"name": "Ignore", "polygon": {"path": box}, "bounding_box": _bbox([box])})
            summary["ignore"].append(stem)
        tags = [kind] + (["Viral Pneumonia"] if kind == "COVID-19" and rng.random() < 0.5 else []) + [view]
        annotations += [{"name": tag, "tag": {}} for tag in tags]
        io.write_json(root / "annotations" / f"{stem}.json", _darwin_document(j, name, width, height, annotations))

        mask_rel = f"masks/{stem}.png" if lungs else ""
        if lungs:
            _mask_png(root / mask_rel, _annotation_mask(lungs, (height, width)))
        rows.append({"image": f"images/{name}", "mask": mask_rel, "patient_id": f"v7-{item['patient']}",
                     "view": view, "finding": kind})
        summary["classes"][kind] = summary["classes"].get(kind, 0) + 1
        summary["variants"][variant] = summary["variants"].get(variant, 0) + 1
        flags = {"lateral": view == "Lateral", "ct": view == "CT", "hole": variant == "complex_with_hole"}
        for key in (k for k, hit in flags.items() if hit):
            summary[key].append(stem)
    io.write_csv(pd.DataFrame(rows, columns=V7_INDEX_COLUMNS), root / "index.csv")
    return summary


# --------------------------------------------------------------------------- MIMIC-CXR-JPG


STUDY_TYPES = (  # (procedure, views, weight)
    ("CHEST (PA AND LAT)", ("PA", "LATERAL"), 0.40),
    ("CHEST (PORTABLE AP)", ("AP",), 0.30),
    ("CHEST (PRE-OP PA & LAT)", ("PA", "LL"), 0.10),
    ("CHEST (SINGLE VIEW)", ("AP",), 0.08),
    ("CHEST (PA AND LAT)", ("PA", "LATERAL", "LL"), 0.07),
    ("CHEST (PORTABLE AP)", ("AP", ""), 0.05),
)


def _dicom_id(rng: np.random.Generator) -> str:
    return "-".join(rng.bytes(4).hex() for _ in range(5))


def _unique(rng: np.random.Generator, seen: set, draw) -> int:
    while True:
        value = draw(rng)
        if value not in seen:
            seen.add(value)
            return value


def _labels(rng: np.random.Generator, spec: DemoSpec, devices: tuple[str, ...]) -> dict[str, float | None]:
    """One study's CheXpert row (1.0, 0.0, -1.0 or None = blank); the drawn classes decide the image."""
    labels: dict[str, float | None] = {c: None for c in CHEXPERT_COLUMNS}
    for name in DRAWN_CLASSES:
        if rng.random() < spec.finding_rate:
            labels[name] = -1.0 if rng.random() < spec.uncertain_rate else 1.0
        elif rng.random() < 0.5:
            labels[name] = 0.0  # explicitly negated in the report ("no pleural effusion")
    if labels["Pneumonia"] == 1.0 and rng.random() < 0.5:
        labels["Consolidation"] = 1.0
    if any(labels[c] in (1.0, -1.0) for c in ("Pneumonia", "Atelectasis", "Lung Lesion")):
        labels["Lung Opacity"] = 1.0
    if rng.random() < 0.1:
        labels["Cardiomegaly"] = 1.0
    elif rng.random() < 0.3:
        labels["Cardiomegaly"] = 0.0
    if rng.random() < 0.5:
        labels["Pneumothorax"] = 0.0
    if rng.random() < 0.2:
        labels["Edema"] = 0.0
    if set(devices) & SUPPORT_DEVICES:
        labels["Support Devices"] = 1.0
    if not any(v in (1.0, -1.0) for c, v in labels.items() if c != "No Finding"):
        labels["No Finding"] = 1.0
    return labels


def _subject_splits(rng: np.random.Generator, n: int) -> list[str]:
    """train / validate / test by subject, each present (about 70 / 15 / 15)."""
    splits = np.array(["train"] * n, dtype=object)
    order = rng.permutation(n)
    n_hold = max(1, int(round(0.15 * n)))
    splits[order[:n_hold]] = "test"
    splits[order[n_hold:2 * n_hold]] = "validate"
    return [str(x) for x in splits]


def _new_study(rng: np.random.Generator, spec: DemoSpec, subject: int, prefix: int, split: str, date: int,
               kind: tuple, seen_studies: set) -> dict:
    procedure, views, _ = kind
    portable = "PORTABLE" in procedure
    devices = tuple(d for d in ("ett", "central_line", "ng_tube", "pacemaker", "ecg")
                    if rng.random() < (0.4 if d == "ecg" else 0.1 + 0.15 * portable))
    return {
        "subject_id": subject, "prefix": prefix, "split": split,
        "study_id": _unique(rng, seen_studies, lambda r: 50_000_000 + int(r.integers(0, 10_000_000))),
        "procedure": procedure, "date": date,
        "time": round(float(rng.integers(0, 24) * 10000 + rng.integers(0, 60) * 100 + rng.uniform(0, 60)), 3),
        "orientation": "Recumbent" if portable and rng.random() < 0.5 else "Erect",
        "devices": devices, "labels": _labels(rng, spec, devices),
        "finding_seed": int(rng.integers(0, 2 ** 31)), "report": True,
        "images": [{"dicom_id": _dicom_id(rng), "view": v} for v in views],
    }


def _mark_special(rng: np.random.Generator, studies: list[dict]) -> dict:
    """Two studies lose their report; four frontal images of reported studies go bad (or RGB)."""
    with_frontal = [st for st in studies if any(im["view"] in ("PA", "AP") for im in st["images"])]
    no_report = [with_frontal[int(i)] for i in rng.choice(len(with_frontal), size=2, replace=False)]
    for st in no_report:
        st["report"] = False
    candidates = [im for st in studies if st["report"] for im in st["images"] if im["view"] in ("PA", "AP")]
    special = {}
    for name, i in zip(("corrupt", "truncated", "missing", "rgb"), rng.choice(len(candidates), 4, replace=False)):
        candidates[int(i)]["special"] = name
        special[name] = [candidates[int(i)]["dicom_id"]]
    special["studies_without_report"] = [f"s{st['study_id']}" for st in no_report]
    return special


def _plan_mimic(spec: DemoSpec) -> tuple[list[dict], dict]:
    """Subjects in a few p1x prefixes, 1..3 studies each, 1..3 images per study; and the special cases."""
    rng = _rng(spec, 4, 0)
    n = spec.n_mimic_subjects
    prefixes = sorted(int(p) for p in rng.choice(np.arange(10, 20), size=int(rng.integers(3, 8)), replace=False))[:n]
    splits = _subject_splits(rng, n)
    n_studies = [int(rng.integers(1, spec.max_studies_per_subject + 1)) for _ in range(n)]
    for extra in range(max(0, 6 - sum(n_studies))):  # room for two report-less studies and four special images
        n_studies[extra % n] += 1
    weights = np.array([t[2] for t in STUDY_TYPES])
    forced = [STUDY_TYPES[0], STUDY_TYPES[2], STUDY_TYPES[5]]  # a LATERAL, an LL and a blank ViewPosition
    seen_subjects: set = set()
    seen_studies: set = set()
    studies: list[dict] = []
    for s in range(n):
        prefix = prefixes[s % len(prefixes)]
        subject = _unique(rng, seen_subjects, lambda r: prefix * 1_000_000 + int(r.integers(0, 1_000_000)))
        year = int(rng.integers(2110, 2200))
        for k in range(n_studies[s]):
            kind = STUDY_TYPES[int(rng.choice(len(STUDY_TYPES), p=weights / weights.sum()))]
            kind = forced[len(studies)] if len(studies) < len(forced) else kind
            date = year * 10000 + (1 + (2 * k) % 12) * 100 + int(rng.integers(1, 29))
            studies.append(_new_study(rng, spec, subject, prefix, splits[s], date, kind, seen_studies))
            year += int(rng.integers(0, 2))
    special = _mark_special(rng, studies)
    special["prefixes"] = [f"p{p}" for p in prefixes]
    special["absent_prefixes"] = [f"p{p}" for p in range(10, 20) if p not in prefixes]
    return studies, special


def _image_size(rng: np.random.Generator, spec: DemoSpec, view: str) -> tuple[int, int]:
    if view in ("PA", "LATERAL", "LL", ""):
        aspect = float(rng.choice([3056 / 2544, 1.25, 1.0], p=[0.7, 0.2, 0.1]))
    else:
        aspect = float(rng.choice([3056 / 2544, 2544 / 3056, 1.0], p=[0.5, 0.35, 0.15]))
    return _size(rng, spec.mimic_long_side, aspect)


def _study_dir(root: Path, study: dict) -> Path:
    return root / "files" / f"p{study['prefix']}" / f"p{study['subject_id']}" / f"s{study['study_id']}"


def _write_jpeg(path: Path, phantom: Phantom, special: str | None, quality: int, rng: np.random.Generator) -> None:
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


def write_mimic(root: Path, truth_dir: Path, spec: DemoSpec) -> dict:
    """files/pXX/pN/sM/<dicom_id>.jpg + reports + the three CSV.gz tables; true masks into truth_dir."""
    studies, special = _plan_mimic(spec)
    meta, chexpert, split = [], [], []
    n_images = sum(len(st["images"]) for st in studies)
    bar = tqdm(total=n_images, desc="demo mimic", leave=False)
    index = 0
    for st in studies:
        folder = _study_dir(root, st)
        drawn = {c: st["labels"][c] in (1.0, -1.0) for c in DRAWN_CLASSES}
        sites: dict[str, str] = {}
        for im in st["images"]:
            index += 1
            rng = _rng(spec, 4, index)
            view = im["view"]
            height, width = _image_size(rng, spec, view)
            frontal = view in ("PA", "AP")
            phantom = render_phantom(rng, height, width, findings=drawn if frontal else {},
                                     view=view if frontal else "LATERAL", devices=st["devices"],
                                     finding_seed=st["finding_seed"])
            if frontal:
                sites = sites or phantom.sites
                _mask_png(truth_dir / f"{im['dicom_id']}.png", phantom.mask)
            _write_jpeg(folder / f"{im['dicom_id']}.jpg", phantom, im.get("special"), spec.jpeg_quality, rng)
            meta.append({
                "dicom_id": im["dicom_id"], "subject_id": st["subject_id"], "study_id": st["study_id"],
                "PerformedProcedureStepDescription": st["procedure"], "ViewPosition": view,
                "Rows": height, "Columns": width, "StudyDate": st["date"], "StudyTime": st["time"],
                "ProcedureCodeSequence_CodeMeaning": st["procedure"], "ViewCodeSequence_CodeMeaning": VIEW_CODES[view],
                "PatientOrientationCodeSequence_CodeMeaning": st["orientation"] if view else "",
            })
            split.append({"dicom_id": im["dicom_id"], "study_id": st["study_id"], "subject_id": st["subject_id"],
                          "split": st["split"]})
            bar.update()
        if st["report"]:
            report_rng = _rng(spec, 5, st["study_id"])
            io.write_text(folder.with_suffix(".txt"), mimic_report(report_rng, st, sites))
            chexpert.append({"subject_id": st["subject_id"], "study_id": st["study_id"], **st["labels"]})
    bar.close()
    io.write_csv(pd.DataFrame(meta, columns=METADATA_COLUMNS), root / "mimic-cxr-2.0.0-metadata.csv.gz")
    io.write_csv(pd.DataFrame(chexpert, columns=["subject_id", "study_id", *CHEXPERT_COLUMNS]),
                 root / "mimic-cxr-2.0.0-chexpert.csv.gz")
    io.write_csv(pd.DataFrame(split, columns=SPLIT_COLUMNS), root / "mimic-cxr-2.0.0-split.csv.gz")
    views = pd.Series([m["ViewPosition"] for m in meta]).value_counts().to_dict()
    positives = {c: int(sum(st["labels"][c] == 1.0 for st in studies if st["report"])) for c in CHEXPERT_COLUMNS}
    return {"subjects": spec.n_mimic_subjects, "studies": len(studies), "images": n_images,
            "views": {str(k) if k else "blank": int(v) for k, v in views.items()},
            "frontal": int(sum(m["ViewPosition"] in ("PA", "AP") for m in meta)),
            "chexpert_positive": positives, "special": special}


# --------------------------------------------------------------------------- MIMIC reports


def _wrap(text: str) -> list[str]:
    return [" " + line for line in textwrap.wrap(text, 76)] or [" "]


def _sentences(rng: np.random.Generator, labels: dict, sites: dict[str, str]) -> tuple[list[str], list[str]]:
    """Findings and impression sentences that say what the labels say."""
    findings, impression = [], []

    def where(name: str, default: str) -> str:
        return sites.get(name, default)

    p = labels["Pneumonia"]
    if p == 1.0:
        findings.append(f"Patchy opacity in the {where('Pneumonia', 'right lower')} lung zone is concerning for "
                        f"pneumonia.")
        impression.append(f"{where('Pneumonia', 'Right lower').capitalize()} pneumonia.")
    elif p == -1.0:
        findings.append(f"Hazy opacity in the {where('Pneumonia', 'left lower')} lung could represent early "
                        f"pneumonia in the appropriate clinical setting.")
        impression.append("Possible early pneumonia.")
    elif p == 0.0:
        findings.append("No focal consolidation to suggest pneumonia.")
    a = labels["Atelectasis"]
    if a == 1.0:
        findings.append(f"Linear opacity at the {where('Atelectasis', 'left basilar').split()[0]} base is most "
                        f"consistent with subsegmental atelectasis.")
        impression.append("Bibasilar atelectasis." if rng.random() < 0.2 else "Basilar atelectasis.")
    elif a == -1.0:
        findings.append("Bandlike opacity at the lung base may reflect atelectasis.")
        impression.append("Possible minimal atelectasis.")
    lesion = labels["Lung Lesion"]
    if lesion == 1.0:
        findings.append(f"A {rng.uniform(0.8, 2.5):.1f} cm nodule projects over the "
                        f"{where('Lung Lesion', 'right upper')} lung.")
        impression.append("Pulmonary nodule; recommend chest CT for further characterization.")
    elif lesion == -1.0:
        findings.append(f"Possible nodular opacity in the {where('Lung Lesion', 'left mid')} lung.")
        impression.append("Possible pulmonary nodule, can be further assessed with CT.")
    e = labels["Pleural Effusion"]
    side = where("Pleural Effusion", "right")
    side_text = "bilateral pleural effusions" if side == "bilateral" else f"{side} pleural effusion"
    if e == 1.0:
        findings.append(f"Small {side_text} with blunting of the costophrenic angle.")
        impression.append(f"Small {side_text}.")
    elif e == -1.0:
        findings.append(f"Blunting of the {side if side != 'bilateral' else 'left'} costophrenic angle may reflect "
                        f"a trace effusion.")
        impression.append("Possible trace pleural effusion.")
    elif e == 0.0:
        findings.append("No pleural effusion" + (" or pneumothorax." if labels["Pneumothorax"] == 0.0 else "."))
    if labels["Pneumothorax"] == 0.0 and e != 0.0:
        findings.append("No pneumothorax.")
    if labels["Cardiomegaly"] == 1.0:
        findings.append("The heart size is mildly enlarged.")
        impression.append("Mild cardiomegaly.")
    elif labels["Cardiomegaly"] == 0.0:
        findings.append("Heart size is normal.")
    else:
        findings.append("The cardiomediastinal and hilar contours are within normal limits.")
    if labels["Edema"] == 0.0:
        findings.append("No pulmonary edema.")
    if labels["Support Devices"] == 1.0:
        findings.append("Support lines and tubes are in standard position.")
    if labels["No Finding"] == 1.0:
        impression.append(str(rng.choice(["No acute cardiopulmonary process.",
                                          "No acute intrathoracic abnormality.",
                                          "Normal chest radiograph."])))
    return findings, impression


def mimic_report(rng: np.random.Generator, study: dict, sites: dict[str, str]) -> str:
    """A report in MIMIC-CXR's free-text format, with the section variants real reports have."""
    findings, impression = _sentences(rng, study["labels"], sites)
    variant = str(rng.choice(["full", "full", "full", "impression_only", "combined", "conclusion", "misspelled",
                              "addendum", "comparison_only", "wet_read"]))
    lines: list[str] = []
    if variant == "wet_read":
        lines += [f" WET READ: ___ ___ {int(rng.integers(1, 12))}:{int(rng.integers(10, 59))} PM",
                  "  " + (impression[0] if impression else "No acute process."), " ", " "]
    lines += ["                                 FINAL REPORT"]
    lines += [f" EXAMINATION:  {study['procedure']}", " "]
    reason = str(rng.choice(["cough", "fever", "shortness of breath", "chest pain", "evaluate for pneumonia",
                             "line placement", "preop"]))
    lines += [f" INDICATION:  ___{'MF'[int(rng.integers(2))]} with {reason}  // eval", " "]
    if variant != "impression_only":
        technique = {"AP": "Single portable AP view of the chest.", "PA": "Chest PA and lateral"}
        frontal = next((im["view"] for im in study["images"] if im["view"] in ("PA", "AP")), "PA")
        lines += [f" TECHNIQUE:  {technique[frontal]}", " "]
    comparison = str(rng.choice(["None.", "___", "Chest radiograph from ___."]))
    if variant == "comparison_only":
        lines += [f" COMPARISON:  {comparison}", " "]
        lines += _wrap(" ".join(findings + impression))
        return "\n".join(lines) + "\n"
    lines += [f" COMPARISON:  {comparison}", " "]
    if variant == "combined":
        lines += [" FINDINGS AND IMPRESSION:", " "] + _wrap(" ".join(findings + impression)) + [" "]
        return "\n".join(lines) + "\n"
    if variant != "impression_only":
        lines += [" FINDINGS:", " "] + _wrap(" ".join(findings)) + [" "]
    header = {"conclusion": "CONCLUSION:", "misspelled": "IMPRESSON:"}.get(variant, "IMPRESSION:")
    lines += [f" {header}", " "] + _wrap(" ".join(impression or ["No acute cardiopulmonary process."]))
    if variant == "addendum":
        lines += [" ", " ADDENDUM:", " "] + _wrap("Findings were discussed with the referring clinician by "
                                                  "telephone at the time of dictation.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- entry point


OWNED = ("shenzhen", "montgomery", "v7", "mimic-cxr-jpg", "mimic-truth")
LAYOUT_NOTES = [
    "MIMIC reports are kept beside the study folders (files/pXX/pNNNNNNNN/sNNNNNNNN.txt); "
    "the real archive ships them separately as mimic-cxr-reports.",
    "mimic-truth/<dicom_id>.png: true lung mask (0/255, original size) of every PA/AP image, "
    "including the corrupt, truncated, missing and RGB ones.",
    "Masks cover the aerated lung including the part behind the heart; a pleural effusion's fluid is not lung.",
    "Montgomery leftMask is the patient's left lung (image right).",
    "MIMIC CheXpert 1.0 and -1.0 for Atelectasis, Lung Lesion, Pleural Effusion and Pneumonia are drawn "
    "inside the lungs of the study's frontal images; clutter outside the lungs is independent of them.",
]


def _clear_previous(out: Path) -> None:
    """Replace an earlier demo (a smaller spec must not leave stale images behind); never touch other data."""
    if not out.exists():
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OWNED and p.name != "demo.json")
    if foreign and not (out / "demo.json").is_file():
        # Snakemake deletes demo.json before rerunning the rule, so only unknown entries make a folder foreign
        raise FileExistsError(f"{out}: holds {foreign[:3]} and no demo.json; refusing to write a demo archive over it")
    for name in OWNED:
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def generate_demo(out_dir: str | Path, spec: DemoSpec | None = None) -> dict:
    """Write the whole demo archive under out_dir and return (and save as demo.json) its summary."""
    spec = spec or DemoSpec()
    spec.validate()
    out = Path(out_dir)
    _clear_previous(out)
    log.info("writing the demo archive to %s (seed %d)", out, spec.seed)
    mimic = write_mimic(out / "mimic-cxr-jpg", out / "mimic-truth", spec)
    summary = {
        "seed": spec.seed,
        "spec": asdict(spec),
        "shenzhen": write_shenzhen(out / "shenzhen", spec),
        "montgomery": write_montgomery(out / "montgomery", spec),
        "v7": write_v7(out / "v7", spec),
        "mimic": mimic,
        # the cases later stages must survive, at the top level: corrupt, truncated, missing, rgb,
        # studies_without_report, prefixes, absent_prefixes
        **mimic.pop("special"),
        "layout_notes": LAYOUT_NOTES,
    }
    io.write_json(out / "demo.json", summary)
    return summary

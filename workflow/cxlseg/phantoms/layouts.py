"""The training sets in their native layouts: Shenzhen, Montgomery and V7-labs (Darwin JSON and PNG masks)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from cxlseg import io
from cxlseg.phantoms.render import Phantom, render_phantom, to_uint16
from cxlseg.phantoms.spec import DemoSpec, film_size, stream

V7_INDEX_COLUMNS = ["image", "mask", "patient_id", "view", "finding"]
DRAWN_CLASSES = ("Atelectasis", "Lung Lesion", "Pleural Effusion", "Pneumonia")  # labels with visible findings
V7_CLASSES = (
    "COVID-19",
    "No Pneumonia",
    "Bacterial Pneumonia",
    "Viral Pneumonia",
    "COVID-19",
    "Fungal Pneumonia",
    "No Pneumonia",
    "Bacterial Pneumonia",
)
V7_FINDINGS = {
    "COVID-19": {"COVID-19": True},
    "Viral Pneumonia": {"Pneumonia": True},
    "Bacterial Pneumonia": {"Pneumonia": True},
    "Fungal Pneumonia": {"Pneumonia": True, "Lung Lesion": True},
    "No Pneumonia": {},
}


def write_png(path: Path, image: np.ndarray) -> None:
    """PNG at a fixed compression level, so the same pixels give the same bytes."""
    io.write_image(path, image, [cv2.IMWRITE_PNG_COMPRESSION, 3])


def write_mask(path: Path, mask: np.ndarray) -> None:
    """A mask as 0/255 PNG, the spelling the public sets use."""
    write_png(path, (mask > 0).astype(np.uint8) * 255)


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
    plan = stream(spec, 1, 0)
    n_tb = int(round(spec.tb_fraction * spec.n_shenzhen))
    labels = [1] * n_tb + [0] * (spec.n_shenzhen - n_tb)
    if 0 not in labels or 1 not in labels:
        labels[0], labels[-1] = 0, 1
    plan.shuffle(labels)
    without_mask = int(plan.integers(spec.n_shenzhen))
    rgb = (without_mask + 1) % spec.n_shenzhen
    summary = {"normal": 0, "tuberculosis": 0, "without_mask": [], "rgb": []}
    for i, tb in enumerate(tqdm(labels, desc="demo shenzhen", leave=False)):
        rng = stream(spec, 1, i + 1)
        side = int(rng.integers(spec.shenzhen_side[0], spec.shenzhen_side[1] + 1))
        height, width = side, int(side * rng.uniform(0.9, 1.05))
        phantom = render_phantom(rng, height, width, findings={"Tuberculosis": bool(tb)}, view="PA")
        stem = f"CHNCXR_{i + 1:04d}_{tb}"
        image = cv2.cvtColor(phantom.image, cv2.COLOR_GRAY2BGR) if i == rgb else phantom.image
        write_png(root / "CXR_png" / f"{stem}.png", image)
        if i == without_mask:
            summary["without_mask"].append(stem)
        else:
            write_mask(root / "mask" / f"{stem}_mask.png", phantom.mask)
        if i == rgb:
            summary["rgb"].append(stem)
        sex, age = _age_sex(rng)
        finding = _tb_text(phantom) if tb else "normal"
        io.write_text(
            root / "ClinicalReadings" / f"{stem}.txt", f"{'male' if sex == 'M' else 'female'} {age}yrs\n{finding}\n"
        )
        summary["tuberculosis" if tb else "normal"] += 1
    return summary


# --------------------------------------------------------------------------- Montgomery


def write_montgomery(root: Path, spec: DemoSpec) -> dict:
    """MontgomerySet/CXR_png + ManualMask/{left,right}Mask + ClinicalReadings; some 16-bit, some landscape."""
    base = root / "MontgomerySet"
    plan = stream(spec, 2, 0)
    n_tb = int(round(spec.tb_fraction * spec.n_montgomery))
    labels = [1] * n_tb + [0] * (spec.n_montgomery - n_tb)
    plan.shuffle(labels)
    deep = set(range(0, spec.n_montgomery, 2))  # every other film keeps its 12-bit detector data
    landscape = {i for i in range(spec.n_montgomery) if i % 3 == 1}
    summary = {"normal": 0, "tuberculosis": 0, "16bit": [], "landscape": []}
    for i, tb in enumerate(tqdm(labels, desc="demo montgomery", leave=False)):
        rng = stream(spec, 2, i + 1)
        aspect = 4020 / 4892 if i in landscape else 4892 / 4020
        height, width = film_size(rng, spec.montgomery_long_side, aspect)
        phantom = render_phantom(rng, height, width, findings={"Tuberculosis": bool(tb)}, view="PA")
        stem = f"MCUCXR_{i + 1:04d}_{tb}"
        image = to_uint16(phantom.signal, rng, bits=12) if i in deep else phantom.image
        write_png(base / "CXR_png" / f"{stem}.png", image)
        write_mask(base / "ManualMask" / "leftMask" / f"{stem}.png", phantom.left_mask)
        write_mask(base / "ManualMask" / "rightMask" / f"{stem}.png", phantom.right_mask)
        sex, age = _age_sex(rng)
        finding = _tb_text(phantom) if tb else "normal"
        io.write_text(
            base / "ClinicalReadings" / f"{stem}.txt", f"Patient's Sex: {sex}\nPatient's Age: {age:03d}Y\n{finding}\n"
        )
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
    plan = stream(spec, 3, 0)
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
        items.append(
            {"kind": "COVID-19", "patient": covid["patient"], "k": 10 + k, "view": "Lateral", "variant": "lateral"}
        )
    items.append(
        {"kind": "COVID-19", "patient": int(plan.integers(30000, 40000)), "k": 0, "view": "CT", "variant": "ct"}
    )
    return items


def _lung_annotations(rng: np.random.Generator, phantom: Phantom, variant: str) -> list[dict]:
    """ "Lung" as one polygon per lung, or one complex polygon with several paths (optionally a hole)."""
    if variant in ("two_polygons", "lateral"):
        parts = [phantom.mask] if variant == "lateral" else [phantom.right_mask, phantom.left_mask]
        return [
            {"name": "Lung", "polygon": {"path": path}, "bounding_box": _bbox([path])}
            for part in parts
            for path in mask_to_paths(part)
        ]
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
    """A Darwin JSON 1.0 export of one image, as V7 writes it."""
    return {
        "dataset": "covid-19-chest-x-ray-dataset",
        "image": {
            "width": width,
            "height": height,
            "original_filename": name,
            "filename": name,
            "url": f"https://darwin.v7labs.com/api/images/{j + 1}/original",
            "thumbnail_url": None,
            "path": "/",
            "workview_url": None,
            "seq": j + 1,
        },
        "annotations": annotations,
    }


def _v7_image(root: Path, spec: DemoSpec, j: int, item: dict) -> tuple[Phantom, np.random.Generator, str]:
    """Render and save one V7 image (JPEG or PNG, as its source collection named it); CT slices show no finding."""
    rng = stream(spec, 3, j + 1)
    kind, view = item["kind"], item["view"]
    side = int(rng.integers(spec.v7_side[0], spec.v7_side[1] + 1))
    height, width = side, int(side * rng.uniform(0.85, 1.15))
    render_view = {"Lateral": "LATERAL", "CT": "CT"}.get(view, view)
    phantom = render_phantom(
        rng, height, width, findings=V7_FINDINGS[kind] if render_view != "CT" else {}, view=render_view
    )
    name = _v7_name(kind, item["patient"], item["k"], view)
    params = [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality] if Path(name).suffix in (".jpg", ".jpeg") else []
    io.write_image(root / "images" / name, phantom.image, params)
    return phantom, rng, name


def _ignore_box(height: int, width: int) -> dict:
    """An excluded region (burned-in text) that is not lung: readers must not count it as a lung."""
    box = [
        {"x": 0.0, "y": 0.0},
        {"x": width * 0.25, "y": 0.0},
        {"x": width * 0.25, "y": height * 0.08},
        {"x": 0.0, "y": height * 0.08},
    ]
    return {"name": "Ignore", "polygon": {"path": box}, "bounding_box": _bbox([box])}


def write_v7(root: Path, spec: DemoSpec) -> dict:
    """images/, annotations/ (Darwin JSON 1.0), masks/ (PNG) and index.csv."""
    rows, summary = [], {"classes": {}, "variants": {}, "lateral": [], "ct": [], "ignore": [], "hole": []}
    for j, item in enumerate(tqdm(_v7_plan(spec), desc="demo v7", leave=False)):
        kind, view, variant = item["kind"], item["view"], item["variant"]
        phantom, rng, name = _v7_image(root, spec, j, item)
        stem, (height, width) = Path(name).stem, phantom.image.shape
        lungs = _lung_annotations(rng, phantom, variant)
        annotations = lungs + ([_ignore_box(height, width)] if item.get("ignore") else [])
        tags = [kind] + (["Viral Pneumonia"] if kind == "COVID-19" and rng.random() < 0.5 else []) + [view]
        annotations += [{"name": tag, "tag": {}} for tag in tags]
        io.write_json(root / "annotations" / f"{stem}.json", _darwin_document(j, name, width, height, annotations))
        mask_rel = f"masks/{stem}.png" if lungs else ""
        if lungs:
            write_mask(root / mask_rel, _annotation_mask(lungs, (height, width)))
        rows.append(
            {
                "image": f"images/{name}",
                "mask": mask_rel,
                "patient_id": f"v7-{item['patient']}",
                "view": view,
                "finding": kind,
            }
        )
        summary["classes"][kind] = summary["classes"].get(kind, 0) + 1
        summary["variants"][variant] = summary["variants"].get(variant, 0) + 1
        flags = {
            "lateral": view == "Lateral",
            "ct": view == "CT",
            "ignore": bool(item.get("ignore")),
            "hole": variant == "complex_with_hole",
        }
        for key in (k for k, hit in flags.items() if hit):
            summary[key].append(stem)
    io.write_csv(pd.DataFrame(rows, columns=V7_INDEX_COLUMNS), root / "index.csv")
    return summary

"""Tiny datasets in the native Shenzhen, Montgomery and V7-labs layouts, bad cases included, built in a test's
tmp_path so the ingest tests do not depend on the demo generator. Each builder returns what the ingest should
conclude (accepted ids with labels, rejected ids with a reason fragment)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def lungs(h: int, w: int, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two elliptical lungs as separate 0/1 masks (left, right)."""
    left, right = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    axes = (max(w // 8, 2), max(h // 3, 2))
    cv2.ellipse(left, (w // 3 + shift, h // 2), axes, 0, 0, 360, 1, -1)
    cv2.ellipse(right, (2 * w // 3 + shift, h // 2), axes, 0, 0, 360, 1, -1)
    return left, right


def radiograph(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """8-bit image whose lungs are dark on a brighter body, plus noise."""
    rng = np.random.default_rng(seed)
    img = 170.0 - 110.0 * mask + rng.normal(0, 6, mask.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix, image)
    assert ok, path
    path.write_bytes(buf.tobytes())
    return path


def write_garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image" * 10)
    return path


# --------------------------------------------------------------------------- Shenzhen


def make_shenzhen(root: Path, h: int = 48, w: int = 40) -> dict:
    """Five good images (3 normal, 2 TB) and one of every bad case."""
    accepted, rejected = {}, {}
    for i, suffix in enumerate([0, 1, 0, 1, 0], start=1):
        stem = f"CHNCXR_{i:04d}_{suffix}"
        left, right = lungs(h, w, shift=i % 3)
        write(root / "CXR_png" / f"{stem}.png", radiograph(left | right, i))
        write(root / "mask" / f"{stem}_mask.png", (left | right) * 255)
        (root / "ClinicalReadings").mkdir(parents=True, exist_ok=True)
        (root / "ClinicalReadings" / f"{stem}.txt").write_text("male 35yrs\nnormal\n")
        accepted[stem] = "tuberculosis" if suffix else "normal"
    left, right = lungs(h, w)
    good_mask = (left | right) * 255
    # missing mask
    write(root / "CXR_png" / "CHNCXR_0010_0.png", radiograph(left | right))
    rejected["CHNCXR_0010_0"] = "no mask"
    # size mismatch
    write(root / "CXR_png" / "CHNCXR_0011_1.png", radiograph(left | right))
    write(root / "mask" / "CHNCXR_0011_1_mask.png", cv2.resize(good_mask, (w + 4, h), interpolation=cv2.INTER_NEAREST))
    rejected["CHNCXR_0011_1"] = "size mismatch"
    # empty mask
    write(root / "CXR_png" / "CHNCXR_0012_0.png", radiograph(left | right))
    write(root / "mask" / "CHNCXR_0012_0_mask.png", np.zeros((h, w), np.uint8))
    rejected["CHNCXR_0012_0"] = "empty mask"
    # non-binary mask (a soft-edged probability map)
    write(root / "CXR_png" / "CHNCXR_0013_0.png", radiograph(left | right))
    write(root / "mask" / "CHNCXR_0013_0_mask.png", cv2.GaussianBlur(good_mask, (7, 7), 2))
    rejected["CHNCXR_0013_0"] = "not binary"
    # unreadable image
    write_garbage(root / "CXR_png" / "CHNCXR_0014_1.png")
    write(root / "mask" / "CHNCXR_0014_1_mask.png", good_mask)
    rejected["CHNCXR_0014_1"] = "unreadable"
    # unreadable mask
    write(root / "CXR_png" / "CHNCXR_0015_1.png", radiograph(left | right))
    write_garbage(root / "mask" / "CHNCXR_0015_1_mask.png")
    rejected["CHNCXR_0015_1"] = "unreadable"
    # name outside the convention, orphan mask
    write(root / "CXR_png" / "scan_final.png", radiograph(left | right))
    rejected["scan_final"] = "does not match"
    write(root / "mask" / "CHNCXR_0099_0_mask.png", good_mask)
    rejected["CHNCXR_0099_0_mask"] = "mask without image"
    return {"accepted": accepted, "rejected": rejected, "mask_area": int((left | right).sum())}


# --------------------------------------------------------------------------- Montgomery


def twelve_bit(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """12-bit data (0..4095) in a uint16 array, as Montgomery PNGs hold it."""
    rng = np.random.default_rng(seed)
    img = 2600.0 - 2000.0 * mask + rng.normal(0, 60, mask.shape)
    img[0, 0], img[-1, -1] = 0, 4095  # full 12-bit range
    return np.clip(img, 0, 4095).astype(np.uint16)


def make_montgomery(root: Path, h: int = 56, w: int = 46) -> dict:
    """Good images in both orientations (16-bit and 8-bit) and the bad cases."""
    base = root / "MontgomerySet"
    accepted, rejected, areas = {}, {}, {}
    for i, (suffix, deep, portrait) in enumerate(
        [(0, True, True), (1, True, False), (0, False, True), (1, False, True)], 1
    ):
        stem = f"MCUCXR_{i:04d}_{suffix}"
        hh, ww = (h, w) if portrait else (w, h)
        left, right = lungs(hh, ww, shift=i % 2)
        write(base / "CXR_png" / f"{stem}.png", twelve_bit(left | right, i) if deep else radiograph(left | right, i))
        write(base / "ManualMask" / "leftMask" / f"{stem}.png", left * 255)
        write(base / "ManualMask" / "rightMask" / f"{stem}.png", right * 255)
        (base / "ClinicalReadings").mkdir(parents=True, exist_ok=True)
        (base / "ClinicalReadings" / f"{stem}.txt").write_text("Patient's Sex: F\nPatient's Age: 040Y\nnormal\n")
        accepted[stem] = "tuberculosis" if suffix else "normal"
        areas[stem] = int((left | right).sum())
    left, right = lungs(h, w)
    write(base / "CXR_png" / "MCUCXR_0020_0.png", radiograph(left | right))
    write(base / "ManualMask" / "leftMask" / "MCUCXR_0020_0.png", left * 255)
    rejected["MCUCXR_0020_0"] = "right lung mask missing"
    write(base / "CXR_png" / "MCUCXR_0021_1.png", radiograph(left | right))
    write(base / "ManualMask" / "leftMask" / "MCUCXR_0021_1.png", left * 255)
    write(
        base / "ManualMask" / "rightMask" / "MCUCXR_0021_1.png",
        cv2.resize(right * 255, (w, h + 6), interpolation=cv2.INTER_NEAREST),
    )
    rejected["MCUCXR_0021_1"] = "differ in size"
    return {"accepted": accepted, "rejected": rejected, "areas": areas}


# --------------------------------------------------------------------------- V7-labs


def rect(x0: float, y0: float, x1: float, y1: float) -> list[dict]:
    return [{"x": x0, "y": y0}, {"x": x1, "y": y0}, {"x": x1, "y": y1}, {"x": x0, "y": y1}]


def darwin(name: str, w: int, h: int, annotations: list[dict], **extra) -> dict:
    """A Darwin JSON 1.0 document as V7 exports it."""
    return {
        "dataset": "covid-19-xray-dataset",
        "image": {"filename": name, "original_filename": name, "width": w, "height": h, "url": "", **extra},
        "annotations": annotations,
    }


def tag(name: str) -> dict:
    return {"name": name, "tag": {}}


def lung_polygon(path: list[dict]) -> dict:
    return {"name": "Lung", "polygon": {"path": path}}


# Hand-computed areas (cv2.fillPoly fills boundary pixels): rect(4, 5, 23, 34) spans x 4..23, y 5..34
# -> 20 x 30 = 600 px; rect(40, 5, 51, 34) -> 12 x 30 = 360 px.
TWO_LUNGS = [lung_polygon(rect(4, 5, 23, 34)), lung_polygon(rect(40, 5, 51, 34))]
TWO_LUNGS_AREA = 20 * 30 + 12 * 30
# complex polygon: outer 30x30 (x 10..39, y 10..39) minus a 10x10 hole (x 20..29, y 20..29),
# plus a separate 5x4 island (x 50..54, y 10..13) in the same annotation.
HOLED = {
    "name": "Lung",
    "complex_polygon": {"path": [rect(10, 10, 39, 39), rect(20, 20, 29, 29), rect(50, 10, 54, 13)]},
}
HOLED_AREA = 30 * 30 - 10 * 10 + 5 * 4


def _v7_image(root: Path, name: str, w: int, h: int, suffix: str = ".png", seed: int = 0) -> Path:
    left, right = lungs(h, w)
    return write(root / "images" / f"{name}{suffix}", radiograph(left | right, seed))


def make_v7_json(root: Path, w: int = 64, h: int = 48) -> dict:
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    docs = {
        "covid-a": (
            ".jpg",
            [
                *TWO_LUNGS,
                tag("COVID-19"),
                tag("Viral Pneumonia"),
                tag("PA"),
                {"name": "Ignore", "polygon": {"path": rect(0, 0, 63, 47)}},
            ],
            {"patient_id": "P1"},
        ),
        "covid-b": (".png", [HOLED, tag("COVID-19")], {"patient_id": "P1"}),
        "viral": (".png", [*TWO_LUNGS, tag("Viral Pneumonia")], {}),
        "bacterial": (".jpg", [*TWO_LUNGS, tag("Bacterial Pneumonia")], {}),
        "fungal": (".png", [*TWO_LUNGS, tag("Fungal Pneumonia")], {}),
        "healthy": (".png", [*TWO_LUNGS, tag("No Pneumonia")], {}),
        "side": (".png", [*TWO_LUNGS, tag("Lateral"), tag("COVID-19")], {}),
        "ct-slice": (".png", [tag("CT"), tag("COVID-19")], {}),
        "unannotated": (".png", [tag("COVID-19")], {}),
        "untagged": (".png", [*TWO_LUNGS], {}),
        "wrongsize": (".png", [*TWO_LUNGS, tag("COVID-19")], {}),
    }
    for i, (name, (suffix, doc_annotations, extra)) in enumerate(docs.items()):
        _v7_image(root, name, w, h, suffix, seed=i)
        doc_w = w + 10 if name == "wrongsize" else w
        (ann / f"{name}.json").write_text(json.dumps(darwin(f"{name}{suffix}", doc_w, h, doc_annotations, **extra)))
    _v7_image(root, "noann", w, h)
    write_garbage(root / "images" / "broken.png")
    (ann / "broken.json").write_text(json.dumps(darwin("broken.png", w, h, [*TWO_LUNGS, tag("COVID-19")])))
    (ann / "badjson.json").write_text("{not json")
    _v7_image(root, "badjson", w, h)
    _v7_image(root, "viral", w, h, ".jpg")  # same id as viral.png -> duplicate
    return {
        "accepted": {
            "covid-a": "covid19",
            "covid-b": "covid19",
            "viral": "pneumonia",
            "bacterial": "pneumonia",
            "fungal": "pneumonia",
            "healthy": "normal",
        },
        "rejected": {
            "side": "lateral view",
            "ct-slice": "CT slice",
            "unannotated": "no lung polygons",
            "untagged": "no class tag",
            "wrongsize": "size mismatch",
            "noann": "no mask",
            "broken": "unreadable",
            "badjson": "unreadable annotation JSON",
            "viral": "duplicate image id",
        },
        "areas": {"covid-a": TWO_LUNGS_AREA, "covid-b": HOLED_AREA},
    }


def make_v7_png(root: Path, w: int = 60, h: int = 50) -> dict:
    """images/ + masks/ + index.csv like the torchxrayvision V7 subset, with hostile rows."""
    rows = ["image,mask,patient_id,view,finding,height,width"]

    def add(
        name: str,
        patient: str,
        view: str,
        finding: str,
        mask: np.ndarray | None = None,
        suffix: str = ".jpg",
        subdir: str = "images",
    ) -> None:
        left, right = lungs(h, w)
        write(root / subdir / f"{name}{suffix}", radiograph(left | right))
        m = (left | right) * 255 if mask is None else mask
        write(root / "masks" / f"{name}.png", m)
        rows.append(f'{subdir}/{name}{suffix},masks/{name}.png,{patient},{view},"{finding}",{h},{w}')

    add("c1", "7", "PA", "COVID-19")
    add("c2", "7", "AP Supine", "COVID-19, ARDS")
    add("c3", "9", "AP", "Pneumonia/Viral/COVID-19", suffix=".png")
    add("p1", "10", "PA", "Pneumonia/Bacterial/Streptococcus")
    add("n1", "", "PA", "No Finding")
    add("lat", "11", "L", "COVID-19")
    add("odd", "12", "PA", "Unknown disease")
    add("grey", "13", "PA", "COVID-19", mask=np.tile(np.arange(w, dtype=np.uint8) * 4, (h, 1)))
    add("c1", "14", "PA", "COVID-19", subdir="more")  # same id as images/c1.jpg
    rows.append("../x.jpg,masks/c1.png,15,PA,COVID-19,1,1")
    rows.append("/etc/passwd,masks/c1.png,16,PA,COVID-19,1,1")
    rows.append("images/c1.jpg,../../etc/shadow,17,PA,COVID-19,1,1")
    rows.append("images/nomask.jpg,masks/nomask.png,18,PA,COVID-19,1,1")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return {
        "accepted": {"c1": "covid19", "c2": "covid19", "c3": "covid19", "p1": "pneumonia", "n1": "normal"},
        "patients": {"c1": "7", "c2": "7", "c3": "9", "p1": "10", "n1": "n1"},
        "reject_reasons": [
            "lateral view",
            "unknown finding",
            "mask not binary",
            "duplicate image id",
            "unsafe path",
            "unsafe path",
            "unsafe path",
            "no mask",
        ],
    }

"""Synthetic DICOM archives: VinDr-CXR in its PhysioNet layout, and a hospital's own export (`folder`), with
the DICOM cases a reader must get right: MONOCHROME1 with a VOI LUT, RLE Lossless and JPEG 2000 Lossless
pixel data, a BitsStored smaller than the data, no TransferSyntaxUID, and no PixelData.

Stored values are 12-bit phantoms (`to_uint16`); a MONOCHROME1 file stores `4095 - value`.  Same seed, same
bytes (UIDs come from the seed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

from cxlseg import io
from cxlseg.phantoms.archives import _expected, film
from cxlseg.phantoms.layouts import write_png
from cxlseg.phantoms.render import to_uint16

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
TOP12 = 4095


def voi_lut(entries: int = TOP12 + 1) -> np.ndarray:
    """The VOI LUT the MONOCHROME1 file carries: a gamma 0.5 curve, 12 bit in, 16 bit out (not a window)."""
    return np.round(np.sqrt(np.arange(entries) / (entries - 1)) * 65535).astype(np.uint16)


def dicom_dataset(stored: np.ndarray, uid_key: str, photometric: str = "MONOCHROME2", **tags) -> Dataset:
    """A DX dataset holding `stored` (uint16) natively, its file meta in Explicit VR Little Endian."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DX_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[uid_key])
    ds.SOPClassUID, ds.SOPInstanceUID = DX_STORAGE, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for name, value in tags.items():
        setattr(ds, name, value)
    ds.PixelData = np.ascontiguousarray(stored, np.uint16).tobytes()
    return ds


def save(ds: Dataset, path: Path, syntax=None) -> None:
    """Write atomically; `syntax` compresses the pixel data first (pydicom's RLE encoder, pylibjpeg-openjpeg)."""
    if syntax is not None:
        ds.compress(syntax, ds.pixel_array, generate_instance_uid=False)
    with io.atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)


def twelve_bit(seed: int, key: tuple, side: tuple[int, int], view: str = "PA") -> np.ndarray:
    phantom = film(seed, key, side, view)
    return to_uint16(phantom.signal, np.random.default_rng([seed, *key, 1]), bits=12)


# --------------------------------------------------------------------------- VinDr-CXR


def write_vindr(root: Path, seed: int, n_patients: int, side: tuple[int, int]) -> dict:
    """train/<md5>.dicom and test/<md5>.dicom with annotations/image_labels_{train,test}.csv (three
    radiologists per train image) and annotations_{train,test}.csv.  Files: MONOCHROME2 with a window,
    MONOCHROME1, BitsStored 12 over 16-bit data, one without TransferSyntaxUID, one without PixelData
    (skipped) and one listed but missing (skipped).  VinDr has no view field: nothing to drop."""
    expected = _expected()
    labels, boxes = {"train": [], "test": []}, {"train": [], "test": []}
    for p in range(n_patients + 2):
        split = "test" if p == n_patients + 1 else "train"
        image_id = hashlib.md5(f"{seed}-vindr-{p}".encode()).hexdigest()
        rel = f"{split}/{image_id}.dicom"
        for rad in ("R1", "R2", "R3") if split == "train" else ("R8",):
            labels[split].append({"image_id": image_id, "rad_id": rad, "Aortic enlargement": 0, "No finding": 1})
        boxes[split].append({"image_id": image_id, "rad_id": "R1", "class_name": "No finding", "class_id": 14})
        case = _vindr_case(p, n_patients)
        if case == "missing":
            expected["skipped"][rel] = "not on disk"
            continue
        _write_vindr_file(root / rel, twelve_bit(seed, (34, p), side), image_id, case)
        if case == "no_pixels":
            expected["skipped"][rel] = "no PixelData"
        else:
            expected["kept"][image_id] = rel
    for split in ("train", "test"):
        io.write_csv(pd.DataFrame(labels[split]), root / f"annotations/image_labels_{split}.csv")
        box_cols = ["image_id", "rad_id", "class_name", "class_id", "x_min", "y_min", "x_max", "y_max"]
        io.write_csv(pd.DataFrame(boxes[split], columns=box_cols), root / f"annotations/annotations_{split}.csv")
    return expected


def _vindr_case(p: int, n_patients: int) -> str:
    return {0: "monochrome1", 1: "bits_stored", 2: "no_syntax", n_patients: "no_pixels"}.get(
        p, "missing" if p == n_patients + 1 else "plain"
    )


def _write_vindr_file(path: Path, values: np.ndarray, image_id: str, case: str) -> None:
    tags = {"PatientSex": "M", "PatientAge": "051Y", "WindowCenter": 2048, "WindowWidth": 4096}
    if case == "monochrome1":
        ds = dicom_dataset(TOP12 - values, image_id, "MONOCHROME1", **tags)
    elif case == "bits_stored":  # 16-bit data, BitsStored still says 12
        ds = dicom_dataset(
            values.astype(np.uint32) * 16, image_id, **{k: tags[k] for k in ("PatientSex", "PatientAge")}
        )
    else:
        ds = dicom_dataset(values, image_id, **tags)
    if case == "no_pixels":
        del ds.PixelData
    if case == "no_syntax":  # no file meta at all: a bare implicit-VR dataset, as some VinDr files are
        del ds.file_meta
        with io.atomic_path(path) as tmp:
            ds.save_as(tmp, implicit_vr=True, little_endian=True, enforce_file_format=False)
        return
    save(ds, path)


# --------------------------------------------------------------------------- a hospital's own folder


def write_folder(root: Path, seed: int, n_patients: int, side: tuple[int, int]) -> dict:
    """A hospital export: patient folders of DICOM (MONOCHROME1 + VOI LUT in RLE Lossless, JPEG 2000 Lossless,
    no suffix and no ViewPosition, a lateral), a loose PNG, a JPEG, a DICOMDIR, a text file and a broken
    .dcm; and `images.csv`, which names patient, study and view for some of them."""
    expected = _expected()
    for p in range(n_patients):
        patient = f"PAT{p:03d}"
        base = f"{patient}/STUDY1"
        mono1 = dicom_dataset(
            TOP12 - twelve_bit(seed, (35, p, 0), side), f"{seed}-{p}-0", "MONOCHROME1", PatientID=patient,
            StudyInstanceUID=generate_uid(entropy_srcs=[f"{seed}-{p}-study"]), ViewPosition="PA",
        )  # fmt: skip
        mono1.VOILUTSequence = [_voi_item()]
        save(mono1, root / f"{base}/IM0001.dcm", RLELossless)
        lateral = dicom_dataset(twelve_bit(seed, (35, p, 1), side, "LATERAL"), f"{seed}-{p}-1", ViewPosition="LL")
        save(lateral, root / f"{base}/IM0002.dcm")
        j2k = dicom_dataset(twelve_bit(seed, (35, p, 2), side, "AP"), f"{seed}-{p}-2", ViewPosition="AP")
        save(j2k, root / f"{patient}/STUDY2/IM0001.dcm", JPEG2000Lossless)
        bare = dicom_dataset(twelve_bit(seed, (35, p, 3), side), f"{seed}-{p}-3", PatientID=patient)
        save(bare, root / f"{patient}/STUDY2/IM0002")  # no suffix, no ViewPosition: view unknown
        expected["kept"].update(
            {f"{base}/IM0001.dcm": "PA", f"{patient}/STUDY2/IM0001.dcm": "AP", f"{patient}/STUDY2/IM0002": "unknown"}
        )
        expected["dropped"] += 1
    write_png(root / "loose.png", film(seed, (35, 90), side, "PA").image)
    io.write_image(root / "PAT000/STUDY3/film.jpg", film(seed, (35, 91), side, "AP").image)
    expected["kept"].update({"loose.png": "unknown", "PAT000/STUDY3/film.jpg": "unknown"})
    io.write_bytes(root / "DICOMDIR", b"\x00" * 128 + b"DICM" + b"\x00" * 64)
    io.write_text(root / "README.txt", "export of 2026-01-01\n")
    io.write_bytes(root / "PAT001/STUDY1/BROKEN.dcm", b"\x00" * 128 + b"DICM" + b"\x02\x00\x10")
    expected["skipped"].update(
        {"DICOMDIR": "DICOMDIR", "README.txt": "not a DICOM", "PAT001/STUDY1/BROKEN.dcm": "DICOM"}
    )
    csv = pd.DataFrame(
        [
            {"path": "loose.png", "patient_id": "PAT900", "study_id": "S1", "view": "PA"},
            {"path": "PAT000/STUDY3/film.jpg", "patient_id": "PAT000", "study_id": "S3", "view": "lateral"},
            {"path": "PAT000/STUDY1/IM0001.dcm", "patient_id": "", "study_id": "", "view": ""},
        ]
    )
    io.write_csv(csv, root / "images.csv")
    expected["skipped"]["images.csv"] = "not a DICOM"
    return expected


def _voi_item() -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [TOP12 + 1, 0, 16]
    item.LUTExplanation = "gamma 0.5"
    item.add_new(0x00283006, "OW", voi_lut().astype("<u2").tobytes())  # LUTData
    return item

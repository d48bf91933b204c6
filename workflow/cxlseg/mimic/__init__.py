"""MIMIC-CXR conventions in one place: folder layout, id checks, CheXpert labels, split names.

CXLSeg mirrors MIMIC-CXR-JPG: ``files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg`` with the study's
report at ``files/pXX/pNNNNNNNN/sNNNNNNNN.txt`` (mimic-cxr-reports). Every module that builds or
reads such a path, a label column or a split value imports it from here.
"""

from __future__ import annotations

CHEXPERT_LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)
# One split vocabulary everywhere, as MIMIC-CXR-JPG and CXLSeg name them.
SPLITS = ("train", "validate", "test")
FRONTAL_VIEWS = ("AP", "PA")
# Side views: real non-frontal films the view check trains on (MIMIC also has e.g. "LAO", "SWIMMERS", rare).
LATERAL_VIEWS = ("LATERAL", "LL")


def id_problem(dicom_id: str, subject_id: str, study_id: str) -> str:
    """Why these ids cannot be turned into a path ('' when they can); ids end up in file names."""
    if not (subject_id.isascii() and subject_id.isdigit() and len(subject_id) >= 2):
        return f"subject_id {subject_id!r} is not a number of at least 2 digits"
    if not (study_id.isascii() and study_id.isdigit()):
        return f"study_id {study_id!r} is not a number"
    parts = dicom_id.split("-")
    if not dicom_id or not all(p and all(c in "0123456789abcdef" for c in p) for p in parts):
        return f"dicom_id {dicom_id!r} is not lower-case hex groups joined by '-'"
    return ""


def study_dir(subject_id, study_id) -> str:
    """A study's folder relative to the archive root: files/pXX/pNNNNNNNN/sNNNNNNNN."""
    subject = str(subject_id)
    return f"files/p{subject[:2]}/p{subject}/s{study_id}"


def image_relpath(subject_id, study_id, dicom_id: str, suffix: str = ".jpg") -> str:
    """files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id><suffix> (suffix '-mask.jpg' gives CXLSeg's mask)."""
    return f"{study_dir(subject_id, study_id)}/{dicom_id}{suffix}"


def report_relpath(subject_id, study_id) -> str:
    """files/pXX/pNNNNNNNN/sNNNNNNNN.txt, where mimic-cxr-reports keeps a study's report."""
    return f"{study_dir(subject_id, study_id)}.txt"


def shard_of(subject_id) -> str:
    """The subject-prefix shard (p10..p19) a subject's images are segmented in."""
    return f"p{str(subject_id)[:2]}"

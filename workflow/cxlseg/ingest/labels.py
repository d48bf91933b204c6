"""The class and view of a training image, read from the words its dataset uses (findings, tags, views).

Classes are the paper's four: tuberculosis, COVID-19, pneumonia, normal. Lateral views and CT slices are
not frontal lung-mask material and are rejected with that reason.
"""

from __future__ import annotations

import re
from typing import Iterable

LABELS = ("tuberculosis", "covid19", "pneumonia", "normal")


def label_from_finding(finding: str) -> str | None:
    """Map a free-text finding (index.csv) or a tag to a class; None when unknown.

    COVID-19 wins over pneumonia because COVID-19 cases are also tagged as viral pneumonia.
    """
    text = str(finding).strip().lower()
    if not text or text == "nan":
        return None
    if "covid" in text or "sars-cov-2" in text:
        return "covid19"
    if "tuberculosis" in text:
        return "tuberculosis"
    if re.search(r"\bno (pneumonia|finding)\b|\bnormal\b|^no ?finding$", text):
        return "normal"
    if re.search(r"pneumonia|viral|bacterial|fungal", text):
        return "pneumonia"
    return None


def label_from_tags(tags: Iterable[str]) -> str | None:
    labels = {label_from_finding(tag) for tag in tags} - {None}
    for label in ("covid19", "tuberculosis", "pneumonia", "normal"):  # precedence, not LABELS order
        if label in labels:
            return label
    return None


def view_exclusion(view: str) -> str | None:
    """Why a view or tag takes an image out of a frontal lung-mask set, or None."""
    text = str(view).strip().lower()
    if text in {"l", "ll", "rl", "lateral", "lat", "left lateral", "right lateral"} or text.startswith("lateral"):
        return "lateral view"
    if text in {"ct", "axial", "coronal", "sagittal"}:
        return "CT slice"
    return None

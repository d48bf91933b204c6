"""Turn a lung probability map into a clean mask (scoring it is `cxlseg.inference.mask_qc`'s job).

Cleanup follows the usual recipe for lung fields: threshold, morphological closing then
opening, keep the largest components (two lungs), fill holes.

Left/right convention: frontal (PA/AP) radiographs are displayed with the patient facing the
viewer, so the patient's LEFT lung lies on the image's RIGHT. `label_lungs` uses patient
anatomy (RIGHT_LUNG on the image left, LEFT_LUNG on the image right); `left_right_ratio` in
the QC metrics is purely image-based (image-left area / image-right area).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

RIGHT_LUNG = 1  # patient's right lung: image left in PA/AP
LEFT_LUNG = 2  # patient's left lung: image right in PA/AP
# Gray levels of each label in a written mask file (far apart, so JPEG ringing cannot swap them).
LABEL_GRAY = {RIGHT_LUNG: 128, LEFT_LUNG: 255}


@dataclass(frozen=True)
class CleanupSettings:
    """The `infer.postprocess` config section (defaults live in the schema)."""

    closing: int
    opening: int
    keep_components: int
    fill_holes: bool
    min_component_fraction: float

    def clean(self, prob: np.ndarray, threshold: float) -> np.ndarray:
        return clean_mask(prob, self, threshold=threshold)


def kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(size), int(size)))


def _close(mask: np.ndarray, size: int) -> np.ndarray:
    """Closing as if the background went on past the image edge (zero padding of the kernel's reach).

    OpenCV's default border counts the outside as lung while eroding, so a lung a few pixels from the
    edge was filled out to it; a plain constant-0 border would instead erode lungs that touch the edge.
    """
    padded = cv2.copyMakeBorder(mask, size, size, size, size, cv2.BORDER_CONSTANT, value=0)
    return cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel(size))[size:-size, size:-size]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Flood the background from the border; whatever background the flood cannot reach is a hole."""
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    flood = padded.copy()
    ff_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (mask.astype(bool) | holes).astype(np.uint8)


def _component_stats(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """connectedComponentsWithStats without the background row: (n, labels, areas, centroid_x)."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return n - 1, labels, stats[1:, cv2.CC_STAT_AREA], centroids[1:, 0]


def keep_largest(mask: np.ndarray, keep_components: int, min_area: int = 0) -> np.ndarray:
    """Keep the `keep_components` largest components of at least `min_area` pixels (ties: lower label)."""
    n, labels, areas, _ = _component_stats(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=np.uint8)
    order = np.argsort(-areas, kind="stable")[:keep_components]
    kept = [i + 1 for i in order if areas[i] >= min_area]
    return np.isin(labels, kept).astype(np.uint8)


def clean_mask(prob: np.ndarray, settings: CleanupSettings, *, threshold: float) -> np.ndarray:
    """Probability map (H, W) -> 0/1 uint8 lung mask, by the `infer.postprocess` section and `infer.threshold`
    (no defaults here: the schema holds them).

    Closing bridges small gaps along the lung border before opening removes specks, so a lung is
    not split into pieces that the component filter would then drop. Kernel size 0 or 1 skips a step.
    """
    closing, opening, keep_components = settings.closing, settings.opening, settings.keep_components
    mask = (np.asarray(prob) >= threshold).astype(np.uint8)
    if closing and closing > 1:
        mask = _close(mask, int(closing))
    if opening and opening > 1:
        # the default border is right here: eroding counts the outside as lung, so the edge never eats
        # a lung that touches it, and opening can only remove pixels, never grow into the edge
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel(opening))
    if keep_components and keep_components > 0:
        min_area = int(math.ceil(settings.min_component_fraction * mask.size))
        mask = keep_largest(mask, keep_components, min_area)
    if settings.fill_holes:
        mask = _fill_holes(mask)
    return mask


def label_lungs(mask: np.ndarray) -> np.ndarray:
    """0/1 mask -> 0 / RIGHT_LUNG / LEFT_LUNG by which image half holds each component's centroid."""
    n, labels, _, centroid_x = _component_stats(mask)
    out = np.zeros(mask.shape, np.uint8)
    half = mask.shape[1] / 2.0
    for i in range(n):
        out[labels == i + 1] = RIGHT_LUNG if centroid_x[i] < half else LEFT_LUNG
    return out


def side_areas(mask: np.ndarray) -> tuple[int, float, float]:
    """(components, area on the image-left half, area on the image-right half), by component centroid."""
    n, _, areas, centroid_x = _component_stats(mask)
    half = mask.shape[1] / 2.0
    return n, float(areas[centroid_x < half].sum()), float(areas[centroid_x >= half].sum())

"""Turn a lung probability map into a clean mask, and score the mask without ground truth.

Cleanup follows the usual recipe for lung fields: threshold, morphological closing then
opening, keep the largest components (two lungs), fill holes. The QC metrics are what a
reviewer checks by eye: is there lung, about the right amount, in two fields of similar size,
predicted confidently? They are combined into one `qc_score` in [0, 1] meant to track the
true Dice (validated against the demo ground truth by `cxlseg.infer.qc_vs_truth`).

Left/right convention: frontal (PA/AP) radiographs are displayed with the patient facing the
viewer, so the patient's LEFT lung lies on the image's RIGHT. `label_lungs` uses patient
anatomy (RIGHT_LUNG on the image left, LEFT_LUNG on the image right); `left_right_ratio` in
the QC metrics is purely image-based (image-left area / image-right area).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

RIGHT_LUNG = 1  # patient's right lung: image left in PA/AP
LEFT_LUNG = 2  # patient's left lung: image right in PA/AP
# Gray levels of each label in a written mask file (far apart, so JPEG ringing cannot swap them).
LABEL_GRAY = {RIGHT_LUNG: 128, LEFT_LUNG: 255}

DEFAULT_QC_THRESHOLDS = {
    "min_lung_area_fraction": 0.10,  # of the 224x224 stretched frontal image; typical lungs are 0.2-0.4
    "max_lung_area_fraction": 0.60,
    "max_components": 6,  # raw thresholded components before cleanup
    "min_left_right_ratio": 0.5,  # image-left lung area / image-right lung area
    "max_left_right_ratio": 2.0,
    "min_mean_fg_prob": 0.85,
    "max_boundary_entropy": 0.9,  # bits, mean over the boundary band
    "min_qc_score": 0.6,
}


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(size), int(size)))


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


def keep_largest(mask: np.ndarray, keep_components: int = 2, min_area: int = 0) -> np.ndarray:
    """Keep the `keep_components` largest components of at least `min_area` pixels (ties: lower label)."""
    n, labels, areas, _ = _component_stats(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=np.uint8)
    order = np.argsort(-areas, kind="stable")[:keep_components]
    kept = [i + 1 for i in order if areas[i] >= min_area]
    return np.isin(labels, kept).astype(np.uint8)


def clean_mask(prob: np.ndarray, *, threshold: float = 0.5, closing: int = 5, opening: int = 3,
               keep_components: int = 2, fill_holes: bool = True,
               min_component_fraction: float = 0.005) -> np.ndarray:
    """Probability map (H, W) -> 0/1 uint8 lung mask.

    Closing bridges small gaps along the lung border before opening removes specks, so a lung is
    not split into pieces that the component filter would then drop. Kernel size 0 or 1 skips a step.
    """
    mask = (np.asarray(prob) >= threshold).astype(np.uint8)
    if closing and closing > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _kernel(closing))
    if opening and opening > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _kernel(opening))
    if keep_components and keep_components > 0:
        min_area = int(math.ceil(min_component_fraction * mask.size))
        mask = keep_largest(mask, keep_components, min_area)
    if fill_holes:
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


def _binary_entropy(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob.astype(np.float64), 1e-6, 1 - 1e-6)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = float(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * float((a * b).sum()) / total


def _inside(x: float, lo: float, hi: float, soft: float) -> float:
    """1 inside [lo, hi], falling linearly to 0 at `soft` beyond either end."""
    if not np.isfinite(x):
        return 0.0
    gap = max(lo - x, x - hi, 0.0)
    return max(0.0, 1.0 - gap / soft)


# Plausible anatomy of a 224x224 stretched frontal film, for the qc_score (not the flags, which are configured).
PLAUSIBLE_AREA = (0.12, 0.55)  # lung area fraction; the score falls to 0 over 0.12 beyond either end
BALANCED_LUNGS = 0.4  # smaller / larger lung field; below it the score falls, to half when one lung is missing


def _side_areas(mask: np.ndarray) -> tuple[int, float, float]:
    """(components, area on the image-left half, area on the image-right half), by component centroid."""
    n, _, areas, centroid_x = _component_stats(mask)
    half = mask.shape[1] / 2.0
    return n, float(areas[centroid_x < half].sum()), float(areas[centroid_x >= half].sum())


def _plausibility(area_fraction: float, area_left: float, area_right: float) -> float:
    balance = min(area_left, area_right) / max(area_left, area_right, 1.0)
    return _inside(area_fraction, *PLAUSIBLE_AREA, 0.12) * (0.5 + 0.5 * min(1.0, balance / BALANCED_LUNGS))


def qc_metrics(prob: np.ndarray, mask: np.ndarray, *, threshold: float = 0.5, band: int = 3) -> dict:
    """Ground-truth-free quality metrics of one predicted mask.

    qc_score = soft_dice x boundary_confidence x cleanup_agreement x plausibility, each in [0, 1]:
    - soft_dice: Dice of the probability map with the final mask, i.e. the Dice the model itself
      expects; it drops when the model is unsure anywhere near the mask;
    - boundary_confidence: sqrt(1 - mean entropy in bits) in a band around the mask border, where
      the errors of a segmentation live (the square root keeps an accurate but under-confident
      model from being flagged wholesale);
    - cleanup_agreement: Dice of the raw thresholded map with the cleaned mask; a mask that needed
      heavy cleanup (fragments, holes, spurious blobs) is a poor prediction;
    - plausibility: area fraction within a normal range and two lung fields of similar size.
    """
    prob = np.asarray(prob, dtype=np.float32)
    mask = (np.asarray(mask) > 0).astype(np.uint8)
    raw = (prob >= threshold).astype(np.uint8)
    n_raw = _component_stats(raw)[0]
    n_kept, area_left, area_right = _side_areas(mask)
    if area_right > 0:
        lr_ratio = area_left / area_right
    else:
        lr_ratio = math.inf if area_left > 0 else math.nan

    entropy = _binary_entropy(prob)
    k = 2 * band + 1
    boundary = (cv2.dilate(mask, _kernel(k)) - cv2.erode(mask, _kernel(k))).astype(bool)
    boundary_entropy = float(entropy[boundary].mean()) if boundary.any() else 0.0
    area_fraction = float(mask.mean())
    soft_dice = 2.0 * float((prob * mask).sum()) / max(float(prob.sum() + mask.sum()), 1e-9)
    qc_score = 0.0
    if mask.any():
        qc_score = (soft_dice * math.sqrt(max(0.0, 1.0 - boundary_entropy)) * _dice(raw, mask)
                    * _plausibility(area_fraction, area_left, area_right))
    return {
        "lung_area_fraction": area_fraction,
        "n_components": int(n_raw),
        "n_components_kept": int(n_kept),
        "left_right_ratio": float(lr_ratio),
        "mean_fg_prob": float(prob[mask.astype(bool)].mean()) if mask.any() else 0.0,
        "mean_entropy": float(entropy.mean()),
        "boundary_entropy": boundary_entropy,
        "soft_dice": float(soft_dice),
        "qc_score": float(min(max(qc_score, 0.0), 1.0)),
    }


def qc_flags(metrics: dict, thresholds: dict | None = None) -> list[str]:
    """Names of the rules a mask breaks; `thresholds` overrides DEFAULT_QC_THRESHOLDS key by key."""
    unknown = set(thresholds or {}) - set(DEFAULT_QC_THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown QC threshold(s) {sorted(unknown)}; known: {sorted(DEFAULT_QC_THRESHOLDS)}")
    t = {**DEFAULT_QC_THRESHOLDS, **(thresholds or {})}
    area = metrics["lung_area_fraction"]
    if area <= 0:
        return ["empty_mask"]
    flags = []
    if area < t["min_lung_area_fraction"]:
        flags.append("small_lung_area")
    if area > t["max_lung_area_fraction"]:
        flags.append("large_lung_area")
    if metrics["n_components"] > t["max_components"]:
        flags.append("fragmented")
    ratio = metrics["left_right_ratio"]
    if not (t["min_left_right_ratio"] <= ratio <= t["max_left_right_ratio"]):  # NaN fails too
        flags.append("left_right_imbalance")
    if metrics["mean_fg_prob"] < t["min_mean_fg_prob"]:
        flags.append("low_confidence")
    if metrics["boundary_entropy"] > t["max_boundary_entropy"]:
        flags.append("uncertain_boundary")
    if metrics["qc_score"] < t["min_qc_score"]:
        flags.append("low_qc_score")
    return flags


_OVERLAY_COLORS = {1: (0, 200, 0), RIGHT_LUNG: (0, 200, 0), LEFT_LUNG: (220, 0, 220)}  # BGR


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """Gray or BGR image + 0/1 or lung-label mask -> BGR uint8 with tinted lungs and outlines."""
    from .io import to_gray_uint8

    base = cv2.cvtColor(to_gray_uint8(image), cv2.COLOR_GRAY2BGR)
    if mask.shape[:2] != base.shape[:2]:
        mask = cv2.resize(mask.astype(np.uint8), (base.shape[1], base.shape[0]), interpolation=cv2.INTER_NEAREST)
    out = base.copy()
    for label in sorted(int(v) for v in np.unique(mask) if v):
        region = (mask == label).astype(np.uint8)
        color = np.array(_OVERLAY_COLORS.get(label, (0, 200, 255)), np.float32)
        sel = region.astype(bool)
        out[sel] = np.round((1 - alpha) * out[sel] + alpha * color).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 1)
    return out

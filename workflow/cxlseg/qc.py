"""Quality control of predicted masks without ground truth, and its check where ground truth exists.

The metrics are what a reviewer checks by eye: is there lung, about the right amount, in two fields of
similar size, predicted confidently? They are combined into one `qc_score` in [0, 1] meant to track the
true Dice; `qc_vs_truth` and `qc_tracking` measure how well it does where truth exists (the demo).
Overlays are returned as arrays for the report to lay out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import pandas as pd

from . import io, preprocess
from . import postprocess as post
from .io import to_gray_uint8
from .metrics import dice


@dataclass(frozen=True)
class QCSettings:
    """Thresholds of the QC flags: the `infer.qc` config section (defaults live in the schema)."""

    min_lung_area_fraction: float
    max_lung_area_fraction: float
    max_components: int
    min_left_right_ratio: float
    max_left_right_ratio: float
    min_mean_fg_prob: float
    max_boundary_entropy: float
    min_qc_score: float


def _binary_entropy(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob.astype(np.float64), 1e-6, 1 - 1e-6)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def _inside(x: float, lo: float, hi: float, soft: float) -> float:
    """1 inside [lo, hi], falling linearly to 0 at `soft` beyond either end."""
    if not np.isfinite(x):
        return 0.0
    gap = max(lo - x, x - hi, 0.0)
    return max(0.0, 1.0 - gap / soft)


# Plausible anatomy of a 224x224 stretched frontal film, for the qc_score (not the flags, which are configured).
PLAUSIBLE_AREA = (0.12, 0.55)  # lung area fraction; the score falls to 0 over 0.12 beyond either end
BALANCED_LUNGS = 0.4  # smaller / larger lung field; below it the score falls, to half when one lung is missing


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
    n_raw = post.side_areas(raw)[0]
    n_kept, area_left, area_right = post.side_areas(mask)
    if area_right > 0:
        lr_ratio = area_left / area_right
    else:
        lr_ratio = math.inf if area_left > 0 else math.nan

    entropy = _binary_entropy(prob)
    k = 2 * band + 1
    boundary = (cv2.dilate(mask, post.kernel(k)) - cv2.erode(mask, post.kernel(k))).astype(bool)
    boundary_entropy = float(entropy[boundary].mean()) if boundary.any() else 0.0
    area_fraction = float(mask.mean())
    soft_dice = 2.0 * float((prob * mask).sum()) / max(float(prob.sum() + mask.sum()), 1e-9)
    qc_score = 0.0
    if mask.any():
        qc_score = (
            soft_dice
            * math.sqrt(max(0.0, 1.0 - boundary_entropy))
            * dice(raw, mask)
            * _plausibility(area_fraction, area_left, area_right)
        )
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


def qc_flags(metrics: dict, thresholds: "QCSettings") -> list[str]:
    """Names of the rules a mask breaks."""
    t = asdict(thresholds)
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


_OVERLAY_COLORS = {1: (0, 200, 0), post.RIGHT_LUNG: (0, 200, 0), post.LEFT_LUNG: (220, 0, 220)}  # BGR


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """Gray or BGR image + 0/1 or lung-label mask -> BGR uint8 with tinted lungs and outlines."""
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


# --- where ground truth exists ---------------------------------------------------------------


def read_truth(path) -> np.ndarray:
    """Ground-truth masks may be 0/255 or lung labels 1/2: any non-zero pixel is lung."""
    image = io.read_image(path)
    gray = image if image.ndim == 2 and image.dtype == np.uint8 else to_gray_uint8(image, path)
    return (gray > 0).astype(np.uint8)


def qc_vs_truth(manifest: pd.DataFrame, truth_dir, out_root, *, size: int) -> pd.DataFrame:
    """Per ok image with a ground truth `truth_dir/<dicom_id>.png`: its qc_score, flags and the true Dice
    of the written mask against the truth resized the same way (INTER_AREA stretch to size)."""
    rows = []
    for rec in manifest[manifest.status == "ok"].itertuples(index=False):
        truth_path = io.safe_join(truth_dir, f"{rec.dicom_id}.png")
        if not truth_path.is_file():
            continue
        pred = io.read_mask(io.safe_join(out_root, rec.mask_path))
        truth = preprocess.resize_mask(read_truth(truth_path), size)
        rows.append(
            {
                "dicom_id": rec.dicom_id,
                "qc_score": float(rec.qc_score),
                "qc_flags": rec.qc_flags or "",
                "dice": dice(pred, truth),
            }
        )
    return pd.DataFrame(rows, columns=["dicom_id", "qc_score", "qc_flags", "dice"])


def qc_tracking(validation: pd.DataFrame) -> dict:
    """How well qc_score tracks true Dice: Spearman's rho, and Dice of flagged vs unflagged images."""
    from scipy.stats import spearmanr

    n = int(len(validation))
    result = {
        "n": n,
        "spearman_rho": math.nan,
        "spearman_p": math.nan,
        "mean_dice": float(validation.dice.mean()) if n else math.nan,
    }
    if n >= 3 and validation.qc_score.nunique() > 1 and validation.dice.nunique() > 1:
        rho, p = spearmanr(validation.qc_score, validation.dice)
        result.update(spearman_rho=float(rho), spearman_p=float(p))
    flagged = validation.qc_flags.fillna("") != ""
    result["mean_dice_flagged"] = float(validation.dice[flagged].mean()) if flagged.any() else math.nan
    result["mean_dice_unflagged"] = float(validation.dice[~flagged].mean()) if (~flagged).any() else math.nan
    return result


def flagged_overlays(
    manifest: pd.DataFrame, mimic_root, out_root, *, size: int, max_images: int = 24
) -> list[tuple[dict, np.ndarray]]:
    """(row, BGR overlay) of the lowest-scoring flagged masks on their resized source images."""
    flagged = manifest[(manifest.status == "ok") & (manifest.qc_flags.fillna("") != "")]
    flagged = flagged.sort_values(["qc_score", "dicom_id"]).head(max_images)
    return [(rec._asdict(), mask_overlay(rec, mimic_root, out_root, size)) for rec in flagged.itertuples(index=False)]


def mask_overlay(rec, mimic_root, out_root, size: int) -> np.ndarray:
    """The written mask over its source image, resized as inference resized it."""
    image, _, _, _ = preprocess.decode_for_inference(io.safe_join(mimic_root, rec.source_path), size)
    mask = io.read_image(io.safe_join(out_root, rec.mask_path), cv2.IMREAD_GRAYSCALE)
    labels = np.digitize(mask, [64, 192]).astype(np.uint8)  # 0 / ~128 / ~255 -> 0 / 1 / 2
    if not (labels == post.RIGHT_LUNG).any():  # a plain 0/255 mask: one colour
        labels = (labels > 0).astype(np.uint8)
    return overlay(image, labels)

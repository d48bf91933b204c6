"""Quality control of predicted masks without ground truth, and its check where ground truth exists.

Each mask gets cheap features (do the ensemble members and the mirrored pass agree, how confident is the
network, how much did clean-up change, is the shape a pair of lungs), a predicted Dice from the calibrated
model of `qc_model`, and flags: anatomy rules a reviewer would apply, plus `low_predicted_dice` with the
features that explain it. `qc_vs_truth` and `qc_tracking` measure the prediction where truth exists (demo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from cxlseg import io, preprocess
from cxlseg.inference import postprocess as post
from cxlseg.inference.qc_model import tracking
from cxlseg.io import to_gray_uint8
from cxlseg.metrics import dice

NO_SIGNALS = {
    "member_agreement": math.nan,
    "member_agreement_min": math.nan,
    "flip_agreement": math.nan,
    "perturb_agreement": math.nan,
    "p_not_frontal": math.nan,
    "film_fraction": math.nan,
    "polarity_score": math.nan,
}


@dataclass(frozen=True)
class QCSettings:
    """Thresholds of the QC flags: the `infer.qc` config section (defaults live in the schema)."""

    min_lung_area_fraction: float
    max_lung_area_fraction: float
    max_components: int
    min_left_right_ratio: float
    max_left_right_ratio: float
    min_predicted_dice: float | str  # a fixed bar, or "calibrated": calibrate_qc picks it from good_flag_rate
    good_flag_rate: float
    perturbation: bool
    good_dice: float
    calibration_degraded: int


def _binary_entropy(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob.astype(np.float64), 1e-6, 1 - 1e-6)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def _shape(mask: np.ndarray) -> dict:
    """Solidity (area / convex hull area of the lung fields), centroid and height, in image fractions."""
    h, w = mask.shape
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = sum(cv2.contourArea(cv2.convexHull(c)) for c in contours)
    rows, cols = np.nonzero(mask)
    return {
        "solidity": float(min(1.0, mask.sum() / hull)) if hull > 0 else 0.0,
        "centroid_x": float(cols.mean() / w) if len(cols) else math.nan,
        "centroid_y": float(rows.mean() / h) if len(rows) else math.nan,
        "height_fraction": float((rows.max() - rows.min() + 1) / h) if len(rows) else 0.0,
    }


def edge_touch(mask: np.ndarray) -> float:
    """Share of the mask's outline that runs along the image edge: a lung cut off by the film edge has a straight
    stretch of outline there, a whole lung almost none."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate([c[:, 0] for c in contours]) if contours else np.empty((0, 2), int)
    if not len(points):
        return 0.0
    h, w = mask.shape
    on_edge = (points[:, 0] <= 0) | (points[:, 1] <= 0) | (points[:, 0] >= w - 1) | (points[:, 1] >= h - 1)
    return float(on_edge.mean())


def qc_metrics(
    prob: np.ndarray, mask: np.ndarray, signals: dict | None = None, *, threshold: float, band: int = 3
) -> dict:
    """Ground-truth-free features of one predicted mask (the manifest's QC columns).

    - `signals` from the batched models: member_agreement(_min), flip_agreement, perturb_agreement (Dice between
      the ensemble members' / mirrored pass's / perturbed input's masks, `Predictor.predict_batch`; NaN when there
      is one model or no such pass), the view check's p_not_frontal (NaN without one), and the film check's
      film_fraction and polarity_score (`film.FilmCheck.signals`);
    - mean_fg_prob, soft_dice (Dice of the probabilities with the mask: the Dice the model expects),
      boundary_entropy (bits, in a band around the border, where errors live), mean_entropy;
    - cleanup_agreement: Dice of the raw thresholded map with the cleaned mask (heavy clean-up = poor map);
    - edge_touch: share of the mask's outline on the image edge (a lung cut off by the film edge);
    - shape: lung_area_fraction, lr_log_ratio (|log| of left/right area), solidity, centroid, height.
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
    return {
        **NO_SIGNALS,
        **{k: v for k, v in (signals or {}).items() if k in NO_SIGNALS},
        "lung_area_fraction": float(mask.mean()),
        "n_components": int(n_raw),
        "n_components_kept": int(n_kept),
        "left_right_ratio": float(lr_ratio),
        "lr_log_ratio": float(abs(math.log((area_left + 1.0) / (area_right + 1.0)))),
        "mean_fg_prob": float(prob[mask.astype(bool)].mean()) if mask.any() else 0.0,
        "mean_entropy": float(entropy.mean()),
        "boundary_entropy": float(entropy[boundary].mean()) if boundary.any() else 0.0,
        "soft_dice": 2.0 * float((prob * mask).sum()) / max(float(prob.sum() + mask.sum()), 1e-9),
        "cleanup_agreement": dice(raw, mask),
        "edge_touch": edge_touch(mask),
        **_shape(mask),
    }


def anatomy_flags(metrics: dict, thresholds: QCSettings) -> list[str]:
    """Names of the anatomy rules a mask breaks (configured in `infer.qc`)."""
    t = thresholds
    area = metrics["lung_area_fraction"]
    if area <= 0:
        return ["empty_mask"]
    flags = []
    if area < t.min_lung_area_fraction:
        flags.append("small_lung_area")
    if area > t.max_lung_area_fraction:
        flags.append("large_lung_area")
    if metrics["n_components"] > t.max_components:
        flags.append("fragmented")
    if not (t.min_left_right_ratio <= metrics["left_right_ratio"] <= t.max_left_right_ratio):  # NaN fails too
        flags.append("left_right_imbalance")
    return flags


def qc_flags(metrics: dict, thresholds: QCSettings, model=None) -> list[str]:
    """Anatomy flags, then `low_predicted_dice` and its reasons when the predicted Dice is under the model's bar.

    An empty mask is `low_predicted_dice` whatever the bar, with or without a model, so that filtering on that
    flag finds every mask QC expects to be poor; `empty_mask` is its reason, the features of an empty mask explain
    nothing more. With a model, a NaN prediction is no evidence the mask is good: flagged too. `metrics` must hold
    `qc_predicted_dice` when a model (`qc_model.QCModel`, which stores the bar) is given."""
    flags = anatomy_flags(metrics, thresholds)
    if flags == ["empty_mask"]:
        return [*flags, "low_predicted_dice"]
    if model is None or metrics["qc_predicted_dice"] >= model.min_predicted_dice:
        return flags
    return flags + ["low_predicted_dice", *(r for r in model.reasons(metrics) if r not in flags)]


def assess(prob: np.ndarray, mask: np.ndarray, signals: dict | None, thresholds: QCSettings, model, threshold: float):
    """QC of one cleaned mask: its features, predicted Dice (NaN without a model) and flags; `not_frontal`
    first when the view check (in `signals`) says the film is not a frontal chest film."""
    metrics = qc_metrics(prob, mask, signals, threshold=threshold)
    metrics["qc_predicted_dice"] = model.predict_one(metrics) if model is not None else math.nan
    view = ["not_frontal"] if (signals or {}).get("not_frontal") else []
    return metrics, view + qc_flags(metrics, thresholds, model)


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


def qc_vs_truth(manifest: pd.DataFrame, truth_dir, out_root, *, size: int, interpolation: str = "area") -> pd.DataFrame:
    """Per ok image with a ground truth `truth_dir/<dicom_id>.png`: its qc_predicted_dice, flags and the true Dice
    of the written mask against the truth resized the same way (a stretch to size, preprocess.interpolation)."""
    rows = []
    for rec in manifest[manifest.status == "ok"].itertuples(index=False):
        truth_path = io.safe_join(truth_dir, f"{rec.dicom_id}.png")
        if not truth_path.is_file():
            continue
        pred = io.read_mask(io.safe_join(out_root, rec.mask_path))
        truth = preprocess.resize_mask(read_truth(truth_path), size, interpolation)
        rows.append(
            {
                "dicom_id": rec.dicom_id,
                "qc_predicted_dice": float(rec.qc_predicted_dice),
                "qc_flags": rec.qc_flags or "",
                "dice": dice(pred, truth),
            }
        )
    return pd.DataFrame(rows, columns=["dicom_id", "qc_predicted_dice", "qc_flags", "dice"])


def qc_tracking(validation: pd.DataFrame, *, good_dice: float) -> dict:
    """How well the predicted Dice tracks the true Dice (see `qc_model.tracking`), and Dice of flagged vs not."""
    flagged = validation.qc_flags.fillna("") != ""
    result = tracking(validation.qc_predicted_dice, validation.dice, flagged, good_dice=good_dice)
    result["mean_dice_flagged"] = float(validation.dice[flagged].mean()) if flagged.any() else math.nan
    result["mean_dice_unflagged"] = float(validation.dice[~flagged].mean()) if (~flagged).any() else math.nan
    return result


def flagged_overlays(
    manifest: pd.DataFrame, mimic_root, out_root, *, size: int, max_images: int = 24, interpolation: str = "area"
) -> list[tuple[dict, np.ndarray]]:
    """(row, BGR overlay) of the lowest-scoring flagged masks on their resized source images."""
    flagged = manifest[(manifest.status == "ok") & (manifest.qc_flags.fillna("") != "")]
    flagged = flagged.sort_values(["qc_predicted_dice", "dicom_id"]).head(max_images)
    return [
        (rec._asdict(), mask_overlay(rec, mimic_root, out_root, size, interpolation))
        for rec in flagged.itertuples(index=False)
    ]


def mask_overlay(rec, mimic_root, out_root, size: int, interpolation: str = "area") -> np.ndarray:
    """The written mask over its source image, resized as inference resized it."""
    path = io.safe_join(mimic_root, rec.source_path)
    image, _, _, _ = preprocess.decode_for_inference(path, size, interpolation=interpolation)
    mask = io.read_image(io.safe_join(out_root, rec.mask_path), cv2.IMREAD_GRAYSCALE)
    labels = np.digitize(mask, [64, 192]).astype(np.uint8)  # 0 / ~128 / ~255 -> 0 / 1 / 2
    if not (labels == post.RIGHT_LUNG).any():  # a plain 0/255 mask: one colour
        labels = (labels > 0).astype(np.uint8)
    return overlay(image, labels)

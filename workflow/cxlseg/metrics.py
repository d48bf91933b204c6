"""Overlap and boundary metrics (numpy, per image); the training loss on tensors is `training.loss`.

Empty masks are defined, not NaN, so means over a test split never silently
drop images: when prediction and truth are both empty every overlap score is 1
and HD95 is 0; when exactly one is empty the overlap scores are 0 and HD95 is
the image diagonal (the worst distance possible on that grid).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

METRIC_NAMES = ("dice", "iou", "precision", "recall", "hd95")
OVERLAP_NAMES = ("dice", "iou", "precision", "recall")


# --------------------------------------------------------------------------- numpy, per image


def _confusion(pred: np.ndarray, target: np.ndarray) -> tuple[int, int, int]:
    pred, target = _binary(pred), _binary(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    tp = int(np.count_nonzero(pred & target))
    return tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(target)) - tp


def _binary(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask) > 0


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return num / den


def _overlap(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Dice, IoU, precision and recall from one confusion count (two empty masks agree perfectly)."""
    both_empty = tp + fp + fn == 0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
    }


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    return _overlap(*_confusion(pred, target))["dice"]


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    return _overlap(*_confusion(pred, target))["iou"]


def precision(pred: np.ndarray, target: np.ndarray) -> float:
    return _overlap(*_confusion(pred, target))["precision"]


def recall(pred: np.ndarray, target: np.ndarray) -> float:
    return _overlap(*_confusion(pred, target))["recall"]


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (the image border counts as outside)."""
    eroded = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(2, 1), border_value=0)
    return mask & ~eroded


def hd95(pred: np.ndarray, target: np.ndarray) -> float:
    """95th percentile of the symmetric boundary-to-boundary distances, in pixels (medpy's definition)."""
    pred, target = _binary(pred), _binary(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    has_pred, has_target = pred.any(), target.any()
    if not has_pred and not has_target:
        return 0.0
    if not has_pred or not has_target:
        return float(math.hypot(*pred.shape[:2]))
    pred_edge, target_edge = _boundary(pred), _boundary(target)
    to_target = ndimage.distance_transform_edt(~target_edge)[pred_edge]
    to_pred = ndimage.distance_transform_edt(~pred_edge)[target_edge]
    return float(np.percentile(np.concatenate([to_target, to_pred]), 95))


def image_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """All per-image metrics at once (one confusion count)."""
    return {**_overlap(*_confusion(pred, target)), "hd95": hd95(pred, target)}


def summarise(values: np.ndarray) -> dict[str, float]:
    """mean, std and 5th percentile: the tail shows the failures a mean hides."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "p5": float("nan"), "n": 0}
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "p5": float(np.percentile(values, 5)),
        "n": int(values.size),
    }


def bce_dice_loss(prob: np.ndarray, target: np.ndarray, smooth: float = 1.0, eps: float = 1e-7) -> float:
    """The training loss (BCE + soft Dice, weights 1) of one probability map, for Table IV's Loss column.

    Computed from probabilities because the predictor's outputs are (TTA- or ensemble-averaged)
    probabilities; for a single pass this equals BCEDiceLoss on the logits up to float rounding.
    """
    p = np.clip(np.asarray(prob, dtype=np.float64), eps, 1 - eps)
    t = (np.asarray(target) > 0).astype(np.float64)
    bce = float(-(t * np.log(p) + (1 - t) * np.log(1 - p)).mean())
    soft = 1.0 - (2.0 * float((p * t).sum()) + smooth) / (float(p.sum() + t.sum()) + smooth)
    return bce + soft

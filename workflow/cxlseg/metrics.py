"""Overlap and boundary metrics (numpy, per image) and the BCE + Dice loss (torch).

Empty masks are defined, not NaN, so means over a test split never silently
drop images: when prediction and truth are both empty every overlap score is 1
and HD95 is 0; when exactly one is empty the overlap scores are 0 and HD95 is
the image diagonal (the worst distance possible on that grid).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

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


# --------------------------------------------------------------------------- torch, batched


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged; the smoothing term makes an empty-vs-empty image cost ~0."""
    probs = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    inter = (probs * target).sum(1)
    denom = probs.sum(1) + target.sum(1)
    return (1.0 - (2.0 * inter + smooth) / (denom + smooth)).mean()


class BCEDiceLoss(nn.Module):
    """bce_weight * BCE(logits) + dice_weight * (1 - soft Dice): BCE for per-pixel calibration, Dice for overlap."""

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        if bce_weight < 0 or dice_weight < 0 or bce_weight + dice_weight == 0:
            raise ValueError(f"loss weights must be >= 0 and not both 0 (bce={bce_weight}, dice={dice_weight})")
        self.bce_weight, self.dice_weight, self.smooth = float(bce_weight), float(dice_weight), float(smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(logits.dtype)
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.bce_weight:
            loss = loss + self.bce_weight * F.binary_cross_entropy_with_logits(logits.float(), target.float())
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target, self.smooth)
        return loss


@torch.no_grad()
def batch_metrics(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """Per-image Dice, IoU, precision, recall of thresholded probabilities, same empty-mask rules as numpy."""
    pred = (torch.sigmoid(logits.float()) >= threshold).flatten(1)
    truth = (target > 0.5).flatten(1)
    tp = (pred & truth).sum(1).double()
    fp = (pred & ~truth).sum(1).double()
    fn = (~pred & truth).sum(1).double()
    both_empty = (tp + fp + fn) == 0

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        out = torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))
        return torch.where(both_empty, torch.ones_like(out), out)

    return {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
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

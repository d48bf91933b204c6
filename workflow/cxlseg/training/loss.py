"""The training loss (BCE + soft Dice) and per-image overlap scores of a batch, on tensors.

The numpy scores of one mask (evaluation, QC) are `cxlseg.metrics`; the empty-mask rules here are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
def batch_metrics(logits: torch.Tensor, target: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
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

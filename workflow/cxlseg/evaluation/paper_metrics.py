"""Table IV as the CXLSeg authors scored it (segmentation/utils.py + evaluate.py, Keras `model.evaluate`).

Their numbers are not this pipeline's per-image means of cleaned masks, so they get columns of their own,
all prefixed `paper_`:

- ``paper_soft_dice``, ``paper_soft_iou``: their `dice_coef` / `iou` on the raw probabilities (no threshold,
  no clean-up), each computed over a whole batch of 5 (the sums run over every pixel of the batch), then
  averaged over batches with equal weight, as Keras averages a function metric;
- ``paper_recall``, ``paper_precision``: `keras.metrics.Recall()` / `Precision()`: probabilities > 0.5, true
  and false positives and negatives accumulated over every pixel of the test split;
- ``paper_loss_pct``: their `bce_dice_loss` (Keras binary cross-entropy, clipped at 1e-7, plus 1 - batch soft
  Dice), averaged over batches weighted by batch size as Keras reports a loss, times 100 (the paper's percent).

Batches follow the store's order (the authors' tf.data pipeline shuffled the test set with a 200-image buffer,
which changes the batch-level soft scores slightly from run to run).
"""

from __future__ import annotations

import numpy as np

AUTHORS_BATCH = 5  # segmentation/evaluate.py: batch_size = 5
KERAS_THRESHOLD = 0.5  # keras.metrics.Recall/Precision: thresholds=0.5, y_pred > threshold
SMOOTH = 1e-15  # segmentation/utils.py: smooth = 1e-15
KERAS_EPSILON = 1e-7  # keras.backend.epsilon()
PAPER_COLUMNS = ("paper_loss_pct", "paper_soft_dice", "paper_soft_iou", "paper_recall", "paper_precision")


def paper_scores(probs: np.ndarray, masks: np.ndarray, batch_size: int = AUTHORS_BATCH) -> dict[str, float]:
    """Probabilities (N, H, W) of the test split and its masks -> the five `paper_` scores."""
    if len(probs) != len(masks) or len(probs) == 0:
        raise ValueError(f"paper scores need as many probability maps as masks (> 0): {len(probs)} vs {len(masks)}")
    dices, ious, losses, sizes = [], [], [], []
    tp = fp = fn = 0
    for start in range(0, len(probs), batch_size):
        p = np.asarray(probs[start : start + batch_size], dtype=np.float64)
        y = (np.asarray(masks[start : start + batch_size]) > 0).astype(np.float64)
        inter, total = float((y * p).sum()), float(y.sum() + p.sum())
        dice = (2.0 * inter + SMOOTH) / (total + SMOOTH)
        dices.append(dice)
        ious.append((inter + SMOOTH) / (total - inter + SMOOTH))
        clipped = np.clip(p, KERAS_EPSILON, 1 - KERAS_EPSILON)
        bce = -(y * np.log(clipped + KERAS_EPSILON) + (1 - y) * np.log(1 - clipped + KERAS_EPSILON)).mean()
        losses.append(float(bce) + 1.0 - dice)
        sizes.append(len(p))
        pred, truth = p > KERAS_THRESHOLD, y > 0
        tp += int(np.count_nonzero(pred & truth))
        fp += int(np.count_nonzero(pred & ~truth))
        fn += int(np.count_nonzero(~pred & truth))
    return {
        "paper_loss_pct": 100.0 * float(np.average(losses, weights=sizes)),
        "paper_soft_dice": float(np.mean(dices)),
        "paper_soft_iou": float(np.mean(ious)),
        "paper_recall": tp / (tp + fn) if tp + fn else 0.0,  # Keras: divide_no_nan
        "paper_precision": tp / (tp + fp) if tp + fp else 0.0,
    }

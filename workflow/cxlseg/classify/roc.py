"""ROC AUC, ROC curves, Youden thresholds and thresholded binary metrics, per label.

Written out (no scikit-learn) so ties and one-class splits behave as documented: AUC counts tied
pairs one half and is NaN when a split lacks positives or negatives. The threshold is the authors'
``argmax(tpr - fpr)`` (Youden's J), taken on the validate split so the test split stays unseen.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

log = logging.getLogger(__name__)

METRICS = ("accuracy", "sensitivity", "specificity", "AUC")
FALLBACK_THRESHOLD = 0.5


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic (ties count one half); NaN when a class is absent."""
    y, score = _as_binary(y, score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, highest first, predicting positive when score >= threshold.

    The first point is (0, 0) at threshold +inf. Raises ValueError when a class is absent.
    """
    y, score = _as_binary(y, score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs both positive and negative examples")
    order = np.argsort(-score, kind="mergesort")
    score, y = score[order], y[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(score)), y.size - 1]
    tp = np.cumsum(y)[last_of_value]
    fp = (last_of_value + 1) - tp
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[np.inf, score[last_of_value]]


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """Score threshold maximising sensitivity + specificity - 1 (the highest on ties); NaN when a class is absent."""
    try:
        fpr, tpr, thresholds = roc_curve(y, score)
    except ValueError:
        return float("nan")
    best = int(np.argmax((tpr - fpr)[1:])) + 1  # skip the +inf point: it predicts nothing positive
    return float(thresholds[best])


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, sensitivity and specificity of `score >= threshold`; NaN where the denominator is empty."""
    y, score = _as_binary(y, score)
    if y.size == 0 or not np.isfinite(threshold):
        return {"accuracy": float("nan"), "sensitivity": float("nan"), "specificity": float("nan")}
    pred = score >= threshold
    pos, neg = y == 1, y == 0
    return {
        "accuracy": float((pred == pos).mean()),
        "sensitivity": float(pred[pos].mean()) if pos.any() else float("nan"),
        "specificity": float((~pred[neg]).mean()) if neg.any() else float("nan"),
    }


def _as_binary(y, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != score.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {score.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(score).all():
        raise ValueError("scores must be finite")
    return y.astype(np.int64), score


Part = tuple[np.ndarray, np.ndarray, np.ndarray]  # (targets, mask, scores), each (N, labels)


def evaluate_labels(labels: Sequence[str], val: Part, test: Part) -> dict[str, dict]:
    """Per label: Youden threshold on validate (0.5 if validate lacks a class), then test metrics.

    Entries with mask 0 (ignored uncertain labels) or a NaN score (unreadable image) are left out.
    """
    return {name: _evaluate_one(name, _counted(val, c), _counted(test, c)) for c, name in enumerate(labels)}


def _evaluate_one(name: str, val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> dict:
    (y_val, s_val), (y_test, s_test) = val, test
    threshold, rule = youden_threshold(y_val, s_val), "youden"
    if not np.isfinite(threshold):
        threshold, rule = FALLBACK_THRESHOLD, "fallback_0.5"
        log.warning(
            "%s: validate split has %d positive(s) of %d; threshold falls back to %.1f",
            name,
            int(y_val.sum()),
            y_val.size,
            FALLBACK_THRESHOLD,
        )
    metrics = binary_metrics(y_test, s_test, threshold)
    metrics["AUC"] = auc(y_test, s_test)
    return {
        "threshold": threshold,
        "threshold_rule": rule,
        **metrics,
        "n_test": int(y_test.size),
        "n_test_positive": int(y_test.sum()),
        "n_validate": int(y_val.size),
        "n_validate_positive": int(y_val.sum()),
    }


def _counted(part: Part, c: int) -> tuple[np.ndarray, np.ndarray]:
    targets, mask, scores = part
    keep = (mask[:, c] > 0) & np.isfinite(scores[:, c])
    return targets[keep, c], scores[keep, c]


def mean_metrics(per_label: dict[str, dict], labels: Sequence[str]) -> dict[str, float]:
    """Average of each metric over `labels` where it exists (NaN labels are left out, never counted as 0)."""
    out = {}
    for metric in METRICS:
        values = [_float(per_label[name][metric]) for name in labels]
        values = [v for v in values if np.isfinite(v)]
        out[metric] = float(np.mean(values)) if values else float("nan")
    return out


def _float(value) -> float:
    """metrics.json stores a missing metric as null."""
    return float("nan") if value is None else float(value)

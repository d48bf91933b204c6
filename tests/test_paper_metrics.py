"""Table IV as the CXLSeg authors scored it (cxlseg.evaluation.paper_metrics), on numbers worked out by hand."""

import math

import numpy as np
import pytest
from cxlseg.evaluation.paper_metrics import PAPER_COLUMNS, paper_scores


def _case():
    """Three 1x4 'images', scored in batches of 2: [a, b] and [c]."""
    probs = np.array([[[0.9, 0.8, 0.2, 0.1]], [[0.6, 0.4, 0.0, 0.0]], [[0.3, 0.7, 0.7, 0.2]]])
    masks = np.array([[[1, 1, 0, 0]], [[1, 1, 0, 0]], [[0, 1, 1, 1]]], dtype=np.uint8)
    return probs, masks


def test_soft_scores_are_per_batch_then_averaged_over_batches():
    probs, masks = _case()
    scores = paper_scores(probs, masks, batch_size=2)
    # batch 1: sum(y*p) = 0.9 + 0.8 + 0.6 + 0.4 = 2.7; sum(y) = 4; sum(p) = 2.0 + 1.0 = 3.0
    # batch 2: sum(y*p) = 0.7 + 0.7 + 0.2 = 1.6; sum(y) = 3; sum(p) = 1.9
    dice = (2 * 2.7 / 7.0 + 2 * 1.6 / 4.9) / 2
    iou = (2.7 / (7.0 - 2.7) + 1.6 / (4.9 - 1.6)) / 2
    assert scores["paper_soft_dice"] == pytest.approx(dice)
    assert scores["paper_soft_iou"] == pytest.approx(iou)
    # not the mean of per-image soft Dice (image b alone: 2 * 1.0 / 3.0)
    per_image = np.mean([2 * (p * m).sum() / (p.sum() + m.sum()) for p, m in zip(probs, masks)])
    assert abs(scores["paper_soft_dice"] - per_image) > 0.01


def test_recall_and_precision_pool_every_pixel_at_keras_threshold():
    probs, masks = _case()
    scores = paper_scores(probs, masks, batch_size=2)
    # p > 0.5: a: 0.9, 0.8 (both lung); b: 0.6 (lung); c: 0.7, 0.7 (both lung); lung pixels 7
    assert scores["paper_recall"] == pytest.approx(5 / 7)
    assert scores["paper_precision"] == pytest.approx(5 / 5)
    exactly_half = paper_scores(np.full((1, 1, 2), 0.5), np.ones((1, 1, 2)))
    assert exactly_half["paper_recall"] == 0.0  # Keras: y_pred > 0.5, not >=


def test_loss_is_bce_plus_batch_dice_weighted_by_batch_size_in_percent():
    probs, masks = _case()
    scores = paper_scores(probs, masks, batch_size=2)
    eps = 1e-7

    def bce(p, y):
        p = min(max(p, eps), 1 - eps)
        return -(y * math.log(p + eps) + (1 - y) * math.log(1 - p + eps))

    batch1 = np.mean([bce(p, y) for p, y in zip(probs[:2].ravel(), masks[:2].ravel())]) + 1 - 2 * 2.7 / 7.0
    batch2 = np.mean([bce(p, y) for p, y in zip(probs[2:].ravel(), masks[2:].ravel())]) + 1 - 2 * 1.6 / 4.9
    assert scores["paper_loss_pct"] == pytest.approx(100 * (2 * batch1 + 1 * batch2) / 3)


def test_the_authors_batch_of_five_is_the_default_and_names_are_prefixed():
    rng = np.random.default_rng(0)
    probs, masks = rng.random((7, 8, 8)), rng.random((7, 8, 8)) > 0.5
    assert paper_scores(probs, masks) == paper_scores(probs, masks, batch_size=5)
    assert paper_scores(probs, masks) != paper_scores(probs, masks, batch_size=7)
    assert set(paper_scores(probs, masks)) == set(PAPER_COLUMNS) and all(c.startswith("paper_") for c in PAPER_COLUMNS)
    with pytest.raises(ValueError, match="as many probability maps as masks"):
        paper_scores(probs, masks[:3])

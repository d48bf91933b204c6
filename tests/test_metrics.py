"""Metrics and loss against values worked out by hand."""

import math

import numpy as np
import pytest
import torch
from cxlseg.metrics import (
    bce_dice_loss,
    dice,
    hd95,
    image_metrics,
    iou,
    precision,
    recall,
    summarise,
)
from cxlseg.training.loss import BCEDiceLoss, batch_metrics


def square(top, left, side=4, shape=(10, 10)):
    mask = np.zeros(shape, np.uint8)
    mask[top : top + side, left : left + side] = 1
    return mask


def test_known_overlap():
    pred, target = square(2, 2), square(2, 4)  # 16 px each, 8 px shared
    assert dice(pred, target) == pytest.approx(0.5)  # 2*8 / (16+16)
    assert iou(pred, target) == pytest.approx(1 / 3)  # 8 / 24
    assert precision(pred, target) == pytest.approx(0.5)  # 8 / 16
    assert recall(pred, target) == pytest.approx(0.5)


def test_precision_and_recall_are_not_symmetric():
    pred, target = square(2, 2, side=2), square(2, 2, side=4)  # prediction inside truth
    assert precision(pred, target) == 1.0
    assert recall(pred, target) == pytest.approx(4 / 16)


def test_perfect_mask():
    m = square(1, 1, side=5)
    assert image_metrics(m, m) == {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "hd95": 0.0}


def test_both_empty_is_perfect():
    empty = np.zeros((6, 8), np.uint8)
    assert image_metrics(empty, empty) == {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "hd95": 0.0}


@pytest.mark.parametrize("swap", [False, True])
def test_one_empty_is_worst(swap):
    empty, full = np.zeros((6, 8), np.uint8), square(1, 1, side=3, shape=(6, 8))
    pred, target = (full, empty) if swap else (empty, full)
    m = image_metrics(pred, target)
    assert (m["dice"], m["iou"], m["precision"], m["recall"]) == (0, 0, 0, 0)
    assert m["hd95"] == pytest.approx(10.0)  # diagonal of 6 x 8


def test_hd95_single_pixels_three_four_five():
    a, b = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    a[0, 0], b[3, 4] = 1, 1
    assert hd95(a, b) == pytest.approx(5.0)


def test_hd95_shifted_square_is_the_shift():
    # every boundary pixel of a square shifted by 3 columns is at most 3 px from the other boundary
    pred, target = square(5, 5, side=8, shape=(20, 24)), square(5, 8, side=8, shape=(20, 24))
    assert hd95(pred, target) == pytest.approx(3.0)


def test_any_nonzero_value_counts_as_mask():
    assert dice(square(0, 0) * 255, square(0, 0)) == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        dice(np.zeros((4, 4)), np.zeros((4, 5)))


def test_summarise_mean_std_p5():
    s = summarise(np.arange(101, dtype=float) / 100)
    assert s["mean"] == pytest.approx(0.5) and s["p5"] == pytest.approx(0.05) and s["n"] == 101
    assert s["std"] == pytest.approx(np.arange(101).std() / 100)


def test_loss_value_by_hand():
    logits, target = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    # BCE of p=0.5 is ln 2; soft Dice: (2*2 + 1) / (2 + 4 + 1) = 5/7, so the Dice term is 2/7
    assert float(BCEDiceLoss()(logits, target)) == pytest.approx(math.log(2) + 2 / 7, rel=1e-6)
    weighted = BCEDiceLoss(bce_weight=0.5, dice_weight=2.0)(logits, target)
    assert float(weighted) == pytest.approx(0.5 * math.log(2) + 4 / 7, rel=1e-6)


def test_loss_near_zero_for_confident_perfect_and_empty():
    target = torch.zeros(2, 1, 8, 8)
    target[0, :, 2:6, 2:6] = 1  # second image is empty on both sides
    logits = (target * 2 - 1) * 30
    assert float(BCEDiceLoss()(logits, target)) < 1e-3


def test_loss_rejects_zero_weights():
    with pytest.raises(ValueError):
        BCEDiceLoss(0, 0)


def test_loss_gradient_points_toward_target():
    logits = torch.zeros(1, 1, 4, 4, requires_grad=True)
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1
    BCEDiceLoss()(logits, target).backward()
    assert (logits.grad[..., :2, :] < 0).all() and (logits.grad[..., 2:, :] > 0).all()


def test_batch_metrics_agree_with_numpy():
    rng = np.random.default_rng(3)
    target = (rng.random((4, 1, 16, 16)) > 0.5).astype(np.float32)
    logits = rng.normal(size=(4, 1, 16, 16)).astype(np.float32)
    target[3] = 0
    logits[3] = -5  # both empty
    got = batch_metrics(torch.from_numpy(logits), torch.from_numpy(target), 0.5)
    for i in range(4):
        expected = image_metrics(logits[i, 0] >= 0, target[i, 0])
        for name in ("dice", "iou", "precision", "recall"):
            assert float(got[name][i]) == pytest.approx(expected[name])
    assert float(got["dice"][3]) == 1.0


def test_bce_dice_loss_of_probabilities_equals_the_training_loss_of_logits():
    """Table IV's Loss column (from probabilities) is the training criterion of the same prediction."""
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(0, 3, (1, 1, 16, 16)).astype(np.float32))
    target = (rng.random((16, 16)) > 0.6).astype(np.uint8)
    expected = float(BCEDiceLoss()(logits, torch.from_numpy(target[None, None].astype(np.float32))))
    assert bce_dice_loss(torch.sigmoid(logits)[0, 0].numpy(), target) == pytest.approx(expected, rel=1e-4)
    assert bce_dice_loss(target.astype(np.float32), target) < 1e-5  # a perfect, certain prediction
    assert bce_dice_loss(1 - target.astype(np.float32), target) > 10

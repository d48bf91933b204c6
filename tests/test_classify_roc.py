"""Table-III metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cxlseg.classify import roc

Y = np.array([0, 0, 1, 1, 0, 1])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.5, 0.9])


def test_auc_matches_pair_count():
    # positives 0.35, 0.8, 0.9 vs negatives 0.1, 0.4, 0.5: 1 + 3 + 3 of 9 pairs ordered correctly
    assert roc.auc(Y, S) == pytest.approx(7 / 9)


def test_auc_counts_ties_as_half():
    # pairs (pos 0.5, neg 0.5)=0.5, (0.5, 0.2)=1, (0.8, 0.5)=1, (0.8, 0.2)=1 -> 3.5 / 4
    assert roc.auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.8]) == pytest.approx(0.875)
    assert roc.auc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)


def test_auc_is_nan_without_both_classes():
    assert math.isnan(roc.auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(roc.auc([0, 0], [0.2, 0.5]))


def test_youden_threshold_hand_computed():
    # thresholds 0.9, 0.8, 0.5, 0.4, 0.35, 0.1 give J = 1/3, 2/3, 1/3, 0, 1/3, 0
    assert roc.youden_threshold(Y, S) == pytest.approx(0.8)


def test_youden_threshold_prefers_highest_on_ties_and_nan_without_a_class():
    # 0.7 and 0.3 both reach J = 1/2; the higher threshold wins
    assert roc.youden_threshold([1, 0, 1, 0], [0.7, 0.5, 0.3, 0.1]) == pytest.approx(0.7)
    assert math.isnan(roc.youden_threshold([0, 0, 0], [0.1, 0.2, 0.3]))


def test_binary_metrics_hand_computed():
    # predictions at 0.5: 1 0 1 0 0 -> TP 1, FN 1, FP 1, TN 2
    out = roc.binary_metrics([1, 1, 0, 0, 0], [0.9, 0.4, 0.6, 0.2, 0.1], 0.5)
    assert out == pytest.approx({"accuracy": 0.6, "sensitivity": 0.5, "specificity": 2 / 3})


def test_binary_metrics_without_positives_reports_nan_sensitivity():
    out = roc.binary_metrics([0, 0, 0], [0.9, 0.1, 0.2], 0.5)
    assert math.isnan(out["sensitivity"])
    assert out["specificity"] == pytest.approx(2 / 3) and out["accuracy"] == pytest.approx(2 / 3)


def test_roc_curve_points_and_validation():
    fpr, tpr, thr = roc.roc_curve([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    assert thr[0] == np.inf and list(thr[1:]) == [0.8, 0.5, 0.2]
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        roc.auc([0, 2], [0.1, 0.2])


def test_evaluate_labels_falls_back_when_validate_lacks_positives():
    targets = np.array([[0.0], [0.0], [0.0]])
    val = (targets, np.ones_like(targets), np.array([[0.2], [0.7], [0.4]]))
    test = (np.array([[1.0], [0.0]]), np.ones((2, 1)), np.array([[0.6], [0.3]]))
    out = roc.evaluate_labels(["Pneumonia"], val, test)["Pneumonia"]
    assert out["threshold_rule"] == "fallback_0.5" and out["threshold"] == 0.5
    assert out["accuracy"] == 1.0 and out["AUC"] == 1.0


def test_evaluate_labels_leaves_out_ignored_and_unreadable_entries():
    val = (np.array([[1.0], [0.0]]), np.ones((2, 1)), np.array([[0.9], [0.1]]))
    test = (
        np.array([[1.0], [0.0], [1.0], [0.0]]),
        np.array([[1.0], [1.0], [0.0], [1.0]]),
        np.array([[0.8], [0.2], [0.1], [np.nan]]),
    )
    out = roc.evaluate_labels(["Edema"], val, test)["Edema"]
    assert out["n_test"] == 2 and out["AUC"] == 1.0 and out["threshold"] == pytest.approx(0.9)


def test_mean_metrics_skips_missing_labels_and_only_averages_the_named_ones():
    per_label = {
        "A": {"accuracy": 0.5, "sensitivity": None, "specificity": 1.0, "AUC": 0.6},
        "B": {"accuracy": 1.0, "sensitivity": 0.4, "specificity": 0.0, "AUC": float("nan")},
        "C": {"accuracy": 0.0, "sensitivity": 0.0, "specificity": 0.0, "AUC": 0.0},
    }
    out = roc.mean_metrics(per_label, ["A", "B"])
    assert out == pytest.approx({"accuracy": 0.75, "sensitivity": 0.4, "specificity": 0.5, "AUC": 0.6})

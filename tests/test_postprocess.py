import math

import cv2
import numpy as np
import pytest

from cxlseg import postprocess as pp


def _lungs(size=224, hole=False):
    """Two lung-like ellipses (image-left one a bit larger, as the heart shrinks the patient's left lung)."""
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (68, 110), (34, 70), 0, 0, 360, 1, -1)
    cv2.ellipse(mask, (158, 115), (30, 64), 0, 0, 360, 1, -1)
    if hole:
        cv2.circle(mask, (68, 110), 8, 0, -1)
    return mask


def _prob(mask, confident=0.97):
    return np.where(mask > 0, confident, 1 - confident).astype(np.float32)


def test_clean_mask_keeps_two_largest_components_and_fills_holes():
    mask = _lungs(hole=True)
    cv2.circle(mask, (200, 20), 6, 1, -1)  # a spurious blob, smaller than either lung
    cv2.circle(mask, (20, 200), 1, 1, -1)  # a speck
    cleaned = pp.clean_mask(_prob(mask))
    n, _, _, _ = cv2.connectedComponentsWithStats(cleaned, connectivity=8)
    assert n - 1 == 2
    assert cleaned[110, 68] == 1  # the hole is filled
    assert cleaned[20, 200] == 0 and cleaned[200, 20] == 0
    assert cleaned.dtype == np.uint8 and set(np.unique(cleaned)) <= {0, 1}


def test_clean_mask_drops_components_below_min_fraction():
    mask = np.zeros((100, 100), np.uint8)
    cv2.circle(mask, (30, 50), 20, 1, -1)
    cv2.circle(mask, (80, 50), 3, 1, -1)  # ~29 px < 1% of 10,000
    cleaned = pp.clean_mask(_prob(mask), min_component_fraction=0.01, closing=0, opening=0)
    assert cleaned[50, 80] == 0 and cleaned[50, 30] == 1


def test_clean_mask_threshold_and_empty():
    prob = np.full((50, 50), 0.4, np.float32)
    assert pp.clean_mask(prob).sum() == 0
    assert pp.clean_mask(prob, threshold=0.3, keep_components=0).all()


def test_label_lungs_uses_patient_left_on_image_right():
    labels = pp.label_lungs(_lungs())
    assert labels[110, 68] == pp.RIGHT_LUNG  # image left = patient's right in PA/AP
    assert labels[115, 158] == pp.LEFT_LUNG
    assert labels[0, 0] == 0


def test_qc_metrics_of_a_good_mask():
    mask = _lungs()
    metrics = pp.qc_metrics(_prob(mask), mask)
    assert 0.1 < metrics["lung_area_fraction"] < 0.4
    assert metrics["n_components"] == 2
    assert 1.0 < metrics["left_right_ratio"] < 1.5
    assert metrics["mean_fg_prob"] == pytest.approx(0.97)
    assert metrics["qc_score"] > 0.8
    assert pp.qc_flags(metrics, {}) == []


def test_qc_flags_fire_on_bad_masks():
    empty = np.zeros((224, 224), np.uint8)
    assert pp.qc_flags(pp.qc_metrics(np.full((224, 224), 0.1, np.float32), empty)) == ["empty_mask"]

    one_lung = _lungs()
    one_lung[:, 112:] = 0
    m = pp.qc_metrics(_prob(one_lung), one_lung)
    assert math.isinf(m["left_right_ratio"])
    assert "left_right_imbalance" in pp.qc_flags(m)

    rng = np.random.default_rng(0)
    noisy_prob = np.clip(_prob(_lungs(), 0.6) + rng.normal(0, 0.25, (224, 224)), 0, 1).astype(np.float32)
    cleaned = pp.clean_mask(noisy_prob)
    m = pp.qc_metrics(noisy_prob, cleaned)
    flags = pp.qc_flags(m)
    assert {"fragmented", "low_confidence", "low_qc_score"} <= set(flags)
    good = pp.qc_metrics(_prob(_lungs()), _lungs())
    assert m["qc_score"] < good["qc_score"]


def test_qc_flags_thresholds_override_and_unknown_key():
    metrics = pp.qc_metrics(_prob(_lungs()), _lungs())
    assert pp.qc_flags(metrics, {"min_lung_area_fraction": 0.5}) == ["small_lung_area"]
    with pytest.raises(ValueError, match="min_area"):
        pp.qc_flags(metrics, {"min_area": 0.5})


def test_overlay_is_bgr_and_tints_only_the_mask():
    image = np.full((224, 224), 100, np.uint8)
    out = pp.overlay(image, pp.label_lungs(_lungs()))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (100, 100, 100)
    assert tuple(out[110, 68]) != (100, 100, 100) and tuple(out[110, 68]) != tuple(out[115, 158])
    small = pp.overlay(np.full((448, 448), 50, np.uint8), _lungs())  # mask resized to the image
    assert small.shape == (448, 448, 3)

import dataclasses

import cv2
import numpy as np
from cxlseg.config import build_settings, section_defaults
from cxlseg.inference import postprocess as pp
from cxlseg.inference.postprocess import CleanupSettings

THRESHOLD = section_defaults("infer")["threshold"]
CLEANUP = build_settings(CleanupSettings, section_defaults("infer")["postprocess"])


def clean(prob, threshold=THRESHOLD, **changes):
    """clean_mask with the schema's clean-up section, some keys changed."""
    return pp.clean_mask(prob, dataclasses.replace(CLEANUP, **changes), threshold=threshold)


def test_clean_mask_keeps_two_largest_components_and_fills_holes(lung_fields):
    mask = lung_fields.mask(hole=True)
    cv2.circle(mask, (200, 20), 6, 1, -1)  # a spurious blob, smaller than either lung
    cv2.circle(mask, (20, 200), 1, 1, -1)  # a speck
    cleaned = clean(lung_fields.prob(mask))
    n, _, _, _ = cv2.connectedComponentsWithStats(cleaned, connectivity=8)
    assert n - 1 == 2
    assert cleaned[110, 68] == 1  # the hole is filled
    assert cleaned[20, 200] == 0 and cleaned[200, 20] == 0
    assert cleaned.dtype == np.uint8 and set(np.unique(cleaned)) <= {0, 1}


def test_clean_mask_drops_components_below_min_fraction(lung_fields):
    mask = np.zeros((100, 100), np.uint8)
    cv2.circle(mask, (30, 50), 20, 1, -1)
    cv2.circle(mask, (80, 50), 3, 1, -1)  # ~29 px < 1% of 10,000
    cleaned = clean(lung_fields.prob(mask), min_component_fraction=0.01, closing=0, opening=0)
    assert cleaned[50, 80] == 0 and cleaned[50, 30] == 1


def test_clean_mask_threshold_and_empty():
    prob = np.full((50, 50), 0.4, np.float32)
    assert clean(prob).sum() == 0
    assert clean(prob, threshold=0.3, keep_components=0).all()


def test_label_lungs_uses_patient_left_on_image_right(lung_fields):
    labels = pp.label_lungs(lung_fields.mask())
    assert labels[110, 68] == pp.RIGHT_LUNG  # image left = patient's right in PA/AP
    assert labels[115, 158] == pp.LEFT_LUNG
    assert labels[0, 0] == 0


def test_cleanup_settings_clean_is_clean_mask_with_the_section(make_config, lung_fields):
    settings = CleanupSettings(**make_config(infer={"postprocess": {"keep_components": 1}})["infer"]["postprocess"])
    mask = lung_fields.mask()
    prob = lung_fields.prob(mask)
    one = settings.clean(prob, 0.5)
    assert np.array_equal(one, pp.clean_mask(prob, settings, threshold=0.5))
    assert cv2.connectedComponents(one)[0] - 1 == 1
    assert cv2.connectedComponents(dataclasses.replace(settings, keep_components=2).clean(prob, 0.5))[0] - 1 == 2
    assert settings.clean(prob, 0.99).sum() == 0


def test_keep_largest_and_side_areas(lung_fields):
    mask = lung_fields.mask()
    cv2.circle(mask, (200, 20), 6, 1, -1)
    assert np.array_equal(pp.keep_largest(mask, 2), lung_fields.mask())
    assert pp.keep_largest(mask, 2, min_area=10**6).sum() == 0
    assert pp.keep_largest(np.zeros((5, 5), np.uint8), 2).sum() == 0
    n, left, right = pp.side_areas(lung_fields.mask())
    assert n == 2 and left > right > 0  # the image-left lung is the larger one
    assert left + right == lung_fields.mask().sum()


def test_label_lungs_labels_every_component_by_its_side(lung_fields):
    labels = pp.label_lungs(lung_fields.mask())
    assert set(np.unique(labels)) == {0, pp.RIGHT_LUNG, pp.LEFT_LUNG}
    assert ((labels > 0) == (lung_fields.mask() > 0)).all()


def test_clean_mask_neither_grows_nor_shrinks_lungs_at_the_image_edge(lung_fields):
    """Closing must not fill the gap between a lung and the edge, nor erode a lung cut off by the edge."""
    near = np.zeros((120, 120), np.uint8)
    cv2.ellipse(near, (32, 60), (30, 45), 0, 0, 360, 1, -1)  # ends 2 px from the left edge
    cut = np.zeros((120, 120), np.uint8)
    cv2.ellipse(cut, (12, 60), (30, 45), 0, 0, 360, 1, -1)  # runs off the left edge
    for mask in (near, cut):
        for closing, opening in ((5, 0), (0, 5), (7, 3)):
            cleaned = clean(lung_fields.prob(mask), closing=closing, opening=opening)
            assert np.array_equal(cleaned[:, :4], mask[:, :4]), (closing, opening)

"""Phantoms must look like chest films, carry exact lung masks, and keep findings inside the lungs."""

import time

import cv2
import numpy as np
import pytest
from cxlseg.phantoms.clutter import SUPPORT_DEVICES
from cxlseg.phantoms.findings import FINDINGS
from cxlseg.phantoms.render import render_phantom, render_view_samples, to_uint16
from cxlseg.phantoms.scenes import CT_UNIT, _axial_ct, _coronal_ct, ct_density

SIZE = (320, 288)


def render(seed: int, findings=None, view="PA", size=SIZE, **kw):
    return render_phantom(np.random.default_rng(seed), *size, findings=findings, view=view, **kw)


@pytest.fixture(scope="module")
def normal():
    return render(3)


def test_shapes_and_binary_masks(normal):
    for arr in (normal.image, normal.mask, normal.left_mask, normal.right_mask, normal.outline):
        assert arr.shape == SIZE and arr.dtype == np.uint8
    for mask in (normal.mask, normal.left_mask, normal.right_mask):
        assert set(np.unique(mask)) <= {0, 1}
    assert 0.08 < normal.mask.mean() < 0.45  # lungs fill a realistic share of a chest film


def test_left_and_right_lungs_are_disjoint_and_sided(normal):
    assert not (normal.left_mask & normal.right_mask).any()
    assert np.array_equal(normal.left_mask | normal.right_mask, normal.mask)
    # each side is one connected lung
    for side in (normal.left_mask, normal.right_mask):
        assert cv2.connectedComponents(side)[0] == 2
    # the patient's left lung is on the image right of a PA film
    assert np.nonzero(normal.left_mask)[1].mean() > np.nonzero(normal.right_mask)[1].mean()


def test_lungs_are_not_ellipses():
    """A lung has an apex and a sharp costophrenic angle: it fills much less of its ellipse fit."""
    lung = render(5).right_mask
    contour = max(cv2.findContours(lung, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0], key=cv2.contourArea)
    (cx, cy), (a, b), angle = cv2.fitEllipse(contour)
    ellipse = np.zeros_like(lung)
    cv2.ellipse(ellipse, ((cx, cy), (a, b), angle), 1, -1)
    iou = (lung & ellipse).sum() / (lung | ellipse).sum()
    assert iou < 0.93


def test_radiograph_contrast(normal):
    """Dark aerated lung, bright mediastinum between the lungs, dark air at the film's edge."""
    img = normal.image.astype(float)
    rows = np.nonzero(normal.mask.any(axis=1))[0]
    mid_rows = slice(rows[len(rows) // 3], rows[2 * len(rows) // 3])
    right_edge = np.nonzero(normal.right_mask[mid_rows].any(axis=0))[0].max()
    left_edge = np.nonzero(normal.left_mask[mid_rows].any(axis=0))[0].min()
    mediastinum = img[mid_rows, right_edge + 3 : left_edge - 2]
    lung = img[normal.mask > 0]
    assert mediastinum.size and np.median(mediastinum) > np.median(lung) + 60
    assert np.median(img[:, :3]) < np.median(lung)  # air outside the body is darkest
    assert normal.image.std() > 30


def test_deterministic_and_seed_dependent():
    a, b, c = render(11), render(11), render(12)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.mask, c.mask)  # lung shape and size are randomised too


@pytest.mark.parametrize("finding", FINDINGS)
def test_findings_change_only_lung_pixels(finding):
    base = render(21, devices=("ecg", "ett"))
    sick = render(21, findings={finding: True}, devices=("ecg", "ett"))
    changed = base.image != sick.image
    assert changed.any(), f"{finding} is not visible"
    assert not (changed & (base.mask == 0)).any(), f"{finding} changed pixels outside the lungs"
    assert sick.findings[finding] and finding in sick.sites
    # visible: a patch of lung gets clearly brighter (not just noise-level changes)
    delta = sick.image.astype(int) - base.image.astype(int)
    assert (delta[base.mask > 0] >= 25).sum() >= 20


def test_effusion_takes_fluid_out_of_the_mask():
    base = render(8)
    wet = render(8, findings={"Pleural Effusion": True})
    assert np.array_equal(wet.outline, base.mask)
    assert not (wet.mask & (1 - base.mask)).any()
    lost = base.mask & (1 - wet.mask)
    assert lost.sum() > 0.03 * base.mask.sum()
    rows = np.nonzero(lost)[0]
    lung_rows = np.nonzero(base.mask)[0]
    assert np.median(rows) > np.percentile(lung_rows, 75)  # the fluid sits at the lung base
    assert np.array_equal(wet.left_mask | wet.right_mask, wet.mask)


def test_finding_seed_fixes_the_site():
    a = render(30, findings={"Lung Lesion": True, "Pneumonia": True}, finding_seed=99)
    b = render(31, findings={"Lung Lesion": True, "Pneumonia": True}, finding_seed=99)
    assert a.sites == b.sites


def test_clutter_is_chosen_or_random():
    chosen = render(4, devices=("ett", "pacemaker"))
    assert chosen.devices == ("ett", "pacemaker") and set(chosen.devices) <= SUPPORT_DEVICES
    drawn = {render(s).devices for s in range(12)}
    assert len(drawn) > 1  # random when not given
    with pytest.raises(ValueError, match="unknown devices"):
        render(4, devices=("robot",))


def test_lateral_and_ct_views():
    lateral = render(6, view="LATERAL")
    assert lateral.mask.any() and not lateral.left_mask.any() and not lateral.right_mask.any()
    assert lateral.view == "LATERAL" and lateral.image.std() > 20
    ct = render(6, view="CT")
    assert not ct.mask.any() and ct.image.std() > 20


def test_ct_phantoms_are_axial_slices_and_coronal_reformats_in_varied_windows():
    """Real CT images labelled PA/AP come as axial slices and coronal reformats, in a lung or a soft-tissue
    window: a single fixed cartoon taught the view check one picture (it missed a third of real CT images)."""
    kinds, soft = [], []
    for seed in range(24):
        density = ct_density(np.random.default_rng(seed), (128, 128))
        again = np.random.default_rng(seed)
        coronal = again.random() < 0.35
        drawn = (_coronal_ct if coronal else _axial_ct)(again, (128, 128))
        assert np.array_equal(density, drawn.astype(np.float32) / CT_UNIT)
        kinds.append(coronal)
        assert density[:3, :3].max() < 0.05 and density[:3, -3:].max() < 0.05  # air above the body
        assert (density < 0.2).mean() > 0.1 and (density > 0.7).mean() > 0.15  # dark lungs, a body around them
        soft.append(np.median(density[density > 0.5]))
    assert 0.15 < np.mean(kinds) < 0.6
    assert min(soft) < 1.0 < max(soft)  # soft tissue grey in some, near white in others


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown findings"):
        render(1, findings={"Broken Heart": True})
    with pytest.raises(ValueError, match="view"):
        render(1, view="OBLIQUE")
    with pytest.raises(ValueError, match="too small"):
        render(1, size=(16, 16))


def test_size_and_aspect_are_respected():
    for size in ((200, 340), (400, 180)):
        p = render(2, size=size)
        assert p.image.shape == size and p.mask.shape == size and p.mask.any()


def test_to_uint16_holds_deep_data(normal):
    rng = np.random.default_rng(0)
    twelve = to_uint16(normal.signal, rng, bits=12)
    assert twelve.dtype == np.uint16 and twelve.max() <= 4095 and twelve.max() > 255
    assert np.unique(twelve).size > 256
    sixteen = to_uint16(normal.image, rng, bits=16)
    assert sixteen.max() > 4095 and np.unique(sixteen).size > 256
    with pytest.raises(ValueError):
        to_uint16(normal.image, rng, bits=10)


def test_fast_enough():
    cv2.setNumThreads(1)
    try:
        render(0, size=(1024, 1024))  # warm-up
        times = []
        for seed in range(3):
            start = time.process_time()
            render(seed, findings={"Pneumonia": True, "Pleural Effusion": True}, size=(1024, 1024))
            times.append(time.process_time() - start)
    finally:
        cv2.setNumThreads(-1)
    assert sorted(times)[1] < 0.4, times  # ~0.13 s on one core; slack for a shared machine


def test_view_samples_are_labelled_and_reproducible():
    images, labels = render_view_samples(4, 48, seed=4)
    assert images.shape == (12, 48, 48) and images.dtype == np.uint8
    assert labels == ["frontal"] * 4 + ["lateral"] * 4 + ["ct"] * 4
    assert np.array_equal(images, render_view_samples(4, 48, seed=4)[0])
    other, other_labels = render_view_samples(4, 48, seed=5)
    assert not np.array_equal(images, other)
    # the views are learnable: a nearest-centroid classifier fit on one seed names the views of another
    centroids = {v: images[[lab == v for lab in labels]].astype(float).mean(0) for v in set(labels)}
    predicted = [min(centroids, key=lambda v: ((x.astype(float) - centroids[v]) ** 2).sum()) for x in other]
    assert sum(p == t for p, t in zip(predicted, other_labels)) >= 11
    with pytest.raises(ValueError):
        render_view_samples(0, 48, seed=4)

"""The hard films QC is calibrated on and the benchmark measures (cxlseg.qc.degradations): seeded, each one
changes the film, and the truth mask moves exactly when the film's geometry does."""

import numpy as np
import pytest
from cxlseg.qc.degradations import DEGRADATIONS, degrade
from helpers.films import lung_film

GEOMETRIC = {"pose", "tilt", "cutoff", "border"}


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_each_degradation_is_seeded_and_changes_the_film(name):
    image, mask = lung_film()
    a_img, a_mask = degrade(image, mask, name, 0.8, seed=3)
    b_img, b_mask = degrade(image, mask, name, 0.8, seed=3)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert a_img.shape == image.shape and a_img.dtype == np.uint8
    assert np.abs(a_img.astype(int) - image).mean() > 1
    assert set(np.unique(a_mask)) <= {0, 1}
    if name in GEOMETRIC:
        assert not np.array_equal(a_mask, mask)  # the truth moves with the film
    else:
        assert np.array_equal(a_mask, mask)


def test_border_puts_a_smaller_film_on_bright_glass():
    image, mask = lung_film()
    film, truth = degrade(image, mask, "border", 1.0, seed=0)
    rows, cols = np.nonzero(truth)
    assert film[0].min() > 200 and film[-1].min() > 200  # the light box at top and bottom
    assert 0.3 < truth.sum() / mask.sum() < 0.8  # the lungs shrank with the film


def test_cutoff_removes_part_of_the_lungs():
    image, mask = lung_film()
    _, truth = degrade(image, mask, "cutoff", 1.0, seed=1)
    edges = np.concatenate([truth[0], truth[-1], truth[:, 0], truth[:, -1]])
    assert edges.any()  # a lung now runs off the film


def test_inverted_is_exactly_the_negative_and_unknown_kinds_are_refused():
    image, mask = lung_film()
    assert np.array_equal(degrade(image, mask, "inverted", 0.5, 0)[0], 255 - image)
    with pytest.raises(ValueError, match="unknown degradation 'smudge'"):
        degrade(image, mask, "smudge", 0.5, 0)

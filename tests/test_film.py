"""The film check before segmenting (cxlseg.film): a film on a light box is cropped and its mask mapped back, an
inverted film is turned upright, and an ordinary film is left exactly as it is."""

import numpy as np
import pytest
from cxlseg import film
from cxlseg.metrics import dice
from cxlseg.qc.degradations import degrade
from helpers.films import lung_film, templates

ON = film.FilmSettings(crop_border=True, polarity=True)
OFF = film.FilmSettings(crop_border=False, polarity=False)


@pytest.fixture(scope="module")
def template():
    return film.polarity_template(templates())


def test_an_ordinary_film_is_left_as_it_is(template):
    image, _ = lung_film(seed=11)
    check = film.inspect(image, template, ON)
    assert not check.cropped and not check.inverted and check.polarity_score > 0.5
    assert check.film(image) is image and check.upright(image) is image
    assert check.signals() == {
        "film_fraction": 1.0,
        "polarity_score": check.polarity_score,
        "film_inverted": False,
        "film_cropped": False,
    }


def test_black_padding_is_not_a_light_box(template):
    image, _ = lung_film(seed=12)
    padded = np.zeros((96, 140), np.uint8)
    padded[:, 22:118] = image
    assert film.film_box(padded) == (0, 96, 0, 140)


def test_an_inverted_film_is_turned_upright_and_scores_the_same(template):
    image, _ = lung_film(seed=13)
    upright, inverted = film.inspect(image, template, ON), film.inspect(255 - image, template, ON)
    assert inverted.inverted and not upright.inverted
    assert inverted.polarity_score == pytest.approx(upright.polarity_score)  # standardised: exactly symmetric
    assert np.array_equal(inverted.film(255 - image), image)
    assert not film.inspect(255 - image, template, OFF).inverted  # polarity off: left inverted
    assert np.isnan(film.polarity_score(image, None))  # no template: no score


def test_a_film_on_a_light_box_is_cropped_and_its_mask_maps_back(template):
    image, mask = lung_film(size=128, seed=14)
    on_glass, truth = degrade(image, mask, "border", 1.0, seed=5)
    check = film.inspect(on_glass, template, ON)
    assert check.cropped and 0.3 < check.film_fraction < 0.8 and not check.inverted
    top, bottom, left, right = check.box
    rows, cols = np.nonzero(truth)
    assert top <= rows.min() and bottom > rows.max() and left <= cols.min() and right > cols.max()
    inside = check.film(on_glass)
    assert inside.shape == on_glass.shape and inside.min() < 100  # the film fills the frame: lungs, no glass
    # a perfect mask of the film maps back onto the truth, and probabilities map back as floats
    film_mask = (film.inspect(on_glass, template, ON).film(truth * 255) > 127).astype(np.uint8)
    assert dice(check.restore(film_mask), truth) > 0.95
    prob = check.restore(film_mask.astype(np.float32))
    assert prob.dtype == np.float32 and prob[:top].max() == 0


def test_a_white_out_is_not_taken_for_a_border():
    white = np.full((64, 64), 250, np.uint8)
    white[30:34, 30:34] = 20  # a speck of film
    assert film.film_box(white) == (0, 64, 0, 64)


def test_too_few_unsaturated_pixels_give_no_polarity(template):
    black = np.zeros((96, 96), np.uint8)
    check = film.inspect(black, template, ON)
    assert check.polarity_score == 0.0 and not check.inverted


def test_the_template_needs_films():
    with pytest.raises(ValueError, match="no training film"):
        film.polarity_template([np.zeros((32, 32), np.uint8)])

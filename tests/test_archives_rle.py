"""CheXmask's RLE: row-major, 1-based `start length` pairs at the original Height x Width, and the shape check
that catches the files where CheXmask swapped Height and Width."""

import numpy as np
import pytest
from cxlseg.archives.rle import ShapeMismatch, check_shape, decode, encode, lung_columns

# Hand-checked: flattened row by row the lung pixels are 1, 2 (0-based) | 8 | 11, so 1-based runs 2+2, 9+1, 12+1.
MASK = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 1]], np.uint8)
RLE = "2 2 9 1 12 1"


def test_a_hand_checked_mask_encodes_in_chexmask_convention():
    assert encode(MASK) == RLE
    assert encode(MASK * 255) == RLE and encode(MASK.astype(bool)) == RLE
    np.testing.assert_array_equal(decode(RLE, 3, 4), MASK)


def test_round_trip_at_the_original_resolution():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 3), (61, 47)]:
        mask = (rng.random(shape) < 0.4).astype(np.uint8)
        np.testing.assert_array_equal(decode(encode(mask), *shape), mask)
    full = np.ones((5, 6), np.uint8)
    assert encode(full) == "1 30" and encode(np.zeros((5, 6))) == ""
    assert decode("", 5, 6).sum() == 0 and decode(float("nan"), 5, 6).sum() == 0


def test_a_run_past_the_image_or_out_of_order_is_refused():
    with pytest.raises(ValueError, match="past the 3 x 4"):
        decode("12 2", 3, 4)
    with pytest.raises(ValueError, match="overlap"):
        decode("5 3 6 1", 3, 4)
    with pytest.raises(ValueError, match="odd count"):
        decode("1 2 3", 3, 4)


def test_the_shape_is_checked_against_the_image_and_a_swap_is_named():
    check_shape(3, 4, (3, 4), "x")
    with pytest.raises(ShapeMismatch, match="swapped"):
        check_shape(4, 3, (3, 4, 1), "image 42")
    with pytest.raises(ShapeMismatch, match="is not the image's 3 x 4"):
        check_shape(5, 4, (3, 4), "image 42")


def test_lung_columns_are_chexmasks():
    left = np.zeros((3, 4), np.uint8)
    left[:, 3] = 1  # the patient's left lung, on the image's right
    right = np.zeros((3, 4), np.uint8)
    right[:, 0] = 1
    assert lung_columns(left, right) == {
        "Left Lung": "4 1 8 1 12 1",
        "Right Lung": "1 1 5 1 9 1",
        "Height": 3,
        "Width": 4,
    }

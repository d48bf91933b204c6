import cv2
import numpy as np
import pytest
from cxlseg import preprocess


def test_prepare_shape_and_dtype():
    img = (np.random.default_rng(1).random((300, 500)) * 255).astype(np.uint8)
    out = preprocess.prepare(img, 224)
    assert out.shape == (224, 224) and out.dtype == np.uint8


def test_clahe_raises_local_contrast():
    rng = np.random.default_rng(2)
    img = (100 + rng.integers(0, 10, (256, 256))).astype(np.uint8)
    assert preprocess.clahe(img).std() > img.std()


def test_resize_mask_stays_binary():
    mask = np.zeros((400, 400), np.uint8)
    mask[100:300, 50:150] = 1
    small = preprocess.resize_mask(mask, 224)
    assert set(np.unique(small)) <= {0, 1}
    assert abs(small.mean() - mask.mean()) < 0.01


def test_model_input_channels():
    x = preprocess.to_model_input(np.full((2, 8, 8), 255, np.uint8), channels=3)
    assert x.shape == (2, 3, 8, 8) and np.allclose(x, 1.0)


# --------------------------------------------------------------------------- CLAHE on LAB's L (authors' code)


def _ramp(size: int = 224) -> np.ndarray:
    """A horizontal ramp with a darker disc: CLAHE has something local to equalise."""
    ramp = np.tile(np.linspace(0, 255, size), (size, 1))
    yy, xx = np.mgrid[:size, :size]
    ramp[(yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 5) ** 2] *= 0.6
    return np.round(ramp).astype(np.uint8)


def _srgb_to_lightness8(v: np.ndarray) -> np.ndarray:
    """CIE L* of a gray sRGB value, scaled to 0..255 as OpenCV's 8-bit LAB stores it (by the formulas)."""
    c = v / 255.0
    y = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)  # R = G = B: Y is the linear value
    f = np.where(y > 0.008856, np.cbrt(y), 7.787 * y + 16 / 116)
    return (116 * f - 16) * 255 / 100


def _lightness8_to_srgb(l8: np.ndarray) -> np.ndarray:
    """Inverse of _srgb_to_lightness8 (a = b = 128: neutral gray)."""
    lightness = l8 * 100 / 255
    f = (lightness + 16) / 116
    y = np.where(f > 6 / 29, f**3, (f - 16 / 116) / 7.787)
    c = np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.clip(y, 0, None) ** (1 / 2.4) - 0.055)
    return np.clip(c * 255, 0, 255)


def test_lab_clahe_is_the_authors_recipe():
    """segmentation/utils.py read_image: BGR -> LAB, createCLAHE(2.0, (8, 8)) on L, LAB -> BGR."""
    gray = _ramp()
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[..., 0].copy())
    authors = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    ours = preprocess.clahe(gray, 2.0, 8, space="lab")
    assert ours.shape == gray.shape and ours.dtype == np.uint8
    # gray in, gray out: the authors' three channels agree up to OpenCV's integer rounding ...
    spread = authors.max(axis=2).astype(int) - authors.min(axis=2)
    assert spread.max() <= 1
    # ... and the one plane we keep is within that rounding of each of them
    assert np.abs(ours[..., None].astype(int) - authors).max() <= 1
    assert np.array_equal(ours, cv2.cvtColor(authors, cv2.COLOR_BGR2GRAY))


def test_lab_clahe_matches_a_hand_computed_reference():
    """The LAB steps by the CIE/sRGB formulas (OpenCV's fixed-point tables round within 1 level)."""
    gray = _ramp()
    lightness = _srgb_to_lightness8(gray.astype(float))
    opencv_l = cv2.cvtColor(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), cv2.COLOR_BGR2LAB)[..., 0]
    assert np.abs(np.round(lightness) - opencv_l).max() <= 1
    equalised = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(opencv_l)
    reference = _lightness8_to_srgb(equalised.astype(float))
    assert np.abs(preprocess.clahe(gray, space="lab").astype(float) - reference).max() <= 1  # 0.6 with OpenCV 4.13


def test_lab_differs_from_gray_on_a_ramp():
    gray = _ramp()
    on_gray, on_lab = preprocess.clahe(gray), preprocess.clahe(gray, space="lab")
    diff = np.abs(on_gray.astype(int) - on_lab)
    assert diff.mean() > 1 and diff.max() > 5  # 2.9 and 11 with OpenCV 4.13
    # both still raise local contrast of a flat, noisy patch
    rng = np.random.default_rng(2)
    flat = (100 + rng.integers(0, 10, (256, 256))).astype(np.uint8)
    assert preprocess.clahe(flat, space="lab").std() > flat.std()


def test_prepare_passes_the_space():
    img = (np.random.default_rng(1).random((300, 500)) * 255).astype(np.uint8)
    resized = preprocess.resize(img, 224)
    assert np.array_equal(preprocess.prepare(img, 224, space="lab"), preprocess.clahe(resized, space="lab"))
    assert np.array_equal(preprocess.prepare(img, 224), preprocess.clahe(resized))


def test_unknown_clahe_space_rejected():
    with pytest.raises(ValueError, match="CLAHE space"):
        preprocess.clahe(np.zeros((8, 8), np.uint8), space="hsv")


# --- reduced decode --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_jpeg(tmp_path_factory, toys):
    radiograph_like = toys.radiograph_like
    h, w = 2401, 2001  # not multiples of 8: the reduced image's last block is partial
    img = radiograph_like(h, w, seed=3)
    marker = (int(w * 0.85), int(h * 0.8))
    cv2.rectangle(img, (marker[0] - 150, marker[1] - 150), (marker[0] + 150, marker[1] + 150), 0, -1)
    cv2.circle(img, marker, 80, 255, -1)
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path, (h, w), marker


def _centroid(img, marker, shape):
    """Intensity-weighted centroid of the marker (on its black square) in a 224 image."""
    cx, cy = marker[0] / shape[1] * 224, marker[1] / shape[0] * 224
    x0, y0 = int(cx) - 12, int(cy) - 12
    m = cv2.moments(img[y0 : y0 + 25, x0 : x0 + 25].astype(np.float32))
    return np.array([x0 + m["m10"] / m["m00"], y0 + m["m01"] / m["m00"]])


def test_reduced_decode_matches_full_decode(large_jpeg):
    path, (h, w), _ = large_jpeg
    reference = preprocess.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), 224)
    reduced, true_hw, factor, note = preprocess.decode_for_inference(path, 224, h, w)
    assert factor == 8 and true_hw == (h, w) and note == ""
    assert reduced.shape == (224, 224)
    assert cv2.PSNR(reference, reduced) >= 37.0


def test_reduced_decode_keeps_geometry(large_jpeg):
    path, (h, w), marker = large_jpeg
    reference = preprocess.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), 224)
    reduced, _, factor, _ = preprocess.decode_for_inference(path, 224, h, w)
    expected = _centroid(reference, marker, (h, w))
    assert expected == pytest.approx([(marker[0] + 0.5) / w * 224 - 0.5, (marker[1] + 0.5) / h * 224 - 0.5], abs=0.1)
    assert _centroid(reduced, marker, (h, w)) == pytest.approx(expected, abs=0.05)
    # a plain resize of the same reduced decode is stretched by the partial last block
    stretched = preprocess.resize(cv2.imread(str(path), preprocess._REDUCED_FLAGS[factor]), 224)
    assert np.abs(_centroid(stretched, marker, (h, w)) - expected).min() > 0.3


def test_reduced_factor_choice():
    assert preprocess.reduced_factor(3000, 2500, 224) == 8
    assert preprocess.reduced_factor(1000, 900, 224) == 4
    assert preprocess.reduced_factor(1000, 900, 224, min_ratio=1.5) == 2
    assert preprocess.reduced_factor(300, 260, 224) == 1
    assert preprocess.reduced_factor(None, 2500, 224) == 1
    assert preprocess.reduced_factor(float("nan"), 2500, 224) == 1


# --- preprocess.interpolation: linear is the CXLSeg authors' resize ---------------------------


def test_linear_decode_is_a_full_decode_and_cv2_default_resize(large_jpeg):
    """`linear` never takes the reduced-DCT path: full decode, cv2.resize's default (INTER_LINEAR), bit-exact."""
    path, (h, w), _ = large_jpeg
    authors = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (224, 224))  # their read_image, gray
    linear, true_hw, factor, note = preprocess.decode_for_inference(path, 224, h, w, interpolation="linear")
    assert factor == 1 and true_hw == (h, w) and note == ""
    assert np.array_equal(linear, authors)
    area = preprocess.decode_for_inference(path, 224, h, w)[0]
    assert np.abs(area.astype(int) - authors).max() > 20  # the two resizes differ at edges: the key matters


def test_linear_mask_is_the_authors_read_mask():
    """Authors' read_mask: the 0/255 mask resized linearly, divided by its maximum, kept where > 0.5."""
    mask = np.zeros((1531, 1277), np.uint8)
    cv2.ellipse(mask, (400, 760), (230, 520), 8, 0, 360, 1, -1)
    cv2.ellipse(mask, (880, 740), (200, 500), -6, 0, 360, 1, -1)
    soft = cv2.resize(mask * np.uint8(255), (224, 224))
    expected = (soft / soft.max() > 0.5).astype(np.uint8)
    assert np.array_equal(preprocess.resize_mask(mask, 224, "linear"), expected)
    area = preprocess.resize_mask(mask, 224, "area")
    assert not np.array_equal(area, expected) and np.abs(area.astype(int) - expected).sum() < 400


def test_prepare_passes_the_interpolation():
    img = (np.random.default_rng(5).random((700, 600)) * 255).astype(np.uint8)
    assert np.array_equal(
        preprocess.prepare(img, 224, interpolation="linear"), preprocess.clahe(cv2.resize(img, (224, 224)))
    )
    assert not np.array_equal(preprocess.prepare(img, 224, interpolation="linear"), preprocess.prepare(img, 224))


def test_unknown_interpolation_rejected(large_jpeg):
    with pytest.raises(ValueError, match="interpolation must be one of area, linear"):
        preprocess.decode_for_inference(large_jpeg[0], 224, interpolation="cubic")

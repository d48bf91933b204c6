import numpy as np

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

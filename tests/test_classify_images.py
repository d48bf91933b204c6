"""Classifier inputs: aspect-keeping resize, originals as published (no CLAHE), the authors' augmentation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg.classify import images
from cxlseg.io import read_gray, write_image
from cxlseg.mimic import image_relpath
from cxlseg.preprocess import prepare, resize


def test_letterbox_keeps_the_aspect_ratio_of_a_wide_image():
    wide = np.full((20, 40), 255, np.uint8)  # 2:1
    padded = images.fit_to_input(wide, 32, "pad")
    assert padded.shape == (32, 32)
    assert (padded[8:24] == 255).all() and (padded[:8] == 0).all() and (padded[24:] == 0).all()
    assert (images.fit_to_input(wide, 32, "stretch") == 255).all()  # stretch fills the square instead


def test_letterbox_pads_a_portrait_image_left_and_right():
    tall = np.full((40, 20), 200, np.uint8)
    padded = images.letterbox(tall, 32)
    assert (padded[:, 8:24] == 200).all() and (padded[:, :8] == 0).all() and (padded[:, 24:] == 0).all()
    with pytest.raises(ValueError, match="unknown resize mode 'crop'"):
        images.fit_to_input(tall, 32, "crop")


def _frame(dicom_path="d1.jpg"):
    return pd.DataFrame(
        {"subject_id": [10000001], "study_id": [50000001], "dicom_id": ["d1"], "DicomPath": [dicom_path]}
    )


def _item(kind, tmp_path, size, mode, augment=None, channels=1, dicom_path="d1.jpg"):
    ones = np.ones((1, 14), np.float32)
    source = images.ImageSource(kind, str(tmp_path / "seg"), str(tmp_path / "mimic"), size, mode)
    return images.ImageDataset(_frame(dicom_path), ones, ones, source, channels, augment)[0]


@pytest.mark.parametrize("mode", ["pad", "stretch"])
def test_original_is_the_published_jpeg_resized_without_clahe(tmp_path, mode):
    """A low-contrast original: CLAHE would stretch it, a plain resize keeps it."""
    rng = np.random.default_rng(3)
    low_contrast = (110 + rng.random((96, 96)) * 30).astype(np.uint8)
    path = tmp_path / "mimic" / image_relpath(10000001, 50000001, "d1")
    write_image(path, low_contrast)
    item = _item("original", tmp_path, 48, mode)
    assert item["ok"] and item["x"].shape == (1, 48, 48)
    plain = torch.from_numpy(resize(read_gray(path), 48)).float() / 255
    torch.testing.assert_close(item["x"][0], plain)
    clahe = torch.from_numpy(prepare(read_gray(path), 48)).float() / 255
    assert (item["x"][0] - clahe).abs().max() > 0.1


def test_segmented_is_the_cxlseg_file_and_channels_repeat_it(tmp_path):
    segmented = np.zeros((224, 224), np.uint8)
    segmented[40:180, 30:100] = 180
    write_image(tmp_path / "seg" / "d1.png", segmented)
    item = _item("segmented", tmp_path, 56, "pad", channels=3, dicom_path="d1.png")
    assert item["x"].shape == (3, 56, 56)
    torch.testing.assert_close(item["x"][2], torch.from_numpy(resize(segmented, 56)).float() / 255)


def test_dataset_flags_unsafe_and_missing_files(tmp_path):
    item = _item("segmented", tmp_path, 32, "pad", dicom_path="../outside.jpg")
    assert not item["ok"] and "'..' not allowed" in item["reason"] and item["x"].shape == (1, 32, 32)
    item = _item("segmented", tmp_path, 32, "pad", dicom_path="files/missing.jpg")
    assert not item["ok"] and item["reason"] == "file not found" and item["file"].endswith("missing.jpg")


def test_augment_flips_shifts_and_clips():
    x = torch.zeros(1, 4, 4)
    x[..., :2] = 1.0  # bright left half
    flip_only = images.Augment(brightness=0.0, contrast=(1.0, 1.0))
    torch.manual_seed(0)
    outs = [flip_only(x) for _ in range(20)]
    flipped = [bool(torch.equal(o, x.flip(-1))) for o in outs]
    assert all(torch.equal(o, x) or f for o, f in zip(outs, flipped)) and 0 < sum(flipped) < 20
    quarter = torch.full((1, 4, 4), 0.25)
    quarter[..., :2] = 0.75
    doubled = images.Augment(brightness=0.0, contrast=(2.0, 2.0))(quarter)
    assert set(doubled.unique().tolist()) == {0.0, 1.0}  # (x - 0.5) * 2 + 0.5
    bright = images.Augment(brightness=0.5, contrast=(1.0, 1.0))
    torch.manual_seed(1)
    shifted = [bright(torch.full((1, 2, 2), 0.9)) for _ in range(10)]
    assert all(0.0 <= float(s.min()) and float(s.max()) <= 1.0 for s in shifted)
    assert len({round(float(s.mean()), 4) for s in shifted}) > 1


def test_augmentation_is_for_training_images_only(tmp_path):
    write_image(tmp_path / "seg" / "d1.png", np.full((64, 64), 128, np.uint8))
    ones = np.ones((1, 14), np.float32)
    source = images.ImageSource("segmented", str(tmp_path / "seg"), "", 32, "pad")
    jittered = images.ImageDataset(
        _frame("d1.png"), ones, ones, source, 1, images.Augment(brightness=0.3, contrast=(1.0, 1.0))
    )
    torch.manual_seed(0)
    assert not torch.allclose(jittered[0]["x"], torch.full((1, 32, 32), 128 / 255))
    torch.testing.assert_close(jittered.unjittered()[0]["x"], torch.full((1, 32, 32), 128 / 255))
    assert jittered.augment is not None

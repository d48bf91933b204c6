"""The view check: checkpoint format, scoring API, separation of phantom views, determinism, input errors."""

import dataclasses

import numpy as np
import pytest
import torch
from cxlseg.checkpoint import payload, write_checkpoint
from cxlseg.config import default_config
from cxlseg.demo import render_view_samples
from cxlseg.io import read_json
from cxlseg.models import create_model
from cxlseg.views import ViewChecker, ViewCheckSettings, train_view_check

TINY = dict(size=32, samples_per_view=12, validate_per_view=4, epochs=6, batch_size=16)


def _settings(**kw) -> ViewCheckSettings:
    return ViewCheckSettings.from_config(default_config(), **{**TINY, **kw})


def _store(path, seed=3):
    """A training store with frontal phantoms only (train and validate splits), as `augment` writes it."""
    images, labels = render_view_samples(6, 48, seed)
    frontal = images[np.asarray(labels) == "frontal"]
    path.mkdir()
    for split in ("train", "validate"):
        np.save(path / f"{split}_images.npy", frontal)
        np.save(path / f"{split}_masks.npy", np.zeros_like(frontal))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("view_check")
    metrics = train_view_check(
        root / "view_check.pt", _settings(), seed=5, store_dir=_store(root / "store"), metrics_path=root / "vc.json"
    )
    return root, metrics


def test_settings_come_from_the_schema():
    settings = ViewCheckSettings.from_config(default_config())
    assert settings.enabled and settings.size == 64 and settings.threshold == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.size = 32


def test_checkpoint_is_self_describing_and_loads_with_weights_only(trained):
    root, metrics = trained
    raw = torch.load(root / "view_check.pt", map_location="cpu", weights_only=True)
    assert raw["architecture"] == "view_cnn" and raw["config"]["size"] == 32 and raw["config"]["threshold"] == 0.5
    assert raw["config"]["settings"]["samples_per_view"] == 12 and raw["config"]["seed"] == 5
    assert 10_000 < raw["params"] < 100_000
    saved = read_json(root / "vc.json")
    assert saved["flagged_store"] == metrics["flagged_store"] and saved["n_store"] == 6
    assert {"flagged_frontal", "flagged_lateral", "flagged_ct", "flagged_not_frontal"} <= set(saved)


def test_p_not_frontal_shapes_and_range(trained):
    checker = ViewChecker.from_checkpoint(trained[0] / "view_check.pt")
    images, _ = render_view_samples(2, 40, 9)
    p = checker.p_not_frontal(images)
    assert p.shape == (6,) and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()
    mixed = [np.zeros((300, 200), np.uint8), images[0], np.full((17, 900), 200, np.uint8)]
    assert checker.p_not_frontal(mixed).shape == (3,)
    assert np.allclose(checker.p_not_frontal(images, batch_size=4), p, atol=1e-6)  # batching changes nothing
    assert checker.flag(images).dtype == bool


def test_tiny_model_separates_unseen_phantom_views(trained):
    checker = ViewChecker.from_checkpoint(trained[0] / "view_check.pt")
    images, labels = render_view_samples(10, 96, seed=424242)  # seeds and size never trained on
    flagged = checker.flag(images)
    frontal = np.asarray(labels) == "frontal"
    assert flagged[~frontal].mean() >= 0.9, flagged
    assert flagged[frontal].mean() <= 0.1, flagged


def test_same_seed_same_weights(tmp_path):
    torch.set_num_threads(1)
    settings = _settings(samples_per_view=4, epochs=2, validate_per_view=2)
    digests = []
    for name in ("a.pt", "b.pt"):
        train_view_check(tmp_path / name, settings, seed=11)
        digests.append(ViewChecker.from_checkpoint(tmp_path / name).model_id)
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((2, 64, 64), np.float32), "uint8"),
        (np.zeros((2, 64, 64, 3), np.uint8), r"uint8 \(N, H, W\)"),
        (np.zeros((64, 64), np.uint8), r"uint8 \(N, H, W\)"),
        ([], "no images"),
        ([np.zeros((64, 64, 3), np.uint8)], "image 0: expected a uint8 gray"),
        ([np.zeros((64, 64), np.uint8), np.zeros((4, 64), np.uint8)], "image 1: too small"),
    ],
)
def test_bad_images_are_named(trained, images, match):
    checker = ViewChecker.from_checkpoint(trained[0] / "view_check.pt")
    with pytest.raises(ValueError, match=match):
        checker.p_not_frontal(images)


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ViewChecker.from_checkpoint(tmp_path / "missing.pt")
    config = {"architecture": "unet", "in_channels": 1, "encoder_name": "resnet18"}
    write_checkpoint(
        tmp_path / "seg.pt", payload(create_model("unet", in_channels=1, classes=1), config, epoch=1, metrics={})
    )
    with pytest.raises(ValueError, match="not a view-check checkpoint"):
        ViewChecker.from_checkpoint(tmp_path / "seg.pt")

"""Training loop: learning, checkpoints that load with weights_only=True, resume after a kill."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from cxlseg.train import (HISTORY_COLUMNS, StoreDataset, TrainConfig, Trainer, load_model, predict_logits,
                          predict_probs, train_model)

torch.set_num_threads(1)


def make_store(root: Path, counts=(("train", 16), ("val", 6), ("test", 6)), size=32, seed=0) -> Path:
    """A training store of bright elliptical 'lungs' on a noisy background, as the augment stage writes it."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in counts:
        images, masks = np.empty((n, size, size), np.uint8), np.zeros((n, size, size), np.uint8)
        for i in range(n):
            for cx in (0.3, 0.7):
                centre = (int(size * cx + rng.integers(-2, 3)), int(size * 0.5 + rng.integers(-2, 3)))
                cv2.ellipse(masks[i], centre, (int(size * 0.12), int(size * 0.3)), 0, 0, 360, 1, -1)
            images[i] = np.clip(60 + masks[i] * 110 + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
        np.save(root / f"{split}_images.npy", images)
        np.save(root / f"{split}_masks.npy", masks)
        pd.DataFrame({"dataset": "demo", "image_id": [f"{split}-{i}" for i in range(n)], "label": "normal",
                      "patient_id": [f"p{i}" for i in range(n)]}).to_parquet(root / f"{split}_index.parquet")
    return root


def tiny_config(**overrides) -> TrainConfig:
    values = dict(architecture="sa_unet", epochs=3, batch_size=4, lr=3e-3, size=32, base_channels=4, num_workers=0)
    return TrainConfig(**(values | overrides))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store"))


class Interrupt(RuntimeError):
    pass


def stop_after(epoch):
    def callback(trainer, row):
        if row["epoch"] == epoch:
            raise Interrupt(f"killed after epoch {epoch}")
    return callback


def test_tiny_training_lowers_the_loss_and_writes_the_model_folder(store, tmp_path):
    cfg = tiny_config(architecture="unet", encoder_name="resnet18", encoder_depth=3, augment_online=True)
    described = train_model(store, tmp_path, cfg)
    history = pd.read_csv(tmp_path / "history.csv")
    assert tuple(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert (tmp_path / "checkpoint_best.pt").is_file() and (tmp_path / "checkpoint_last.pt").is_file()
    model_json = pd.read_json(tmp_path / "model.json", typ="series")
    assert model_json["architecture"] == "unet" and model_json["best_epoch"] == described["best_epoch"]
    assert model_json["preprocess"]["clahe_clip"] == 2.0 and model_json["cxlseg_version"]
    best = history.loc[history["val_dice"].idxmax()]
    assert described["best_epoch"] == best["epoch"]


def test_checkpoints_load_with_weights_only(store, tmp_path):
    train_model(store, tmp_path, tiny_config(epochs=2, scheduler="plateau"))
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        ckpt = torch.load(tmp_path / name, weights_only=True)
        assert all(v.device.type == "cpu" for v in ckpt["state_dict"].values())
        assert {"state_dict", "config", "epoch", "metrics", "cxlseg_version", "preprocess"} <= set(ckpt)
        assert TrainConfig.from_dict(ckpt["config"]) == tiny_config(epochs=2, scheduler="plateau")
    model, meta = load_model(tmp_path / "checkpoint_best.pt", device="cpu")
    assert not model.training and meta["architecture"] == "sa_unet"
    state = torch.load(tmp_path / "checkpoint_best.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(predict_logits(model, x), predict_logits(model, x))


def test_resume_after_interruption_continues_from_the_saved_epoch(store, tmp_path):
    cfg = tiny_config(scheduler="cosine", augment_online=True)
    with pytest.raises(Interrupt):
        train_model(store, tmp_path / "resumed", cfg, callbacks=[stop_after(1)])
    assert torch.load(tmp_path / "resumed" / "checkpoint_last.pt", weights_only=True)["epoch"] == 1
    train_model(store, tmp_path / "resumed", cfg)
    resumed = pd.read_csv(tmp_path / "resumed" / "history.csv")
    assert resumed["epoch"].tolist() == [1, 2, 3]
    # identical to an uninterrupted run: weights, optimiser, schedule and RNG streams were all restored
    train_model(store, tmp_path / "straight", cfg)
    straight = pd.read_csv(tmp_path / "straight" / "history.csv")
    cols = ["train_loss", "val_loss", "val_dice", "lr"]
    pd.testing.assert_frame_equal(resumed[cols], straight[cols])


def test_changed_config_trains_from_scratch(store, tmp_path):
    with pytest.raises(Interrupt):
        train_model(store, tmp_path, tiny_config(epochs=2), callbacks=[stop_after(1)])
    train_model(store, tmp_path, tiny_config(epochs=2, lr=1e-3))
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["epoch"].tolist() == [1, 2] and history["lr"].iloc[0] == pytest.approx(1e-3)


def test_more_epochs_extend_a_finished_run(store, tmp_path):
    train_model(store, tmp_path, tiny_config(epochs=1))
    train_model(store, tmp_path, tiny_config(epochs=2))
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [1, 2]


def test_early_stopping_stops_after_patience(store, tmp_path):
    cfg = tiny_config(epochs=6, lr=1e-9, patience=1, select_metric="loss")
    described = train_model(store, tmp_path, cfg)
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == described["best_epoch"] + 1 < 6


def test_cpu_runs_without_amp(store, tmp_path):
    trainer = Trainer(store, tmp_path, tiny_config(device="cpu", amp=True))
    trainer.setup()
    assert trainer.device.type == "cpu" and not trainer.use_amp


def test_dataset_applies_clahe_and_channels(store):
    ds = StoreDataset(store, "train", tiny_config(in_channels=3, size=48))
    x, y = ds[0]
    assert x.shape == (3, 48, 48) and y.shape == (1, 48, 48)
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("preset", ["light", "strong"])
def test_augmentation_is_seeded_per_epoch(store, preset):
    ds = StoreDataset(store, "train", tiny_config(augment_preset=preset), augment=True)
    ds.epoch = 1
    first, again = ds[3][0], ds[3][0]
    assert torch.equal(first, again)
    later = []
    for epoch in range(2, 6):
        ds.epoch = epoch
        later.append(ds[3][0])
    assert any(not torch.equal(first, x) for x in later)


def test_predict_probs_returns_the_input_resolution(store, tmp_path):
    train_model(store, tmp_path, tiny_config(epochs=1))
    model, meta = load_model(tmp_path / "checkpoint_best.pt", device="cpu")
    images = np.random.default_rng(0).integers(0, 255, (3, 40, 40), dtype=np.uint8)
    probs = predict_probs(model, images, meta["preprocess"], batch_size=2, tta_flip=True)
    assert probs.shape == (3, 40, 40) and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1


def test_invalid_config_names_the_problem():
    with pytest.raises(ValueError, match="architecture 'resnet'"):
        TrainConfig(architecture="resnet")
    with pytest.raises(ValueError, match="scheduler"):
        TrainConfig(scheduler="step")
    with pytest.raises(ValueError, match="augment_preset"):
        TrainConfig(augment_preset="wild")
    with pytest.raises(ValueError, match="unknown TrainConfig keys: colour"):
        TrainConfig.from_dict({"colour": 1})


def test_broken_store_names_the_file(tmp_path):
    make_store(tmp_path, counts=(("train", 4), ("val", 2)))
    np.save(tmp_path / "val_masks.npy", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="val_masks.npy"):
        train_model(tmp_path, tmp_path / "out", tiny_config(epochs=1))
    with pytest.raises(FileNotFoundError, match="train_images.npy"):
        train_model(tmp_path / "nowhere", tmp_path / "out", tiny_config(epochs=1))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "checkpoint_best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint_best.pt"):
        load_model(bad)


def test_tta_flip_averages_with_the_mirrored_pass():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 3, padding=1).eval()  # not mirror-symmetric, so the flip changes the answer
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        expected = (model(x) + model(x.flip(-1)).flip(-1)) / 2
    assert torch.allclose(predict_logits(model, x, tta_flip=True), expected, atol=1e-6)
    assert not torch.allclose(predict_logits(model, x), expected, atol=1e-4)

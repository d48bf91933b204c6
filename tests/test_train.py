"""Training loop: learning, checkpoints, resume after a kill, the store dataset and the run's settings."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg.config import speed_only_keys
from cxlseg.training.checkpoint import read_checkpoint
from cxlseg.training.trainer import (
    HISTORY_COLUMNS,
    RESUME_FREE_KEYS,
    StoreDataset,
    TrainConfig,
    Trainer,
    configs_compatible,
    train_model,
)
from helpers.training import model_files


class Interrupt(RuntimeError):
    pass


def stop_after(epoch):
    def callback(trainer, row):
        if row["epoch"] == epoch:
            raise Interrupt(f"killed after epoch {epoch}")

    return callback


def test_tiny_training_lowers_the_loss_and_writes_the_model_folder(store, tmp_path, train_config):
    cfg = train_config("unet", augment_online=True)
    described = train_model(store, model_files(tmp_path), cfg)
    history = pd.read_csv(tmp_path / "history.csv")
    assert tuple(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert (tmp_path / "checkpoint_best.pt").is_file() and (tmp_path / "checkpoint_last.pt").is_file()
    model_json = pd.read_json(tmp_path / "model.json", typ="series")
    assert model_json["architecture"] == "unet" and model_json["best_epoch"] == described["best_epoch"]
    assert model_json["config"] == dataclasses.asdict(cfg) and model_json["cxlseg_version"]
    assert model_json["config"]["clahe_clip"] == 2.0 and model_json["epochs_completed"] == 3
    best = history.loc[history["val_dice"].idxmax()]
    assert described["best_epoch"] == best["epoch"]


def test_checkpoints_are_plain_tensors_with_the_training_config(store, tmp_path, train_config):
    cfg = train_config(epochs=2, scheduler="plateau")
    train_model(store, model_files(tmp_path), cfg)
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        ckpt = torch.load(tmp_path / name, weights_only=True)
        assert all(v.device.type == "cpu" for v in ckpt["state_dict"].values())
        assert {"state_dict", "config", "epoch", "metrics", "cxlseg_version", "architecture", "params"} <= set(ckpt)
        assert TrainConfig(**ckpt["config"]) == cfg
    last = read_checkpoint(tmp_path / "checkpoint_last.pt")
    assert {"optimizer", "scheduler", "rng", "history"} <= set(last) and len(last["history"]) == 2
    best = read_checkpoint(tmp_path / "checkpoint_best.pt")
    assert "optimizer" not in best  # the best checkpoint is the model only
    history = pd.read_csv(tmp_path / "history.csv")
    assert best["epoch"] == history.loc[history["val_dice"].idxmax(), "epoch"]
    assert best["metrics"]["val_dice"] == pytest.approx(history["val_dice"].max())


def test_resume_after_interruption_continues_from_the_saved_epoch(store, tmp_path, train_config):
    cfg = train_config(scheduler="cosine", augment_online=True)
    with pytest.raises(Interrupt):
        train_model(store, model_files(tmp_path / "resumed"), cfg, callbacks=[stop_after(1)])
    assert torch.load(tmp_path / "resumed" / "checkpoint_last.pt", weights_only=True)["epoch"] == 1
    train_model(store, model_files(tmp_path / "resumed"), cfg)
    resumed = pd.read_csv(tmp_path / "resumed" / "history.csv")
    assert resumed["epoch"].tolist() == [1, 2, 3]
    # identical to an uninterrupted run: weights, optimiser, schedule and RNG streams were all restored
    train_model(store, model_files(tmp_path / "straight"), cfg)
    straight = pd.read_csv(tmp_path / "straight" / "history.csv")
    cols = ["train_loss", "val_loss", "val_dice", "lr"]
    pd.testing.assert_frame_equal(resumed[cols], straight[cols])


def test_a_speed_only_change_still_resumes(store, tmp_path, train_config):
    with pytest.raises(Interrupt):
        train_model(store, model_files(tmp_path), train_config(epochs=2, amp=False), callbacks=[stop_after(1)])
    seen = []
    train_model(
        store,
        model_files(tmp_path),
        train_config(epochs=2, amp=True),
        callbacks=[lambda t, row: seen.append(row["epoch"])],
    )
    assert seen == [2]  # resumed at epoch 2: amp is a speed-only key


def test_changed_config_trains_from_scratch(store, tmp_path, train_config):
    with pytest.raises(Interrupt):
        train_model(store, model_files(tmp_path), train_config(epochs=2), callbacks=[stop_after(1)])
    train_model(store, model_files(tmp_path), train_config(epochs=2, lr=1e-3))
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["epoch"].tolist() == [1, 2] and history["lr"].iloc[0] == pytest.approx(1e-3)


def test_more_epochs_extend_a_finished_run(store, tmp_path, train_config):
    train_model(store, model_files(tmp_path), train_config(epochs=1))
    train_model(store, model_files(tmp_path), train_config(epochs=2))
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [1, 2]


def test_resume_free_keys_are_the_speed_only_ones_and_the_run_length(train_config):
    assert RESUME_FREE_KEYS == speed_only_keys("train") | {"epochs", "patience", "max_train_batches"}
    assert {"num_workers", "device", "amp"} <= RESUME_FREE_KEYS and "batch_size" not in RESUME_FREE_KEYS
    base = dataclasses.asdict(train_config())
    assert configs_compatible(base, base | {"epochs": 9, "num_workers": 3, "device": "cuda", "patience": 2})
    for key, value in (("batch_size", 5), ("lr", 1.0), ("seed", 1), ("clahe_space", "lab"), ("size", 48)):
        assert not configs_compatible(base, base | {key: value}), key


def test_early_stopping_stops_after_patience(store, tmp_path, train_config):
    cfg = train_config(epochs=6, lr=1e-9, patience=1, select_metric="loss")
    described = train_model(store, model_files(tmp_path), cfg)
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == described["best_epoch"] + 1 < 6


def test_cpu_runs_without_amp(store, tmp_path, train_config):
    trainer = Trainer(store, model_files(tmp_path), train_config(device="cpu", amp=True))
    trainer.setup()
    assert trainer.device.type == "cpu" and not trainer.use_amp


def test_dataset_applies_clahe_and_channels(store, train_config):
    ds = StoreDataset(store, "train", train_config(in_channels=3, size=48))
    x, y = ds[0]
    assert x.shape == (3, 48, 48) and y.shape == (1, 48, 48)
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}


def test_dataset_input_is_the_predictors_prepared_image(store, train_config):
    """Training sees exactly what inference feeds the network: InputSpec.prepare of the stored image."""
    from cxlseg.inference.predictor import InputSpec

    for space in ("gray", "lab"):
        cfg = train_config(size=24, clahe_space=space)
        spec = InputSpec.from_train_config(dataclasses.asdict(cfg))
        image = np.load(store / "validate_images.npy")[2]
        x, _ = StoreDataset(store, "validate", cfg)[2]
        assert torch.equal(x, spec.to_tensor(spec.prepare(image)[None])[0]), space


@pytest.mark.parametrize("preset", ["light", "strong"])
def test_augmentation_is_seeded_per_epoch(store, preset, train_config):
    ds = StoreDataset(store, "train", train_config(augment_preset=preset), augment=True)
    ds.epoch = 1
    first, again = ds[3][0], ds[3][0]
    assert torch.equal(first, again)
    later = []
    for epoch in range(2, 6):
        ds.epoch = epoch
        later.append(ds[3][0])
    assert any(not torch.equal(first, x) for x in later)


def test_from_config_takes_each_value_from_its_section(make_config):
    config = make_config(
        seed=7,
        preprocess={"size": 64, "channels": 3, "clahe_space": "lab"},
        models={"base_channels": 12, "sa_unet_base_channels": 6},
        train={"input_size": 48, "batch_size": 2},
        infer={"threshold": 0.4},
    )
    sa = TrainConfig.from_config(config, "sa_unet")
    assert (sa.size, sa.in_channels, sa.clahe_space, sa.seed, sa.threshold) == (48, 3, "lab", 7, 0.4)
    assert sa.base_channels == 6 and sa.batch_size == 2
    assert TrainConfig.from_config(config, "attention_unet").base_channels == 12
    assert TrainConfig.from_config(config, "plain_unet").base_channels is None
    assert TrainConfig.from_config(make_config(preprocess={"size": 64}), "unet").size == 64  # input_size null
    assert TrainConfig.from_config(config, "sa_unet", epochs=1).epochs == 1


def test_invalid_config_names_the_problem(train_config):
    valid = train_config()
    with pytest.raises(ValueError, match="architecture 'resnet'"):
        dataclasses.replace(valid, architecture="resnet")
    with pytest.raises(ValueError, match="scheduler"):
        dataclasses.replace(valid, scheduler="step")
    with pytest.raises(ValueError, match="augment_preset"):
        dataclasses.replace(valid, augment_preset="wild")
    with pytest.raises(ValueError, match="in_channels"):
        dataclasses.replace(valid, in_channels=2)
    with pytest.raises(TypeError):
        TrainConfig(architecture="unet")  # no defaults in code: every field comes from the schema


def test_broken_store_names_the_file(tmp_path, make_store, train_config):
    make_store(tmp_path, counts=(("train", 4), ("validate", 2)))
    np.save(tmp_path / "validate_masks.npy", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="validate_masks.npy"):
        train_model(tmp_path, model_files(tmp_path / "out"), train_config(epochs=1))
    with pytest.raises(FileNotFoundError, match="train_images.npy"):
        train_model(tmp_path / "nowhere", model_files(tmp_path / "out"), train_config(epochs=1))
    # the old split name is not read: a store with val_* files has no validation split
    old = make_store(tmp_path / "old", counts=(("train", 4),))
    for kind in ("images", "masks"):  # a store of the old layout: not a name the store module would give
        np.save(old / f"val_{kind}.npy", np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(FileNotFoundError, match="validate_images.npy"):
        train_model(old, model_files(tmp_path / "out2"), train_config(epochs=1))

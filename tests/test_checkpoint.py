"""The checkpoint format (cxlseg.training.checkpoint): plain tensors + the training config, read with weights_only=True."""

import dataclasses

import pytest
import torch
from cxlseg.training import checkpoint
from cxlseg.training.checkpoint import (
    build_model,
    load_model,
    payload,
    read_checkpoint,
    weights_digest,
    write_checkpoint,
)


def test_load_model_rebuilds_the_trained_network(trained):
    model, meta = load_model(trained.checkpoint, device="cpu")
    assert not model.training and meta["architecture"] == "sa_unet"
    state = torch.load(trained.checkpoint, weights_only=True)["state_dict"]
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert meta["model_id"] == f"sa_unet-{weights_digest(model)}" and meta["checkpoint"] == str(trained.checkpoint)
    assert meta["config"] == dataclasses.asdict(trained.config)
    assert not set(meta) & set(checkpoint.STATE_KEYS)  # metadata only, no tensors or training state
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_last_checkpoint_loads_as_a_model_too(trained):
    model, meta = load_model(trained.folder / "checkpoint_last.pt")
    assert meta["epoch"] == 2 and "history" not in meta and "optimizer" not in meta


def test_weights_digest_is_content_based(trained):
    a, _ = load_model(trained.checkpoint)
    b, _ = load_model(trained.checkpoint)
    assert weights_digest(a) == weights_digest(b) and len(weights_digest(a)) == 12
    with torch.no_grad():
        next(b.parameters()).add_(1e-3)
    assert weights_digest(a) != weights_digest(b)


def test_payload_round_trip(tmp_path, train_config):
    cfg = dataclasses.asdict(train_config())
    model = build_model(cfg)
    path = tmp_path / "sub" / "c.pt"
    write_checkpoint(path, payload(model, cfg, epoch=4, metrics={"val_dice": 0.5}, history=[{"epoch": 1}]))
    ckpt = read_checkpoint(path)
    assert (ckpt["epoch"], ckpt["metrics"], ckpt["architecture"], ckpt["config"]) == (
        4,
        {"val_dice": 0.5},
        "sa_unet",
        cfg,
    )
    assert ckpt["params"] == sum(p.numel() for p in model.parameters()) and ckpt["history"] == [{"epoch": 1}]
    assert not list(tmp_path.rglob("*.tmp*"))


def test_build_model_never_downloads_when_loading(train_config):
    """A checkpoint of a model trained from ImageNet weights is rebuilt without them (offline compute nodes)."""
    cfg = dataclasses.asdict(train_config("unet", encoder_weights="imagenet"))
    model = build_model(cfg)  # pretrained=False: would raise or hang if it tried to download
    assert sum(p.numel() for p in model.parameters()) > 0


def test_bad_files_are_clear_errors(tmp_path):
    bad = tmp_path / "checkpoint_best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint_best.pt"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        read_checkpoint(tmp_path / "nowhere.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a cxlseg checkpoint"):
        read_checkpoint(tmp_path / "foreign.pt")


class Arbitrary:
    pass


def test_arbitrary_pickles_are_refused(tmp_path):
    """weights_only=True: a checkpoint that would run code on load is an error, not an import."""
    torch.save({"state_dict": {}, "config": {}, "payload": Arbitrary()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        read_checkpoint(tmp_path / "evil.pt")

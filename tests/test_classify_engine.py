"""Training loop: masked loss, early stopping on the validation loss with the best weights kept, BatchNorm."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg.classify import engine, images, networks
from torch import nn


def test_masked_bce_gives_ignored_entries_no_gradient():
    logits = torch.zeros(1, 2, requires_grad=True)
    loss = engine.masked_bce(logits, torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2))
    assert logits.grad[0, 1] == 0 and logits.grad[0, 0] != 0


def test_early_stopping_waits_patience_epochs_and_remembers_the_best():
    net = nn.Linear(1, 1, bias=False)
    stopper = engine.EarlyStopping(patience=3)
    decisions = []
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.5, 0.7], start=1):
        with torch.no_grad():
            net.weight.fill_(epoch)
        decisions.append(stopper.update(epoch, loss, net))
    assert decisions == [False, False, False, False, True]  # an equal loss is no improvement
    assert stopper.best_epoch == 2 and stopper.best_loss == 0.5
    stopper.restore(net)
    assert net.weight.item() == 2.0


def _scripted_fit(monkeypatch, val_losses, epochs, patience, monitor="validate", train_losses=None):
    """fit() with a fake epoch that adds 1 to the only weight and scripted validation (and training) losses."""
    net = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(net.weight)

    train = iter(train_losses or [0.0] * epochs)

    def fake_epoch(net, *args):
        with torch.no_grad():
            net.weight.add_(1.0)
        return next(train), 1

    losses = iter(val_losses)
    monkeypatch.setattr(engine, "train_epoch", fake_epoch)
    monkeypatch.setattr(engine, "validation_loss", lambda *args: next(losses))
    history, stopper = engine.fit(
        net,
        None,
        None,
        torch.device("cpu"),
        False,
        engine.SkipLog("segmented"),
        epochs=epochs,
        patience=patience,
        lr=1e-3,
        max_train_batches=None,
        desc="t",
        monitor=monitor,
    )
    return net, history, stopper


def test_fit_stops_after_patience_epochs_without_improvement_and_keeps_best_weights(monkeypatch):
    net, history, stopper = _scripted_fit(monkeypatch, [1.0, 0.4, 0.5, 0.45, 0.6, 0.1, 0.1], epochs=10, patience=3)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]  # epochs 3, 4, 5 bring no lower loss
    assert [h["val_loss"] for h in history] == [1.0, 0.4, 0.5, 0.45, 0.6]
    assert stopper.best_epoch == 2 and net.weight.item() == 2.0  # the weights after epoch 2, not epoch 5


def test_fit_without_validate_images_runs_every_epoch_and_keeps_the_last_weights(monkeypatch):
    net, history, stopper = _scripted_fit(monkeypatch, [math.nan] * 4, epochs=4, patience=1)
    assert len(history) == 4 and stopper.best_epoch == 0 and net.weight.item() == 4.0


def test_authors_early_stopping_watches_the_training_loss_and_keeps_the_last_weights(monkeypatch):
    """classify.early_stopping: train is Keras EarlyStopping(monitor='loss', patience=3) without
    restore_best_weights: the validation loss is ignored, the last epoch's weights stay."""
    net, history, stopper = _scripted_fit(
        monkeypatch,
        [1.0, 0.1, 0.9, 0.9, 0.9, 0.9],  # would stop at epoch 5 on the validation loss
        epochs=10,
        patience=3,
        monitor="train",
        train_losses=[1.0, 0.8, 0.6, 0.7, 0.65, 0.61, 0.9],
    )
    assert len(history) == 6  # epochs 4, 5, 6 bring no training loss below 0.6
    assert net.weight.item() == 6.0  # the last weights, not epoch 2's (best validation) nor epoch 3's
    with pytest.raises(ValueError, match="monitors one of validate, train"):
        engine.EarlyStopping(3, "val_loss")


def test_batchnorm_recalibration_restores_momentum():
    net = networks.Classifier(
        nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 3
    )
    frame = pd.DataFrame(
        {"subject_id": [1] * 4, "study_id": [1] * 4, "dicom_id": list("abcd"), "DicomPath": list("abcd")}
    )

    class Bright(images.ImageDataset):
        def __getitem__(self, index):
            return {
                "x": torch.full((3, 8, 8), float(index)),
                "y": self.targets[index],
                "m": self.mask[index],
                "index": index,
                "ok": True,
                "file": "",
                "reason": "",
            }

    ones = np.ones((4, 1), np.float32)
    dataset = Bright(frame, ones, ones, images.ImageSource("segmented", ".", ".", 8, "pad"), 3)
    used = engine.recalibrate_batchnorm(
        net,
        torch.utils.data.DataLoader(dataset, batch_size=2),
        torch.device("cpu"),
        False,
        engine.SkipLog("segmented"),
        None,
    )
    norm = net.backbone[1]
    assert used == 2 and norm.momentum == 0.1 and not net.training
    assert norm.running_mean.abs().sum() > 0  # statistics now describe the data, not the initial (0, 1)

"""Training and prediction: masked BCE with Adam, early stopping on the validation loss, sigmoid scores.

Early stopping is the authors' Keras ``EarlyStopping(patience=3)``. By default (`classify.early_stopping:
validate`) it watches the validation loss and keeps the weights of the epoch with the lowest one, as Keras'
``restore_best_weights`` does; `train` is the authors' script: it watches the training loss
(``monitor='loss'``) and keeps the last epoch's weights (they then evaluated a hand-picked checkpoint).
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cxlseg.classify.images import ImageDataset

log = logging.getLogger(__name__)

SKIPPED_COLUMNS = ["dicom_id", "split", "input", "file", "reason"]


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"):
    """BCE over the label entries that count (mask 1), so 'ignore'd uncertain labels give no gradient.

    reduction 'sum' returns the summed loss, so batches can be pooled into one mean over entries.
    """
    loss = (F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none") * mask).sum()
    return loss if reduction == "sum" else loss / mask.sum().clamp_min(1.0)


class SkipLog:
    """Images that failed to load, once each, with the split, file and reason."""

    def __init__(self, input_kind: str):
        self.input_kind = input_kind
        self.rows: dict[str, dict] = {}

    def add(self, batch: dict, dataset: ImageDataset, split: str) -> torch.Tensor:
        """Record the batch's failed images; returns the mask of the loaded ones."""
        ok = batch["ok"]
        for i in torch.nonzero(~ok).flatten().tolist():
            dicom_id = dataset.dicom_id(int(batch["index"][i]))
            if dicom_id not in self.rows:
                log.warning(
                    "skipping %s image %s (%s): %s", self.input_kind, dicom_id, batch["file"][i], batch["reason"][i]
                )
                self.rows[dicom_id] = {
                    "dicom_id": dicom_id,
                    "split": split,
                    "input": self.input_kind,
                    "file": batch["file"][i],
                    "reason": batch["reason"][i],
                }
        return ok

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows.values()), columns=SKIPPED_COLUMNS)


def make_loader(
    dataset: ImageDataset, batch_size: int, shuffle: bool, seed: int, num_workers: int, device: torch.device
) -> DataLoader:
    """A loader whose order and worker seeds follow `seed`, so reruns see the same batches and jitter."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
    )


def train_batches(loader: DataLoader, skips: SkipLog, max_batches: int | None, desc: str):
    """The train split's batches with their loadable rows (`ok`), at most `max_batches` of them, with a bar.

    Batches left with fewer than two loadable images are skipped: BatchNorm cannot normalise a single sample
    once small inputs shrink to 1x1 maps.
    """
    used = 0
    for batch in tqdm(loader, desc=desc, leave=False, total=_cap(len(loader), max_batches)):
        if max_batches is not None and used >= max_batches:
            return
        ok = skips.add(batch, loader.dataset, "train")
        if int(ok.sum()) < 2:
            continue
        used += 1
        yield batch, ok


def train_epoch(
    net: nn.Module,
    loader: DataLoader,
    optimiser: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    use_amp: bool,
    skips: SkipLog,
    max_batches: int | None,
) -> tuple[float, int]:
    """One pass over the train split; returns (mean loss, batches used)."""
    net.train()
    total, used = torch.zeros((), device=device), 0
    for batch, ok in train_batches(loader, skips, max_batches, "train"):
        x, y, m = (batch[k][ok].to(device, non_blocking=True) for k in ("x", "y", "m"))
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            loss = masked_bce(net(x), y, m)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        total += loss.detach()  # summed on the device: no host sync per step
        used += 1
    return (float(total) / used if used else float("nan")), used


@torch.inference_mode()
def validation_loss(net: nn.Module, loader: DataLoader, device: torch.device, use_amp: bool, skips: SkipLog) -> float:
    """Mean masked BCE over every counted validate entry in eval mode; NaN when nothing could be scored."""
    net.eval()
    total, count = 0.0, 0.0
    for batch in tqdm(loader, desc="validate", leave=False):
        ok = skips.add(batch, loader.dataset, "validate")
        if not ok.any():
            continue
        x, y, m = (batch[k][ok].to(device, non_blocking=True) for k in ("x", "y", "m"))
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = net(x)
        total += float(masked_bce(logits, y, m, reduction="sum"))
        count += float(m.sum())
    return total / count if count else float("nan")


MONITORS = ("validate", "train")


class EarlyStopping:
    """Stop after `patience` epochs without a lower validation loss, keeping the best epoch's weights.

    A NaN loss (no validate images) never counts as improvement nor as a miss: training then runs all
    epochs and keeps the last weights.
    """

    def __init__(self, patience: int, monitor: str = "validate"):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if monitor not in MONITORS:
            raise ValueError(f"early stopping monitors one of {', '.join(MONITORS)}, got {monitor!r}")
        self.patience, self.monitor = patience, monitor
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.misses = 0

    def update(self, epoch: int, loss: float, net: nn.Module) -> bool:
        """Record one epoch's validation loss; True when training should stop."""
        if not math.isfinite(loss):
            return False
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.misses = loss, epoch, 0
            if self.monitor == "validate":  # the training loss watched: the last weights are kept anyway
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
            return False
        self.misses += 1
        return self.misses >= self.patience

    def restore(self, net: nn.Module) -> None:
        """Load the best weights back (nothing to do without a finite validation loss, or when the training loss
        is watched: Keras' EarlyStopping keeps the last weights unless told otherwise)."""
        if self.best_state is not None and self.monitor == "validate":
            net.load_state_dict(copy.deepcopy(self.best_state))


def fit(
    net: nn.Module,
    train: DataLoader,
    validate: DataLoader,
    device: torch.device,
    use_amp: bool,
    skips: SkipLog,
    *,
    epochs: int,
    patience: int,
    lr: float,
    max_train_batches: int | None,
    desc: str,
    monitor: str = "validate",
) -> tuple[list[dict], EarlyStopping]:
    """Adam on the masked BCE for up to `epochs`, stopped early on the validation loss; best weights kept."""
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    stopper = EarlyStopping(patience, monitor)
    history = []
    for epoch in tqdm(range(1, epochs + 1), desc=desc):
        train_loss, used = train_epoch(net, train, optimiser, scaler, device, use_amp, skips, max_train_batches)
        val_loss = validation_loss(net, validate, device, use_amp, skips)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "batches": used})
        log.info(
            "%s epoch %d: train loss %.4f over %d batch(es), validation loss %.4f",
            desc,
            epoch,
            train_loss,
            used,
            val_loss,
        )
        if stopper.update(epoch, val_loss if monitor == "validate" else train_loss, net):
            log.info(
                "%s: no lower %s loss for %d epoch(s); stopping, keeping epoch %d",
                desc,
                monitor,
                patience,
                stopper.best_epoch if monitor == "validate" else epoch,
            )
            break
    stopper.restore(net)
    return history, stopper


@torch.no_grad()
def recalibrate_batchnorm(
    net: nn.Module, loader: DataLoader, device: torch.device, use_amp: bool, skips: SkipLog, max_batches: int | None
) -> int:
    """Recompute BatchNorm running statistics for the kept weights in one no-grad pass over the train split.

    After few optimisation steps (the demo) the running statistics (momentum 0.1)
    still describe the initial weights, and eval-mode outputs collapse to a
    constant (MobileNetV2's features shrink to ~1e-10 at initialisation). A
    cumulative average over the train split, as torch.optim.swa_utils.update_bn
    does, fixes that. Returns the number of batches used.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    net.train()
    used = 0
    try:
        for batch, ok in train_batches(loader, skips, max_batches, "batchnorm statistics"):
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                net(batch["x"][ok].to(device, non_blocking=True))
            used += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        net.eval()
    return used


@torch.inference_mode()
def predict(
    net: nn.Module, loader: DataLoader, device: torch.device, use_amp: bool, skips: SkipLog, split: str
) -> np.ndarray:
    """Sigmoid scores (N, labels); rows of images that failed to load stay NaN."""
    net.eval()
    dataset: ImageDataset = loader.dataset
    scores = np.full((len(dataset), dataset.targets.shape[1]), np.nan, np.float64)
    for batch in tqdm(loader, desc=f"predict {split}", leave=False):
        ok = skips.add(batch, dataset, split)
        if not ok.any():
            continue
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = net(batch["x"][ok].to(device, non_blocking=True))
        scores[batch["index"][ok].numpy()] = torch.sigmoid(logits.float()).cpu().numpy()
    return scores


def _cap(n: int, cap: int | None) -> int:
    return n if cap is None else min(n, cap)

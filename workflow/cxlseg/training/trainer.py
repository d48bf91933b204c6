"""Training: one fixed loop of small hooks (setup, train_epoch, validate, end_epoch, finish).

The loop is short on purpose, in the spirit of nnU-Net's trainer: every decision
(data, model, optimiser, schedule, checkpointing, early stopping) is one method,
so a subclass or a callback can change one thing without copying the loop.
Checkpoints are plain dicts of tensors and JSON-able values, so
``torch.load(path, weights_only=True)`` reads them, and the resume checkpoint
lets a killed job resume at the next epoch with its history intact. Every file's
name is the rule's (`checkpoint.ModelFiles`), never rebuilt here from a folder.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cxlseg import __version__
from cxlseg import film as films
from cxlseg.config import speed_only_keys
from cxlseg.device import resolve_device, seed_everything
from cxlseg.io import write_csv, write_json
from cxlseg.metrics import OVERLAP_NAMES
from cxlseg.training import checkpoint
from cxlseg.training.checkpoint import ModelFiles
from cxlseg.training.dataset import StoreDataset
from cxlseg.training.loss import BCEDiceLoss, batch_metrics
from cxlseg.training.settings import TrainConfig
from cxlseg.training.store import TrainingStore, as_store

log = logging.getLogger(__name__)

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_dice",
    "val_loss",
    "val_dice",
    "val_iou",
    "val_precision",
    "val_recall",
    "lr",
    "seconds",
)
# Settings that may change between a kill and a resume without invalidating the saved state: the
# schema's speed-only keys, and how long the run goes on.
RESUME_FREE_KEYS = speed_only_keys("train") | {"epochs", "patience", "max_train_batches"}


# --------------------------------------------------------------------------- trainer


Callback = Callable[["Trainer", dict], None]


class Trainer:
    """setup -> for each epoch: train_epoch -> validate -> end_epoch (scheduler, history, checkpoints, callbacks)."""

    def __init__(
        self, store: TrainingStore | Path | str, files: ModelFiles, cfg: TrainConfig, callbacks: Iterable[Callback] = ()
    ):
        self.store, self.files, self.cfg = as_store(store), files, cfg
        self.callbacks = list(callbacks)
        self.history: list[dict] = []
        self.epoch = 0

    # ---- setup
    def setup(self) -> None:
        cfg = self.cfg
        self.device = resolve_device(cfg.device)
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        seed_everything(cfg.seed)
        self.train_set = StoreDataset(self.store, "train", cfg, augment=cfg.augment_online)
        self.val_set = StoreDataset(self.store, "validate", cfg)
        self.polarity_template = film_template(self.train_set.images)
        if len(self.train_set) == 0 or len(self.val_set) == 0:
            raise ValueError(
                f"{self.store}: train ({len(self.train_set)}) and val ({len(self.val_set)}) "
                "splits must both hold images"
            )
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.train_loader = DataLoader(
            self.train_set,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=self.generator,
            num_workers=cfg.num_workers,
            drop_last=False,
        )
        self.val_loader = DataLoader(self.val_set, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
        self.model = checkpoint.build_model(asdict(cfg), pretrained=True).to(self.device)
        self.criterion = BCEDiceLoss(cfg.bce_weight, cfg.dice_weight)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = self.make_scheduler()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.maybe_resume()

    def make_scheduler(self):
        cfg = self.cfg
        if cfg.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=cfg.epochs, eta_min=max(cfg.min_lr, cfg.lr * 0.01)
            )
        if cfg.scheduler == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode=self.metric_mode,
                factor=cfg.plateau_factor,
                patience=cfg.plateau_patience,
                min_lr=cfg.min_lr,
            )
        return None

    def maybe_resume(self) -> None:
        path = self.files.resume
        if not path.is_file():
            return
        state = checkpoint.read_checkpoint(path)
        if not configs_compatible(state["config"], asdict(self.cfg)):
            log.warning("%s: saved config differs from the requested one; training from scratch", path)
            return
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["loader"])
        if self.device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.history, self.epoch = list(state["history"]), int(state["epoch"])
        log.info("resumed from %s at epoch %d", path, self.epoch)

    # ---- loop
    def run(self) -> dict:
        self.setup()
        for epoch in range(self.epoch + 1, self.cfg.epochs + 1):
            if self.should_stop():
                log.info("early stop: no val_%s improvement for %s epochs", self.cfg.select_metric, self.cfg.patience)
                break
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train = self.train_epoch(epoch)
            val = self.validate()
            row = {"epoch": epoch, **train, **val, "lr": lr, "seconds": round(time.perf_counter() - started, 3)}
            self.end_epoch(epoch, row)
        return self.finish()

    def train_epoch(self, epoch: int) -> dict:
        self.model.train()
        self.train_set.epoch = epoch
        total_loss, total_dice, seen = 0.0, 0.0, 0
        limit = self.cfg.max_train_batches or math.inf
        bar = tqdm(
            self.train_loader,
            desc=f"{self.cfg.architecture} epoch {epoch}/{self.cfg.epochs}",
            leave=False,
            total=min(len(self.train_loader), limit),
        )
        for step, (x, y) in enumerate(bar):
            if step >= limit:
                break
            loss, logits = self.train_step(x.to(self.device), y.to(self.device))
            total_loss += loss * len(x)
            total_dice += float(batch_metrics(logits, y.to(self.device), self.cfg.threshold)["dice"].sum())
            seen += len(x)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        return {"train_loss": total_loss / seen, "train_dice": total_dice / seen}

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
        with torch.autocast(device_type=self.device.type, enabled=self.use_amp):
            logits = self.model(x)
            loss = self.criterion(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()), logits.detach()

    @torch.inference_mode()
    def validate(self) -> dict:
        self.model.eval()
        total_loss, per_image = 0.0, {name: [] for name in OVERLAP_NAMES}
        for x, y in self.val_loader:
            x, y = x.to(self.device), y.to(self.device)
            with torch.autocast(device_type=self.device.type, enabled=self.use_amp):
                logits = self.model(x)
            total_loss += float(self.criterion(logits.float(), y)) * len(x)
            for name, values in batch_metrics(logits, y, self.cfg.threshold).items():
                per_image[name].append(values.cpu())
        out = {"val_loss": total_loss / len(self.val_set)}
        out.update({f"val_{name}": float(torch.cat(v).mean()) for name, v in per_image.items()})
        return out

    def end_epoch(self, epoch: int, row: dict) -> None:
        self.history.append(row)
        self.epoch = epoch
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(row[self.metric_key])
        elif self.scheduler is not None:
            self.scheduler.step()
        if self.best_row()["epoch"] == epoch:
            self.save_checkpoint(self.files.checkpoint, full=False)
        self.save_checkpoint(self.files.resume, full=True)
        write_csv(pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS)), self.files.history)
        log.info("epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        for callback in self.callbacks:
            callback(self, row)

    def finish(self) -> dict:
        best = self.best_row()
        description = {
            "architecture": self.cfg.architecture,
            "config": asdict(self.cfg),
            "best_epoch": best["epoch"],
            "best_metrics": best,
            "select_metric": self.cfg.select_metric,
            "epochs_completed": self.epoch,
            "params": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "checkpoint_best": self.files.checkpoint.name,
            "checkpoint_last": self.files.resume.name,
            "history": self.files.history.name,
            "cxlseg_version": __version__,
            "torch_version": str(torch.__version__),
        }
        write_json(self.files.model, description)
        return description

    # ---- bookkeeping
    @property
    def metric_key(self) -> str:
        return f"val_{self.cfg.select_metric}"

    @property
    def metric_mode(self) -> str:
        return "min" if self.cfg.select_metric == "loss" else "max"

    def best_row(self) -> dict:
        sign = -1 if self.metric_mode == "min" else 1
        # max() keeps the first of equal values, so ties go to the earlier epoch
        return max(self.history, key=lambda r: sign * r[self.metric_key])

    def should_stop(self) -> bool:
        if not self.cfg.patience or not self.history:
            return False
        return self.epoch - self.best_row()["epoch"] >= self.cfg.patience

    def save_checkpoint(self, path: Path, full: bool) -> None:
        best = self.best_row()
        state = {}
        if full:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
                "scaler": self.scaler.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "loader": self.generator.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                },
                "history": [dict(r) for r in self.history],
                "best_epoch": best["epoch"],
            }
        metrics = dict(self.history[-1]) if full else dict(best)
        checkpoint.write_checkpoint(
            path,
            checkpoint.payload(
                self.model,
                asdict(self.cfg),
                epoch=self.epoch,
                metrics=metrics,
                polarity_template=list(self.polarity_template),
                **state,
            ),
        )


def film_template(images, at_most: int = 4000) -> tuple[float, ...]:
    """The training films' polarity template (film.polarity_template), from an even sample of at most `at_most`:
    the predictor reads it from the checkpoint to tell an inverted film from an upright one."""
    step = max(1, len(images) // at_most)
    return films.polarity_template(images[i] for i in range(0, len(images), step))


def configs_compatible(saved: dict, requested: dict) -> bool:
    """Same run apart from settings that only change how long or where it runs."""
    keys = (set(saved) | set(requested)) - RESUME_FREE_KEYS
    return all(saved.get(k) == requested.get(k) for k in keys)


def train_model(
    store: TrainingStore | Path | str, files: ModelFiles, cfg: TrainConfig, *, callbacks: Iterable[Callback] = ()
) -> dict:
    """Train one architecture on a training store; returns (and writes as `files.model`) the run's description."""
    return Trainer(store, files, cfg, callbacks).run()

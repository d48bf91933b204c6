"""Training: one fixed loop of small hooks (setup, train_epoch, validate, end_epoch, finish).

The loop is short on purpose, in the spirit of nnU-Net's trainer: every decision
(data, model, optimiser, schedule, checkpointing, early stopping) is one method,
so a subclass or a callback can change one thing without copying the loop.
Checkpoints are plain dicts of tensors and JSON-able values, so
``torch.load(path, weights_only=True)`` reads them, and ``checkpoint_last.pt``
lets a killed job resume at the next epoch with its history intact.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .device import resolve_device
from . import __version__
from .io import atomic_path, write_csv, write_json
from .metrics import OVERLAP_NAMES, BCEDiceLoss, batch_metrics
from .models import MODELS, count_parameters, create_model
from .preprocess import clahe, resize, resize_mask, to_model_input

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SCHEDULERS = ("none", "cosine", "plateau")
SELECT_METRICS = ("dice", "iou", "precision", "recall", "loss")
HISTORY_COLUMNS = ("epoch", "train_loss", "train_dice", "val_loss", "val_dice", "val_iou", "val_precision",
                   "val_recall", "lr", "seconds")
# Settings that may change between a kill and a resume without invalidating the saved state.
RESUME_FREE_KEYS = frozenset({"epochs", "num_workers", "device", "patience", "max_train_batches"})


@dataclass
class TrainConfig:
    architecture: str = "unet"
    epochs: int = 15
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    scheduler: str = "none"
    size: int = 224
    in_channels: int = 1
    clahe_clip: float = 2.0
    clahe_tiles: int = 8
    encoder_name: str = "resnet34"
    encoder_weights: str | None = None
    encoder_depth: int = 5
    base_channels: int | None = None
    seed: int = 42
    num_workers: int = 0
    device: str = "auto"
    amp: bool = True
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    augment_online: bool = False
    augment_preset: str = "light"
    max_train_batches: int | None = None
    patience: int | None = None
    select_metric: str = "dice"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if self.architecture not in MODELS:
            problems.append(f"architecture {self.architecture!r} not in {sorted(MODELS)}")
        if self.scheduler not in SCHEDULERS:
            problems.append(f"scheduler {self.scheduler!r} not in {SCHEDULERS}")
        if self.select_metric not in SELECT_METRICS:
            problems.append(f"select_metric {self.select_metric!r} not in {SELECT_METRICS}")
        if self.augment_preset not in AUGMENT_PRESETS:
            problems.append(f"augment_preset {self.augment_preset!r} not in {AUGMENT_PRESETS}")
        if self.in_channels not in (1, 3):
            problems.append(f"in_channels must be 1 or 3, got {self.in_channels}")
        for name in ("epochs", "batch_size", "size", "clahe_tiles"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a checkpoint or config dict; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {', '.join(unknown)}")
        return cls(**values)

    def preprocess(self) -> dict:
        """What inference must repeat: whole-image INTER_AREA resize, CLAHE, /255, channels."""
        return {"size": self.size, "in_channels": self.in_channels, "clahe_clip": self.clahe_clip,
                "clahe_tiles": self.clahe_tiles, "scale": 1 / 255, "resize": "INTER_AREA", "threshold": self.threshold}


# --------------------------------------------------------------------------- data

def load_split(store_dir: Path | str, split: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """One split of the training store, memory-mapped, with its shapes checked against each other."""
    store_dir = Path(store_dir)
    paths = {kind: store_dir / f"{split}_{kind}.npy" for kind in ("images", "masks")}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training store file missing")
    images, masks = (np.load(paths[k], mmap_mode="r") for k in ("images", "masks"))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{paths['images']}: expected uint8 (N, S, S), got {images.dtype} {images.shape}")
    if masks.shape != images.shape:
        raise ValueError(f"{paths['masks']}: shape {masks.shape} does not match images {images.shape}")
    index_path = store_dir / f"{split}_index.parquet"
    index = pd.read_parquet(index_path) if index_path.is_file() else pd.DataFrame(index=range(len(images)))
    if len(index) != len(images):
        raise ValueError(f"{index_path}: {len(index)} rows for {len(images)} images")
    return images, masks, index


# Ranges per preset: "light" suits the big augmented training store; "strong" is for small real sets
# (tuned on V7, see tests/bench/bench_real_v7.py), where variety matters more than fidelity.
AUGMENT_RANGES = {
    "light": dict(scale=(0.9, 1.1), translate=(-0.05, 0.05), rotate=(-10, 10), shear=(0, 0), affine_p=0.7,
                  exposure=0.15, exposure_p=0.5, gamma=(80, 120), gamma_p=0.3, distort_p=0.0, degrade_p=0.0),
    "strong": dict(scale=(0.8, 1.2), translate=(-0.08, 0.08), rotate=(-12, 12), shear=(-5, 5), affine_p=0.8,
                   exposure=0.25, exposure_p=0.7, gamma=(70, 150), gamma_p=0.5, distort_p=0.3, degrade_p=0.3),
}
AUGMENT_PRESETS = tuple(AUGMENT_RANGES)


def online_augmentation(preset: str = "light") -> A.Compose:
    """Label-preserving changes a radiograph plausibly has: mirroring, patient pose, exposure, detector blur/noise."""
    if preset not in AUGMENT_RANGES:
        raise ValueError(f"augment_preset {preset!r} not in {AUGMENT_PRESETS}")
    r = AUGMENT_RANGES[preset]
    border = dict(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)
    return A.Compose([
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=r["scale"], translate_percent=r["translate"], rotate=r["rotate"], shear=r["shear"],
                 p=r["affine_p"], **border),
        A.GridDistortion(num_steps=5, distort_limit=0.2, p=r["distort_p"], **border),
        A.RandomBrightnessContrast(brightness_limit=r["exposure"], contrast_limit=r["exposure"], p=r["exposure_p"]),
        A.RandomGamma(gamma_limit=r["gamma"], p=r["gamma_p"]),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.01, 0.03))], p=r["degrade_p"]),
    ])


class StoreDataset(Dataset):
    """A store split as model tensors; CLAHE runs here, after augmentation, exactly as at inference."""

    def __init__(self, store_dir: Path | str, split: str, cfg: TrainConfig, augment: bool = False):
        self.images, self.masks, self.index = load_split(store_dir, split)
        self.cfg = cfg
        self.transform = online_augmentation(cfg.augment_preset) if augment else None
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = np.array(self.images[i]), (np.array(self.masks[i]) > 0).astype(np.uint8)
        if image.shape != (self.cfg.size, self.cfg.size):  # resize first, as inference does (and it is cheaper)
            image, mask = resize(image, self.cfg.size), resize_mask(mask, self.cfg.size)
        if self.transform is not None:
            # Seeded by (seed, epoch, item): identical after a resume and independent of worker count.
            seed = np.random.SeedSequence([self.cfg.seed, self.epoch, int(i)]).generate_state(1)[0]
            self.transform.set_random_seed(int(seed))
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        image = clahe(image, self.cfg.clahe_clip, self.cfg.clahe_tiles)
        x = torch.from_numpy(to_model_input(image[None], self.cfg.in_channels)[0])
        return x, torch.from_numpy(mask[None].astype(np.float32))


# --------------------------------------------------------------------------- model helpers

def build_model(cfg: TrainConfig, pretrained: bool = True) -> nn.Module:
    """The configured architecture; pretrained=False skips any download (loading a checkpoint)."""
    return create_model(cfg.architecture, in_channels=cfg.in_channels, classes=1, encoder_name=cfg.encoder_name,
                        encoder_weights=cfg.encoder_weights if pretrained else None, base_channels=cfg.base_channels,
                        encoder_depth=cfg.encoder_depth)


def load_model(checkpoint_path: Path | str, device: str = "auto") -> tuple[nn.Module, dict]:
    """(model in eval mode on the device, metadata) from a checkpoint written by train_model."""
    checkpoint = read_checkpoint(checkpoint_path)
    model = build_model(TrainConfig.from_dict(checkpoint["config"]), pretrained=False)
    model.load_state_dict(checkpoint["state_dict"])
    target = resolve_device(device)
    meta = {k: v for k, v in checkpoint.items() if k not in _STATE_KEYS}
    meta["checkpoint"] = str(checkpoint_path)
    return model.to(target).eval(), meta


def read_checkpoint(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{path}: not a cxlseg checkpoint (no state_dict/config)")
    return checkpoint


@torch.inference_mode()
def predict_logits(model: nn.Module, x: torch.Tensor, tta_flip: bool = False) -> torch.Tensor:
    """Logits (N, 1, H, W) as float32 on the CPU; tta_flip averages with the left-right mirrored pass."""
    device = next(model.parameters()).device
    x = x.to(device, non_blocking=True)
    with torch.autocast(device_type=device.type, enabled=device.type == "cuda"):
        logits = model(x).float()
        if tta_flip:
            logits = (logits + model(x.flip(-1)).float().flip(-1)) / 2
    return logits.cpu()


def prepare_batch(images: np.ndarray, preprocess: dict) -> torch.Tensor:
    """uint8 (N, H, W) radiographs -> model input, repeating the training preprocessing from checkpoint metadata."""
    size = int(preprocess["size"])
    prepared = np.stack([clahe(resize(img, size), preprocess["clahe_clip"], preprocess["clahe_tiles"])
                         for img in images])
    return torch.from_numpy(to_model_input(prepared, int(preprocess["in_channels"])))


def predict_probs(model: nn.Module, images: np.ndarray, preprocess: dict, *, batch_size: int = 16,
                  tta_flip: bool = False, progress: bool = False) -> np.ndarray:
    """Lung probabilities (N, H, W) float32 at the images' own (common) resolution."""
    images = np.asarray(images)
    out = np.empty(images.shape, np.float32)
    for start in tqdm(range(0, len(images), batch_size), desc="predict", disable=not progress):
        chunk = images[start:start + batch_size]
        probs = torch.sigmoid(predict_logits(model, prepare_batch(chunk, preprocess), tta_flip))
        if probs.shape[-2:] != chunk.shape[-2:]:
            probs = F.interpolate(probs, size=chunk.shape[-2:], mode="bilinear", align_corners=False)
        out[start:start + len(chunk)] = probs[:, 0].numpy()
    return out


# --------------------------------------------------------------------------- trainer

Callback = Callable[["Trainer", dict], None]
_STATE_KEYS = ("state_dict", "optimizer", "scheduler", "scaler", "rng", "history")


class Trainer:
    """setup -> for each epoch: train_epoch -> validate -> end_epoch (scheduler, history, checkpoints, callbacks)."""

    def __init__(self, store_dir: Path | str, out_dir: Path | str, cfg: TrainConfig,
                 callbacks: Iterable[Callback] = ()):
        self.store_dir, self.out_dir, self.cfg = Path(store_dir), Path(out_dir), cfg
        self.callbacks = list(callbacks)
        self.history: list[dict] = []
        self.epoch = 0

    # ---- setup
    def setup(self) -> None:
        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(cfg.device)
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        seed_everything(cfg.seed)
        self.train_set = StoreDataset(self.store_dir, "train", cfg, augment=cfg.augment_online)
        self.val_set = StoreDataset(self.store_dir, "val", cfg)
        if len(self.train_set) == 0 or len(self.val_set) == 0:
            raise ValueError(f"{self.store_dir}: train ({len(self.train_set)}) and val ({len(self.val_set)}) "
                             "splits must both hold images")
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.train_loader = DataLoader(self.train_set, batch_size=cfg.batch_size, shuffle=True,
                                       generator=self.generator, num_workers=cfg.num_workers, drop_last=False)
        self.val_loader = DataLoader(self.val_set, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
        self.model = build_model(cfg).to(self.device)
        self.criterion = BCEDiceLoss(cfg.bce_weight, cfg.dice_weight)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = self.make_scheduler()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.maybe_resume()

    def make_scheduler(self):
        if self.cfg.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.cfg.epochs,
                                                              eta_min=self.cfg.lr * 0.01)
        if self.cfg.scheduler == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode=self.metric_mode, factor=0.5,
                                                              patience=2)
        return None

    def maybe_resume(self) -> None:
        path = self.out_dir / "checkpoint_last.pt"
        if not path.is_file():
            return
        state = read_checkpoint(path)
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
        bar = tqdm(self.train_loader, desc=f"{self.cfg.architecture} epoch {epoch}/{self.cfg.epochs}", leave=False,
                   total=min(len(self.train_loader), limit))
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
            self.save_checkpoint(self.out_dir / "checkpoint_best.pt", full=False)
        self.save_checkpoint(self.out_dir / "checkpoint_last.pt", full=True)
        write_csv(pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS)), self.out_dir / "history.csv")
        log.info("epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        for callback in self.callbacks:
            callback(self, row)

    def finish(self) -> dict:
        best = self.best_row()
        description = {
            "architecture": self.cfg.architecture,
            "config": asdict(self.cfg),
            "preprocess": self.cfg.preprocess(),
            "best_epoch": best["epoch"],
            "best_metrics": best,
            "select_metric": self.cfg.select_metric,
            "epochs_completed": self.epoch,
            "params": count_parameters(self.model),
            "checkpoint_best": "checkpoint_best.pt",
            "checkpoint_last": "checkpoint_last.pt",
            "history": "history.csv",
            "cxlseg_version": __version__,
            "torch_version": str(torch.__version__),
        }
        write_json(self.out_dir / "model.json", description)
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
        checkpoint = {
            # CPU tensors: a model trained on a GPU node must load on a CPU-only one without map_location.
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "architecture": self.cfg.architecture,
            "config": asdict(self.cfg),
            "preprocess": self.cfg.preprocess(),
            "epoch": self.epoch,
            "metrics": dict(self.history[-1]) if full else dict(best),
            "params": count_parameters(self.model),
            "cxlseg_version": __version__,
            "torch_version": str(torch.__version__),
        }
        if full:
            checkpoint.update({
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
                "scaler": self.scaler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "loader": self.generator.get_state(),
                        "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
                "history": [dict(r) for r in self.history],
                "best_epoch": best["epoch"],
            })
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def configs_compatible(saved: dict, requested: dict) -> bool:
    """Same run apart from settings that only change how long or where it runs."""
    keys = (set(saved) | set(requested)) - RESUME_FREE_KEYS
    return all(saved.get(k) == requested.get(k) for k in keys)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False


def train_model(store_dir: Path | str, out_dir: Path | str, cfg: TrainConfig | None = None, *,
                callbacks: Iterable[Callback] = ()) -> dict:
    """Train one architecture on a training store; returns (and writes as model.json) the model folder's description."""
    return Trainer(store_dir, out_dir, cfg or TrainConfig(), callbacks).run()

"""Training and validation of the view check (`cxlseg.inference.view_check`): phantom films handed over by the rule
(`cxlseg.phantoms.view_films`, never rendered here), the training store's frontal films and the archive's own
sample (rule view_samples), seeded augmentation, class-balanced BCE."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from cxlseg import io
from cxlseg.device import resolve_device, seed_everything
from cxlseg.inference.view_check import ARCHITECTURE, ViewChecker, ViewNet, to_batch
from cxlseg.mimic import LATERAL_VIEWS
from cxlseg.preprocess import decode_for_inference
from cxlseg.training.checkpoint import payload, write_checkpoint
from cxlseg.view_check.settings import ViewCheckSettings

log = logging.getLogger(__name__)

# Phantom groups that are not frontal films (target 1); "frontal" and "opaque" phantoms are (target 0).
NEGATIVE_GROUPS = ("lateral", "ct", "abdomen")
FILM_SPLITS = ("train", "validate")


def read_view_films(path: Path | str) -> dict[str, dict[str, np.ndarray]]:
    """The phantom films of rule view_phantoms: {split: {group: uint8 (N, work, work)}}, keys "split/group"."""
    films: dict[str, dict[str, np.ndarray]] = {split: {} for split in FILM_SPLITS}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            split, _, group = key.partition("/")
            if split not in films or not group:
                raise ValueError(f"{path}: unexpected array {key!r} (want <train|validate>/<group>)")
            films[split][group] = npz[key]
    for split, groups in films.items():
        if not {"frontal", "lateral", "ct"} <= set(groups):
            raise ValueError(f"{path}: split {split} lacks frontal, lateral or CT films")
    return films


def augmentation(work: int) -> A.Compose:
    """Label-preserving changes of any film: mirroring, pose, collimation (crops), exposure, detector blur
    and noise, inverted grey scale; strong so texture differences between phantoms and real films wash out."""
    border = dict(border_mode=cv2.BORDER_CONSTANT, fill=0)
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.8, 1.2), translate_percent=(-0.08, 0.08), rotate=(-15, 15), shear=(-5, 5), p=0.8, **border
            ),
            A.RandomResizedCrop(size=(work, work), scale=(0.55, 1.0), ratio=(0.7, 1.4), p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=0.8),
            A.RandomGamma(gamma_limit=(60, 170), p=0.5),
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=(3, 7)),
                    A.GaussNoise(std_range=(0.02, 0.08)),
                    A.Downscale(scale_range=(0.3, 0.6)),
                ],
                p=0.6,
            ),
            A.Sharpen(alpha=(0.2, 0.6), p=0.3),
            A.Illumination(mode="linear", intensity_range=(0.05, 0.2), p=0.3),
            A.InvertImg(p=0.05),
        ]
    )


def store_frontals(store_dir: Path | str | None, split: str) -> np.ndarray | None:
    """The training store's images of one split (frontal films by construction), or None without a store."""
    if store_dir is None:
        return None
    from cxlseg.training.store import load_split

    images, _, _ = load_split(store_dir, split)
    return images if len(images) else None


def archive_films(samples_path, mimic_root, split: str, work: int) -> dict[str, np.ndarray]:
    """The view sample's films of one split, decoded (reduced-DCT JPEG) to work x work: {"archive_frontal",
    "archive_lateral"}. A file that is unsafe, missing or unreadable is logged and skipped, never fatal."""
    if samples_path is not None and mimic_root is None:
        raise ValueError("view check: archive samples given without the archive root (mimic_root)")
    out: dict[str, list] = {"archive_frontal": [], "archive_lateral": []}
    table = pd.read_parquet(samples_path) if samples_path is not None else pd.DataFrame(columns=["split"])
    table = table[table.split == split]
    for row in table.itertuples(index=False):
        size = (None, None) if pd.isna(row.rows) or pd.isna(row.columns) else (int(row.rows), int(row.columns))
        try:
            image = decode_for_inference(io.safe_join(mimic_root, row.image_path), work, *size)[0]
        except (OSError, ValueError, cv2.error) as exc:
            log.warning("view check: skipped archive image %s: %s", row.dicom_id, exc)
            continue
        out["archive_lateral" if row.view in LATERAL_VIEWS else "archive_frontal"].append(image)
    return {k: np.stack(v) if v else np.zeros((0, work, work), np.uint8) for k, v in out.items()}


class _Epochs:
    """Per epoch: every phantom once and seeded draws of real films: as many store films as phantom frontals,
    and as many archive side views (and as many archive frontals) as phantom laterals + CT slices, so real
    and phantom negatives weigh alike and neither vanishes. Each film is augmented with a seed of
    (seed, epoch, item) so a rerun gives the same batches."""

    def __init__(self, groups: dict[str, np.ndarray], real: dict, work: int, size: int, seed: int):
        self.groups, self.work, self.size, self.seed = groups, work, size, seed
        side = len(groups["lateral"]) + len(groups["ct"])
        self.draws = [
            (real.get("store"), 0.0, len(groups["frontal"])),
            (real.get("archive_frontal"), 0.0, side),
            (real.get("archive_lateral"), 1.0, side),
        ]
        self.transform = augmentation(work)

    def items(self, epoch: int) -> list[tuple[np.ndarray, float]]:
        rng = np.random.default_rng([self.seed, epoch])
        items = [(im, float(name in NEGATIVE_GROUPS)) for name, ims in self.groups.items() for im in ims]
        for images, target, n in self.draws:
            if images is not None and len(images):
                chosen = np.sort(rng.choice(len(images), min(len(images), n), replace=False))
                items += [(images[int(i)], target) for i in chosen]
        return [items[int(i)] for i in rng.permutation(len(items))]

    def batches(self, epoch: int, batch_size: int):
        items = self.items(epoch)
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            images = []
            for k, (im, _) in enumerate(chunk):
                im = np.asarray(im)
                if im.shape != (self.work, self.work):
                    im = cv2.resize(im, (self.work, self.work), interpolation=cv2.INTER_AREA)
                seq = np.random.SeedSequence([self.seed, epoch, start + k]).generate_state(1)[0]
                self.transform.set_random_seed(int(seq))
                images.append(self.transform(image=im)["image"])
            yield to_batch(images, self.size), torch.tensor([t for _, t in chunk], dtype=torch.float32)


# --------------------------------------------------------------------------- training


def _class_weights(targets: torch.Tensor) -> torch.Tensor:
    """Each class weighs half of the loss, whatever the mix of a batch."""
    pos = targets.sum().clamp(min=1)
    neg = (1 - targets).sum().clamp(min=1)
    return torch.where(targets > 0.5, 0.5 / pos, 0.5 / neg) * len(targets)


def _fit(model: nn.Module, data: _Epochs, settings: ViewCheckSettings, device: torch.device) -> list[float]:
    """Adam with a cosine learning rate; class-balanced BCE. Returns the mean loss per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    steps = settings.epochs * math.ceil(len(data.items(0)) / settings.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=settings.lr / 50)
    losses = []
    for epoch in range(settings.epochs):
        model.train()
        total, count = 0.0, 0
        for x, y in data.batches(epoch, settings.batch_size):
            x, y = x.to(device), y.to(device)
            loss = (
                nn.functional.binary_cross_entropy_with_logits(model(x), y, reduction="none") * _class_weights(y)
            ).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item() * len(y), count + len(y)
        losses.append(total / count)
        log.info("view check epoch %d/%d: loss %.4f", epoch + 1, settings.epochs, losses[-1])
    return losses


def train_view_check(
    checkpoint_path: Path | str,
    settings: ViewCheckSettings,
    phantom_films: Path | str,
    *,
    seed: int,
    store_dir: Path | str | None = None,
    view_samples: Path | str | None = None,
    mimic_root: Path | str | None = None,
    metrics_path: Path | str | None = None,
    device: str = "cpu",
) -> dict:
    """Train the view check on the phantom films of rule view_phantoms (+ the store's train split as frontals, + the view sample's train
    subjects from the archive under `mimic_root`), validate it on phantoms of other seeds, the store's
    validate split and the held-out archive subjects; write the checkpoint and the metrics JSON."""
    seed_everything(seed)
    work, torch_device = 2 * settings.size, resolve_device(device)
    films = read_view_films(phantom_films)
    groups = films["train"]
    archive = {split: archive_films(view_samples, mimic_root, split, work) for split in ("train", "validate")}
    _log_archive(archive["train"], settings.archive_samples if view_samples is not None else 0)
    real = {"store": store_frontals(store_dir, "train"), **archive["train"]}
    data = _Epochs(groups, real, work, settings.size, seed)
    model = ViewNet().to(torch_device)
    losses = _fit(model, data, settings, torch_device)
    config = {"architecture": ARCHITECTURE, "size": settings.size, "threshold": 0.5, "seed": seed}
    config["settings"] = asdict(settings)
    checker = ViewChecker(model.eval(), config, torch_device)
    held_out = _held_out_frontals(store_dir, archive["validate"])
    bar, rate = view_bar(checker.p_not_frontal(held_out) if len(held_out) else np.zeros(0), settings)
    config.update(threshold=bar, threshold_rate=rate, threshold_films=len(held_out))
    checker = ViewChecker(model.eval(), config, torch_device)
    metrics = {"final_loss": losses[-1], "losses": losses, "threshold_rate": rate, "threshold_films": len(held_out)}
    metrics.update(validate(checker, films["validate"], store_dir, archive["validate"]))
    write_checkpoint(checkpoint_path, payload(model, config, epoch=settings.epochs, metrics=metrics))
    if metrics_path is not None:
        io.write_json(metrics_path, metrics)
    log.info("view check validation: %s", {k: v for k, v in metrics.items() if k != "losses"})
    return metrics


def _held_out_frontals(store_dir, archive_validate: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The real frontal films training never saw: the store's validate split and the archive sample's held-out
    PA/AP films (phantoms are too easy to set a bar on)."""
    store = store_frontals(store_dir, "validate")
    return [*(store if store is not None else []), *archive_validate.get("archive_frontal", [])]


def view_bar(p_frontal: np.ndarray, settings: ViewCheckSettings) -> tuple[float, float | None]:
    """(bar, the frontal flag rate it was picked for; None for a fixed bar). Calibrated: the lowest bar that flags
    at most `frontal_flag_rate` of these frontal films, never above 0.5 (the classifier's own decision point: a
    bar above it would let through films the network calls lateral, so films above 0.5 stay flagged as before). Why not a fixed 0.5: real side views the
    network was unsure of (0.1-0.43) passed while nearly every real frontal film scored far lower. With fewer
    than 1 / rate films no film may be flagged, the share is unmeasurable, and the bar stays 0.5 (logged)."""
    if settings.threshold != "calibrated":
        return float(settings.threshold), None
    rate, p = float(settings.frontal_flag_rate), np.sort(np.asarray(p_frontal, np.float32))[::-1]
    allowed = int(np.floor(rate * len(p)))
    if allowed < 1:
        log.warning(
            "view check: %d held-out frontal films, fewer than 1 / frontal_flag_rate (%g): bar 0.5",
            len(p),
            rate,
        )
        return 0.5, None
    # the next float32 above the (allowed+1)-th highest: P(not frontal) is float32, compared as float32
    bar = min(0.5, float(np.nextafter(p[allowed], np.float32(1.0))))
    log.info("view check: bar %.4g flags %d of %d held-out frontal films (rate %g)", bar, allowed, len(p), rate)
    return bar, rate


def _log_archive(films: dict[str, np.ndarray], wanted: int) -> None:
    n_side, n_frontal = len(films["archive_lateral"]), len(films["archive_frontal"])
    if not n_side and wanted:
        log.warning("view check: no archive side view to train on: non-frontal films are phantoms only")
    log.info("view check: training on %d archive side views and %d archive frontal films", n_side, n_frontal)


def validate(checker: ViewChecker, phantoms: dict[str, np.ndarray], store_dir=None, archive=None) -> dict:
    """Share flagged per group on phantoms of seeds never trained on, on the store's validate split (real
    frontal films on a cluster) and on the archive sample's held-out subjects (real side views and frontal
    films): what the targets (>= 95 % of non-frontal, <= 2 % of frontal) read. `flagged_not_frontal` is
    over the phantom negatives; `flagged_archive_lateral` is the real-film number."""
    groups = dict(phantoms)
    store = store_frontals(store_dir, "validate")
    if store is not None:
        groups["store"] = np.asarray(store)
    groups.update({name: ims for name, ims in (archive or {}).items() if len(ims)})
    flagged = {f"flagged_{name}": float(checker.flag(ims).mean()) for name, ims in groups.items()}
    counts = {f"n_{name}": len(ims) for name, ims in groups.items()}
    neg = [checker.flag(groups[n]) for n in NEGATIVE_GROUPS if n in groups]
    flagged["flagged_not_frontal"] = float(np.concatenate(neg).mean())
    return {**flagged, **counts, "threshold": checker.threshold}

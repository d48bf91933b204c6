"""The view check: is an image labelled PA/AP really a frontal chest film? (QC flag `not_frontal`).

MIMIC metadata sometimes calls a lateral film, a CT slice or an abdomen film frontal; segmenting those gives
garbage masks that pass shape rules by chance. A small CNN (about 50k weights) on a 64x64 gray thumbnail
decides from the global layout (two lung fields either side of the spine) rather than texture:

* negatives: phantom lateral and CT renders, and lung-free crops of phantom frontals (abdomen-like films);
* positives: phantom frontals AND the training store's train split (real Shenzhen/Montgomery/V7 films on a
  cluster), so "phantom vs real" is no shortcut; strong augmentation (exposure, blur, noise, affine, crops)
  hides the rest of the texture;
* real archive films (rule view_samples, `cxlseg.qc.view_samples`): MIMIC side views (LATERAL/LL) as
  negatives and as many PA/AP films as positives, so the flag learns what a REAL lateral looks like; their
  subjects are split so the validation numbers are on people never trained on.

`train_view_check` writes a self-describing checkpoint (cxlseg checkpoint format, loads with
weights_only=True); `ViewChecker.from_checkpoint(path).p_not_frontal(images)` scores uint8 gray images of
any size.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from cxlseg import io
from cxlseg.config import RuleSettings, build_settings
from cxlseg.device import resolve_device, seed_everything
from cxlseg.mimic import LATERAL_VIEWS
from cxlseg.preprocess import clahe, decode_for_inference
from cxlseg.training.checkpoint import payload, read_checkpoint, weights_digest, write_checkpoint

log = logging.getLogger(__name__)

ARCHITECTURE = "view_cnn"
# Phantom groups that are not frontal films (target 1); "frontal" and "opaque" phantoms are (target 0).
NEGATIVE_GROUPS = ("lateral", "ct", "abdomen")


@dataclass(frozen=True)
class ViewCheckSettings(RuleSettings):
    """Rule train_view_check: the config's ``view_check`` section and the run's seed (defaults: the schema)."""

    NOT_OUTCOME = frozenset({"enabled", "archive_samples"})  # whether it runs; view_samples' key

    enabled: bool
    size: int
    samples_per_view: int
    validate_per_view: int
    archive_samples: int
    abdomen_negatives: bool
    epochs: int
    batch_size: int
    lr: float
    threshold: float
    seed: int

    @classmethod
    def from_config(cls, config: dict, **overrides) -> "ViewCheckSettings":
        return build_settings(cls, config["view_check"], **{"seed": config["seed"], **overrides})


# --------------------------------------------------------------------------- network and input


class ViewNet(nn.Module):
    """Four conv blocks to a 4x4 map, then a linear layer on the flattened map: where things are (one lung
    field or two, spine central or at the side) matters, so no global average pooling."""

    def __init__(self, width: int = 16):
        super().__init__()
        chans = (1, width, 2 * width, 3 * width, 4 * width)
        blocks = []
        for cin, cout in zip(chans, chans[1:]):
            blocks += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            blocks.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(4), nn.Conv2d(chans[-1], 16, 1), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(16 * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def _check_images(images) -> list[np.ndarray]:
    """uint8 gray images as a list of 2D arrays; a clear error for anything else."""
    if isinstance(images, np.ndarray):
        if images.ndim != 3:
            raise ValueError(f"expected gray images as uint8 (N, H, W), got shape {images.shape}")
        images = list(images)
    if len(images) == 0:
        raise ValueError("no images given")
    for i, im in enumerate(images):
        if not isinstance(im, np.ndarray) or im.dtype != np.uint8 or im.ndim != 2:
            what = f"{im.dtype} {im.shape}" if isinstance(im, np.ndarray) else type(im).__name__
            raise ValueError(f"image {i}: expected a uint8 gray (H, W) array, got {what}")
        if min(im.shape) < 8:
            raise ValueError(f"image {i}: too small ({im.shape[1]}x{im.shape[0]})")
    return images


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """The network input of one image: area-resized to size x size, CLAHE (as the segmenter), then
    standardised per image so exposure and detector range do not matter."""
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA) if image.shape != (size, size) else image
    x = clahe(small, 2.0, 8).astype(np.float32)
    return (x - x.mean()) / (x.std() + 1.0)


def to_batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([thumbnail(im, size) for im in images])[:, None])


# --------------------------------------------------------------------------- training data


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


def abdomen_like(rng: np.random.Generator, work: int) -> np.ndarray:
    """A film without lung fields: the part of a phantom frontal below the diaphragm (or above the apices),
    stretched to a square, standing in for abdomen and neck films labelled PA/AP."""
    from cxlseg.phantoms import render_phantom

    side = 2 * work
    ph = render_phantom(rng, side, side, view=str(rng.choice(["PA", "AP"])), text=bool(rng.random() < 0.5))
    rows = np.flatnonzero(ph.outline.any(axis=1))
    top, bottom = (int(rows[0]), int(rows[-1])) if rows.size else (side // 4, 3 * side // 4)
    below = side - bottom > top
    y0, y1 = (bottom + 2, side) if below else (0, max(top - 2, 1))
    if y1 - y0 < side // 8:  # the lungs fill the film: keep the lowest eighth
        y0, y1 = side - side // 8, side
    x0 = int(rng.integers(0, side // 6))
    x1 = side - int(rng.integers(0, side // 6))
    return cv2.resize(ph.image[y0:y1, x0:x1], (work, work), interpolation=cv2.INTER_AREA)


def opaque_frontal(rng: np.random.Generator, work: int) -> np.ndarray:
    """A frontal phantom with several findings at once (white-out lungs, effusions, consolidation), often
    tightly collimated: sick frontal films must not read as "no lung fields"."""
    from cxlseg.phantoms import FINDINGS, render_phantom

    long_side = int(work * rng.uniform(1.0, 2.0))
    height, width = long_side, max(32, int(long_side / rng.uniform(0.8, 1.25)))
    findings = {name: bool(rng.random() < 0.6) for name in FINDINGS}
    image = render_phantom(rng, height, width, findings=findings, view=str(rng.choice(["PA", "AP"]))).image
    return cv2.resize(image, (work, work), interpolation=cv2.INTER_AREA)


def phantom_views(n_per_view: int, work: int, seed: int, abdomen: bool = True) -> dict[str, np.ndarray]:
    """Phantom films per group (frontal, lateral, ct and, optionally, abdomen), uint8 work x work.
    Rendered at `work` (twice the network size) and area-resized later, as a large film is."""
    from cxlseg.phantoms import render_view_samples

    images, labels = render_view_samples(n_per_view, work, seed)
    labels = np.asarray(labels)
    groups = {name: images[labels == name] for name in ("frontal", "lateral", "ct")}
    groups["opaque"] = np.stack([opaque_frontal(np.random.default_rng([seed, 98, i]), work) for i in range(n_per_view)])
    if abdomen:
        rngs = (np.random.default_rng([seed, 99, i]) for i in range(n_per_view))
        groups["abdomen"] = np.stack([abdomen_like(rng, work) for rng in rngs])
    return groups


def store_frontals(store_dir: Path | str | None, split: str) -> np.ndarray | None:
    """The training store's images of one split (frontal films by construction), or None without a store."""
    if store_dir is None:
        return None
    from cxlseg.training.dataset import load_split

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
    *,
    seed: int,
    store_dir: Path | str | None = None,
    view_samples: Path | str | None = None,
    mimic_root: Path | str | None = None,
    metrics_path: Path | str | None = None,
    device: str = "cpu",
) -> dict:
    """Train the view check on phantom views (+ the store's train split as frontals, + the view sample's train
    subjects from the archive under `mimic_root`), validate it on phantoms of other seeds, the store's
    validate split and the held-out archive subjects; write the checkpoint and the metrics JSON."""
    seed_everything(seed)
    work, torch_device = 2 * settings.size, resolve_device(device)
    groups = phantom_views(settings.samples_per_view, work, seed, settings.abdomen_negatives)
    archive = {split: archive_films(view_samples, mimic_root, split, work) for split in ("train", "validate")}
    _log_archive(archive["train"], settings.archive_samples if view_samples is not None else 0)
    real = {"store": store_frontals(store_dir, "train"), **archive["train"]}
    data = _Epochs(groups, real, work, settings.size, seed)
    model = ViewNet().to(torch_device)
    losses = _fit(model, data, settings, torch_device)
    config = {"architecture": ARCHITECTURE, "size": settings.size, "threshold": settings.threshold, "seed": seed}
    config["settings"] = asdict(settings)
    checker = ViewChecker(model.eval(), config, torch_device)
    metrics = {"final_loss": losses[-1], "losses": losses}
    metrics.update(validate(checker, settings, seed, store_dir, archive["validate"]))
    write_checkpoint(checkpoint_path, payload(model, config, epoch=settings.epochs, metrics=metrics))
    if metrics_path is not None:
        io.write_json(metrics_path, metrics)
    log.info("view check validation: %s", {k: v for k, v in metrics.items() if k != "losses"})
    return metrics


def _log_archive(films: dict[str, np.ndarray], wanted: int) -> None:
    n_side, n_frontal = len(films["archive_lateral"]), len(films["archive_frontal"])
    if not n_side and wanted:
        log.warning("view check: no archive side view to train on: non-frontal films are phantoms only")
    log.info("view check: training on %d archive side views and %d archive frontal films", n_side, n_frontal)


def validate(checker: "ViewChecker", settings: ViewCheckSettings, seed: int, store_dir=None, archive=None) -> dict:
    """Share flagged per group on phantoms of a seed never trained on, on the store's validate split (real
    frontal films on a cluster) and on the archive sample's held-out subjects (real side views and frontal
    films): what the targets (>= 95 % of non-frontal, <= 2 % of frontal) read. `flagged_not_frontal` is
    over the phantom negatives; `flagged_archive_lateral` is the real-film number."""
    groups = phantom_views(settings.validate_per_view, 2 * settings.size, seed + 1_000_003, settings.abdomen_negatives)
    store = store_frontals(store_dir, "validate")
    if store is not None:
        groups["store"] = np.asarray(store)
    groups.update({name: ims for name, ims in (archive or {}).items() if len(ims)})
    flagged = {f"flagged_{name}": float(checker.flag(ims).mean()) for name, ims in groups.items()}
    counts = {f"n_{name}": len(ims) for name, ims in groups.items()}
    neg = [checker.flag(groups[n]) for n in NEGATIVE_GROUPS if n in groups]
    flagged["flagged_not_frontal"] = float(np.concatenate(neg).mean())
    return {**flagged, **counts, "threshold": checker.threshold}


# --------------------------------------------------------------------------- inference


class ViewChecker:
    """A trained view check: P(not a frontal chest film) for uint8 gray images of any size."""

    def __init__(self, model: nn.Module, config: dict, device: torch.device | str = "cpu", model_id: str = ""):
        self.model, self.config, self.device = model.eval(), dict(config), torch.device(device)
        self.size, self.threshold = int(config["size"]), float(config["threshold"])
        self.model_id = model_id or f"{ARCHITECTURE}-{weights_digest(model)}"

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: torch.device | str = "cpu") -> "ViewChecker":
        checkpoint = read_checkpoint(path)
        if checkpoint["config"].get("architecture") != ARCHITECTURE:
            raise ValueError(
                f"{path}: not a view-check checkpoint (architecture {checkpoint['config'].get('architecture')!r})"
            )
        model = ViewNet()
        model.load_state_dict(checkpoint["state_dict"])
        return cls(model.to(device), checkpoint["config"], device)

    @torch.inference_mode()
    def p_not_frontal(self, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """float32 (N,) in [0, 1]; `images` is uint8 (N, H, W) or a list of uint8 (H, W) of differing sizes."""
        images = _check_images(images)
        out = []
        for start in range(0, len(images), batch_size):
            x = to_batch(images[start : start + batch_size], self.size).to(self.device)
            out.append(torch.sigmoid(self.model(x)).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def flag(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """bool (N,): the `not_frontal` QC flag at the checkpoint's threshold."""
        return self.p_not_frontal(images) >= self.threshold

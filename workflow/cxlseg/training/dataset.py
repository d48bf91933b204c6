"""What the trainer reads: a split of the training store as model tensors, with seeded on-the-fly augmentation.

The store (written by `augment`) holds images resized to preprocess.size, not CLAHE'd. Here each image is
resized to the network size, augmented, then CLAHE'd with the same `InputSpec.prepare` rules the
predictor uses, so training and inference see identical inputs.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from cxlseg.preprocess import clahe, resize, resize_mask, to_model_input
from cxlseg.training.store import load_split

# Ranges per preset: "light" suits the big augmented training store; "strong" is for small real sets
# (tuned on V7, see tests/bench/bench_real_v7.py), where variety matters more than fidelity; "hard" adds the
# trouble real archives hold (tests/bench/bench_hard_films.py): scans of prints, cut-off lungs, tilted
# patients, exposure far off, motion, heavy noise, shields over a lung.
_STRONG = dict(
    scale=(0.8, 1.2),
    translate=(-0.08, 0.08),
    rotate=(-12, 12),
    shear=(-5, 5),
    affine_p=0.8,
    exposure=0.25,
    exposure_p=0.7,
    gamma=(70, 150),
    gamma_p=0.5,
    distort_p=0.3,
    degrade_p=0.3,
)
AUGMENT_RANGES = {
    "light": dict(
        scale=(0.9, 1.1),
        translate=(-0.05, 0.05),
        rotate=(-10, 10),
        shear=(0, 0),
        affine_p=0.7,
        exposure=0.15,
        exposure_p=0.5,
        gamma=(80, 120),
        gamma_p=0.3,
        distort_p=0.0,
        degrade_p=0.0,
    ),
    "strong": _STRONG,
    "hard": {**_STRONG, "rotate": (-20, 20), "gamma": (40, 250), "exposure": 0.35},
}


def _hard_films(size: int) -> tuple[A.BasicTransform, list[A.BasicTransform]]:
    """The archive's trouble, each now and then: a lung cut off by the film edge (a crop stretched back to the
    network's `size`, before the pose changes), then a scan of a print (low resolution, heavy JPEG), motion, heavy
    noise, a dense object over the chest."""
    cutoff = A.RandomResizedCrop(size=(size, size), scale=(0.55, 1.0), ratio=(0.7, 1.4), p=0.2)
    return cutoff, [
        A.Sequential(
            [A.Downscale(scale_range=(0.15, 0.5), p=1), A.ImageCompression(quality_range=(8, 40), p=1)], p=0.2
        ),
        A.MotionBlur(blur_limit=(5, 13), p=0.1),
        A.GaussNoise(std_range=(0.03, 0.12), p=0.15),
        A.CoarseDropout(
            num_holes_range=(1, 2), hole_height_range=(0.08, 0.3), hole_width_range=(0.08, 0.2), fill=235, p=0.15
        ),
    ]


def online_augmentation(preset: str = "light", size: int | None = None) -> A.Compose:
    """Label-preserving changes a radiograph plausibly has: mirroring, patient pose, exposure, detector blur/noise;
    and with "hard", the films of `_hard_films` (`size`: the network's, which the cut-off crop returns to)."""
    if preset not in AUGMENT_RANGES:
        raise ValueError(f"augment_preset {preset!r} not in {tuple(AUGMENT_RANGES)}")
    r = AUGMENT_RANGES[preset]
    border = dict(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)
    cutoff, films = [], []
    if preset == "hard":
        if size is None:
            raise ValueError("the hard augmentation needs the network size")
        first, films = _hard_films(size)
        cutoff = [first]
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            *cutoff,
            A.Affine(
                scale=r["scale"],
                translate_percent=r["translate"],
                rotate=r["rotate"],
                shear=r["shear"],
                p=r["affine_p"],
                **border,
            ),
            A.GridDistortion(num_steps=5, distort_limit=0.2, p=r["distort_p"], **border),
            A.RandomBrightnessContrast(brightness_limit=r["exposure"], contrast_limit=r["exposure"], p=r["exposure_p"]),
            A.RandomGamma(gamma_limit=r["gamma"], p=r["gamma_p"]),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.01, 0.03))], p=r["degrade_p"]),
            *films,
        ]
    )


class StoreDataset(Dataset):
    """A store split as model tensors; CLAHE runs here, after augmentation, exactly as at inference."""

    def __init__(self, store, split: str, cfg, augment: bool = False):
        self.images, self.masks, self.index = load_split(store, split)
        self.cfg = cfg
        self.transform = online_augmentation(cfg.augment_preset, cfg.size) if augment else None
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = np.array(self.images[i]), (np.array(self.masks[i]) > 0).astype(np.uint8)
        if image.shape != (self.cfg.size, self.cfg.size):  # resize first, as inference does (and it is cheaper)
            how = self.cfg.interpolation
            image, mask = resize(image, self.cfg.size, how), resize_mask(mask, self.cfg.size, how)
        if self.transform is not None:
            # Seeded by (seed, epoch, item): identical after a resume and independent of worker count.
            seed = np.random.SeedSequence([self.cfg.seed, self.epoch, int(i)]).generate_state(1)[0]
            self.transform.set_random_seed(int(seed))
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        image = clahe(image, self.cfg.clahe_clip, self.cfg.clahe_tiles, self.cfg.clahe_space)
        x = torch.from_numpy(to_model_input(image[None], self.cfg.in_channels)[0])
        return x, torch.from_numpy(mask[None].astype(np.float32))

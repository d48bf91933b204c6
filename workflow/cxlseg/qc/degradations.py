"""Seeded degradations of a film with its truth mask moved to match: the trouble real archives hold, made where
the truth is known, so QC can be calibrated on bad masks and segmentation measured on hard films.

Every kind takes a uint8 gray film and its 0/1 mask at any size, a numpy Generator and a severity in [0, 1], and
returns the degraded film and the mask that is now true. Sizes are fractions of the film, so a 224 px store image
and a full-size radiograph get the same trouble.

- detector and exposure: blur, motion, noise, exposure, downscale (low resolution), lowres_jpeg (a scan of a
  print: low resolution and heavy JPEG);
- what lies over the lungs: whiteout (consolidation, effusion), occlusion (random patches), shield (a lead shield
  or a device, dense and sharp-edged, over part of a lung);
- geometry (mask moved): pose (rotation, scale, shift), tilt (a rotated patient), cutoff (part of a lung outside the
  film), border (a smaller film on a bright light box);
- display: inverted (MONOCHROME1 shown as MONOCHROME2).
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

_FILL0 = dict(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)


def _album(transform: A.BasicTransform, image, mask, rng):
    out = A.Compose([transform], seed=int(rng.integers(2**31)))(image=image, mask=mask)
    return out["image"], out["mask"]


def blur(image, mask, rng, s):
    return _album(A.GaussianBlur(sigma_limit=(1 + 5 * s, 1 + 6 * s), blur_limit=0, p=1), image, mask, rng)


def motion(image, mask, rng, s):
    k = 2 * int(round((0.02 + 0.05 * s) * max(image.shape) / 2)) + 1
    return _album(A.MotionBlur(blur_limit=(max(3, k), max(3, k)), p=1), image, mask, rng)


def noise(image, mask, rng, s):
    return _album(A.GaussNoise(std_range=(0.05 + 0.2 * s, 0.06 + 0.25 * s), p=1), image, mask, rng)


def exposure(image, mask, rng, s):
    """Far over- or under-exposed: a steep gamma one way or the other, and a flat contrast."""
    gamma = (1.8 + 2.0 * s) ** (1 if rng.random() < 0.5 else -1)
    x = (image.astype(np.float32) / 255.0) ** gamma
    x = 0.5 + (x - 0.5) * (1.0 - 0.5 * s * rng.random())
    return np.clip(x * 255.0, 0, 255).astype(np.uint8), mask


def downscale(image, mask, rng, s):
    return _album(A.Downscale(scale_range=(0.08 + 0.1 * (1 - s), 0.15 + 0.1 * (1 - s)), p=1), image, mask, rng)


def lowres_jpeg(image, mask, rng, s):
    """A scan of a print: a small image with heavy JPEG, enlarged again."""
    h, w = image.shape
    f = 0.12 + 0.18 * (1 - s) * rng.random()
    small = cv2.resize(image, (max(16, int(w * f)), max(16, int(h * f))), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, int(30 - 22 * s)])
    small = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else small
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), mask


def whiteout(image, mask, rng, s):
    """A smooth dense opacity over part of the lungs: the commonest reason a real lung mask goes wrong."""
    h, w = image.shape
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return image, mask
    k = rng.integers(len(rows))
    radius = (0.1 + 0.25 * s) * min(h, w)
    yy, xx = np.mgrid[:h, :w]
    blob = np.exp(-(((yy - rows[k]) ** 2 + (xx - cols[k]) ** 2) / (2 * radius**2)))
    dense = image.astype(np.float32) + blob * (255 - image.astype(np.float32)) * (0.5 + 0.5 * s)
    return np.clip(dense, 0, 255).astype(np.uint8), mask


def occlusion(image, mask, rng, s):
    transform = A.CoarseDropout(
        num_holes_range=(1, 1 + int(3 * s)),
        hole_height_range=(0.1, 0.1 + 0.25 * s),
        hole_width_range=(0.1, 0.1 + 0.25 * s),
        fill="random_uniform",
        p=1,
    )
    return _album(transform, image, mask, rng)


def shield(image, mask, rng, s):
    """A dense, sharp-edged object (lead shield, pacemaker, tube bundle) over part of one lung; the lung stays."""
    h, w = image.shape
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return image, mask
    k = rng.integers(len(rows))
    bh, bw = int(h * (0.12 + 0.2 * s)), int(w * (0.1 + 0.15 * s))
    top, left = int(np.clip(rows[k] - bh // 2, 0, h - 1)), int(np.clip(cols[k] - bw // 2, 0, w - 1))
    out = image.copy()
    region = out[top : top + bh, left : left + bw]
    out[top : top + bh, left : left + bw] = np.clip(235 + rng.normal(0, 4, region.shape), 0, 255).astype(np.uint8)
    return out, mask


def pose(image, mask, rng, s):
    transform = A.Affine(
        rotate=(-10 - 25 * s, 10 + 25 * s), scale=(0.7, 1.3), translate_percent=(-0.15, 0.15), p=1, **_FILL0
    )
    return _album(transform, image, mask, rng)


def tilt(image, mask, rng, s):
    """A patient rotated in the film plane by 10-25 degrees."""
    angle = (10 + 15 * s) * (1 if rng.random() < 0.5 else -1)
    return _album(A.Affine(rotate=(angle, angle), p=1, **_FILL0), image, mask, rng)


def cutoff(image, mask, rng, s):
    """The film misses part of the chest: a window that cuts 15-40 % of the lung height or width off one side,
    stretched back to the film's size as a detector would have recorded it."""
    h, w = image.shape
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return image, mask
    cut = 0.15 + 0.25 * s
    top, bottom, left, right = 0, h, 0, w
    side = rng.integers(4)
    if side == 0:
        top = int(rows.min() + cut * (rows.max() - rows.min()))
    elif side == 1:
        bottom = int(rows.max() - cut * (rows.max() - rows.min()))
    elif side == 2:
        left = int(cols.min() + cut * (cols.max() - cols.min()))
    else:
        right = int(cols.max() - cut * (cols.max() - cols.min()))
    film = cv2.resize(image[top:bottom, left:right], (w, h), interpolation=cv2.INTER_LINEAR)
    truth = cv2.resize(mask[top:bottom, left:right].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return film, (truth >= 0.5).astype(np.uint8)


def border(image, mask, rng, s):
    """The film photographed on a light box: shrunk to 55-85 % per side, placed off-centre, on bright glass."""
    h, w = image.shape
    scale = 0.85 - 0.3 * s * rng.uniform(0.5, 1.0)
    fh, fw = int(h * scale * rng.uniform(0.95, 1.0)), int(w * scale * rng.uniform(0.95, 1.0))
    top, left = int(rng.integers(0, h - fh + 1)), int(rng.integers(0, w - fw + 1))
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    glass = rng.uniform(228, 250) + rng.uniform(-6, 6) * (xx / w - 0.5) + rng.uniform(-6, 6) * (yy / h - 0.5)
    out = np.clip(glass + rng.normal(0, 1.5, (h, w)), 0, 255).astype(np.uint8)
    out[top : top + fh, left : left + fw] = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA)
    truth = np.zeros_like(mask)
    small = cv2.resize(mask.astype(np.float32), (fw, fh), interpolation=cv2.INTER_LINEAR) >= 0.5
    truth[top : top + fh, left : left + fw] = small
    return out, truth


def inverted(image, mask, rng, s):
    return (255 - image).astype(np.uint8), mask


DEGRADATIONS = {
    f.__name__: f
    for f in (
        blur, motion, noise, exposure, downscale, lowres_jpeg, whiteout, occlusion, shield,
        pose, tilt, cutoff, border, inverted,
    )
}  # fmt: skip


def degrade(
    image: np.ndarray, mask: np.ndarray, name: str, severity: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A degraded copy of a film and the mask that is true for it; the same (name, severity, seed), the same copy."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; known: {', '.join(DEGRADATIONS)}")
    image = np.ascontiguousarray(image, dtype=np.uint8)
    mask = (np.asarray(mask) > 0).astype(np.uint8)
    return DEGRADATIONS[name](image, mask, np.random.default_rng(seed), float(severity))

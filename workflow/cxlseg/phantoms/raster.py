"""Drawing primitives shared by every part of a phantom: the thorax frame, fills, strokes, blurs, noise fields."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Frame:
    """Maps thorax coordinates (u across, v down, both ~[0, 1]) to pixels of one raster."""

    x0: float
    y0: float
    bw: float
    bh: float
    mid: float  # midline in u
    tilt: float = 0.0  # patient rotation in the film plane, radians

    def px(self, side: int, dx: np.ndarray, v: np.ndarray) -> np.ndarray:
        """side -1 = patient's right (image left), +1 = patient's left (image right)."""
        dx, v = np.broadcast_arrays(np.asarray(dx, np.float64), np.asarray(v, np.float64))
        x = (side * dx) * self.bw
        y = (v - 0.5) * self.bh
        c, s = np.cos(self.tilt), np.sin(self.tilt)
        cx, cy = self.x0 + self.mid * self.bw, self.y0 + 0.5 * self.bh
        return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=-1)

    def resized(self, kx: float, ky: float) -> "Frame":
        return Frame(self.x0 * kx, self.y0 * ky, self.bw * kx, self.bh * ky, self.mid, self.tilt)


def wobble(rng: np.random.Generator, t: np.ndarray, amp: float) -> np.ndarray:
    """Smooth low-frequency deviation so no two outlines are the same curve."""
    out = np.zeros_like(t)
    for freq in (1.0, 2.0, 3.0):
        out += rng.normal(0, amp / freq) * np.sin(np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return out


def fill(shape: tuple[int, int], polys: list[np.ndarray]) -> np.ndarray:
    """0/1 mask of polygons, filled at 1/16-pixel precision so masks follow the outlines exactly."""
    mask = np.zeros(shape, np.uint8)
    pts = [np.round(p * 16).astype(np.int32) for p in polys]
    cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=4)
    return mask


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide kernels run on a downsampled copy (same look, a fraction of the time)."""
    if sigma <= 0.3:
        return img
    step = int(sigma // 3)
    if step < 2:
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // step), max(1, h // step)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / step, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Zero-mean unit-ish random field with features about `cell` pixels across (cheap: upsampled)."""
    h, w = shape
    small = rng.standard_normal((max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def stroke(layer: np.ndarray, pts: np.ndarray, thickness: float, value: int = 255) -> None:
    """Anti-aliased polyline into an 8-bit layer (cv2 only anti-aliases 8-bit rasters)."""
    cv2.polylines(
        layer,
        [np.round(pts * 16).astype(np.int32)],
        False,
        value,
        thickness=max(1, int(round(thickness))),
        lineType=cv2.LINE_AA,
        shift=4,
    )

"""Findings drawn *inside the lung outline only*, so turning one on changes no pixel outside the lungs.

Each finding returns the density it adds and where it went ("right lower"...),
which the demo's report text repeats; a pleural effusion is geometry only and
becomes fluid (not lung) in :func:`pleural_fluid`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cxlseg.phantoms.raster import blur, smooth_field

FINDINGS = ("Pneumonia", "Lung Lesion", "Atelectasis", "Pleural Effusion", "Tuberculosis", "COVID-19")


def _lung_zone(outline: np.ndarray, zone: str) -> tuple[float, float]:
    """(y_min, y_max) pixel rows of a lung's upper, mid or lower third."""
    ys = outline[:, 1]
    top, bottom = ys.min(), ys.max()
    k = {"upper": 0, "mid": 1, "lower": 2}[zone]
    return top + (bottom - top) * k / 3, top + (bottom - top) * (k + 1) / 3


def _point_in(rng: np.random.Generator, mask: np.ndarray, rows: tuple[float, float]) -> np.ndarray:
    ys, xs = np.nonzero(mask[int(rows[0]) : max(int(rows[0]) + 1, int(rows[1]))])
    if ys.size == 0:
        ys, xs = np.nonzero(mask)
        return np.array([xs[len(xs) // 2], ys[len(ys) // 2]], np.float64)
    i = int(rng.integers(ys.size))
    return np.array([xs[i], ys[i] + int(rows[0])], np.float64)


def _patches(
    rng: np.random.Generator,
    layer: np.ndarray,
    lung_mask: np.ndarray,
    rows: tuple[float, float],
    unit: float,
    n: int,
    size: float,
    value: int = 255,
) -> None:
    """n random ellipses centred inside the lung within `rows` (the bricks of patchy opacities)."""
    for _ in range(n):
        c = _point_in(rng, lung_mask, rows)
        axes = (max(1, int(unit * size * rng.uniform(0.5, 1.2))), max(1, int(unit * size * rng.uniform(0.4, 1.0))))
        cv2.ellipse(layer, tuple(c.astype(int)), axes, rng.uniform(0, 180), 0, 360, value, -1, cv2.LINE_AA)


@dataclass
class LungMap:
    """Lung geometry on the raster findings are drawn on."""

    sides: dict[str, np.ndarray]  # "right"/"left" -> 0/1 mask
    outlines: dict[str, np.ndarray]  # "right"/"left" -> outline polygon (x, y)
    unit: float  # thorax width in pixels

    @property
    def shape(self) -> tuple[int, int]:
        return self.sides["right"].shape

    def layer(self) -> np.ndarray:
        return np.zeros(self.shape, np.uint8)


Drawn = tuple[np.ndarray | None, str, list[tuple[str, float, float]]]  # density, site, effusions


def _side(rng: np.random.Generator) -> str:
    return ("right", "left")[int(rng.integers(2))]


def _soft(layer: np.ndarray, sigma: float) -> np.ndarray:
    return blur(layer.astype(np.float32) / 255.0, sigma)


def _pneumonia(rng: np.random.Generator, m: LungMap) -> Drawn:
    """Patchy airspace opacity in one zone, mostly the lower lobe."""
    side, zone = _side(rng), ("lower", "mid", "upper")[int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
    layer = m.layer()
    _patches(rng, layer, m.sides[side], _lung_zone(m.outlines[side], zone), m.unit, int(rng.integers(7, 13)), 0.055)
    patchy = _soft(layer, 0.01 * m.unit)
    patchy *= np.clip(0.6 + 0.5 * smooth_field(rng, m.shape, max(3, int(0.02 * m.unit))), 0, 1.2)
    return patchy * rng.uniform(0.30, 0.45), f"{side} {zone}", []


def _covid(rng: np.random.Generator, m: LungMap) -> Drawn:
    """Bilateral peripheral, lower-predominant ground-glass opacity."""
    layer = m.layer()
    for side in ("right", "left"):
        lo, hi = _lung_zone(m.outlines[side], "mid")[0], _lung_zone(m.outlines[side], "lower")[1]
        periphery = m.sides[side].copy()
        core = cv2.erode(periphery, np.ones((3, 3), np.uint8), iterations=max(1, int(0.06 * m.unit)))
        periphery[core > 0] = 0
        _patches(rng, layer, periphery, (lo, hi), m.unit, int(rng.integers(5, 10)), 0.05, 200)
    ggo = _soft(layer, 0.02 * m.unit)
    ggo *= np.clip(0.7 + 0.4 * smooth_field(rng, m.shape, max(3, int(0.03 * m.unit))), 0, 1.2)
    return ggo * 0.45, "bilateral peripheral", []


def _tuberculosis(rng: np.random.Generator, m: LungMap) -> Drawn:
    """Upper-lobe nodular infiltrates, sometimes cavitating, one or both sides."""
    layer, cavity = m.layer(), m.layer()
    chosen = ["right", "left"] if rng.random() < 0.4 else [_side(rng)]
    for side in chosen:
        rows = _lung_zone(m.outlines[side], "upper")
        _patches(rng, layer, m.sides[side], rows, m.unit, int(rng.integers(5, 10)), 0.035)
        if rng.random() < 0.5:
            c = tuple(_point_in(rng, m.sides[side], rows).astype(int))
            cv2.circle(cavity, c, max(2, int(0.02 * m.unit)), 255, -1, cv2.LINE_AA)
            cv2.circle(layer, c, max(3, int(0.03 * m.unit)), 255, -1, cv2.LINE_AA)
    tb = _soft(layer, 0.008 * m.unit) * 0.4 - _soft(cavity, 0.004 * m.unit) * 0.45
    tb *= np.clip(0.7 + 0.4 * smooth_field(rng, m.shape, max(3, int(0.015 * m.unit))), 0, 1.3)
    return tb, "bilateral upper" if len(chosen) == 2 else f"{chosen[0]} upper", []


def _lesion(rng: np.random.Generator, m: LungMap) -> Drawn:
    """A solitary nodule, kept off the lung edge."""
    side, zone = _side(rng), ("upper", "mid", "lower")[int(rng.integers(3))]
    inner = cv2.erode(m.sides[side], np.ones((3, 3), np.uint8), iterations=max(1, int(0.05 * m.unit)))
    c = _point_in(rng, inner if inner.any() else m.sides[side], _lung_zone(m.outlines[side], zone))
    layer = m.layer()
    cv2.circle(layer, tuple(c.astype(int)), max(2, int(m.unit * rng.uniform(0.018, 0.035))), 255, -1, cv2.LINE_AA)
    return _soft(layer, 0.003 * m.unit) * rng.uniform(0.35, 0.5), f"{side} {zone}", []


def _atelectasis(rng: np.random.Generator, m: LungMap) -> Drawn:
    """Band-like (plate) collapse near a lung base."""
    side = _side(rng)
    lo, hi = _lung_zone(m.outlines[side], "lower")
    c = _point_in(rng, m.sides[side], (lo, lo + (hi - lo) * 0.6))
    angle = np.radians(rng.uniform(-25, 25))
    d = np.array([np.cos(angle), np.sin(angle)]) * m.unit * rng.uniform(0.08, 0.15)
    layer = m.layer()
    cv2.line(
        layer,
        tuple(np.round((c - d) * 16).astype(int)),
        tuple(np.round((c + d) * 16).astype(int)),
        255,
        max(2, int(m.unit * rng.uniform(0.012, 0.022))),
        cv2.LINE_AA,
        4,
    )
    return _soft(layer, 0.004 * m.unit) * rng.uniform(0.35, 0.5), f"{side} basilar", []


def _effusion(rng: np.random.Generator, m: LungMap) -> Drawn:
    """Only the geometry: the fluid is rasterised at full resolution by `pleural_fluid`."""
    chosen = ["right", "left"] if rng.random() < 0.3 else [_side(rng)]
    geometry = [(side, rng.uniform(0.12, 0.28), rng.uniform(0.1, 0.18)) for side in chosen]
    return None, "bilateral" if len(chosen) == 2 else chosen[0], geometry


_DRAW = {
    "Pneumonia": _pneumonia,
    "Lung Lesion": _lesion,
    "Atelectasis": _atelectasis,
    "Pleural Effusion": _effusion,
    "Tuberculosis": _tuberculosis,
    "COVID-19": _covid,
}


def draw_findings(
    rng: np.random.Generator,
    findings: dict[str, bool],
    m: LungMap,
) -> tuple[np.ndarray, list[tuple[str, float, float]], dict[str, str]]:
    """Density to add (confined later to the lung outline), effusion geometry, and where each finding went.

    Each finding has its own stream, drawn up front, so where it goes depends
    only on the seed and not on which other findings are present."""
    streams = rng.integers(0, 2**63, len(FINDINGS))
    add = np.zeros(m.shape, np.float32)
    effusions: list[tuple[str, float, float]] = []
    sites: dict[str, str] = {}
    for name, seed in zip(FINDINGS, streams):
        if findings.get(name):
            density, sites[name], geometry = _DRAW[name](np.random.default_rng(int(seed)), m)
            if density is not None:
                add += density
            effusions += geometry
    return add, effusions, sites


def pleural_fluid(
    shape: tuple[int, int],
    sides: dict[str, np.ndarray],
    outlines: dict[str, np.ndarray],
    effusions: list[tuple[str, float, float]],
) -> np.ndarray:
    """Pleural fluid at full resolution: the lung base below a meniscus that climbs the lateral wall."""
    fluid = np.zeros(shape, np.uint8)
    rows = np.arange(shape[0], dtype=np.float32)[:, None]
    cols = np.arange(shape[1], dtype=np.float32)
    for side, depth, rise in effusions:
        pts = outlines[side]
        top, bottom = pts[:, 1].min(), pts[:, 1].max()
        lateral_x, medial_x = pts[:, 0].min(), pts[:, 0].max()
        if side == "left":
            lateral_x, medial_x = medial_x, lateral_x
        reach = np.clip((cols - medial_x) / (lateral_x - medial_x), 0, 1)
        meniscus = bottom - (bottom - top) * (depth + rise * reach**1.6)
        fluid |= ((rows >= meniscus[None, :]) & (sides[side] > 0)).astype(np.uint8)
    return fluid

"""The frontal (PA/AP) chest's anatomy as attenuation: body, lungs, vessels, heart, bones, airways.

Lung outlines are closed polygons in thorax coordinates; the density maps are
drawn on a working raster and scaled up later by :mod:`.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from cxlseg.phantoms.raster import Frame, blur, fill, smooth_field, stroke, wobble


@dataclass
class Lung:
    side: int
    apex_v: float
    apex_dx: float
    lat_dx: float
    cp_dx: float
    cp_v: float
    base_dx: float
    base_v: float
    dome_v: float
    medial_dx: float
    notch: float  # cardiac notch (left lung only)

    N: ClassVar[int] = 48  # points on the lateral wall; the dome is outline[N - 1 : 2N - 1]

    def outline(self, rng: np.random.Generator) -> np.ndarray:
        """Closed outline (dx, v) clockwise: lateral wall, diaphragm dome, medial border."""
        n = self.N
        t = np.linspace(0, 1, n)
        shape_t = np.sqrt(np.sin(np.pi / 2 * t))
        lat_v = self.apex_v + t * (self.cp_v - self.apex_v)
        bulge = np.sin(np.pi * np.clip(t / 0.9, 0, 1)) * 0.5 * max(0.0, self.lat_dx - self.cp_dx)
        lat_dx = self.apex_dx + (self.cp_dx - self.apex_dx) * shape_t + bulge + wobble(rng, t, 0.004)
        s = np.linspace(0, 1, n)[1:]
        dia_dx = self.cp_dx + (self.base_dx - self.cp_dx) * s
        dome = np.sin(np.pi * s) ** 1.3 * (min(self.cp_v, self.base_v) - self.dome_v)
        dia_v = self.cp_v + (self.base_v - self.cp_v) * s**0.8 - dome
        m = np.linspace(1, 0, n)[1:-1]
        med_v = self.apex_v + m * (self.base_v - self.apex_v)
        med_dx = self.apex_dx - (self.apex_dx - self.medial_dx) * np.sqrt(np.sin(np.pi / 2 * m))
        med_dx += self.notch * np.clip((m - 0.45) / 0.4, 0, 1) ** 1.5 + wobble(rng, m, 0.003)
        dx = np.concatenate([lat_dx, dia_dx, med_dx])
        v = np.concatenate([lat_v, dia_v, med_v])
        return np.stack([dx, v], axis=1)


def sample_lungs(rng: np.random.Generator) -> tuple[Lung, Lung]:
    """Right and left lung of one patient: shared apex and costophrenic heights, the left lower with a cardiac notch."""
    apex_v = rng.uniform(0.05, 0.11)
    lat = rng.uniform(0.36, 0.43)
    cp_v = rng.uniform(0.78, 0.88)
    lungs = []
    for side in (-1, 1):
        left = side == 1
        lung_cp_v = cp_v + (rng.uniform(0.0, 0.04) if left else 0.0)
        cp_dx = lat - rng.uniform(0.0, 0.03) + rng.normal(0, 0.008)
        base_dx = rng.uniform(0.10, 0.15) if left else rng.uniform(0.05, 0.09)
        base_v = lung_cp_v - rng.uniform(0.06, 0.12)
        lungs.append(
            Lung(
                side=side,
                apex_v=apex_v + rng.normal(0, 0.01),
                apex_dx=rng.uniform(0.14, 0.19),
                lat_dx=lat + rng.normal(0, 0.01),
                cp_dx=cp_dx,
                cp_v=lung_cp_v,
                base_dx=base_dx,
                base_v=base_v,
                dome_v=base_v - rng.uniform(0.03, 0.08),
                medial_dx=rng.uniform(0.045, 0.07),
                notch=rng.uniform(0.04, 0.08) if left else 0.0,
            )
        )
    return lungs[0], lungs[1]


def thorax_frame(rng: np.random.Generator, height: int, width: int) -> Frame:
    """Where the thorax sits on the film: size, offset, midline and a slight rotation vary by patient."""
    bw = min(width * 0.96, height * 1.02) * rng.uniform(0.80, 0.94)
    bh = min(height * 0.93, bw * rng.uniform(0.85, 1.02))
    x0 = (width - bw) / 2 + rng.normal(0, 0.02) * width
    y0 = rng.uniform(0.03, 0.10) * height + max(0.0, (height * 0.93 - bh) * rng.uniform(0.0, 0.5))
    return Frame(x0, y0, bw, bh, 0.5 + rng.normal(0, 0.012), float(np.radians(rng.normal(0, 1.5))))


def _body_polygon(rng: np.random.Generator, f: Frame, side: int, arms: bool) -> np.ndarray:
    """One half of the body silhouette (neck, shoulder, chest wall, flank), returned in pixels."""
    neck = rng.uniform(0.08, 0.11)
    shoulder = rng.uniform(0.52, 0.60)
    wall = rng.uniform(0.47, 0.52)
    dx = np.array([neck, neck + 0.01, 0.2, 0.38, shoulder, shoulder + 0.02 * arms, wall + 0.01, wall, wall - 0.02])
    v = np.array([-0.6, -0.12, -0.08, -0.05, 0.02, 0.25, 0.55, 0.9, 1.6])
    if arms:
        dx = np.maximum(dx, [0, 0, 0, 0, 0.6, 0.66, 0.64, 0.62, 0.6])
    t = np.linspace(0, 1, 40)
    knots = np.linspace(0, 1, dx.size)
    return f.px(side, np.interp(t, knots, dx), np.interp(t, knots, v))


def _rib_paths(lung: Lung, f: Frame, n_ribs: int, rng: np.random.Generator) -> tuple[list, list]:
    """Posterior ribs arc out and down from the spine; anterior ribs slope down toward the sternum."""
    posterior, anterior = [], []
    s = np.linspace(0, 1, 30)
    span = (lung.cp_v - lung.apex_v) / (n_ribs - 0.5)
    for k in range(n_ribs):
        v0 = lung.apex_v - 0.03 + k * span * rng.uniform(0.95, 1.05)
        reach = lung.lat_dx + 0.05
        dx = 0.035 + s * reach
        v = v0 - 0.045 * np.sin(np.pi * s * 0.8) + 0.11 * s**3 + 0.01 * k * s
        posterior.append(f.px(lung.side, dx, v))
        a_dx = reach - s * (reach - 0.12)
        a_v = v[-1] - 0.02 + s * (0.10 + 0.01 * k) - 0.02 * np.sin(np.pi * s)
        anterior.append(f.px(lung.side, a_dx, a_v))
    return posterior, anterior


def _vessel_tree(
    rng: np.random.Generator,
    layer: np.ndarray,
    start: np.ndarray,
    angle: float,
    length: float,
    width: float,
    depth: int,
) -> None:
    """Pulmonary vessels: branching lines that thin out toward the periphery."""
    if depth == 0 or width < 0.6:
        return
    end = start + length * np.array([np.cos(angle), np.sin(angle)])
    value = int(90 + 30 * depth)
    cv2.line(
        layer,
        (int(start[0] * 16), int(start[1] * 16)),
        (int(end[0] * 16), int(end[1] * 16)),
        value,
        max(1, int(round(width))),
        cv2.LINE_AA,
        4,
    )
    for turn in (-1, 1):
        _vessel_tree(
            rng,
            layer,
            end,
            angle + turn * rng.uniform(0.2, 0.55),
            length * rng.uniform(0.6, 0.85),
            width * 0.7,
            depth - 1,
        )


def _soft_tissue(
    rng: np.random.Generator, shape: tuple[int, int], f: Frame, view: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body silhouette, thickest at the midline; returns (density, body mask, lateral thickness profile)."""
    arms = view == "AP" and rng.random() < 0.6  # portable films often keep the arms at the sides
    outline = np.concatenate([_body_polygon(rng, f, -1, arms), _body_polygon(rng, f, 1, arms)[::-1]])
    body = blur(fill(shape, [outline]).astype(np.float32), 0.006 * f.bw)
    x = (np.arange(shape[1], dtype=np.float32) - (f.x0 + f.mid * f.bw)) / (0.62 * f.bw)
    profile = np.sqrt(np.clip(1 - x**2, 0, 1))[None, :]
    density = body * (0.6 + 0.4 * profile) * (1 + 0.04 * smooth_field(rng, shape, max(8, int(0.12 * f.bw))))
    return density, body, profile


def _aeration(
    rng: np.random.Generator,
    shape: tuple[int, int],
    f: Frame,
    apex_v: float,
    lung_mask: np.ndarray,
    profile: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Density the air in the lungs removes, and the soft lung weight (its edge ramps *inside* the outline,
    so nothing outside the mask looks like lung)."""
    edge = max(1.0, 0.006 * f.bw)
    r = int(round(1.5 * edge))
    inner = cv2.erode(lung_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    lung_soft = blur(inner.astype(np.float32), edge) * lung_mask
    y = (np.arange(shape[0], dtype=np.float32) - f.y0) / f.bh
    depth_v = np.clip(0.5 + 0.7 * np.sin(np.pi * np.clip((y - apex_v) / 0.9, 0, 1)), 0, 1)[:, None]
    depth = (0.5 + 0.3 * profile) * depth_v * rng.uniform(0.9, 1.1)
    texture = 1 + 0.08 * smooth_field(rng, shape, max(4, int(0.03 * f.bw)))
    return lung_soft * depth * texture, lung_soft


def _vessels(rng: np.random.Generator, shape: tuple[int, int], f: Frame, lungs: tuple[Lung, Lung]) -> np.ndarray:
    layer = np.zeros(shape, np.uint8)
    for lung in lungs:
        hilum = f.px(lung.side, 0.10 + rng.uniform(0, 0.03), 0.36 + rng.uniform(0, 0.06))
        for spread in (-1.2, -0.6, 0.0, 0.6, 1.2):
            angle = (spread if lung.side == 1 else np.pi + spread) + rng.normal(0, 0.15)
            _vessel_tree(rng, layer, hilum, angle, 0.07 * f.bw, 0.009 * f.bw, 5)
    return blur(layer.astype(np.float32) / 255.0, 0.003 * f.bw)


def _heart_and_abdomen(
    rng: np.random.Generator, shape: tuple[int, int], f: Frame, outlines_px: list[np.ndarray], lung_mask: np.ndarray
) -> np.ndarray:
    """Heart (overlapping the left lung), aortic knob, mediastinum, and the liver/abdomen under the domes."""
    unit = f.bw
    heart = np.zeros(shape, np.uint8)
    centre = (f.px(1, rng.uniform(0.04, 0.08), 0.0)[0], f.y0 + f.bh * rng.uniform(0.58, 0.64))
    axes = (f.bw * rng.uniform(0.17, 0.23), f.bh * rng.uniform(0.15, 0.19))
    cv2.ellipse(
        heart,
        tuple(int(round(c)) for c in centre),
        tuple(int(round(a)) for a in axes),
        rng.uniform(-35, -15),
        0,
        360,
        255,
        -1,
        cv2.LINE_AA,
    )
    aorta = f.px(1, rng.uniform(0.04, 0.07), rng.uniform(0.27, 0.31))
    cv2.circle(heart, tuple(np.round(aorta).astype(int)), int(0.045 * unit), 255, -1, cv2.LINE_AA)
    mediastinum = np.concatenate(
        [
            f.px(-1, np.array([0.05, 0.07, 0.08]), np.array([-0.1, 0.3, 1.0])),
            f.px(1, np.array([0.07, 0.06, 0.05]), np.array([1.0, 0.3, -0.1])),
        ]
    )
    between = np.zeros(shape, np.uint8)
    cv2.fillPoly(between, [np.round(mediastinum).astype(np.int32)], 170)
    np.maximum(heart, between * (1 - lung_mask), out=heart)  # the mediastinum lies between the lungs
    # below the diaphragm the liver and abdomen are as dense as the heart, so no heart edge shows there
    dome = slice(Lung.N - 1, 2 * Lung.N - 1)
    diaphragm = np.concatenate([outlines_px[0][dome], outlines_px[1][dome][::-1]])
    base_line = np.array([[diaphragm[-1, 0], 2.0 * shape[0]], [diaphragm[0, 0], 2.0 * shape[0]]])
    abdomen = fill(shape, [np.concatenate([diaphragm, base_line])]) * (1 - lung_mask)
    heart[abdomen > 0] = 0
    belly = blur(abdomen.astype(np.float32) * (150 / 255), 0.03 * unit) * (1 - lung_mask)
    return blur(heart.astype(np.float32) / 255.0, 0.006 * unit) + belly


def _skeleton(rng: np.random.Generator, shape: tuple[int, int], f: Frame, lungs: tuple[Lung, Lung]) -> np.ndarray:
    """Spine (bodies and pedicles), posterior and anterior ribs, clavicles, humeral heads, scapulae (8-bit layer)."""
    unit = f.bw
    bones = np.zeros(shape, np.uint8)
    spine_w = 0.035 * unit
    for k in range(14):
        v = -0.06 + k * 0.075
        c = f.px(1, 0.0, v + 0.0375)
        cv2.rectangle(
            bones,
            tuple(np.round(c - [spine_w, 0.03 * f.bh]).astype(int)),
            tuple(np.round(c + [spine_w, 0.03 * f.bh]).astype(int)),
            70,
            -1,
            cv2.LINE_AA,
        )
        for side in (-1, 1):
            ped = f.px(side, 0.025, v + 0.03)
            axes = (max(1, int(0.008 * unit)), max(1, int(0.012 * unit)))
            cv2.ellipse(bones, tuple(np.round(ped).astype(int)), axes, 0, 0, 360, 110, 2, cv2.LINE_AA)
    n_ribs = int(rng.integers(9, 11))
    for lung in lungs:
        posterior, anterior = _rib_paths(lung, f, n_ribs, rng)
        rib_w = 0.024 * f.bh * rng.uniform(0.85, 1.15)
        for path in posterior:
            stroke(bones, path, rib_w, 150)
            stroke(bones, path, rib_w * 0.45, 95)  # marrow is less dense than the cortex
        for path in anterior:
            stroke(bones, path, rib_w * 0.8, 70)
        clav_dx = np.linspace(0.05, 0.42, 30)
        clav_v = lung.apex_v + 0.04 - 0.08 * (clav_dx / 0.42) + 0.012 * np.sin(np.pi * clav_dx / 0.21)
        stroke(bones, f.px(lung.side, clav_dx, clav_v + rng.normal(0, 0.01)), 0.026 * f.bh, 150)
        stroke(bones, f.px(lung.side, clav_dx, clav_v), 0.012 * f.bh, 110)
        head = f.px(lung.side, rng.uniform(0.56, 0.62), rng.uniform(-0.02, 0.04))
        cv2.circle(bones, tuple(np.round(head).astype(int)), int(0.09 * unit), 170, -1, cv2.LINE_AA)
        scap = f.px(lung.side, np.array([0.30, 0.36, 0.40]), np.array([0.05, 0.25, 0.42]))
        stroke(bones, scap, 0.006 * unit, 90)
    return blur(bones.astype(np.float32) / 255.0, 0.0025 * unit)


def _airways(shape: tuple[int, int], f: Frame) -> np.ndarray:
    trachea = np.zeros(shape, np.uint8)
    stroke(trachea, f.px(1, np.array([0.0, 0.005, 0.01]), np.array([-0.3, 0.1, 0.27])), 0.035 * f.bw)
    for side in (-1, 1):
        stroke(trachea, f.px(side, np.array([0.01, 0.05, 0.08]), np.array([0.27, 0.31, 0.36])), 0.02 * f.bw, 180)
    return blur(trachea.astype(np.float32) / 255.0, 0.004 * f.bw)


def _gastric_bubble(rng: np.random.Generator, shape: tuple[int, int], f: Frame, left: Lung) -> np.ndarray:
    bubble = np.zeros(shape, np.uint8)
    centre = f.px(1, rng.uniform(0.18, 0.28), left.base_v + rng.uniform(0.04, 0.08))
    cv2.ellipse(bubble, tuple(np.round(centre).astype(int)), (int(0.06 * f.bw), int(0.035 * f.bw)), 0, 0, 360, 255, -1)
    return blur(bubble.astype(np.float32) / 255.0, 0.01 * f.bw)


def frontal_density(
    rng: np.random.Generator,
    shape: tuple[int, int],
    f: Frame,
    lungs: tuple[Lung, Lung],
    outlines_px: list[np.ndarray],
    view: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Attenuation map of a frontal chest (soft tissue ~0.6..1, aerated lung ~0.2, air 0) and the
    density the air in the lungs removes (an effusion puts it back)."""
    density, body, profile = _soft_tissue(rng, shape, f, view)
    lung_mask = fill(shape, outlines_px)
    aeration, lung_soft = _aeration(rng, shape, f, lungs[0].apex_v, lung_mask, profile)
    density -= aeration
    density += _vessels(rng, shape, f, lungs) * 0.1 * lung_soft
    heart = _heart_and_abdomen(rng, shape, f, outlines_px, lung_mask) * np.clip(body * 1.3, 0, 1)
    heart_k = rng.uniform(0.3, 0.4)
    density += heart * heart_k * (1 + 0.6 * aeration)  # the heart displaces lung air
    aeration = aeration * (1 - 0.6 * heart_k * heart)  # net air an effusion can replace
    density -= _airways(shape, f) * 0.25
    density += _skeleton(rng, shape, f, lungs) * np.clip(body * 1.5, 0, 1) * (0.25 + 0.3 * lung_soft)
    density -= _gastric_bubble(rng, shape, f, lungs[1]) * rng.uniform(0.1, 0.3) * (1 - lung_soft)
    return np.clip(density, 0, None), aeration

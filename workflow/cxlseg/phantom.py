"""Radiograph-like chest phantoms with exact lung masks, for the synthetic demo archive.

A phantom is built the way a radiograph forms: an attenuation ("density") map of
body, lungs, mediastinum, spine, ribs, clavicles, heart and diaphragm is blurred
like a detector, optional findings are added *inside the lung outline only*, a
random exposure/gamma curve maps density to brightness, then quantum noise and
burned-in text are laid on top.  Masks are rasterised from the same lung
outlines at full resolution, so they are exact.

Conventions (decided here, used by the demo and its tests):

* PA/AP films: the patient's left lung is on the image RIGHT (``left_mask``).
* ``mask`` is the *aerated* lung.  Like the V7 masks it includes the lung that
  lies behind the heart and the dome of the diaphragm (the heart shadow overlaps
  the left lung mask medially); a pleural effusion replaces the lung base by
  fluid, so the effusion's meniscus and everything below it leaves the mask.
  ``outline`` is the lung before any finding: every pixel a finding changes lies
  inside it, and nothing outside it depends on the findings.
* Clutter (markers, text, ECG leads, tubes and lines) comes from its own random
  stream, so it never depends on the findings drawn.
* ``view="LATERAL"`` draws a lateral film; its ``mask`` is the single projected
  lung field and ``left_mask``/``right_mask`` are empty.  ``view="CT"`` draws an
  axial CT-like slice with empty masks (the V7 set contains a few of those).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import cv2
import numpy as np

FINDINGS = ("Pneumonia", "Lung Lesion", "Atelectasis", "Pleural Effusion", "Tuberculosis", "COVID-19")
DEVICES = ("ecg", "ett", "central_line", "ng_tube", "pacemaker")
SUPPORT_DEVICES = frozenset({"ett", "central_line", "ng_tube", "pacemaker"})
VIEWS = ("PA", "AP", "LATERAL", "CT")
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Phantom:
    image: np.ndarray  # uint8 H x W
    mask: np.ndarray  # uint8 0/1 aerated lungs (both)
    left_mask: np.ndarray  # patient's left lung (image right on PA/AP)
    right_mask: np.ndarray
    findings: dict[str, bool]
    view: str = "PA"
    outline: np.ndarray | None = None  # lungs before findings (0/1)
    signal: np.ndarray | None = None  # float32 brightness in [0, 1] before 8-bit quantisation
    sites: dict[str, str] = field(default_factory=dict)  # finding -> "right lower" etc., for report text
    devices: tuple[str, ...] = ()


# --------------------------------------------------------------------------- geometry helpers


@dataclass
class _Frame:
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

    def resized(self, kx: float, ky: float) -> "_Frame":
        return _Frame(self.x0 * kx, self.y0 * ky, self.bw * kx, self.bh * ky, self.mid, self.tilt)


def _wobble(rng: np.random.Generator, t: np.ndarray, amp: float) -> np.ndarray:
    """Smooth low-frequency deviation so no two outlines are the same curve."""
    out = np.zeros_like(t)
    for freq in (1.0, 2.0, 3.0):
        out += rng.normal(0, amp / freq) * np.sin(np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return out


def _fill(shape: tuple[int, int], polys: list[np.ndarray]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    pts = [np.round(p * 16).astype(np.int32) for p in polys]
    cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=4)
    return mask


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
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


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Zero-mean unit-ish random field with features about `cell` pixels across (cheap: upsampled)."""
    h, w = shape
    small = rng.standard_normal((max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _stroke(layer: np.ndarray, pts: np.ndarray, thickness: float, value: int = 255) -> None:
    """Anti-aliased polyline into an 8-bit layer (cv2 only anti-aliases 8-bit rasters)."""
    cv2.polylines(layer, [np.round(pts * 16).astype(np.int32)], False, value,
                  thickness=max(1, int(round(thickness))), lineType=cv2.LINE_AA, shift=4)


# --------------------------------------------------------------------------- anatomy (PA / AP)


@dataclass
class _Lung:
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
        lat_dx = self.apex_dx + (self.cp_dx - self.apex_dx) * shape_t + bulge + _wobble(rng, t, 0.004)
        s = np.linspace(0, 1, n)[1:]
        dia_dx = self.cp_dx + (self.base_dx - self.cp_dx) * s
        dome = np.sin(np.pi * s) ** 1.3 * (min(self.cp_v, self.base_v) - self.dome_v)
        dia_v = self.cp_v + (self.base_v - self.cp_v) * s ** 0.8 - dome
        m = np.linspace(1, 0, n)[1:-1]
        med_v = self.apex_v + m * (self.base_v - self.apex_v)
        med_dx = self.apex_dx - (self.apex_dx - self.medial_dx) * np.sqrt(np.sin(np.pi / 2 * m))
        med_dx += self.notch * np.clip((m - 0.45) / 0.4, 0, 1) ** 1.5 + _wobble(rng, m, 0.003)
        dx = np.concatenate([lat_dx, dia_dx, med_dx])
        v = np.concatenate([lat_v, dia_v, med_v])
        return np.stack([dx, v], axis=1)


def _sample_lungs(rng: np.random.Generator) -> tuple[_Lung, _Lung]:
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
        lungs.append(_Lung(
            side=side, apex_v=apex_v + rng.normal(0, 0.01), apex_dx=rng.uniform(0.14, 0.19),
            lat_dx=lat + rng.normal(0, 0.01), cp_dx=cp_dx, cp_v=lung_cp_v, base_dx=base_dx, base_v=base_v,
            dome_v=base_v - rng.uniform(0.03, 0.08), medial_dx=rng.uniform(0.045, 0.07),
            notch=rng.uniform(0.04, 0.08) if left else 0.0))
    return lungs[0], lungs[1]


def _frame(rng: np.random.Generator, height: int, width: int) -> _Frame:
    bw = min(width * 0.96, height * 1.02) * rng.uniform(0.80, 0.94)
    bh = min(height * 0.93, bw * rng.uniform(0.85, 1.02))
    x0 = (width - bw) / 2 + rng.normal(0, 0.02) * width
    y0 = rng.uniform(0.03, 0.10) * height + max(0.0, (height * 0.93 - bh) * rng.uniform(0.0, 0.5))
    return _Frame(x0, y0, bw, bh, 0.5 + rng.normal(0, 0.012), float(np.radians(rng.normal(0, 1.5))))


def _body_polygon(rng: np.random.Generator, f: _Frame, side: int, arms: bool) -> np.ndarray:
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


def _rib_paths(lung: _Lung, f: _Frame, n_ribs: int, rng: np.random.Generator) -> tuple[list, list]:
    """Posterior ribs arc out and down from the spine; anterior ribs slope down toward the sternum."""
    posterior, anterior = [], []
    s = np.linspace(0, 1, 30)
    span = (lung.cp_v - lung.apex_v) / (n_ribs - 0.5)
    for k in range(n_ribs):
        v0 = lung.apex_v - 0.03 + k * span * rng.uniform(0.95, 1.05)
        reach = lung.lat_dx + 0.05
        dx = 0.035 + s * reach
        v = v0 - 0.045 * np.sin(np.pi * s * 0.8) + 0.11 * s ** 3 + 0.01 * k * s
        posterior.append(f.px(lung.side, dx, v))
        a_dx = reach - s * (reach - 0.12)
        a_v = v[-1] - 0.02 + s * (0.10 + 0.01 * k) - 0.02 * np.sin(np.pi * s)
        anterior.append(f.px(lung.side, a_dx, a_v))
    return posterior, anterior


def _vessel_tree(rng: np.random.Generator, layer: np.ndarray, start: np.ndarray, angle: float,
                 length: float, width: float, depth: int) -> None:
    """Pulmonary vessels: branching lines that thin out toward the periphery."""
    if depth == 0 or width < 0.6:
        return
    end = start + length * np.array([np.cos(angle), np.sin(angle)])
    value = int(90 + 30 * depth)
    cv2.line(layer, (int(start[0] * 16), int(start[1] * 16)), (int(end[0] * 16), int(end[1] * 16)), value,
             max(1, int(round(width))), cv2.LINE_AA, 4)
    for turn in (-1, 1):
        _vessel_tree(rng, layer, end, angle + turn * rng.uniform(0.2, 0.55), length * rng.uniform(0.6, 0.85),
                     width * 0.7, depth - 1)


def _soft_tissue(rng: np.random.Generator, shape: tuple[int, int], f: _Frame, view: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body silhouette, thickest at the midline; returns (density, body mask, lateral thickness profile)."""
    arms = view == "AP" and rng.random() < 0.6  # portable films often keep the arms at the sides
    outline = np.concatenate([_body_polygon(rng, f, -1, arms), _body_polygon(rng, f, 1, arms)[::-1]])
    body = _blur(_fill(shape, [outline]).astype(np.float32), 0.006 * f.bw)
    x = (np.arange(shape[1], dtype=np.float32) - (f.x0 + f.mid * f.bw)) / (0.62 * f.bw)
    profile = np.sqrt(np.clip(1 - x ** 2, 0, 1))[None, :]
    density = body * (0.6 + 0.4 * profile) * (1 + 0.04 * _smooth_field(rng, shape, max(8, int(0.12 * f.bw))))
    return density, body, profile


def _aeration(rng: np.random.Generator, shape: tuple[int, int], f: _Frame, apex_v: float, lung_mask: np.ndarray,
              profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Density the air in the lungs removes, and the soft lung weight (its edge ramps *inside* the outline,
    so nothing outside the mask looks like lung)."""
    edge = max(1.0, 0.006 * f.bw)
    r = int(round(1.5 * edge))
    inner = cv2.erode(lung_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    lung_soft = _blur(inner.astype(np.float32), edge) * lung_mask
    y = (np.arange(shape[0], dtype=np.float32) - f.y0) / f.bh
    depth_v = np.clip(0.5 + 0.7 * np.sin(np.pi * np.clip((y - apex_v) / 0.9, 0, 1)), 0, 1)[:, None]
    depth = (0.5 + 0.3 * profile) * depth_v * rng.uniform(0.9, 1.1)
    texture = 1 + 0.08 * _smooth_field(rng, shape, max(4, int(0.03 * f.bw)))
    return lung_soft * depth * texture, lung_soft


def _vessels(rng: np.random.Generator, shape: tuple[int, int], f: _Frame, lungs: tuple[_Lung, _Lung]) -> np.ndarray:
    layer = np.zeros(shape, np.uint8)
    for lung in lungs:
        hilum = f.px(lung.side, 0.10 + rng.uniform(0, 0.03), 0.36 + rng.uniform(0, 0.06))
        for spread in (-1.2, -0.6, 0.0, 0.6, 1.2):
            angle = (spread if lung.side == 1 else np.pi + spread) + rng.normal(0, 0.15)
            _vessel_tree(rng, layer, hilum, angle, 0.07 * f.bw, 0.009 * f.bw, 5)
    return _blur(layer.astype(np.float32) / 255.0, 0.003 * f.bw)


def _heart_and_abdomen(rng: np.random.Generator, shape: tuple[int, int], f: _Frame, outlines_px: list[np.ndarray],
                       lung_mask: np.ndarray) -> np.ndarray:
    """Heart (overlapping the left lung), aortic knob, mediastinum, and the liver/abdomen under the domes."""
    unit = f.bw
    heart = np.zeros(shape, np.uint8)
    centre = (f.px(1, rng.uniform(0.04, 0.08), 0.0)[0], f.y0 + f.bh * rng.uniform(0.58, 0.64))
    axes = (f.bw * rng.uniform(0.17, 0.23), f.bh * rng.uniform(0.15, 0.19))
    cv2.ellipse(heart, tuple(int(round(c)) for c in centre), tuple(int(round(a)) for a in axes),
                rng.uniform(-35, -15), 0, 360, 255, -1, cv2.LINE_AA)
    aorta = f.px(1, rng.uniform(0.04, 0.07), rng.uniform(0.27, 0.31))
    cv2.circle(heart, tuple(np.round(aorta).astype(int)), int(0.045 * unit), 255, -1, cv2.LINE_AA)
    mediastinum = np.concatenate([f.px(-1, np.array([0.05, 0.07, 0.08]), np.array([-0.1, 0.3, 1.0])),
                                  f.px(1, np.array([0.07, 0.06, 0.05]), np.array([1.0, 0.3, -0.1]))])
    between = np.zeros(shape, np.uint8)
    cv2.fillPoly(between, [np.round(mediastinum).astype(np.int32)], 170)
    np.maximum(heart, between * (1 - lung_mask), out=heart)  # the mediastinum lies between the lungs
    # below the diaphragm the liver and abdomen are as dense as the heart, so no heart edge shows there
    dome = slice(_Lung.N - 1, 2 * _Lung.N - 1)
    diaphragm = np.concatenate([outlines_px[0][dome], outlines_px[1][dome][::-1]])
    base_line = np.array([[diaphragm[-1, 0], 2.0 * shape[0]], [diaphragm[0, 0], 2.0 * shape[0]]])
    abdomen = _fill(shape, [np.concatenate([diaphragm, base_line])]) * (1 - lung_mask)
    heart[abdomen > 0] = 0
    belly = _blur(abdomen.astype(np.float32) * (150 / 255), 0.03 * unit) * (1 - lung_mask)
    return _blur(heart.astype(np.float32) / 255.0, 0.006 * unit) + belly


def _skeleton(rng: np.random.Generator, shape: tuple[int, int], f: _Frame, lungs: tuple[_Lung, _Lung]) -> np.ndarray:
    """Spine (bodies and pedicles), posterior and anterior ribs, clavicles, humeral heads, scapulae (8-bit layer)."""
    unit = f.bw
    bones = np.zeros(shape, np.uint8)
    spine_w = 0.035 * unit
    for k in range(14):
        v = -0.06 + k * 0.075
        c = f.px(1, 0.0, v + 0.0375)
        cv2.rectangle(bones, tuple(np.round(c - [spine_w, 0.03 * f.bh]).astype(int)),
                      tuple(np.round(c + [spine_w, 0.03 * f.bh]).astype(int)), 70, -1, cv2.LINE_AA)
        for side in (-1, 1):
            ped = f.px(side, 0.025, v + 0.03)
            axes = (max(1, int(0.008 * unit)), max(1, int(0.012 * unit)))
            cv2.ellipse(bones, tuple(np.round(ped).astype(int)), axes, 0, 0, 360, 110, 2, cv2.LINE_AA)
    n_ribs = int(rng.integers(9, 11))
    for lung in lungs:
        posterior, anterior = _rib_paths(lung, f, n_ribs, rng)
        rib_w = 0.024 * f.bh * rng.uniform(0.85, 1.15)
        for path in posterior:
            _stroke(bones, path, rib_w, 150)
            _stroke(bones, path, rib_w * 0.45, 95)  # marrow is less dense than the cortex
        for path in anterior:
            _stroke(bones, path, rib_w * 0.8, 70)
        clav_dx = np.linspace(0.05, 0.42, 30)
        clav_v = lung.apex_v + 0.04 - 0.08 * (clav_dx / 0.42) + 0.012 * np.sin(np.pi * clav_dx / 0.21)
        _stroke(bones, f.px(lung.side, clav_dx, clav_v + rng.normal(0, 0.01)), 0.026 * f.bh, 150)
        _stroke(bones, f.px(lung.side, clav_dx, clav_v), 0.012 * f.bh, 110)
        head = f.px(lung.side, rng.uniform(0.56, 0.62), rng.uniform(-0.02, 0.04))
        cv2.circle(bones, tuple(np.round(head).astype(int)), int(0.09 * unit), 170, -1, cv2.LINE_AA)
        scap = f.px(lung.side, np.array([0.30, 0.36, 0.40]), np.array([0.05, 0.25, 0.42]))
        _stroke(bones, scap, 0.006 * unit, 90)
    return _blur(bones.astype(np.float32) / 255.0, 0.0025 * unit)


def _airways(shape: tuple[int, int], f: _Frame) -> np.ndarray:
    trachea = np.zeros(shape, np.uint8)
    _stroke(trachea, f.px(1, np.array([0.0, 0.005, 0.01]), np.array([-0.3, 0.1, 0.27])), 0.035 * f.bw)
    for side in (-1, 1):
        _stroke(trachea, f.px(side, np.array([0.01, 0.05, 0.08]), np.array([0.27, 0.31, 0.36])), 0.02 * f.bw, 180)
    return _blur(trachea.astype(np.float32) / 255.0, 0.004 * f.bw)


def _gastric_bubble(rng: np.random.Generator, shape: tuple[int, int], f: _Frame, left: _Lung) -> np.ndarray:
    bubble = np.zeros(shape, np.uint8)
    centre = f.px(1, rng.uniform(0.18, 0.28), left.base_v + rng.uniform(0.04, 0.08))
    cv2.ellipse(bubble, tuple(np.round(centre).astype(int)), (int(0.06 * f.bw), int(0.035 * f.bw)), 0, 0, 360, 255, -1)
    return _blur(bubble.astype(np.float32) / 255.0, 0.01 * f.bw)


def _pa_density(rng: np.random.Generator, shape: tuple[int, int], f: _Frame, lungs: tuple[_Lung, _Lung],
                outlines_px: list[np.ndarray], view: str) -> tuple[np.ndarray, np.ndarray]:
    """Attenuation map of a frontal chest (soft tissue ~0.6..1, aerated lung ~0.2, air 0) and the
    density the air in the lungs removes (an effusion puts it back)."""
    density, body, profile = _soft_tissue(rng, shape, f, view)
    lung_mask = _fill(shape, outlines_px)
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


# --------------------------------------------------------------------------- findings (inside the lungs only)


def _lung_zone(outline: np.ndarray, zone: str) -> tuple[float, float]:
    """(y_min, y_max) pixel rows of a lung's upper, mid or lower third."""
    ys = outline[:, 1]
    top, bottom = ys.min(), ys.max()
    k = {"upper": 0, "mid": 1, "lower": 2}[zone]
    return top + (bottom - top) * k / 3, top + (bottom - top) * (k + 1) / 3


def _point_in(rng: np.random.Generator, mask: np.ndarray, rows: tuple[float, float]) -> np.ndarray:
    ys, xs = np.nonzero(mask[int(rows[0]):max(int(rows[0]) + 1, int(rows[1]))])
    if ys.size == 0:
        ys, xs = np.nonzero(mask)
        return np.array([xs[len(xs) // 2], ys[len(ys) // 2]], np.float64)
    i = int(rng.integers(ys.size))
    return np.array([xs[i], ys[i] + int(rows[0])], np.float64)


def _patches(rng: np.random.Generator, layer: np.ndarray, lung_mask: np.ndarray, rows: tuple[float, float],
             unit: float, n: int, size: float, value: int = 255) -> None:
    """n random ellipses centred inside the lung within `rows` (the bricks of patchy opacities)."""
    for _ in range(n):
        c = _point_in(rng, lung_mask, rows)
        axes = (max(1, int(unit * size * rng.uniform(0.5, 1.2))), max(1, int(unit * size * rng.uniform(0.4, 1.0))))
        cv2.ellipse(layer, tuple(c.astype(int)), axes, rng.uniform(0, 180), 0, 360, value, -1, cv2.LINE_AA)


@dataclass
class _LungMap:
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
    return _blur(layer.astype(np.float32) / 255.0, sigma)


def _pneumonia(rng: np.random.Generator, m: _LungMap) -> Drawn:
    """Patchy airspace opacity in one zone, mostly the lower lobe."""
    side, zone = _side(rng), ("lower", "mid", "upper")[int(rng.choice(3, p=[0.6, 0.3, 0.1]))]
    layer = m.layer()
    _patches(rng, layer, m.sides[side], _lung_zone(m.outlines[side], zone), m.unit, int(rng.integers(7, 13)), 0.055)
    patchy = _soft(layer, 0.01 * m.unit)
    patchy *= np.clip(0.6 + 0.5 * _smooth_field(rng, m.shape, max(3, int(0.02 * m.unit))), 0, 1.2)
    return patchy * rng.uniform(0.30, 0.45), f"{side} {zone}", []


def _covid(rng: np.random.Generator, m: _LungMap) -> Drawn:
    """Bilateral peripheral, lower-predominant ground-glass opacity."""
    layer = m.layer()
    for side in ("right", "left"):
        lo, hi = _lung_zone(m.outlines[side], "mid")[0], _lung_zone(m.outlines[side], "lower")[1]
        periphery = m.sides[side].copy()
        core = cv2.erode(periphery, np.ones((3, 3), np.uint8), iterations=max(1, int(0.06 * m.unit)))
        periphery[core > 0] = 0
        _patches(rng, layer, periphery, (lo, hi), m.unit, int(rng.integers(5, 10)), 0.05, 200)
    ggo = _soft(layer, 0.02 * m.unit)
    ggo *= np.clip(0.7 + 0.4 * _smooth_field(rng, m.shape, max(3, int(0.03 * m.unit))), 0, 1.2)
    return ggo * 0.45, "bilateral peripheral", []


def _tuberculosis(rng: np.random.Generator, m: _LungMap) -> Drawn:
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
    tb *= np.clip(0.7 + 0.4 * _smooth_field(rng, m.shape, max(3, int(0.015 * m.unit))), 0, 1.3)
    return tb, "bilateral upper" if len(chosen) == 2 else f"{chosen[0]} upper", []


def _lesion(rng: np.random.Generator, m: _LungMap) -> Drawn:
    """A solitary nodule, kept off the lung edge."""
    side, zone = _side(rng), ("upper", "mid", "lower")[int(rng.integers(3))]
    inner = cv2.erode(m.sides[side], np.ones((3, 3), np.uint8), iterations=max(1, int(0.05 * m.unit)))
    c = _point_in(rng, inner if inner.any() else m.sides[side], _lung_zone(m.outlines[side], zone))
    layer = m.layer()
    cv2.circle(layer, tuple(c.astype(int)), max(2, int(m.unit * rng.uniform(0.018, 0.035))), 255, -1, cv2.LINE_AA)
    return _soft(layer, 0.003 * m.unit) * rng.uniform(0.35, 0.5), f"{side} {zone}", []


def _atelectasis(rng: np.random.Generator, m: _LungMap) -> Drawn:
    """Band-like (plate) collapse near a lung base."""
    side = _side(rng)
    lo, hi = _lung_zone(m.outlines[side], "lower")
    c = _point_in(rng, m.sides[side], (lo, lo + (hi - lo) * 0.6))
    angle = np.radians(rng.uniform(-25, 25))
    d = np.array([np.cos(angle), np.sin(angle)]) * m.unit * rng.uniform(0.08, 0.15)
    layer = m.layer()
    cv2.line(layer, tuple(np.round((c - d) * 16).astype(int)), tuple(np.round((c + d) * 16).astype(int)), 255,
             max(2, int(m.unit * rng.uniform(0.012, 0.022))), cv2.LINE_AA, 4)
    return _soft(layer, 0.004 * m.unit) * rng.uniform(0.35, 0.5), f"{side} basilar", []


def _effusion(rng: np.random.Generator, m: _LungMap) -> Drawn:
    """Only the geometry: the fluid is rasterised at full resolution by `_fluid`."""
    chosen = ["right", "left"] if rng.random() < 0.3 else [_side(rng)]
    geometry = [(side, rng.uniform(0.12, 0.28), rng.uniform(0.1, 0.18)) for side in chosen]
    return None, "bilateral" if len(chosen) == 2 else chosen[0], geometry


_DRAW = {"Pneumonia": _pneumonia, "Lung Lesion": _lesion, "Atelectasis": _atelectasis,
         "Pleural Effusion": _effusion, "Tuberculosis": _tuberculosis, "COVID-19": _covid}


def _draw_findings(rng: np.random.Generator, findings: dict[str, bool], m: _LungMap,
                   ) -> tuple[np.ndarray, list[tuple[str, float, float]], dict[str, str]]:
    """Density to add (confined later to the lung outline), effusion geometry, and where each finding went.

    Each finding has its own stream, drawn up front, so where it goes depends
    only on the seed and not on which other findings are present."""
    streams = rng.integers(0, 2 ** 63, len(FINDINGS))
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


def _fluid(shape: tuple[int, int], sides: dict[str, np.ndarray], outlines: dict[str, np.ndarray],
           effusions: list[tuple[str, float, float]]) -> np.ndarray:
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
        meniscus = bottom - (bottom - top) * (depth + rise * reach ** 1.6)
        fluid |= ((rows >= meniscus[None, :]) & (sides[side] > 0)).astype(np.uint8)
    return fluid


# --------------------------------------------------------------------------- clutter (independent of findings)


def _devices(rng: np.random.Generator, shape: tuple[int, int], f: _Frame, chosen: tuple[str, ...]) -> np.ndarray:
    """Radiopaque tubes, lines, leads and a pacemaker, as density."""
    layer = np.zeros(shape, np.uint8)
    unit = f.bw
    h, w = shape
    if "ett" in chosen:
        tip = rng.uniform(0.18, 0.25)
        _stroke(layer, f.px(1, np.array([0.0, 0.002, 0.004]), np.array([-0.4, 0.0, tip])), 0.014 * unit, 120)
        _stroke(layer, f.px(1, np.array([0.006, 0.008, 0.01]), np.array([-0.4, 0.0, tip])), 0.003 * unit, 255)
    if "ng_tube" in chosen:
        dx = np.array([0.01, -0.01, 0.0, 0.05, 0.18, 0.22])
        v = np.array([-0.4, 0.2, 0.6, 0.9, 0.95, 0.9]) + rng.normal(0, 0.01, 6)
        _stroke(layer, f.px(1, dx, v), 0.006 * unit, 230)
    if "central_line" in chosen:
        side = int(rng.choice([-1, 1]))
        dx = np.array([0.35, 0.2, 0.08, 0.03 if side == -1 else 0.0])
        v = np.array([-0.05, 0.08, 0.14, rng.uniform(0.28, 0.36)])
        _stroke(layer, f.px(side, dx, v), 0.005 * unit, 255)
    if "pacemaker" in chosen:
        c = f.px(1, rng.uniform(0.22, 0.32), rng.uniform(0.08, 0.14))
        box = (c - [0.04 * unit, 0.03 * unit], c + [0.04 * unit, 0.03 * unit])
        cv2.rectangle(layer, tuple(np.round(box[0]).astype(int)), tuple(np.round(box[1]).astype(int)), 255, -1)
        _stroke(layer, np.stack([c, f.px(1, 0.05, 0.3), f.px(1, 0.12, 0.6)]), 0.004 * unit, 255)
    if "ecg" in chosen:
        for _ in range(int(rng.integers(2, 6))):
            side = int(rng.choice([-1, 1]))
            c = f.px(side, rng.uniform(0.35, 0.55), rng.choice([rng.uniform(-0.08, 0.05), rng.uniform(0.9, 1.0)]))
            cv2.circle(layer, tuple(np.round(c).astype(int)), max(2, int(0.018 * unit)), 140, -1, cv2.LINE_AA)
            cv2.circle(layer, tuple(np.round(c).astype(int)), max(1, int(0.006 * unit)), 255, -1, cv2.LINE_AA)
            end = np.array([rng.choice([0.0, w - 1.0]), rng.uniform(0, h)])
            mid = (c + end) / 2 + rng.normal(0, 0.1 * unit, 2)
            t = np.linspace(0, 1, 20)[:, None]
            wire = (1 - t) ** 2 * c + 2 * (1 - t) * t * mid + t ** 2 * end
            _stroke(layer, wire, 0.003 * unit, 200)
    return layer.astype(np.float32) / 255.0


def _stamp_text(rng: np.random.Generator, img: np.ndarray, keep_out: np.ndarray, view: str, side_marker: str) -> None:
    """Burned-in laterality marker and annotations, placed where they do not cover lung."""
    h, w = img.shape
    scale = max(0.4, min(h, w) / 700.0)
    words = [side_marker]
    if view == "AP" or rng.random() < 0.3:
        words.append(str(rng.choice(["PORTABLE", "AP", "PORTABLE AP", "SUPINE", "UPRIGHT", "SEMI-UPRIGHT"])))
    if rng.random() < 0.6:
        words.append(f"{int(rng.integers(1, 13)):02d}/{int(rng.integers(1, 29)):02d}/21{int(rng.integers(10, 99))}"
                     f" {int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}")
    if rng.random() < 0.3:
        words.append(str(rng.choice(["ERECT", "INSP", "TECH JD", "STAT", "ICU"])))
    grow = cv2.dilate(keep_out, np.ones((5, 5), np.uint8), iterations=max(1, int(min(h, w) * 0.01)))
    for word in words:
        s = scale * (1.6 if len(word) == 1 else rng.uniform(0.7, 1.1))
        thick = max(1, int(round(2 * s)))
        (tw, th), base = cv2.getTextSize(word, FONT, s, thick)
        for _ in range(12):
            x = int(rng.integers(2, max(3, w - tw - 2)))
            y = int(rng.integers(th + 2, max(th + 3, h - base - 2)))
            if not grow[max(0, y - th - 4):y + base + 4, max(0, x - 4):x + tw + 4].any():
                value = int(rng.integers(200, 256)) if rng.random() < 0.85 else int(rng.integers(0, 40))
                if len(word) == 1 and rng.random() < 0.5:
                    cv2.rectangle(img, (x - 4, y - th - 4), (x + tw + 4, y + base + 2), value, max(1, thick // 2))
                cv2.putText(img, word, (x, y), FONT, s, value, thick, cv2.LINE_AA)
                break


# --------------------------------------------------------------------------- other views


def _lateral_density(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Lateral film: patient faces image left; sternum in front, spine behind, heart low in front."""
    h, w = shape
    depth = min(w * 0.78, h * 0.72) * rng.uniform(0.85, 1.0)
    f = _Frame((w - depth) / 2 + rng.normal(0, 0.02) * w, h * rng.uniform(0.06, 0.12), depth,
               h * rng.uniform(0.72, 0.8), 0.0)
    unit = depth

    def px(u, v):
        return f.px(1, u, v)

    t = np.linspace(0, 1, 40)
    body = _fill(shape, [px(np.array([0.02, -0.04, -0.06, -0.02, 1.08, 1.12, 1.05, 0.98]),
                            np.array([-0.5, 0.0, 0.5, 1.6, 1.6, 0.6, 0.1, -0.5]))])
    body = _blur(body.astype(np.float32), 0.01 * unit)
    x = (np.arange(w, dtype=np.float32) - (f.x0 + 0.5 * depth)) / (0.65 * depth)
    density = body * (0.65 + 0.35 * np.sqrt(np.clip(1 - x ** 2, 0, 1)))[None, :]
    density *= 1 + 0.04 * _smooth_field(rng, shape, max(8, int(0.1 * unit)))

    front_u = 0.08 + 0.05 * np.sin(np.pi * t) + rng.normal(0, 0.01)
    front = px(front_u, 0.22 + t * 0.62)
    ant_cp, post_cp = rng.uniform(0.80, 0.86), rng.uniform(0.95, 1.02)
    dome = px(0.12 + 0.74 * t, ant_cp + (post_cp - ant_cp) * t ** 2 - 0.12 * np.sin(np.pi * t) ** 1.5)
    back = px(0.88 - 0.04 * np.sin(np.pi * t) - 0.1 * t ** 2, post_cp - t * (post_cp - 0.22))
    apex = px(0.78 - 0.68 * t, 0.22 - 0.2 * np.sin(np.pi * t) ** 0.6)
    lung = np.concatenate([front, dome, back, apex])
    lung_mask = _fill(shape, [lung])
    r = max(1, int(0.01 * unit))
    inner = cv2.erode(lung_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    lung_soft = _blur(inner.astype(np.float32), 0.008 * unit) * lung_mask
    depth_map = lung_soft * 0.5 * (1 + 0.08 * _smooth_field(rng, shape, max(4, int(0.03 * unit))))
    density -= depth_map

    soft = np.zeros(shape, np.uint8)
    cv2.ellipse(soft, tuple(int(c) for c in px(rng.uniform(0.3, 0.36), rng.uniform(0.62, 0.7))),
                (int(0.24 * unit), int(0.2 * f.bh)), rng.uniform(-45, -25), 0, 360, 170, -1, cv2.LINE_AA)
    _stroke(soft, px(np.array([0.55, 0.7, 1.2, 1.6]), np.array([0.08, -0.02, -0.12, -0.2])), 0.22 * f.bh, 110)
    density += _blur(soft.astype(np.float32) / 255.0, 0.02 * unit) * 0.45 * (1 + 0.5 * lung_soft)

    bones = np.zeros(shape, np.uint8)
    for k in range(15):
        v = -0.12 + k * 0.085
        c = px(0.8 + 0.06 * np.sin(np.pi * (v + 0.1) / 1.3), v)
        box = cv2.boxPoints(((float(c[0]), float(c[1])), (0.12 * unit, 0.068 * f.bh), rng.normal(-6, 2)))
        cv2.fillPoly(bones, [np.round(box).astype(np.int32)], int(95 - 3 * k), cv2.LINE_AA)
    _stroke(bones, px(np.array([0.04, 0.07, 0.11]), np.array([0.05, 0.4, 0.75])), 0.022 * unit, 90)
    for k in range(9):
        v0 = 0.1 + k * 0.09
        _stroke(bones, px(0.95 - 0.45 * t, v0 + 0.15 * t ** 1.5), 0.012 * f.bh, 70)
    density += _blur(bones.astype(np.float32) / 255.0, 0.003 * unit) * 0.5
    trachea = np.zeros(shape, np.uint8)
    _stroke(trachea, px(np.array([0.38, 0.45, 0.52]), np.array([-0.4, 0.0, 0.3])), 0.05 * unit)
    density -= _blur(trachea.astype(np.float32) / 255.0, 0.006 * unit) * 0.25
    return np.clip(density, 0, None), [lung]


def _ct_density(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Axial CT-like slice: body ellipse, two lungs, vertebra, heart, scanner table."""
    h, w = shape
    img = np.zeros(shape, np.uint8)
    c = (w // 2, int(h * 0.5))
    body = (int(w * rng.uniform(0.40, 0.46)), int(h * rng.uniform(0.30, 0.36)))
    cv2.ellipse(img, c, body, 0, 0, 360, 150, -1, cv2.LINE_AA)
    for side in (-1, 1):
        lc = (int(w / 2 + side * w * 0.18), int(h * 0.47))
        cv2.ellipse(img, lc, (int(w * 0.15), int(h * 0.22)), side * 10, 0, 360, 15, -1, cv2.LINE_AA)
    cv2.ellipse(img, (int(w * 0.53), int(h * 0.45)), (int(w * 0.1), int(h * 0.09)), 20, 0, 360, 160, -1, cv2.LINE_AA)
    cv2.circle(img, (w // 2, int(h * 0.72)), int(w * 0.05), 255, -1, cv2.LINE_AA)
    cv2.rectangle(img, (int(w * 0.05), int(h * 0.88)), (int(w * 0.95), int(h * 0.9)), 200, -1)
    return img.astype(np.float32) / 150.0


# --------------------------------------------------------------------------- public API


def _expose(rng: np.random.Generator, density: np.ndarray) -> tuple[float, float, float]:
    """Random window and gamma: how bright soft tissue, bone and lung come out varies by film."""
    lo = rng.uniform(-0.05, 0.06)
    hi = rng.uniform(1.45, 1.75)
    gamma = rng.uniform(0.65, 1.0)
    return lo, hi, gamma


def _to_brightness(density: np.ndarray, lo: float, hi: float, gamma: float, levels: int = 4096) -> np.ndarray:
    """Window then gamma, through a lookup table (a per-pixel power is the slowest step otherwise)."""
    lut = (np.linspace(0, 1, levels, dtype=np.float64) ** gamma).astype(np.float32)
    idx = np.clip((density - lo) * ((levels - 1) / (hi - lo)), 0, levels - 1).astype(np.int32)
    return lut[idx]


@dataclass
class _Scene:
    """The noiseless film before findings: density plus the lungs it was drawn around."""

    density: np.ndarray
    aeration: np.ndarray | None = None  # air an effusion can replace (PA/AP only)
    sides: dict[str, np.ndarray] = field(default_factory=dict)  # full-resolution lung masks
    outlines: dict[str, np.ndarray] = field(default_factory=dict)  # full-resolution outline polygons
    lateral: np.ndarray | None = None
    unit: float = 0.0  # thorax width in full-resolution pixels


def _frontal_scene(anatomy: np.random.Generator, clutter: np.random.Generator, shape: tuple[int, int],
                   work: tuple[int, int], view: str, devices: tuple[str, ...]) -> _Scene:
    kx, ky = work[1] / shape[1], work[0] / shape[0]
    f_full = _frame(anatomy, *shape)
    f_work = f_full.resized(kx, ky)
    lungs = _sample_lungs(anatomy)
    shapes = [lung.outline(anatomy) for lung in lungs]
    outline_full = [f_full.px(lung.side, s[:, 0], s[:, 1]) for lung, s in zip(lungs, shapes)]
    density, aeration = _pa_density(anatomy, work, f_work, lungs, [p * [kx, ky] for p in outline_full], view)
    density += _devices(clutter, work, f_work, devices) * 0.6
    sides = {"right": _fill(shape, [outline_full[0]]), "left": _fill(shape, [outline_full[1]])}
    return _Scene(density, aeration, sides=sides, outlines={"right": outline_full[0], "left": outline_full[1]},
                  unit=f_full.bw)


def _lateral_scene(anatomy: np.random.Generator, clutter: np.random.Generator, shape: tuple[int, int],
                   work: tuple[int, int], devices: tuple[str, ...]) -> _Scene:
    wh, ww = work
    density, lung = _lateral_density(anatomy, work)
    frame = _Frame(ww * 0.1, wh * 0.05, ww * 0.8, wh * 0.8, 0.5)
    density += _devices(clutter, work, frame, tuple(d for d in devices if d != "pacemaker")) * 0.4
    return _Scene(density, lateral=_fill(shape, [lung[0] * [shape[1] / ww, shape[0] / wh]]))


def _add_findings(scene: _Scene, rng: np.random.Generator, findings: dict[str, bool], shape: tuple[int, int],
                  work: tuple[int, int]) -> tuple[np.ndarray, dict[str, str]]:
    """Add findings to the (blurred, full-size) density inside the lung outline; return the fluid mask."""
    k = work[0] / shape[0], work[1] / shape[1]
    sides_work = {name: cv2.resize(m, work[::-1], interpolation=cv2.INTER_NEAREST) for name, m in scene.sides.items()}
    outlines_work = {name: p * [k[1], k[0]] for name, p in scene.outlines.items()}
    add, effusions, sites = _draw_findings(rng, findings, _LungMap(sides_work, outlines_work, scene.unit * k[1]))
    if add.shape != shape:
        add = cv2.resize(add, shape[::-1], interpolation=cv2.INTER_LINEAR)
    fluid = _fluid(shape, scene.sides, scene.outlines, effusions)
    if fluid.any():
        ramp = _blur(fluid.astype(np.float32), 0.006 * scene.unit)
        add += scene.aeration * np.clip(1.3 * ramp, 0, 1)  # fluid puts back what the air took away
    scene.density += add * (scene.sides["right"] | scene.sides["left"])
    return fluid, sites


def _film(density: np.ndarray, expose: np.random.Generator, noise: np.random.Generator) -> np.ndarray:
    """Exposure, gamma and signal-dependent quantum noise: float brightness in [0, 1]."""
    lo, hi, gamma = _expose(expose, density)
    bright = _to_brightness(density, lo, hi, gamma)
    sigma = expose.uniform(0.008, 0.03)
    grain = noise.standard_normal(density.shape, dtype=np.float32)
    return np.clip(bright + grain * sigma * np.sqrt(bright + 0.05), 0, 1).astype(np.float32)


def render_phantom(rng: np.random.Generator, height: int, width: int, *, findings: dict[str, bool] | None = None,
                   view: str = "PA", devices: tuple[str, ...] | None = None, finding_seed: int | None = None,
                   max_work_side: int = 768, text: bool = True) -> Phantom:
    """One synthetic radiograph with its lung masks.

    The anatomy, clutter, findings and noise each draw from their own stream
    spawned from `rng`, so turning a finding on changes only lung pixels.
    `devices=None` picks clutter at random; a tuple draws exactly those.
    `finding_seed` fixes where findings go (so several images of one study
    agree with one report); None draws it from `rng`.  Anatomy is drawn at
    most `max_work_side` pixels across and scaled up; masks, findings' lung
    limits, noise and text are full resolution.
    """
    view = view.upper()
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if height < 32 or width < 32:
        raise ValueError(f"phantom too small: {width}x{height}")
    findings = dict(findings or {})
    unknown = set(findings) - set(FINDINGS)
    if unknown:
        raise ValueError(f"unknown findings {sorted(unknown)}; known: {FINDINGS}")
    seeds = rng.integers(0, 2 ** 63, size=5)
    anatomy, clutter, noise, expose = (np.random.default_rng(int(s)) for s in seeds[:4])
    finding_rng = np.random.default_rng(int(seeds[4]) if finding_seed is None else finding_seed)
    if devices is None:
        devices = tuple(d for d in DEVICES if clutter.random() < (0.45 if d == "ecg" else 0.12))
    bad = set(devices) - set(DEVICES)
    if bad:
        raise ValueError(f"unknown devices {sorted(bad)}; known: {DEVICES}")

    shape = (height, width)
    k = min(1.0, max_work_side / max(height, width))
    work = (max(32, int(round(height * k))), max(32, int(round(width * k))))
    if view in ("PA", "AP"):
        scene = _frontal_scene(anatomy, clutter, shape, work, view, devices)
    elif view == "LATERAL":
        scene = _lateral_scene(anatomy, clutter, shape, work, devices)
    else:
        scene = _Scene(_ct_density(anatomy, work))
    scene.density = _blur(scene.density, anatomy.uniform(0.5, 1.6))
    if work != shape:
        scene.density = cv2.resize(scene.density, (width, height), interpolation=cv2.INTER_LINEAR)
        if scene.aeration is not None:
            scene.aeration = cv2.resize(scene.aeration, (width, height), interpolation=cv2.INTER_LINEAR)

    empty = np.zeros(shape, np.uint8)
    outline, left, right, sites = empty, empty, empty, {}
    if scene.sides:
        outline = scene.sides["right"] | scene.sides["left"]
        fluid = empty
        if any(findings.values()):
            active = {name: True for name, on in findings.items() if on}
            fluid, sites = _add_findings(scene, finding_rng, active, shape, work)
        right, left = scene.sides["right"] & (1 - fluid), scene.sides["left"] & (1 - fluid)
    elif scene.lateral is not None:
        outline = scene.lateral
    mask = (right | left) if scene.sides else outline

    signal = _film(scene.density, expose, noise)
    image = np.round(signal * 255).astype(np.uint8)
    if text and view != "CT":
        markers = ["L", "R"] if view != "LATERAL" else ["L", "R", "LAT"]
        marker = str(clutter.choice(markers, p=None if view == "LATERAL" else [0.8, 0.2]))
        plain = image.copy()
        _stamp_text(clutter, image, outline, view, marker)
        stamped = image != plain
        signal[stamped] = image[stamped] / np.float32(255)
    return Phantom(image=image, mask=mask, left_mask=left, right_mask=right,
                   findings={name: bool(findings.get(name, False)) for name in FINDINGS}, view=view,
                   outline=outline, signal=signal, sites=sites, devices=tuple(devices))


def to_uint16(image: np.ndarray, rng: np.random.Generator, bits: int = 12) -> np.ndarray:
    """A deep-detector version of an image: `bits` of real data in a uint16 array.

    Float input in [0, 1] (a phantom's `signal`) keeps its sub-8-bit detail;
    uint8 input is dithered so the result truly uses more than 256 levels.
    The offset and gain are random, as they are between real detectors.
    """
    if bits not in (12, 16):
        raise ValueError(f"bits must be 12 or 16, got {bits}")
    top = (1 << bits) - 1
    if image.dtype == np.uint8:
        data = (image.astype(np.float32) + rng.uniform(-0.5, 0.5, image.shape).astype(np.float32)) / 255.0
    else:
        data = np.asarray(image, np.float32)
    offset = rng.uniform(0.0, 0.06) * top
    gain = rng.uniform(0.85, 0.94) * (top - offset)
    return np.clip(np.round(offset + np.clip(data, 0, 1) * gain), 0, top).astype(np.uint16)

"""Scenes per view: the noiseless density of a frontal, lateral or CT film and the lungs it was drawn around."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from cxlseg.phantoms.anatomy import frontal_density, sample_lungs, thorax_frame
from cxlseg.phantoms.clutter import draw_devices
from cxlseg.phantoms.raster import Frame, blur, fill, smooth_field, stroke


def _lateral_frame(rng: np.random.Generator, shape: tuple[int, int]) -> Frame:
    """u runs front (0) to back (1) of the chest, v top to bottom; the patient faces image left."""
    h, w = shape
    depth = min(w * 0.78, h * 0.72) * rng.uniform(0.85, 1.0)
    return Frame(
        (w - depth) / 2 + rng.normal(0, 0.02) * w, h * rng.uniform(0.06, 0.12), depth, h * rng.uniform(0.72, 0.8), 0.0
    )


def _lateral_body(rng: np.random.Generator, shape: tuple[int, int], f: Frame) -> np.ndarray:
    """Soft-tissue density of the side-on body, thickest mid-chest."""
    body = fill(
        shape,
        [
            f.px(
                1,
                np.array([0.02, -0.04, -0.06, -0.02, 1.08, 1.12, 1.05, 0.98]),
                np.array([-0.5, 0.0, 0.5, 1.6, 1.6, 0.6, 0.1, -0.5]),
            )
        ],
    )
    body = blur(body.astype(np.float32), 0.01 * f.bw)
    x = (np.arange(shape[1], dtype=np.float32) - (f.x0 + 0.5 * f.bw)) / (0.65 * f.bw)
    density = body * (0.65 + 0.35 * np.sqrt(np.clip(1 - x**2, 0, 1)))[None, :]
    return density * (1 + 0.04 * smooth_field(rng, shape, max(8, int(0.1 * f.bw))))


def _lateral_lung(rng: np.random.Generator, f: Frame, t: np.ndarray) -> np.ndarray:
    """The projected lung field: anterior wall, diaphragm (lower behind), posterior wall, apex."""
    front_u = 0.08 + 0.05 * np.sin(np.pi * t) + rng.normal(0, 0.01)
    front = f.px(1, front_u, 0.22 + t * 0.62)
    ant_cp, post_cp = rng.uniform(0.80, 0.86), rng.uniform(0.95, 1.02)
    dome = f.px(1, 0.12 + 0.74 * t, ant_cp + (post_cp - ant_cp) * t**2 - 0.12 * np.sin(np.pi * t) ** 1.5)
    back = f.px(1, 0.88 - 0.04 * np.sin(np.pi * t) - 0.1 * t**2, post_cp - t * (post_cp - 0.22))
    apex = f.px(1, 0.78 - 0.68 * t, 0.22 - 0.2 * np.sin(np.pi * t) ** 0.6)
    return np.concatenate([front, dome, back, apex])


def _lateral_bones(rng: np.random.Generator, shape: tuple[int, int], f: Frame, t: np.ndarray) -> np.ndarray:
    """Vertebral bodies behind, the sternum in front, ribs sweeping down and forward (8-bit layer)."""
    bones = np.zeros(shape, np.uint8)
    for k in range(15):
        v = -0.12 + k * 0.085
        c = f.px(1, 0.8 + 0.06 * np.sin(np.pi * (v + 0.1) / 1.3), v)
        box = cv2.boxPoints(((float(c[0]), float(c[1])), (0.12 * f.bw, 0.068 * f.bh), rng.normal(-6, 2)))
        cv2.fillPoly(bones, [np.round(box).astype(np.int32)], int(95 - 3 * k), cv2.LINE_AA)
    stroke(bones, f.px(1, np.array([0.04, 0.07, 0.11]), np.array([0.05, 0.4, 0.75])), 0.022 * f.bw, 90)
    for k in range(9):
        v0 = 0.1 + k * 0.09
        stroke(bones, f.px(1, 0.95 - 0.45 * t, v0 + 0.15 * t**1.5), 0.012 * f.bh, 70)
    return bones


def _lateral_density(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Lateral film: patient faces image left; sternum in front, spine behind, heart low in front."""
    f = _lateral_frame(rng, shape)
    unit = f.bw

    def px(u, v):
        return f.px(1, u, v)

    t = np.linspace(0, 1, 40)
    density = _lateral_body(rng, shape, f)
    lung = _lateral_lung(rng, f, t)
    lung_mask = fill(shape, [lung])
    r = max(1, int(0.01 * unit))
    inner = cv2.erode(lung_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    lung_soft = blur(inner.astype(np.float32), 0.008 * unit) * lung_mask
    density -= lung_soft * 0.5 * (1 + 0.08 * smooth_field(rng, shape, max(4, int(0.03 * unit))))

    soft = np.zeros(shape, np.uint8)  # heart low in front, shoulders and neck above
    cv2.ellipse(
        soft,
        tuple(int(c) for c in px(rng.uniform(0.3, 0.36), rng.uniform(0.62, 0.7))),
        (int(0.24 * unit), int(0.2 * f.bh)),
        rng.uniform(-45, -25),
        0,
        360,
        170,
        -1,
        cv2.LINE_AA,
    )
    stroke(soft, px(np.array([0.55, 0.7, 1.2, 1.6]), np.array([0.08, -0.02, -0.12, -0.2])), 0.22 * f.bh, 110)
    density += blur(soft.astype(np.float32) / 255.0, 0.02 * unit) * 0.45 * (1 + 0.5 * lung_soft)
    density += blur(_lateral_bones(rng, shape, f, t).astype(np.float32) / 255.0, 0.003 * unit) * 0.5
    trachea = np.zeros(shape, np.uint8)
    stroke(trachea, px(np.array([0.38, 0.45, 0.52]), np.array([-0.4, 0.0, 0.3])), 0.05 * unit)
    density -= blur(trachea.astype(np.float32) / 255.0, 0.006 * unit) * 0.25
    return np.clip(density, 0, None), [lung]


CT_UNIT = 80.0  # 8-bit canvas value of density 1: room for bone up to 255 / 80 = 3.2


def _ct_ellipse(img: np.ndarray, centre, axes, angle: float, density: float) -> None:
    """A filled ellipse of `density` (sub-pixel, anti-aliased) on the 8-bit CT canvas."""
    c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
    a = (max(16, int(round(axes[0] * 16))), max(16, int(round(axes[1] * 16))))
    cv2.ellipse(img, c, a, angle, 0, 360, int(min(255, density * CT_UNIT)), -1, cv2.LINE_AA, 4)


def _ct_lungs(img: np.ndarray, ellipses: list[tuple], density: float) -> np.ndarray:
    """Draw the lungs; return where they are (vessels go only there)."""
    where = np.zeros_like(img)
    for centre, axes, angle in ellipses:
        _ct_ellipse(img, centre, axes, angle, density)
        _ct_ellipse(where, centre, axes, angle, 255 / CT_UNIT)
    return where > 127


def _ct_vessels(rng: np.random.Generator, img: np.ndarray, lungs: np.ndarray, density: float, scale: float) -> None:
    """Bright dots in the lungs (vessels seen end-on): CT lungs are dark but never empty."""
    ys, xs = np.nonzero(lungs)
    pick = rng.choice(len(ys), size=min(len(ys), int(rng.integers(25, 120))), replace=False) if len(ys) else []
    layer = np.zeros_like(img)
    for i in pick:
        r = scale * rng.uniform(0.002, 0.008)
        _ct_ellipse(layer, (xs[i], ys[i]), (r, r * rng.uniform(1, 2.5)), rng.uniform(0, 180), density)
    img[lungs] = np.maximum(img[lungs], layer[lungs])


def _axial_ct(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Axial slice: fat rim and muscle, two lungs, heart, aorta, vertebra, ribs, sometimes the table."""
    h, w = shape
    img = np.zeros(shape, np.uint8)
    zoom = rng.uniform(0.85, 1.45)  # figures crop close: the body may overflow the frame
    cx, cy = w * rng.uniform(0.45, 0.55), h * rng.uniform(0.44, 0.56)
    bw, bh = 0.44 * w * zoom * rng.uniform(0.9, 1.1), 0.32 * h * zoom * rng.uniform(0.9, 1.35)
    soft = rng.uniform(0.8, 1.6)  # grey in a soft-tissue window, near white in a lung window
    _ct_ellipse(img, (cx, cy), (bw, bh), 0, soft * rng.uniform(0.55, 0.85))
    _ct_ellipse(img, (cx, cy), (0.93 * bw, 0.9 * bh), 0, soft)
    for t in np.deg2rad(rng.uniform(-40, 220, int(rng.integers(8, 14)))):  # ribs just inside the muscle
        _ct_ellipse(img, (cx + 0.82 * bw * np.cos(t), cy + 0.82 * bh * np.sin(t)), (0.02 * bw, 0.035 * bh), 0, 2.4)
    lungs = [
        (
            (cx + side * bw * rng.uniform(0.36, 0.5), cy - bh * rng.uniform(-0.02, 0.12)),
            (bw * rng.uniform(0.3, 0.42), bh * rng.uniform(0.55, 0.74)),
            side * rng.uniform(0, 25),
        )
        for side in (-1, 1)
    ]
    _ct_vessels(rng, img, _ct_lungs(img, lungs, rng.uniform(0.0, 0.12)), soft * 0.9, min(h, w) * zoom)
    heart = (cx + bw * rng.uniform(-0.02, 0.14), cy - bh * rng.uniform(-0.1, 0.3))
    _ct_ellipse(img, heart, (bw * rng.uniform(0.14, 0.3), bh * rng.uniform(0.2, 0.45)), rng.uniform(0, 40), soft)
    _ct_ellipse(img, (cx - bw * 0.1, cy + bh * 0.35), (bw * 0.06, bw * 0.06), 0, soft * 1.05)  # descending aorta
    spine = (cx, cy + bh * rng.uniform(0.5, 0.62))
    _ct_ellipse(img, spine, (bw * 0.09, bw * 0.085), 0, 2.6)
    _ct_ellipse(img, (spine[0], spine[1] + bw * 0.14), (bw * 0.025, bw * 0.09), 0, 2.4)  # spinous process
    if rng.random() < 0.5:  # the scanner table, a curved band under the back
        y = int(min(h - 2, cy + bh * 1.05))
        cv2.ellipse(img, (int(cx), y - int(w * 0.6)), (int(w * 0.7), int(w * 0.6)), 0, 60, 120, int(CT_UNIT * 1.2), 2)
    return img


def _coronal_ct(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Coronal reformat: lungs where a frontal film has them, but cut, not projected: uniform soft tissue with
    sharp edges, black air around the body, no ribs or clavicles across the lungs, vessels as crisp branches."""
    h, w = shape
    img = np.zeros(shape, np.uint8)
    zoom = rng.uniform(0.9, 1.3)
    cx = w * rng.uniform(0.46, 0.54)
    soft = rng.uniform(0.8, 1.6)
    _ct_ellipse(img, (cx, h * 0.62), (0.46 * w * zoom, 0.62 * h * zoom), 0, soft)
    top, base = h * rng.uniform(0.08, 0.22), h * rng.uniform(0.7, 0.88)
    half = 0.5 * (base - top)
    lungs = _ct_lungs(
        img,
        [
            ((cx + side * w * rng.uniform(0.17, 0.24), top + half), (w * rng.uniform(0.12, 0.19), half), 0)
            for side in (-1, 1)
        ],
        rng.uniform(0.0, 0.12),
    )
    _ct_ellipse(img, (cx + w * rng.uniform(0.0, 0.08), base), (w * rng.uniform(0.12, 0.2), h * 0.12), 0, soft)  # heart
    for side in (-1, 1):  # the diaphragm domes, liver and spleen below
        _ct_ellipse(img, (cx + side * w * 0.2, base + h * 0.12), (w * 0.2, h * rng.uniform(0.1, 0.16)), 0, soft)
    lungs &= img < CT_UNIT * 0.5  # what the heart and the domes left of them
    branches = np.zeros_like(img)
    for _ in range(int(rng.integers(6, 16))):  # vessels branching out from each hilum
        side = rng.choice([-1, 1])
        a = np.array([cx + side * w * 0.08, h * rng.uniform(0.4, 0.55)])
        b = a + [side * w * rng.uniform(0.05, 0.2), h * rng.uniform(-0.25, 0.25)]
        stroke(branches, np.stack([a, b]), max(1.0, min(h, w) * rng.uniform(0.003, 0.01)), int(soft * 0.9 * CT_UNIT))
    img[lungs] = np.maximum(img[lungs], branches[lungs])
    _ct_vessels(rng, img, lungs, soft * 0.9, min(h, w))
    if rng.random() < 0.4:  # a posterior slice shows the spine, vertebra by vertebra
        for y in np.arange(h * rng.uniform(0.0, 0.1), h, h * 0.055):
            _ct_ellipse(img, (cx, y + h * 0.02), (w * 0.035, h * 0.022), 0, 2.4)
    return img


def ct_density(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A CT image as papers and exports show one: an axial slice or a coronal reformat, in a lung or a
    soft-tissue window, often cropped close. The view check must flag CT labelled PA/AP: trained on one fixed
    axial cartoon it caught 65-73 % of real CT images, and a fifth of the coronal ones (docs/view-check.md)."""
    img = (_coronal_ct if rng.random() < 0.35 else _axial_ct)(rng, shape)
    return img.astype(np.float32) / CT_UNIT


@dataclass
class Scene:
    """The noiseless film before findings: density plus the lungs it was drawn around."""

    density: np.ndarray
    aeration: np.ndarray | None = None  # air an effusion can replace (PA/AP only)
    sides: dict[str, np.ndarray] = field(default_factory=dict)  # full-resolution lung masks
    outlines: dict[str, np.ndarray] = field(default_factory=dict)  # full-resolution outline polygons
    lateral: np.ndarray | None = None
    unit: float = 0.0  # thorax width in full-resolution pixels


def frontal_scene(
    anatomy: np.random.Generator,
    clutter: np.random.Generator,
    shape: tuple[int, int],
    work: tuple[int, int],
    view: str,
    devices: tuple[str, ...],
) -> Scene:
    """PA/AP: anatomy on the working raster, lung masks and outlines at full resolution (exact masks)."""
    kx, ky = work[1] / shape[1], work[0] / shape[0]
    f_full = thorax_frame(anatomy, *shape)
    f_work = f_full.resized(kx, ky)
    lungs = sample_lungs(anatomy)
    shapes = [lung.outline(anatomy) for lung in lungs]
    outline_full = [f_full.px(lung.side, s[:, 0], s[:, 1]) for lung, s in zip(lungs, shapes)]
    density, aeration = frontal_density(anatomy, work, f_work, lungs, [p * [kx, ky] for p in outline_full], view)
    density += draw_devices(clutter, work, f_work, devices) * 0.6
    sides = {"right": fill(shape, [outline_full[0]]), "left": fill(shape, [outline_full[1]])}
    return Scene(
        density, aeration, sides=sides, outlines={"right": outline_full[0], "left": outline_full[1]}, unit=f_full.bw
    )


def lateral_scene(
    anatomy: np.random.Generator,
    clutter: np.random.Generator,
    shape: tuple[int, int],
    work: tuple[int, int],
    devices: tuple[str, ...],
) -> Scene:
    """Lateral: the one projected lung field is the mask; tubes and leads, but no pacemaker box."""
    wh, ww = work
    density, lung = _lateral_density(anatomy, work)
    frame = Frame(ww * 0.1, wh * 0.05, ww * 0.8, wh * 0.8, 0.5)
    density += draw_devices(clutter, work, frame, tuple(d for d in devices if d != "pacemaker")) * 0.4
    return Scene(density, lateral=fill(shape, [lung[0] * [shape[1] / ww, shape[0] / wh]]))


def ct_scene(anatomy: np.random.Generator, work: tuple[int, int]) -> Scene:
    """An axial CT-like slice: no lung masks (the V7 set holds a few such images)."""
    return Scene(ct_density(anatomy, work))

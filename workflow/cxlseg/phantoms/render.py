"""One synthetic radiograph with exact lung masks: scene, findings, exposure, noise and text.

A phantom forms the way a radiograph does: an attenuation map is blurred like
a detector, findings are added inside the lung outline, a random exposure and
gamma map density to brightness, then quantum noise and burned-in text follow.
Masks are rasterised from the same outlines at full resolution, so they are exact.

* PA/AP films: the patient's left lung is on the image RIGHT (``left_mask``).
* ``mask`` is the *aerated* lung, including the part behind the heart; a pleural
  effusion's fluid leaves it.  ``outline`` is the lung before any finding.
* ``view="LATERAL"``: ``mask`` is the single projected lung field, sides empty;
  ``view="CT"``: an axial slice with empty masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from cxlseg.phantoms.clutter import DEVICES, stamp_text
from cxlseg.phantoms.findings import FINDINGS, LungMap, draw_findings, pleural_fluid
from cxlseg.phantoms.raster import blur
from cxlseg.phantoms.scenes import Scene, ct_scene, frontal_scene, lateral_scene

VIEWS = ("PA", "AP", "LATERAL", "CT")


@dataclass
class Phantom:
    """A rendered film and its ground truth (masks, where findings went, which devices show)."""

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


def _add_findings(
    scene: Scene, rng: np.random.Generator, findings: dict[str, bool], shape: tuple[int, int], work: tuple[int, int]
) -> tuple[np.ndarray, dict[str, str]]:
    """Add findings to the (blurred, full-size) density inside the lung outline; return the fluid mask."""
    k = work[0] / shape[0], work[1] / shape[1]
    sides_work = {name: cv2.resize(m, work[::-1], interpolation=cv2.INTER_NEAREST) for name, m in scene.sides.items()}
    outlines_work = {name: p * [k[1], k[0]] for name, p in scene.outlines.items()}
    add, effusions, sites = draw_findings(rng, findings, LungMap(sides_work, outlines_work, scene.unit * k[1]))
    if add.shape != shape:
        add = cv2.resize(add, shape[::-1], interpolation=cv2.INTER_LINEAR)
    fluid = pleural_fluid(shape, scene.sides, scene.outlines, effusions)
    if fluid.any():
        ramp = blur(fluid.astype(np.float32), 0.006 * scene.unit)
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


def _check(view: str, height: int, width: int, findings: dict[str, bool]) -> None:
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if height < 32 or width < 32:
        raise ValueError(f"phantom too small: {width}x{height}")
    unknown = set(findings) - set(FINDINGS)
    if unknown:
        raise ValueError(f"unknown findings {sorted(unknown)}; known: {FINDINGS}")


def _pick_devices(clutter: np.random.Generator, devices: tuple[str, ...] | None) -> tuple[str, ...]:
    if devices is None:
        devices = tuple(d for d in DEVICES if clutter.random() < (0.45 if d == "ecg" else 0.12))
    bad = set(devices) - set(DEVICES)
    if bad:
        raise ValueError(f"unknown devices {sorted(bad)}; known: {DEVICES}")
    return devices


def _scene(
    view: str,
    anatomy: np.random.Generator,
    clutter: np.random.Generator,
    shape: tuple[int, int],
    max_work_side: int,
    devices: tuple[str, ...],
) -> tuple[Scene, tuple[int, int]]:
    """The view's scene drawn on a working raster at most `max_work_side` across, blurred like a detector and
    scaled to full size (drawing anatomy at full size would cost much and show nothing more)."""
    height, width = shape
    k = min(1.0, max_work_side / max(height, width))
    work = (max(32, int(round(height * k))), max(32, int(round(width * k))))
    if view in ("PA", "AP"):
        scene = frontal_scene(anatomy, clutter, shape, work, view, devices)
    elif view == "LATERAL":
        scene = lateral_scene(anatomy, clutter, shape, work, devices)
    else:
        scene = ct_scene(anatomy, work)
    scene.density = blur(scene.density, anatomy.uniform(0.5, 1.6))
    if work != shape:
        scene.density = cv2.resize(scene.density, (width, height), interpolation=cv2.INTER_LINEAR)
        if scene.aeration is not None:
            scene.aeration = cv2.resize(scene.aeration, (width, height), interpolation=cv2.INTER_LINEAR)
    return scene, work


def _lungs(
    scene: Scene, findings: dict[str, bool], rng: np.random.Generator, work: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, str]]:
    """Draw the findings into the scene; return (outline, left, right, sites): a finding's fluid is not lung."""
    shape = scene.density.shape
    empty = np.zeros(shape, np.uint8)
    if not scene.sides:
        return (scene.lateral if scene.lateral is not None else empty), empty, empty, {}
    outline = scene.sides["right"] | scene.sides["left"]
    fluid, sites = empty, {}
    if any(findings.values()):
        active = {name: True for name, on in findings.items() if on}
        fluid, sites = _add_findings(scene, rng, active, shape, work)
    return outline, scene.sides["left"] & (1 - fluid), scene.sides["right"] & (1 - fluid), sites


def _burn_text(
    clutter: np.random.Generator, image: np.ndarray, signal: np.ndarray, outline: np.ndarray, view: str
) -> None:
    """Laterality marker and annotations into the 8-bit image, and the same pixels into the float signal."""
    markers = ["L", "R"] if view != "LATERAL" else ["L", "R", "LAT"]
    marker = str(clutter.choice(markers, p=None if view == "LATERAL" else [0.8, 0.2]))
    plain = image.copy()
    stamp_text(clutter, image, outline, view, marker)
    stamped = image != plain
    signal[stamped] = image[stamped] / np.float32(255)


def render_phantom(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    findings: dict[str, bool] | None = None,
    view: str = "PA",
    devices: tuple[str, ...] | None = None,
    finding_seed: int | None = None,
    max_work_side: int = 768,
    text: bool = True,
) -> Phantom:
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
    findings = dict(findings or {})
    _check(view, height, width, findings)
    seeds = rng.integers(0, 2**63, size=5)
    anatomy, clutter, noise, expose = (np.random.default_rng(int(s)) for s in seeds[:4])
    finding_rng = np.random.default_rng(int(seeds[4]) if finding_seed is None else finding_seed)
    devices = _pick_devices(clutter, devices)
    scene, work = _scene(view, anatomy, clutter, (height, width), max_work_side, devices)
    outline, left, right, sites = _lungs(scene, findings, finding_rng, work)
    signal = _film(scene.density, expose, noise)
    image = np.round(signal * 255).astype(np.uint8)
    if text and view != "CT":
        _burn_text(clutter, image, signal, outline, view)
    return Phantom(
        image=image,
        mask=(right | left) if scene.sides else outline,
        left_mask=left,
        right_mask=right,
        findings={name: bool(findings.get(name, False)) for name in FINDINGS},
        view=view,
        outline=outline,
        signal=signal,
        sites=sites,
        devices=tuple(devices),
    )


VIEW_LABELS = ("frontal", "lateral", "ct")


def _view_sample(rng: np.random.Generator, label: str, size: int) -> np.ndarray:
    """One film of the view at a random aspect and resolution, stretched to size x size as the pipeline does."""
    view = {"frontal": str(rng.choice(["PA", "AP"])), "lateral": "LATERAL", "ct": "CT"}[label]
    long_side = max(64, int(round(size * rng.uniform(1.0, 2.0))))
    aspect = rng.uniform(0.8, 1.25)
    height, width = (
        (long_side, max(32, int(long_side / aspect))) if aspect >= 1 else (max(32, int(long_side * aspect)), long_side)
    )
    findings = {name: bool(rng.random() < 0.15) for name in FINDINGS} if label == "frontal" else {}
    image = render_phantom(rng, height, width, findings=findings, view=view).image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def render_view_samples(n_per_view: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """A labelled set of phantom films, `n_per_view` each of "frontal" (PA or AP, some with findings),
    "lateral" and "ct", as uint8 N x size x size: training data for a view classifier that keeps lateral
    and CT images labelled PA/AP (the demo's mislabelled_views) out of segmentation.  Same seed, same set."""
    if n_per_view < 1 or size < 16:
        raise ValueError(f"need n_per_view >= 1 and size >= 16, got {n_per_view}, {size}")
    images, labels = [], []
    for v, label in enumerate(VIEW_LABELS):
        for i in range(n_per_view):
            images.append(_view_sample(np.random.default_rng([seed, v, i]), label, size))
            labels.append(label)
    return np.stack(images), labels


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

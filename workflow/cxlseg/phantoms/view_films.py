"""Phantom films for the view check, per group: frontal, lateral and CT renders, sick frontals ("opaque") and
lung-free crops ("abdomen"), for training and, from other seeds, for validation; rule view_phantoms writes them
to one .npz that the view check's training reads (production code never renders phantoms)."""

from __future__ import annotations

import cv2
import numpy as np

from cxlseg import io
from cxlseg.phantoms.findings import FINDINGS
from cxlseg.phantoms.render import render_phantom, render_view_samples
from cxlseg.phantoms.spec import ViewPhantomSettings

VALIDATE_SEED_OFFSET = 1_000_003  # validation films come from seeds never trained on


def abdomen_like(rng: np.random.Generator, work: int) -> np.ndarray:
    """A film without lung fields: the part of a phantom frontal below the diaphragm (or above the apices),
    stretched to a square, standing in for abdomen and neck films labelled PA/AP."""
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
    long_side = int(work * rng.uniform(1.0, 2.0))
    height, width = long_side, max(32, int(long_side / rng.uniform(0.8, 1.25)))
    findings = {name: bool(rng.random() < 0.6) for name in FINDINGS}
    image = render_phantom(rng, height, width, findings=findings, view=str(rng.choice(["PA", "AP"]))).image
    return cv2.resize(image, (work, work), interpolation=cv2.INTER_AREA)


def phantom_views(n_per_view: int, work: int, seed: int, abdomen: bool = True) -> dict[str, np.ndarray]:
    """Phantom films per group (frontal, lateral, ct and, optionally, abdomen), uint8 work x work.
    Rendered at `work` (twice the network size) and area-resized later, as a large film is."""
    images, labels = render_view_samples(n_per_view, work, seed)
    labels = np.asarray(labels)
    groups = {name: images[labels == name] for name in ("frontal", "lateral", "ct")}
    groups["opaque"] = np.stack([opaque_frontal(np.random.default_rng([seed, 98, i]), work) for i in range(n_per_view)])
    if abdomen:
        rngs = (np.random.default_rng([seed, 99, i]) for i in range(n_per_view))
        groups["abdomen"] = np.stack([abdomen_like(rng, work) for rng in rngs])
    return groups


def write_view_films(path, settings: ViewPhantomSettings) -> dict[str, int]:
    """All films of both splits, rendered at twice the network size, to one .npz ("split/group" arrays)."""
    work = 2 * settings.size
    splits = {
        "train": phantom_views(settings.samples_per_view, work, settings.seed, settings.abdomen_negatives),
        "validate": phantom_views(
            settings.validate_per_view, work, settings.seed + VALIDATE_SEED_OFFSET, settings.abdomen_negatives
        ),
    }
    arrays = {f"{split}/{group}": films for split, groups in splits.items() for group, films in groups.items()}
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return {key: len(films) for key, films in arrays.items()}

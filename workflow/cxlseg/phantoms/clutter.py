"""Clutter outside the findings' control: tubes, lines, ECG leads, a pacemaker and burned-in text.

It draws from its own random stream, so it never depends on the findings.
"""

from __future__ import annotations

import cv2
import numpy as np

from cxlseg.phantoms.raster import Frame, stroke

DEVICES = ("ecg", "ett", "central_line", "ng_tube", "pacemaker")
SUPPORT_DEVICES = frozenset({"ett", "central_line", "ng_tube", "pacemaker"})
FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_devices(rng: np.random.Generator, shape: tuple[int, int], f: Frame, chosen: tuple[str, ...]) -> np.ndarray:
    """Radiopaque tubes, lines, leads and a pacemaker, as density."""
    layer = np.zeros(shape, np.uint8)
    unit = f.bw
    h, w = shape
    if "ett" in chosen:
        tip = rng.uniform(0.18, 0.25)
        stroke(layer, f.px(1, np.array([0.0, 0.002, 0.004]), np.array([-0.4, 0.0, tip])), 0.014 * unit, 120)
        stroke(layer, f.px(1, np.array([0.006, 0.008, 0.01]), np.array([-0.4, 0.0, tip])), 0.003 * unit, 255)
    if "ng_tube" in chosen:
        dx = np.array([0.01, -0.01, 0.0, 0.05, 0.18, 0.22])
        v = np.array([-0.4, 0.2, 0.6, 0.9, 0.95, 0.9]) + rng.normal(0, 0.01, 6)
        stroke(layer, f.px(1, dx, v), 0.006 * unit, 230)
    if "central_line" in chosen:
        side = int(rng.choice([-1, 1]))
        dx = np.array([0.35, 0.2, 0.08, 0.03 if side == -1 else 0.0])
        v = np.array([-0.05, 0.08, 0.14, rng.uniform(0.28, 0.36)])
        stroke(layer, f.px(side, dx, v), 0.005 * unit, 255)
    if "pacemaker" in chosen:
        c = f.px(1, rng.uniform(0.22, 0.32), rng.uniform(0.08, 0.14))
        box = (c - [0.04 * unit, 0.03 * unit], c + [0.04 * unit, 0.03 * unit])
        cv2.rectangle(layer, tuple(np.round(box[0]).astype(int)), tuple(np.round(box[1]).astype(int)), 255, -1)
        stroke(layer, np.stack([c, f.px(1, 0.05, 0.3), f.px(1, 0.12, 0.6)]), 0.004 * unit, 255)
    if "ecg" in chosen:
        for _ in range(int(rng.integers(2, 6))):
            side = int(rng.choice([-1, 1]))
            c = f.px(side, rng.uniform(0.35, 0.55), rng.choice([rng.uniform(-0.08, 0.05), rng.uniform(0.9, 1.0)]))
            cv2.circle(layer, tuple(np.round(c).astype(int)), max(2, int(0.018 * unit)), 140, -1, cv2.LINE_AA)
            cv2.circle(layer, tuple(np.round(c).astype(int)), max(1, int(0.006 * unit)), 255, -1, cv2.LINE_AA)
            end = np.array([rng.choice([0.0, w - 1.0]), rng.uniform(0, h)])
            mid = (c + end) / 2 + rng.normal(0, 0.1 * unit, 2)
            t = np.linspace(0, 1, 20)[:, None]
            wire = (1 - t) ** 2 * c + 2 * (1 - t) * t * mid + t**2 * end
            stroke(layer, wire, 0.003 * unit, 200)
    return layer.astype(np.float32) / 255.0


def stamp_text(rng: np.random.Generator, img: np.ndarray, keep_out: np.ndarray, view: str, side_marker: str) -> None:
    """Burned-in laterality marker and annotations, placed where they do not cover lung."""
    h, w = img.shape
    scale = max(0.4, min(h, w) / 700.0)
    words = [side_marker]
    if view == "AP" or rng.random() < 0.3:
        words.append(str(rng.choice(["PORTABLE", "AP", "PORTABLE AP", "SUPINE", "UPRIGHT", "SEMI-UPRIGHT"])))
    if rng.random() < 0.6:
        words.append(
            f"{int(rng.integers(1, 13)):02d}/{int(rng.integers(1, 29)):02d}/21{int(rng.integers(10, 99))}"
            f" {int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
        )
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
            if not grow[max(0, y - th - 4) : y + base + 4, max(0, x - 4) : x + tw + 4].any():
                value = int(rng.integers(200, 256)) if rng.random() < 0.85 else int(rng.integers(0, 40))
                if len(word) == 1 and rng.random() < 0.5:
                    cv2.rectangle(img, (x - 4, y - th - 4), (x + tw + 4, y + base + 2), value, max(1, thick // 2))
                cv2.putText(img, word, (x, y), FONT, s, value, thick, cv2.LINE_AA)
                break

"""A small chest film with a known lung mask, for the film check and the degradations: dark lungs on a brighter
body, a bright spine between them, dark air at the shoulders (the layout every frontal chest film shares)."""

from __future__ import annotations

import cv2
import numpy as np


def lung_film(size: int = 96, seed: int = 0, shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 film, 0/1 lung mask) of size x size; `shift` moves the patient sideways."""
    mask = np.zeros((size, size), np.uint8)
    c = size // 2 + shift
    axes = (size // 8, size * 5 // 16)
    cv2.ellipse(mask, (c - size * 3 // 16, size // 2), axes, 0, 0, 360, 1, -1)
    cv2.ellipse(mask, (c + size * 3 // 16, size // 2), axes, 0, 0, 360, 1, -1)
    body = np.zeros((size, size), np.float32)
    cv2.ellipse(body, (c, size * 3 // 4), (size * 7 // 16, size * 5 // 8), 0, 0, 360, 1, -1)
    film = 30 + 130 * body - 90 * mask
    film[:, c - size // 32 : c + size // 32 + 1] += 40 * body[:, c - size // 32 : c + size // 32 + 1]  # spine
    film += np.random.default_rng(seed).normal(0, 5, film.shape)
    return np.clip(film, 0, 255).astype(np.uint8), mask


def templates(n: int = 8, size: int = 96):
    """Upright films of slightly different patients: what a training store holds."""
    return [lung_film(size, seed=i, shift=(i % 5) - 2)[0] for i in range(n)]

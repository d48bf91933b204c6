"""The image preprocessing shared by training and inference (one definition, so they agree).

Geometry follows the paper: the whole radiograph is resized (not cropped or
padded) to size x size with INTER_AREA, then CLAHE (clip 2.0, 8x8 tiles).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from .io import read_gray


def resize(image: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=interpolation)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Area-average then re-threshold, so thin structures survive downsampling without stair-steps."""
    soft = resize(mask.astype(np.float32), size, cv2.INTER_AREA)
    return (soft >= 0.5).astype(np.uint8)


def clahe(image: np.ndarray, clip: float = 2.0, tiles: int = 8) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(tiles), int(tiles))).apply(image)


def prepare(image: np.ndarray, size: int, clip: float = 2.0, tiles: int = 8) -> np.ndarray:
    """8-bit gray radiograph of any size -> size x size CLAHE image (uint8)."""
    return clahe(resize(image, size), clip, tiles)


def load_prepared(path: os.PathLike | str, size: int, clip: float = 2.0, tiles: int = 8) -> np.ndarray:
    return prepare(read_gray(path), size, clip, tiles)


def to_model_input(images: np.ndarray, channels: int = 1) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, C, H, W) in [0, 1]; 3 channels repeat the gray plane."""
    x = images.astype(np.float32)[:, None] / 255.0
    if channels == 3:
        x = np.repeat(x, 3, axis=1)
    elif channels != 1:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return x

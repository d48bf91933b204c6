"""The augmentation montage: a grid of store samples with their mask outlines, to eyeball that masks stayed aligned.

Plotting only, kept apart so `cxlseg.training.augment` holds the store logic alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.training.store import store_file

MAX_HEIGHT = 560  # px: the montage shows whole on a 1366x768 screen


def write_montage(
    path: os.PathLike | str, images: np.ndarray, masks: np.ndarray, captions: list[str], cols: int = 6
) -> None:
    """Grid of samples with their mask contour in green: the quick visual check that masks stayed aligned.
    Scaled down to MAX_HEIGHT pixels at most, so it fits a laptop screen whatever the sample count."""
    tiles = []
    for image, mask, caption in zip(images, masks, captions):
        tile = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_GRAY2BGR)
        contours, _ = cv2.findContours(
            np.ascontiguousarray(mask).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(tile, contours, -1, (0, 220, 0), 1)
        cv2.putText(tile, caption[:40], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    if not tiles:
        tiles = [np.zeros((64, 64, 3), np.uint8)]
    h, w = tiles[0].shape[:2]
    blank = np.zeros((h, w, 3), np.uint8)
    tiles += [blank] * (-len(tiles) % cols)
    grid = np.vstack([np.hstack(tiles[r : r + cols]) for r in range(0, len(tiles), cols)])
    if grid.shape[0] > MAX_HEIGHT:
        scale = MAX_HEIGHT / grid.shape[0]
        grid = cv2.resize(grid, (round(grid.shape[1] * scale), MAX_HEIGHT), interpolation=cv2.INTER_AREA)
    io.write_image(path, grid, [cv2.IMWRITE_JPEG_QUALITY, 70] if str(path).endswith(".jpg") else [])


def montage_from_store(store, index: pd.DataFrame, path: Path, n: int) -> None:
    """Evenly spaced augmented train samples (originals if none were augmented)."""
    pool = index[index["augmented"]] if index["augmented"].any() else index
    picks = (
        pool["row"].to_numpy()[np.unique(np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int))]
        if len(pool)
        else np.array([], dtype=np.int64)
    )
    images = np.load(store_file(store, "train", "images"), mmap_mode="r")
    masks = np.load(store_file(store, "train", "masks"), mmap_mode="r")
    captions = [f"{index.at[i, 'label']} {index.at[i, 'op'] or 'original'}" for i in picks]
    write_montage(path, images[picks], masks[picks], captions)

"""The training store's layout, decided here once: per split an image array, a mask array (uint8, N x S x S) and
an index table, side by side in one folder. The augment rule's outputs, the writer, the trainer's reader, the
montage and the QC calibration all ask this module for the files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxlseg.mimic import SPLITS

SUFFIXES = {"images": ".npy", "masks": ".npy", "index": ".parquet"}


def store_file(store_dir: os.PathLike | str, split: str, kind: str) -> Path:
    """One file of the store: `kind` is images, masks or index."""
    if split not in SPLITS or kind not in SUFFIXES:
        raise ValueError(f"no store file for split {split!r}, kind {kind!r}")
    return Path(store_dir) / f"{split}_{kind}{SUFFIXES[kind]}"


def store_files(store_dir: os.PathLike | str) -> list[str]:
    """Every file of the store, split by split: the augment rule's outputs."""
    return [str(store_file(store_dir, split, kind)) for split in SPLITS for kind in SUFFIXES]


def store_dir_of(files) -> Path:
    """The store folder that a rule's store files (its input or output list) sit in; they must share one."""
    folders = {Path(f).parent for f in files}
    if len(folders) != 1 or len(list(files)) != len(SPLITS) * len(SUFFIXES):
        raise ValueError(f"not the files of one training store: {list(files)}")
    return folders.pop()


def load_split(store_dir: Path | str, split: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """One split of the training store, memory-mapped, with its shapes checked against each other."""
    paths = {kind: store_file(store_dir, split, kind) for kind in ("images", "masks")}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training store file missing")
    images, masks = (np.load(paths[k], mmap_mode="r") for k in ("images", "masks"))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{paths['images']}: expected uint8 (N, S, S), got {images.dtype} {images.shape}")
    if masks.shape != images.shape:
        raise ValueError(f"{paths['masks']}: shape {masks.shape} does not match images {images.shape}")
    index_path = store_file(store_dir, split, "index")
    index = pd.read_parquet(index_path) if index_path.is_file() else pd.DataFrame(index=range(len(images)))
    if len(index) != len(images):
        raise ValueError(f"{index_path}: {len(index)} rows for {len(images)} images")
    return images, masks, index

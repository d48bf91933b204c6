"""The training store's layout, decided here once: per split an image array, a mask array (uint8, N x S x S) and
an index table, side by side in one folder. The augment rule's outputs come from `store_files`; the rules that
read the store hand their declared input files over as a `TrainingStore`, and the trainer, evaluation, the
montage and the QC calibration ask it for each file instead of rebuilding names from a folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxlseg.mimic import SPLITS

SUFFIXES = {"images": ".npy", "masks": ".npy", "index": ".parquet"}


def _name(split: str, kind: str) -> str:
    if split not in SPLITS or kind not in SUFFIXES:
        raise ValueError(f"no store file for split {split!r}, kind {kind!r}")
    return f"{split}_{kind}{SUFFIXES[kind]}"


@dataclass(frozen=True)
class TrainingStore:
    """The store's files as a rule declared them (its `store` input or output), each found by its name."""

    files: tuple[str, ...]

    def __post_init__(self) -> None:
        expected = sorted(_name(split, kind) for split in SPLITS for kind in SUFFIXES)
        if sorted(Path(f).name for f in self.files) != expected:
            raise ValueError(f"not the files of one training store ({', '.join(expected)}): {list(self.files)}")

    @property
    def folder(self) -> Path:
        """The one folder the store's files share (the augment writer keeps its scratch arrays there)."""
        folders = {Path(f).parent for f in self.files}
        if len(folders) != 1:
            raise ValueError(f"not the files of one training store: {sorted(map(str, folders))}")
        return folders.pop()

    @classmethod
    def of(cls, files) -> TrainingStore:
        """The store a rule's `store` files make up (any iterable of paths)."""
        return cls(tuple(str(f) for f in files))

    @classmethod
    def at(cls, store_dir: os.PathLike | str) -> TrainingStore:
        """The store laid out in `store_dir` (tests, benchmarks and the augment writer)."""
        return cls(tuple(store_files(store_dir)))

    def file(self, split: str, kind: str) -> Path:
        """One file of the store: `kind` is images, masks or index."""
        name = _name(split, kind)
        return next(Path(f) for f in self.files if Path(f).name == name)

    def __str__(self) -> str:
        return f"training store {os.path.commonpath(self.files)}"


def as_store(store: TrainingStore | os.PathLike | str) -> TrainingStore:
    """A `TrainingStore` as it is, or the store laid out in a folder."""
    return store if isinstance(store, TrainingStore) else TrainingStore.at(store)


def store_file(store: TrainingStore | os.PathLike | str, split: str, kind: str) -> Path:
    """One file of the store (a `TrainingStore` or its folder): `kind` is images, masks or index."""
    return store.file(split, kind) if isinstance(store, TrainingStore) else Path(store) / _name(split, kind)


def store_files(store_dir: os.PathLike | str) -> list[str]:
    """Every file of the store, split by split: the augment rule's outputs."""
    return [str(Path(store_dir) / _name(split, kind)) for split in SPLITS for kind in SUFFIXES]


def load_split(store: TrainingStore | Path | str, split: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """One split of the training store, memory-mapped, with its shapes checked against each other."""
    paths = {kind: store_file(store, split, kind) for kind in ("images", "masks")}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: training store file missing")
    images, masks = (np.load(paths[k], mmap_mode="r") for k in ("images", "masks"))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{paths['images']}: expected uint8 (N, S, S), got {images.dtype} {images.shape}")
    if masks.shape != images.shape:
        raise ValueError(f"{paths['masks']}: shape {masks.shape} does not match images {images.shape}")
    index_path = store_file(store, split, "index")
    index = pd.read_parquet(index_path) if index_path.is_file() else pd.DataFrame(index=range(len(images)))
    if len(index) != len(images):
        raise ValueError(f"{index_path}: {len(index)} rows for {len(images)} images")
    return images, masks, index

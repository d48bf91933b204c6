"""What a dataset layout reader yields: its shared types, so ingest and the V7 reader need not import each other."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

MaskLoader = Callable[[tuple[int, int]], np.ndarray]


class Rejected(Exception):
    """One candidate image is not usable; `file` is the offending file, `reason` says why."""

    def __init__(self, file: os.PathLike | str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


@dataclass
class Candidate:
    """An image found in a layout, with everything but its pixels checked."""

    image_id: str
    patient_id: str
    label: str
    image_file: Path
    view: str
    load_mask: MaskLoader


def require_dir(path: Path, what: str) -> Path:
    """A layout's mandatory folder; its absence fails the whole dataset, naming `what` it should hold."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: directory {path} not found")
    return path


def images_in(folder: Path) -> list[Path]:
    """The folder's image files in name order, so every run yields the candidates in the same order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

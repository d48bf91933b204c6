"""Classifier inputs: which file, how it is sized, how a training image is jittered.

"original" is MIMIC-CXR-JPG as published (the source JPEG, no CLAHE), "segmented" the CXLSeg
``<dicom_id>.jpg``; both are sized to the network input the same way. ``pad`` is the authors'
``tf.image.resize_with_pad``: the whole image, aspect kept, centred on black, so a portrait
radiograph is not squashed. Augmentation follows the authors' ``data_augmentation``: random
left-right flip, brightness shift, contrast factor, clipped to [0, 1] (their saturation jitter
does nothing to a gray image and is left out).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from cxlseg.classify.cohort import image_path
from cxlseg.io import ImageReadError, UnsafePathError, read_gray
from cxlseg.preprocess import resize

RESIZE_MODES = ("pad", "stretch")


def letterbox(gray: np.ndarray, size: int) -> np.ndarray:
    """Scale the longer side to `size`, keep the aspect ratio, centre on a black size x size canvas."""
    height, width = gray.shape[:2]
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # area averaging does not alias when shrinking
    scaled = (
        cv2.resize(gray, (new_w, new_h), interpolation=interpolation) if (new_h, new_w) != (height, width) else gray
    )
    canvas = np.zeros((size, size), gray.dtype)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = scaled
    return canvas


def fit_to_input(gray: np.ndarray, size: int, mode: str) -> np.ndarray:
    """uint8 gray image -> size x size by `mode` ('pad' letterboxes, 'stretch' squashes)."""
    if mode == "pad":
        return letterbox(gray, size)
    if mode == "stretch":
        return resize(gray, size)
    raise ValueError(f"unknown resize mode {mode!r}; valid: {', '.join(RESIZE_MODES)}")


@dataclass(frozen=True)
class Augment:
    """The authors' training jitter on a [0, 1] tensor; draws from torch's RNG, which DataLoader seeds per worker."""

    brightness: float
    contrast: tuple[float, float]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        x = x + torch.empty(()).uniform_(-self.brightness, self.brightness)
        low, high = self.contrast
        mean = x.mean()
        x = (x - mean) * torch.empty(()).uniform_(low, high) + mean
        return x.clamp(0.0, 1.0)


@dataclass(frozen=True)
class ImageSource:
    """Where one input kind lives and how it is sized (picklable, so DataLoader workers can use it)."""

    input_kind: str
    cxlseg_dir: str
    mimic_root: str
    input_size: int
    resize: str

    def path(self, subject_id: int, study_id: int, dicom_id: str, dicom_path: str) -> Path:
        return image_path(self.input_kind, self.cxlseg_dir, self.mimic_root, subject_id, study_id, dicom_id, dicom_path)

    def load(self, path: Path) -> np.ndarray:
        """uint8 input_size x input_size: the file as stored, only resized (no CLAHE, no other filtering)."""
        return fit_to_input(read_gray(path), self.input_size, self.resize)


class ImageDataset(Dataset):
    """Images of one split; a file that fails to load comes back flagged (ok=False) instead of raising,
    so one bad image never stops a worker or the epoch."""

    def __init__(
        self,
        frame: pd.DataFrame,
        targets: np.ndarray,
        mask: np.ndarray,
        source: ImageSource,
        channels: int,
        augment: Augment | None = None,
    ):
        self.rows = list(frame[["subject_id", "study_id", "dicom_id", "DicomPath"]].itertuples(index=False, name=None))
        self.targets = torch.from_numpy(np.ascontiguousarray(targets, np.float32))
        self.mask = torch.from_numpy(np.ascontiguousarray(mask, np.float32))
        self.source = source
        self.channels = channels
        self.augment = augment

    def __len__(self) -> int:
        return len(self.rows)

    def unjittered(self) -> "ImageDataset":
        """The same images without augmentation (BatchNorm statistics should describe what evaluation sees)."""
        plain = copy.copy(self)
        plain.augment = None
        return plain

    def dicom_id(self, index: int) -> str:
        return self.rows[index][2]

    def __getitem__(self, index: int) -> dict:
        subject_id, study_id, dicom_id, dicom_path = self.rows[index]
        file, reason = "", ""
        try:
            path = self.source.path(subject_id, study_id, dicom_id, dicom_path)
            file = str(path)
            image = torch.from_numpy(self.source.load(path)).float().div_(255.0)[None]
            if self.augment is not None:
                image = self.augment(image)
        except (ImageReadError, UnsafePathError, OSError, ValueError, cv2.error) as err:
            reason = getattr(err, "reason", None) or str(err)
            image = torch.zeros(1, self.source.input_size, self.source.input_size)
        return {
            "x": image.expand(self.channels, -1, -1).contiguous(),
            "y": self.targets[index],
            "m": self.mask[index],
            "index": index,
            "ok": not reason,
            "file": file,
            "reason": reason,
        }

"""Lung masks as run-length strings in CheXmask's convention, so its users can compare mask by mask.

CheXmask (`DataPostprocessing/utils.py`): the mask is flattened row by row (C order) at the image's original
Height x Width; each run of lung pixels is written as `start length`, the start 1-based; pairs are
space-separated; an empty mask is the empty string.  Its `Left Lung` is the patient's left lung, on the
image's right side of a frontal film.  Some of CheXmask's own files swap Height and Width, so a shape given
with an RLE is checked against the image before anything is decoded (`check_shape`).
"""

from __future__ import annotations

import numpy as np


class ShapeMismatch(ValueError):
    """An RLE's Height x Width does not match the image it belongs to."""


def encode(mask: np.ndarray) -> str:
    """Any 2-D mask (bool, 0/1 or 0/255: non-zero is lung) to CheXmask's RLE string."""
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    pixels = np.concatenate([[0], (np.asarray(mask) > 0).ravel(order="C").astype(np.int8), [0]])
    runs = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1  # 1-based starts and ends (exclusive) alternate
    runs[1::2] -= runs[::2]
    return " ".join(str(int(x)) for x in runs)


def decode(rle: str, height: int, width: int) -> np.ndarray:
    """CheXmask's RLE to a 0/1 uint8 mask of height x width; a run outside the image, or runs out of order,
    raise ValueError rather than being cut (they mean a wrong shape or a corrupt string)."""
    if height < 1 or width < 1:
        raise ValueError(f"RLE shape must be positive, got {height} x {width}")
    text = "" if rle is None or (isinstance(rle, float) and np.isnan(rle)) else str(rle).strip()
    flat = np.zeros(height * width, np.uint8)
    if not text:
        return flat.reshape(height, width)
    try:
        numbers = np.array([int(x) for x in text.split()], np.int64)
    except ValueError:
        raise ValueError(f"RLE holds something other than integers: {text[:40]!r}") from None
    if numbers.size % 2:
        raise ValueError(f"RLE has an odd count of numbers ({numbers.size}): start/length pairs expected")
    starts, lengths = numbers[::2] - 1, numbers[1::2]
    ends = starts + lengths
    if starts.min() < 0 or lengths.min() < 1:
        raise ValueError("RLE has a start below 1 or a run shorter than 1")
    if ends.max() > flat.size:
        raise ValueError(f"RLE runs to pixel {int(ends.max())}, past the {height} x {width} image ({flat.size})")
    if np.any(starts[1:] < ends[:-1]):
        raise ValueError("RLE runs overlap or are out of order")
    for start, end in zip(starts, ends):
        flat[start:end] = 1
    return flat.reshape(height, width)


def check_shape(height: int, width: int, image_shape: tuple[int, ...], what: str) -> None:
    """Refuse an RLE whose Height x Width is not the image's; say so when they are merely swapped
    (as in some of CheXmask's files), since decoding with them would scramble the mask silently."""
    image_h, image_w = int(image_shape[0]), int(image_shape[1])
    if (height, width) == (image_h, image_w):
        return
    if (height, width) == (image_w, image_h):
        raise ShapeMismatch(
            f"{what}: Height x Width {height} x {width} is the image's width x height ({image_h} x {image_w}): "
            "swapped; decode with the image's own shape"
        )
    raise ShapeMismatch(f"{what}: Height x Width {height} x {width} is not the image's {image_h} x {image_w}")


def lung_columns(left_lung: np.ndarray, right_lung: np.ndarray) -> dict:
    """CheXmask's columns for one image: the patient's left and right lung at the original resolution."""
    if left_lung.shape != right_lung.shape:
        raise ValueError(f"lung masks differ in shape: {left_lung.shape} and {right_lung.shape}")
    height, width = left_lung.shape
    return {"Left Lung": encode(left_lung), "Right Lung": encode(right_lung), "Height": height, "Width": width}

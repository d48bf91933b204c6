"""Lung masks as the public sets ship them, made binary: PNG masks (any bit depth) and Darwin JSON polygons.

A mask with more than two levels is refused rather than thresholded: it is a probability map or a JPEG
artefact, and thresholding it would silently move the lung border.
"""

from __future__ import annotations

import os
from typing import Iterable

import cv2
import numpy as np

from cxlseg import io


class MaskError(ValueError):
    """A mask exists but cannot be used (not binary, wrong size, empty, bad polygon)."""

    def __init__(self, reason: str, path: os.PathLike | str | None = None):
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = str(path) if path else None
        self.reason = reason


def binarise_mask(raw: np.ndarray, path: os.PathLike | str = "<array>") -> np.ndarray:
    """A decoded mask as 0/1 uint8, refusing anything with more than two levels.

    Accepted encodings are background 0 plus one foreground value (0/1, 0/255,
    0/65535); a mask with several grey levels is a probability map or a JPEG
    artefact and would silently move the lung border, so it is an error.
    """
    if raw.ndim == 3:
        raw = raw[..., :3].max(axis=2) if raw.shape[2] >= 3 else raw[..., 0]
    if raw.dtype == np.uint8:
        values = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
    else:
        values = np.unique(raw)
    if values.size > 2:
        raise MaskError(f"mask not binary ({values.size} distinct values)", path)
    if values.size == 2 and values[0] != 0:
        raise MaskError(f"mask not binary (values {values[0]} and {values[1]}, no 0 background)", path)
    return (raw > 0).astype(np.uint8)


def read_binary_mask(path: os.PathLike | str) -> np.ndarray:
    return binarise_mask(io.read_image(path), path)


def _points(path: list) -> np.ndarray:
    return np.array([[float(p["x"]), float(p["y"])] for p in path], dtype=np.float64)


def _annotation_paths(annotation: dict) -> list[list]:
    """All vertex paths of one Darwin polygon annotation (JSON 1.0 and 2.0 spellings)."""
    if "complex_polygon" in annotation:
        body = annotation["complex_polygon"]
        paths = body.get("path") or []
        paths = list(paths) if paths and isinstance(paths[0], list) else [paths]
        return paths + list(body.get("additional_paths") or [])
    body = annotation.get("polygon") or {}
    if "paths" in body:  # Darwin JSON 2.0
        return list(body["paths"])
    return [body.get("path") or []] + list(body.get("additional_paths") or [])


def render_polygons(annotations: Iterable[dict], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise Darwin polygon annotations to a 0/1 mask.

    Within one annotation the paths are combined even-odd (XOR), which is how
    Darwin encodes holes; separate annotations (left and right lung) are united.
    """
    mask = np.zeros(shape, np.uint8)
    for annotation in annotations:
        scratch = np.zeros(shape, np.uint8)
        for path in _annotation_paths(annotation):
            if len(path) < 3:
                continue
            layer = np.zeros(shape, np.uint8)
            cv2.fillPoly(layer, [np.round(_points(path)).astype(np.int32)], 1)
            scratch ^= layer
        mask |= scratch
    return mask

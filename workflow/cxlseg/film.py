"""The film inside the image, the right way round: what inference does to a radiograph before segmenting it.

Archives hold films a network trained on clean ones gets wrong. Two of them are cheap to undo, so they are undone
rather than learned:

- a film photographed or scanned on a light box sits inside a bright, flat border. `film_box` finds the rows and
  columns at the edges that are almost all bright and flat (no anatomy is both), and the film inside is segmented
  on its own; `FilmCheck.restore` puts the mask back into the whole image;
- an inverted film (MONOCHROME1 shown as MONOCHROME2: bone dark, lungs bright). `polarity_score` correlates the
  film's 16 x 16 thumbnail (saturated pixels left out), standardised, with the mean thumbnail of the training
  films (stored in every checkpoint): standardising makes an inverted film's score exactly the negative of its
  upright score, so a clearly negative score means inverted, and a score near 0 says the film looks like no chest
  film either way up (it is left as it is, and QC reads the score).

MIMIC-CXR-JPG is MONOCHROME2 and has no light-box borders, so on it the check changes nothing: it only records
`film_fraction` and `polarity_score`, which QC reads.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

THUMB = 16  # thumbnail side of the polarity template: coarse enough to ignore pose, fine enough to see lungs
_BRIGHT = 200  # a light box is brighter than this (8-bit) ...
_FLAT = 12  # ... and its 3x3 morphological gradient stays under this (JPEG noise, a slow lamp gradient)
_BORDER_ROW = 0.95  # a row or column is border when this share of its pixels is bright and flat
_MIN_BORDER = 0.03  # crop only when the border covers this share of the image (not a stray bright edge line)
_MIN_FILM = 0.35  # a film box narrower or shorter than this share of the image is a white-out, not a film
_SATURATED = 4  # pixels within this of 0 or 255 are padding, labels or fill: no polarity in them
_MIN_CELLS = 0.3  # a thumbnail with fewer unsaturated cells than this share has no polarity to read
INVERT_BELOW = -0.1  # invert only a clearly negative score: a film unlike any chest film either way stays as is


@dataclass(frozen=True)
class FilmSettings:
    """`infer.film`: undo a light-box border and an inverted polarity before segmenting."""

    crop_border: bool
    polarity: bool


@dataclass(frozen=True)
class FilmCheck:
    """Where the film lies in an image (rows top:bottom, columns left:right, in the image's pixels), whether it
    was inverted, and the polarity score after correction (NaN without a template)."""

    box: tuple[int, int, int, int]
    shape: tuple[int, int]
    inverted: bool
    polarity_score: float

    @property
    def cropped(self) -> bool:
        return self.box != (0, self.shape[0], 0, self.shape[1])

    @property
    def film_fraction(self) -> float:
        top, bottom, left, right = self.box
        return (bottom - top) * (right - left) / float(self.shape[0] * self.shape[1])

    def upright(self, image: np.ndarray) -> np.ndarray:
        """The whole image the right way round (what the segmented image is cut from)."""
        return 255 - image if self.inverted else image

    def film(self, image: np.ndarray) -> np.ndarray:
        """The film alone, upright, stretched back to the image's size (what the network sees)."""
        top, bottom, left, right = self.box
        out = self.upright(image)
        if self.cropped:
            out = cv2.resize(out[top:bottom, left:right], self.shape[::-1], interpolation=cv2.INTER_LINEAR)
        return out

    def restore(self, film_map: np.ndarray) -> np.ndarray:
        """A mask or probability map of `film(image)` mapped back onto the whole image (0 outside the film)."""
        if not self.cropped:
            return film_map
        top, bottom, left, right = self.box
        out = np.zeros(self.shape, film_map.dtype)
        size = (right - left, bottom - top)
        if film_map.dtype == np.uint8:
            part = (cv2.resize(film_map.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5).astype(
                np.uint8
            )
            out[top:bottom, left:right] = part * film_map.max()
        else:
            out[top:bottom, left:right] = cv2.resize(film_map, size, interpolation=cv2.INTER_LINEAR)
        return out

    def signals(self) -> dict:
        """What QC and the manifest read: how much of the image is film, how chest-like it is, and what was done."""
        return {
            "film_fraction": float(self.film_fraction),
            "polarity_score": float(self.polarity_score),
            "film_inverted": bool(self.inverted),
            "film_cropped": bool(self.cropped),
        }


def _border_lines(flat: np.ndarray) -> tuple[int, int]:
    """How many leading and trailing lines (rows of `flat`) are border."""
    is_border = flat.mean(axis=1) >= _BORDER_ROW
    n = len(is_border)
    lead = int(np.argmin(is_border)) if not is_border.all() else n
    trail = int(np.argmin(is_border[::-1])) if not is_border.all() else n
    return lead, trail


def film_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the film inside a bright flat border; the whole image when there is none."""
    h, w = image.shape
    gradient = cv2.morphologyEx(image, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    flat = (image >= _BRIGHT) & (gradient <= _FLAT)
    top, bottom_n = _border_lines(flat)
    left, right_n = _border_lines(flat.T)
    box = (top, h - bottom_n, left, w - right_n)
    height, width = box[1] - box[0], box[3] - box[2]
    if height < _MIN_FILM * h or width < _MIN_FILM * w or height * width > (1 - _MIN_BORDER) * h * w:
        return (0, h, 0, w)
    return box


def _thumbnail(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """THUMB x THUMB cell means over unsaturated pixels, and which cells are mostly unsaturated.

    Saturated pixels (black padding, white labels, the fill of a rotated film) say nothing about polarity and,
    being flat, would dominate a plain thumbnail; leaving out both ends keeps the score's sign symmetric.
    """
    valid = ((image > _SATURATED) & (image < 255 - _SATURATED)).astype(np.float32)
    size = (THUMB, THUMB)
    total = cv2.resize(image.astype(np.float32) * valid, size, interpolation=cv2.INTER_AREA).ravel()
    share = cv2.resize(valid, size, interpolation=cv2.INTER_AREA).ravel()
    return total / np.maximum(share, 1e-6), share >= 0.5


def _standardised(values: np.ndarray) -> np.ndarray:
    centred = values - values.mean()
    norm = np.linalg.norm(centred)
    return centred / norm if norm > 0 else centred


def polarity_template(images) -> tuple[float, ...]:
    """The mean standardised thumbnail of upright training films (stored in the checkpoint)."""
    stack = []
    for image in images:
        values, ok = _thumbnail(np.asarray(image))
        if ok.sum() >= 2:
            stack.append(np.where(ok, 0.0, np.nan))
            stack[-1][ok] = _standardised(values[ok])
    if not stack:
        raise ValueError("polarity template: no training film has enough unsaturated pixels")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell saturated in every film: 0 below
        mean = np.nanmean(stack, axis=0)
    return tuple(round(float(v), 6) for v in np.nan_to_num(mean))


def polarity_score(image: np.ndarray, template) -> float:
    """Correlation of the film with the template over its unsaturated cells: > 0 upright, < 0 inverted, near 0
    unlike any chest film (0 when too little of it is unsaturated to tell)."""
    if template is None:
        return math.nan
    values, ok = _thumbnail(image)
    if ok.mean() < _MIN_CELLS:
        return 0.0
    t = np.asarray(template, np.float64)[ok]
    return float(_standardised(values[ok]) @ _standardised(t))


def inspect(image: np.ndarray, template, settings: FilmSettings) -> FilmCheck:
    """Find the film (when `crop_border`) and its polarity (when `polarity` and a template exist)."""
    shape = tuple(image.shape[:2])
    box = film_box(image) if settings.crop_border else (0, shape[0], 0, shape[1])
    top, bottom, left, right = box
    score = polarity_score(image[top:bottom, left:right], template)
    inverted = bool(settings.polarity and score < INVERT_BELOW)
    return FilmCheck(box, shape, inverted, -score if inverted else score)

"""Read any radiograph an archive holds at its full depth, and window it to 8 bit for the network.

* 8-bit JPEG and PNG: read as they are (what the MIMIC path does).
* 16-bit PNG (PadChest): read with IMREAD_UNCHANGED, never `cv2.imread(p, 0)`, which cuts to 8 bit.
* DICOM through pydicom: Modality LUT (Rescale Slope/Intercept), then the VOI LUT or window of the file,
  then MONOCHROME1 inverted within the image's own range.  A BitsStored smaller than the data (VinDr) would
  make pydicom mask the high bits away, so native pixel data are decoded at BitsAllocated and the declared
  BitsStored is kept only when every value fits it.  A file without TransferSyntaxUID whose pixel data are
  native is read in the syntax its header was parsed in.  Compressed syntaxes are decoded by pydicom's own
  RLE decoder, Pillow (JPEG baseline/extended, JPEG 2000) and pylibjpeg with its libjpeg (JPEG lossless,
  JPEG-LS), openjpeg (JPEG 2000, HTJ2K) and rle plugins; any other syntax fails with its name.

To 8 bit (`to_uint8`): 8-bit images pass unchanged; a DICOM whose own window was applied is stretched from
the window's output range; every other deep image is windowed linearly between its 0.5th and 99.5th
percentiles (burned-in text at full white and black borders would otherwise squeeze the lungs' contrast).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cxlseg.io import ImageReadError, read_image
from cxlseg.preprocess import resize

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom")
PERCENTILE_WINDOW = (0.5, 99.5)


class PixelReadError(ImageReadError):
    """An image could not be read at full depth; carries the file and the reason (an ImageReadError, so every
    caller that turns unreadable files into rows of the failed table catches it)."""


@dataclass(frozen=True)
class Pixels:
    """A radiograph as stored, 2-D, brighter where it attenuates more (MONOCHROME2 sense).

    `bits` is the depth of the values (8 for an 8-bit file, 16 for a 16-bit PNG, the data's real depth for a
    DICOM); `windowed` is True when the file's own VOI LUT or window has been applied."""

    data: np.ndarray
    bits: int
    windowed: bool
    source: str


def is_dicom(path: os.PathLike | str) -> bool:
    """A DICOM file by its suffix or by the 'DICM' magic at byte 128 (hospital exports often have no suffix)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_pixels(path: os.PathLike | str) -> Pixels:
    """The file's pixels at full depth, or PixelReadError naming the file and why."""
    path = Path(path)
    if not path.is_file():
        raise PixelReadError(path, "file not found")
    if is_dicom(path):
        from cxlseg.archives.dicom import read_dicom  # pydicom loads only for archives that hold DICOM

        return read_dicom(path)
    if path.suffix.lower() not in RASTER_SUFFIXES:
        raise PixelReadError(path, f"unsupported file type {path.suffix or '(no suffix)'}: not DICOM, PNG or JPEG")
    return _read_raster(path)


def _read_raster(path: Path) -> Pixels:
    try:
        image = read_image(path, cv2.IMREAD_UNCHANGED)  # keeps 16 bit; cv2.imread(p, 0) would not
    except ImageReadError as exc:
        raise PixelReadError(path, exc.reason) from None
    gray = gray_of(image, path)
    if gray.dtype not in (np.uint8, np.uint16):
        raise PixelReadError(path, f"unsupported pixel type {gray.dtype}")
    kind = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else f"png{gray.dtype.itemsize * 8}"
    return Pixels(gray, gray.dtype.itemsize * 8, False, kind)


def gray_of(image: np.ndarray, path: os.PathLike | str) -> np.ndarray:
    """One channel at the image's own depth (cv2.cvtColor keeps uint16)."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        return cv2.cvtColor(image, code)
    raise PixelReadError(path, f"unsupported image shape {image.shape}")


def to_uint8(pixels: Pixels) -> np.ndarray:
    """The 8-bit image the network sees (module docstring: the windowing)."""
    data = pixels.data
    if data.dtype == np.uint8 and not pixels.windowed:
        return data
    values = data.astype(np.float64)
    if pixels.windowed:
        lo, hi = float(values.min()), float(values.max())
    else:
        lo, hi = (float(v) for v in np.percentile(values, PERCENTILE_WINDOW))
    if hi <= lo:
        return np.zeros(data.shape, np.uint8)
    return np.clip(np.round((values - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def read_uint8(path: os.PathLike | str) -> np.ndarray:
    """`read_pixels` then `to_uint8`: what inference feeds the network for any archive's file."""
    return to_uint8(read_pixels(path))


def decode_for_inference(
    path: os.PathLike | str, size: int, interpolation: str = "area"
) -> tuple[np.ndarray, tuple[int, int], int, str]:
    """`preprocess.decode_for_inference` for any archive's file: read at full depth, windowed to 8 bit, resized
    as the MIMIC path resizes. Returns (resized uint8 gray, true (height, width), 1, note: the windowing used)."""
    pixels = read_pixels(path)
    full = to_uint8(pixels)
    note = "" if pixels.bits == 8 and not pixels.windowed else f"{pixels.source} {pixels.bits}-bit windowed to 8 bit"
    return resize(full, size, interpolation), (int(full.shape[0]), int(full.shape[1])), 1, note

"""The image preprocessing shared by training and inference (one definition, so they agree).

The whole radiograph is resized (not cropped or padded) to size x size (the
paper's 224x224), then CLAHE (clip 2.0, 8x8 tiles, as in the authors' code),
either on the gray plane or, as the CXLSeg authors' code does, on the L
channel of LAB (``space="lab"``).

`preprocess.interpolation` picks the resize: ``area`` (INTER_AREA, the default: pixel averaging, so
reduced-DCT decoding can stand in for a full decode) or ``linear`` (cv2.resize's default INTER_LINEAR
of a full decode, as the CXLSeg authors resized images and masks; their published segmented image
matches it to 1.5 grey levels inside the lungs, INTER_AREA only to 3.2).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}


def cv2_flag(interpolation: str | int) -> int:
    """An OpenCV interpolation flag from a config name (area | linear) or the flag itself."""
    if isinstance(interpolation, str):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
        return INTERPOLATIONS[interpolation]
    return int(interpolation)


def resize(image: np.ndarray, size: int, interpolation: str | int = "area") -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2_flag(interpolation))


def resize_mask(mask: np.ndarray, size: int, interpolation: str = "area") -> np.ndarray:
    """0/1 mask -> size x size 0/1 mask.

    area: area-average then >= 0.5, so thin structures survive downsampling without stair-steps. linear: the
    authors' read_mask, the 0/255 mask resized with INTER_LINEAR, divided by its maximum and kept where > 0.5.
    """
    if interpolation == "linear":
        soft = resize((mask > 0).astype(np.uint8) * np.uint8(255), size, "linear")
        peak = int(soft.max())
        return (soft.astype(np.float32) / max(peak, 1) > 0.5).astype(np.uint8)
    soft = resize(mask.astype(np.float32), size, cv2_flag(interpolation))
    return (soft >= 0.5).astype(np.uint8)


CLAHE_SPACES = ("gray", "lab")


def clahe(image: np.ndarray, clip: float = 2.0, tiles: int = 8, space: str = "gray") -> np.ndarray:
    """CLAHE of an 8-bit gray image, returned as one 8-bit gray plane.

    ``space="lab"`` is the CXLSeg authors' read_image: the gray image as BGR -> LAB, CLAHE on L (8-bit L is
    lightness scaled to 0..255, a cube-root curve of linear luminance, so the histogram CLAHE equalises is not
    the gray one) -> back to BGR. For a gray input a and b stay 128 and the three channels come back equal up
    to OpenCV's integer rounding (at most 1 apart), so BGR -> gray loses nothing the authors' 3-channel input
    carried; `to_model_input` repeats the plane when the model takes 3 channels.
    """
    op = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(int(tiles), int(tiles)))
    if space == "gray":
        return op.apply(image)
    if space == "lab":
        lab = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), cv2.COLOR_BGR2LAB)
        lab[..., 0] = op.apply(np.ascontiguousarray(lab[..., 0]))
        return cv2.cvtColor(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR), cv2.COLOR_BGR2GRAY)
    raise ValueError(f"CLAHE space must be one of {', '.join(CLAHE_SPACES)}, got {space!r}")


def prepare(
    image: np.ndarray, size: int, clip: float = 2.0, tiles: int = 8, space: str = "gray", interpolation: str = "area"
) -> np.ndarray:
    """8-bit gray radiograph of any size -> size x size CLAHE image (uint8)."""
    return clahe(resize(image, size, interpolation), clip, tiles, space)


def to_model_input(images: np.ndarray, channels: int = 1) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, C, H, W) in [0, 1]; 3 channels repeat the gray plane."""
    x = images.astype(np.float32)[:, None] / 255.0
    if channels == 3:
        x = np.repeat(x, 3, axis=1)
    elif channels != 1:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return x


# --- Reduced-size DCT decoding (inference on MIMIC-sized JPEGs) -------------------------------
#
# libjpeg can decode a JPEG at 1/2, 1/4 or 1/8 of its size straight from the DCT coefficients,
# which skips most of the inverse DCT and the memory traffic of a 3k x 2.5k image. The reduced
# image is ceil(H/f) x ceil(W/f): its last row/column covers a partial block, so resizing it
# plainly to size x size would stretch the image by up to (f-1)/H. Instead the scale factors
# are taken from the TRUE size and the (slightly larger) result is cropped to size x size,
# which reproduces the geometry of `resize(full_image, size)`.

_REDUCED_FLAGS = {
    2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
    4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
    8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
_JPEG_MAGIC = b"\xff\xd8"


def reduced_factor(height: int | None, width: int | None, size: int, min_ratio: float = 1.0) -> int:
    """Largest DCT reduction (1, 2, 4 or 8) that still leaves >= min_ratio * size pixels per side."""
    if not height or not width or height != height or width != width:  # missing / NaN sizes
        return 1
    for factor in (8, 4, 2):
        if min(height, width) / factor >= min_ratio * size:
            return factor
    return 1


def resize_reduced(reduced: np.ndarray, true_hw: tuple[int, int], factor: int, size: int) -> np.ndarray:
    """Resize a 1/factor-decoded image to size x size with the geometry of the full image."""
    if factor == 1:
        return resize(reduced, size)
    height, width = true_hw
    scaled = cv2.resize(
        reduced, (0, 0), fx=size * factor / width, fy=size * factor / height, interpolation=cv2.INTER_AREA
    )
    if scaled.shape[0] < size or scaled.shape[1] < size:
        raise ValueError(f"reduced image {reduced.shape} too small for true size {true_hw} at 1/{factor}")
    return np.ascontiguousarray(scaled[:size, :size])


def _is_jpeg(path: os.PathLike | str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == _JPEG_MAGIC
    except OSError:
        return False


def _read_full_gray(path: os.PathLike | str) -> tuple[np.ndarray, str]:
    """Full decode of anything OpenCV reads, even a PNG saved under a .jpg name; returns (gray, note)."""
    from cxlseg.io import ImageReadError, read_image, to_gray_uint8

    if _is_jpeg(path):
        image = read_image(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
        note = "" if image.ndim == 2 else f"{image.shape[2]}-channel JPEG converted to gray"
        return to_gray_uint8(image, path), note
    if not os.path.isfile(path):
        return to_gray_uint8(read_image(path), path), ""  # raises ImageReadError("file not found")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        reason = "file is empty" if data.size == 0 else "not a JPEG and not decodable (corrupt or unsupported format)"
        raise ImageReadError(path, reason)
    channels = 1 if image.ndim == 2 else image.shape[2]
    note = f"non-JPEG content ({image.dtype}, {channels} channel(s)) converted to 8-bit gray"
    return to_gray_uint8(image, path), note


def decode_for_inference(
    path: os.PathLike | str,
    size: int,
    height: int | None = None,
    width: int | None = None,
    min_ratio: float = 1.0,
    interpolation: str = "area",
) -> tuple[np.ndarray, tuple[int, int], int, str]:
    """Decode a radiograph and resize it to size x size, using reduced DCT decoding when it pays.

    `height`/`width` are the expected true size (MIMIC's Rows/Columns); they choose the reduction
    and are verified against the decoded size. When they are missing, wrong, or the file is not a
    JPEG, the image is fully decoded instead, so a bad metadata row costs time, never geometry.
    `interpolation` linear always decodes at full size and resizes with INTER_LINEAR, as the CXLSeg
    authors did (bilinear on a reduced decode would sample other pixels).
    Returns (resized uint8 gray, true (height, width), reduction factor used, note).
    """
    from cxlseg.io import read_image

    cv2_flag(interpolation)  # an unknown name fails here, not after the decode
    factor = reduced_factor(height, width, size, min_ratio) if interpolation == "area" else 1
    if factor > 1 and _is_jpeg(path):
        reduced = read_image(path, _REDUCED_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
        expected = (-(-int(height) // factor), -(-int(width) // factor))
        if reduced.shape[:2] == expected:
            true_hw = (int(height), int(width))
            return resize_reduced(reduced, true_hw, factor, size), true_hw, factor, ""
        note = f"metadata size {int(height)}x{int(width)} disagrees with the JPEG; fully decoded"
    else:
        note = ""
    full, full_note = _read_full_gray(path)
    note = "; ".join(n for n in (note, full_note) if n)
    return resize(full, size, interpolation), (int(full.shape[0]), int(full.shape[1])), 1, note

"""DICOM radiographs to full-depth pixels (:mod:`.pixels` says what is applied and why)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cxlseg.archives.pixels import PixelReadError, Pixels, gray_of

log = logging.getLogger(__name__)

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
DECODABLE = (
    "decodable here: native, Deflated, RLE (pydicom, pylibjpeg-rle), JPEG (Pillow, pylibjpeg-libjpeg), "
    "JPEG-LS (pylibjpeg-libjpeg), JPEG 2000 and HTJ2K (Pillow, pylibjpeg-openjpeg)"
)
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")


def read_header(path: Path) -> pydicom.Dataset:
    """The whole dataset, or PixelReadError saying why not."""
    try:
        return pydicom.dcmread(path, force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise PixelReadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None


def read_tags(path: Path) -> pydicom.Dataset:
    """The header with large values deferred, refused when it holds no PixelData: what an adapter checks
    without decoding a film."""
    try:
        ds = pydicom.dcmread(path, force=True, defer_size="4 KB")
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise PixelReadError(path, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if "PixelData" not in ds:
        raise PixelReadError(path, "DICOM file has no PixelData")
    return ds


def read_dicom(path: Path) -> Pixels:
    ds = read_header(path)
    if "PixelData" not in ds:
        raise PixelReadError(path, "DICOM file has no PixelData")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in MONOCHROME + COLOUR:
        raise PixelReadError(path, f"unsupported PhotometricInterpretation {photometric or '(none)'}")
    syntax = _transfer_syntax(ds, path)
    raw, bits = _decode(ds, syntax, path)
    data = apply_modality_lut(raw, ds)
    if np.issubdtype(data.dtype, np.floating) and np.array_equal(data, np.round(data)):
        data = data.astype(np.int64)  # a VOI LUT indexes by integer values
    windowed = "VOILUTSequence" in ds or "WindowCenter" in ds
    if windowed and photometric in MONOCHROME:
        data = apply_voi_lut(data, ds, index=0)
    data = np.asarray(data, np.float64)
    if photometric == "MONOCHROME1":  # within its own range: 2**BitsStored - 1 - x breaks on a wrong BitsStored
        data = data.max() + data.min() - data
    return Pixels(data.astype(np.float32), bits, windowed, f"dicom:{syntax.name}")


def _transfer_syntax(ds: pydicom.Dataset, path: Path) -> UID:
    """The file's TransferSyntaxUID; when it has none (some VinDr files), the syntax its header was parsed in,
    which is the pixel data's own when they are native; compressed data without one cannot be decoded."""
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return UID(syntax)
    if ds["PixelData"].is_undefined_length:
        raise PixelReadError(path, "no TransferSyntaxUID and the pixel data are compressed: the codec is unknown")
    implicit, little = ds.original_encoding
    syntax = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    log.info("%s: no TransferSyntaxUID; reading its native pixel data as %s", path, syntax.name)
    return syntax


def _decode(ds: pydicom.Dataset, syntax: UID, path: Path) -> tuple[np.ndarray, int]:
    """The stored values (one frame, one channel) and their real depth."""
    declared = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    if not syntax.is_compressed and not signed and "BitsAllocated" in ds:
        ds.BitsStored, ds.HighBit = int(ds.BitsAllocated), int(ds.BitsAllocated) - 1  # no masking of high bits
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise PixelReadError(
            path, f"transfer syntax {syntax.name} ({syntax}) has no decoder in pydicom; {DECODABLE}"
        ) from None
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise PixelReadError(path, f"transfer syntax {syntax.name} ({syntax}) needs {needs}")
    try:
        array = ds.pixel_array
    except Exception as exc:  # every plugin raises its own types; the reason goes to the failed table
        raise PixelReadError(
            path, f"{syntax.name} pixel data could not be decoded ({type(exc).__name__}: {exc})"
        ) from exc
    array = _one_frame(np.asarray(array), ds, path)
    bits = _real_bits(array, declared, path)
    if not signed and "BitsAllocated" in ds:
        ds.BitsStored, ds.HighBit = bits, bits - 1  # what the VOI window's output range is computed from
    return array, bits


def _one_frame(array: np.ndarray, ds: pydicom.Dataset, path: Path) -> np.ndarray:
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise PixelReadError(path, f"{frames} frames: not a single radiograph")
    if array.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3:  # colour after pydicom's YBR -> RGB conversion
        array = gray_of(np.ascontiguousarray(array[:, :, ::-1]), path)
    if array.ndim != 2:
        raise PixelReadError(path, f"pixel array of shape {array.shape} is not one 2-D image")
    return array


def _real_bits(array: np.ndarray, declared: int, path: Path) -> int:
    """BitsStored unless the data exceed it (VinDr's unreliable BitsStored): then the data's own depth."""
    top = int(array.max()) if array.size else 0
    if top <= (1 << declared) - 1:
        return declared
    real = max(8, top.bit_length())
    log.warning("%s: values up to %d exceed BitsStored %d; using their real depth, %d bits", path, top, declared, real)
    return real

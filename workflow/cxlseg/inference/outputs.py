"""What inference writes per image: the cleaned mask, its QC, the segmented image, the mask file and the
review thumbnail (the original film, mask outlined, that the review page shows).

The segmented image is CXLSeg's: the ORIGINAL image resized to the output size, AND the cleaned mask
("bitwise AND operation of the original image and modified mask"). CLAHE is only the network's input;
`infer.segmented_source: clahe` keeps the CLAHE variant as an option. The original is resized as
`preprocess.interpolation` says (the decode did it); `infer.segmented_channels: 3` writes the gray result as
3 equal channels, as CXLSeg's published JPEGs are (the authors read and wrote BGR images).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from cxlseg import film as films
from cxlseg import io, preprocess
from cxlseg.inference import mask_qc as qc
from cxlseg.inference import postprocess as post
from cxlseg.inference.manifest import join_flags
from cxlseg.mimic import image_relpath

if TYPE_CHECKING:  # annotation only: the DAG build imports this module and should not load torch
    from cxlseg.inference.predictor import InputSpec
    from cxlseg.inference.settings import InferSettings


def output_paths(item: dict, mask_format: str) -> tuple[str, str]:
    """Outputs mirror the source's folder: files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg and <dicom_id>-mask.*;
    another archive's image names its own (`out_stem`: its folder in the archive and its id)."""
    if "out_stem" in item:
        return f"{item['out_stem']}.jpg", f"{item['out_stem']}-mask.{mask_format}"
    ids = item["subject_id"], item["study_id"], item["dicom_id"]
    return image_relpath(*ids, ".jpg"), image_relpath(*ids, f"-mask.{mask_format}")


def pending_targets(pending: list[dict], out_root, s: InferSettings, thumbs_dir):
    """Every file the pending images will write, where a killed run may have left temporary files (finished images
    are never rewritten). An id that would leave the output root is skipped: writing it fails as that image's error."""
    for item in pending:
        try:
            paths = [io.safe_join(out_root, rel) for rel in output_paths(item, s.mask_format)]
            if thumbs_dir is not None:
                paths.append(thumbnail_path(thumbs_dir, item["dicom_id"]))
        except io.UnsafePathError:
            continue
        yield from paths


def at_original_size(mask: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """A 0/1 mask at the output size back at the original resolution (inverse stretch), 0/1 uint8: what every
    full-resolution RLE encodes (MIMIC's CXLSeg-mask, another archive's CheXmask columns)."""
    height, width = int(orig_hw[0]), int(orig_hw[1])
    full = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) >= 0.5
    return full.astype(np.uint8)


def _rle(mask: np.ndarray, orig_hw: tuple[int, int]) -> str:
    """The mask back at the original resolution, COCO run-length encoded."""
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(at_original_size(mask, orig_hw)))["counts"].decode("ascii")


def mask_file(mask: np.ndarray, separate_lungs: bool) -> np.ndarray:
    """0/255, or 128 for the patient's right lung (image left) and 255 for the left when lungs are separated."""
    if not separate_lungs:
        return mask * np.uint8(255)
    labels = post.label_lungs(mask)
    out = np.zeros_like(labels)
    for label, gray in post.LABEL_GRAY.items():
        out[labels == label] = gray
    return out


def segmented_image(
    resized: np.ndarray, mask: np.ndarray, source: str, spec: InputSpec, channels: int = 1
) -> np.ndarray:
    """AND of the mask with the resized original (CXLSeg), or with it CLAHE'd as the network's input was;
    `channels` 3 repeats the gray plane (B = G = R)."""
    base = (
        resized
        if source == "original"
        else preprocess.clahe(resized, spec.clahe_clip, spec.clahe_tiles, spec.clahe_space)
    )
    gray = cv2.bitwise_and(base, mask * np.uint8(255))
    if channels == 1:
        return gray
    if channels == 3:
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    raise ValueError(f"segmented_channels must be 1 or 3, got {channels}")


THUMB_SIZE = 128  # long side of a review thumbnail, pixels: ~4 KB of JPEG, 243k of them stay about 1 GB
_THUMB_QUALITY = 80
_OUTLINE_BGR = (40, 230, 60)


def thumbnail_dir(thumbs_root, shard: str):
    """A shard's review thumbnails: <thumbs_root>/<shard> (infer_shard writes them, the review page shows them)."""
    return io.safe_join(thumbs_root, shard)


def thumbnail_path(thumbs_dir, dicom_id: str):
    """Where the review thumbnail of one image lives: <thumbs_dir>/<dicom_id>.jpg (never outside thumbs_dir)."""
    return io.safe_join(thumbs_dir, f"{dicom_id}.jpg")


def review_thumbnail(resized: np.ndarray, mask: np.ndarray, orig_hw, size: int = THUMB_SIZE) -> np.ndarray:
    """The original film at its own aspect ratio (inference stretched it to a square) with the mask's outline:
    a person judges a mask against the anatomy it should follow, which a lung-only crop hides."""
    height, width = orig_hw if orig_hw and all(orig_hw) else resized.shape[:2]
    scale = size / max(height, width)
    out_hw = (max(1, round(height * scale)), max(1, round(width * scale)))
    film = cv2.resize(resized, out_hw[::-1], interpolation=cv2.INTER_AREA)
    outline = cv2.resize(mask.astype(np.uint8), out_hw[::-1], interpolation=cv2.INTER_NEAREST)
    out = cv2.cvtColor(film, cv2.COLOR_GRAY2BGR)
    contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, _OUTLINE_BGR, 1, lineType=cv2.LINE_AA)
    return out


def mask_and_qc(prob: np.ndarray, check: films.FilmCheck | None, signals: dict | None, s: InferSettings, qc_model=None):
    """The cleaned mask of one image, its QC features and flags: cleaned and assessed on the film (what the
    network saw), then mapped back onto the whole image. Inference and QC calibration share it."""
    mask = s.postprocess.clean(prob, s.threshold)
    if check is not None:
        signals = {**(signals or {}), **check.signals()}
    metrics, flags = qc.assess(prob, mask, signals, s.qc, qc_model, s.threshold)
    return (check.restore(mask) if check is not None else mask), metrics, flags


def finish_image(
    item: dict,
    resized: np.ndarray,
    prob: np.ndarray,
    signals: dict | None,
    check: films.FilmCheck | None,
    out_root,
    s: InferSettings,
    spec: InputSpec,
    qc_model=None,
    thumbs_dir=None,
) -> dict:
    """Clean the mask, assess it (QC features, predicted Dice, flags), write the segmented image, the mask and
    (when `thumbs_dir` is given) the review thumbnail; returns the manifest fields. `prob` is the film's
    (`check`: where the film lies in `resized` and whether it was inverted; None: the whole image as it is)."""
    mask, metrics, flags = mask_and_qc(prob, check, signals, s, qc_model)
    upright = check.upright(resized) if check is not None else resized
    image_rel, mask_rel = output_paths(item, s.mask_format)
    quality = [cv2.IMWRITE_JPEG_QUALITY, int(s.jpeg_quality)]
    segmented = segmented_image(upright, mask, s.segmented_source, spec, s.segmented_channels)
    io.write_image(io.safe_join(out_root, image_rel), segmented, quality)
    io.write_image(
        io.safe_join(out_root, mask_rel),
        mask_file(mask, s.separate_lungs),
        quality if s.mask_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3],
    )
    if thumbs_dir is not None:
        io.write_image(
            thumbnail_path(thumbs_dir, item["dicom_id"]),
            review_thumbnail(upright, mask, item["orig_hw"]),
            [cv2.IMWRITE_JPEG_QUALITY, _THUMB_QUALITY],
        )
    film = check.signals() if check is not None else {}
    return {
        "image_path": image_rel,
        "mask_path": mask_rel,
        **metrics,
        "film_inverted": film.get("film_inverted", False),
        "film_cropped": film.get("film_cropped", False),
        "qc_flags": join_flags(flags),
        "mask_rle": _rle(mask, item["orig_hw"]) if s.save_full_res_rle else None,
    }

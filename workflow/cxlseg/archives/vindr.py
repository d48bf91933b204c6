"""VinDr-CXR (PhysioNet 1.0.0): `annotations/image_labels_{train,test}.csv`, images at `{train,test}/<image_id>.dicom`.

Kept: every listed image (the release says all 18,000 are PA; the files carry no view tag), view `PA`.
De-identification removed every patient and study tag, so each image is its own patient and study
(patient = study = `image_id`, the MD5 of the original SOPInstanceUID): a split by patient cannot see two
films of one person, which the release gives no way to link.  `source_id` is `image_id`, CheXmask's key.
A file without PixelData is skipped with that reason (the header is read, the pixels are not); a file without
TransferSyntaxUID is kept, since :mod:`.dicom` reads its native pixel data.
"""

from __future__ import annotations

import re
from pathlib import Path

from cxlseg.archives.pixels import PixelReadError
from cxlseg.archives.records import ImageRecord, Listing, file_problem, read_table, shard_of

KIND = "vindr"
SPLITS = ("train", "test")
VIEW = "PA"
IMAGE_ID = re.compile(r"[0-9a-f]{32}")


def label_file(split: str) -> str:
    return f"annotations/image_labels_{split}.csv"


def list_images(root: Path, n_shards: int) -> Listing:
    root = Path(root)
    files = [(split, root / label_file(split)) for split in SPLITS if (root / label_file(split)).is_file()]
    if not files:
        raise FileNotFoundError(f"{root}: no VinDr-CXR label file ({' or '.join(label_file(s) for s in SPLITS)})")
    listing = Listing(KIND)
    for split, csv in files:
        ids = read_table(csv, ["image_id"])["image_id"].str.strip()
        for image_id in dict.fromkeys(ids):  # one row per radiologist: each image once, in file order
            _image(root, split, csv.name, listing, image_id, n_shards)
    return listing.check()


def _image(root: Path, split: str, source: str, listing: Listing, image_id: str, n_shards: int) -> None:
    if not IMAGE_ID.fullmatch(image_id):
        listing.skip(image_id, f"{source}: image_id is not a 32-digit MD5 hex")
        return
    rel = f"{split}/{image_id}.dicom"
    problem = file_problem(root, rel) or _pixel_data_problem(root / rel)
    if problem:
        listing.skip(rel, problem)
        return
    listing.add(ImageRecord(image_id, image_id, image_id, VIEW, rel, shard_of(image_id, n_shards), image_id))


def _pixel_data_problem(path: Path) -> str | None:
    """Why a DICOM cannot hold a radiograph (unparsable, no PixelData), from its header alone."""
    from cxlseg.archives.dicom import read_tags  # pydicom loads only for archives that hold DICOM

    try:
        read_tags(path)
    except PixelReadError as exc:
        return exc.reason
    return None

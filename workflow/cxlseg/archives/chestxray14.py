"""NIH ChestX-ray14: `Data_Entry_2017_v2020.csv` (or the 2017 original), 8-bit 1024 px PNGs in `images/` (the
extracted Box copy) or `images_NNN/images/` (the Kaggle copy CheXmask used).

Kept: `View Position` PA or AP (all 112,120 rows).  Id and study = the file name's stem (`00000001_000`: one
image per visit; `Follow-up #` disagrees with the suffix in 24,106 rows, so it is not used), patient = the
8-digit `Patient ID`, which must equal the file name's prefix; `source_id` is `Image Index`, CheXmask's key.
"""

from __future__ import annotations

import re
from pathlib import Path

from cxlseg.archives.records import ImageRecord, Listing, file_problem, read_table, shard_of

KIND = "chestxray14"
METADATA_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
COLUMNS = ["Image Index", "Patient ID", "View Position"]
FRONTAL = ("PA", "AP")
NAME = re.compile(r"(\d{8})_\d{3}\.png")
IMAGE_FOLDERS = ("images", "images_[0-9][0-9][0-9]/images", "images_[0-9][0-9][0-9]")


def list_images(root: Path, n_shards: int) -> Listing:
    root = Path(root)
    metadata = next((root / n for n in METADATA_FILES if (root / n).is_file()), None)
    if metadata is None:
        raise FileNotFoundError(f"{root}: no ChestX-ray14 metadata file ({' or '.join(METADATA_FILES)})")
    table = read_table(metadata, COLUMNS)
    listing = Listing(KIND)
    on_disk = _image_files(root, listing)
    for name, patient, view in zip(table["Image Index"], table["Patient ID"], table["View Position"]):
        _row(root, metadata.name, listing, on_disk, name.strip(), patient.strip(), view.strip(), n_shards)
    return listing.check()


def _image_files(root: Path, listing: Listing) -> dict[str, str]:
    """File name -> path under root, over every folder either copy uses; a second copy of a name is skipped."""
    found: dict[str, str] = {}
    for pattern in IMAGE_FOLDERS:
        for path in sorted(root.glob(f"{pattern}/*.png")):
            rel = path.relative_to(root).as_posix()
            if path.name in found:
                listing.skip(rel, f"second copy of {path.name} (first at {found[path.name]})")
                continue
            found[path.name] = rel
    return found


def _row(root, source, listing, on_disk, name, patient, view, n_shards) -> None:
    match = NAME.fullmatch(name)
    if not match:
        listing.skip(name, f"{source}: Image Index is not an NNNNNNNN_NNN.png name")
        return
    if view not in FRONTAL:
        listing.drop_view(view)
        return
    if not patient.isdigit() or f"{int(patient):08d}" != match.group(1):
        listing.skip(name, f"{source}: Patient ID {patient!r} differs from the file name's prefix {match.group(1)}")
        return
    rel = on_disk.get(name)
    problem = "listed in the archive's metadata but not on disk" if rel is None else file_problem(root, rel)
    if problem:
        listing.skip(rel or name, problem)
        return
    stem = name[: -len(".png")]
    listing.add(ImageRecord(stem, match.group(1), stem, view, rel, shard_of(match.group(1), n_shards), name))

"""CheXpert v1.0 (small or full): `train.csv` and `valid.csv`, images at `{train,valid}/patientN/studyN/viewN_*.jpg`.

Kept: every row whose `Frontal/Lateral` is `Frontal`, whatever its view number (`view2_frontal` and
`view3_frontal` too, which CheXmask misses); view = the row's `AP/PA` value.  Id `patientN_studyN_viewN_frontal`,
patient `patientN`, study `patientN_studyN`; `source_id` is `Path` without the release prefix, CheXmask's key.
"""

from __future__ import annotations

import re
from pathlib import Path

from cxlseg.archives.records import ImageRecord, Listing, file_problem, read_table, relative_path, shard_of

KIND = "chexpert"
LABEL_FILES = ("train.csv", "valid.csv")
COLUMNS = ["Path", "Frontal/Lateral", "AP/PA"]
RELEASE_PREFIX = re.compile(r"^CheXpert-v1\.0(-small)?/")
LAYOUT = re.compile(r"(train|valid)/(patient\d+)/(study\d+)/(view\d+_(?:frontal|lateral))\.jpg")


def list_images(root: Path, n_shards: int) -> Listing:
    root = Path(root)
    files = [root / name for name in LABEL_FILES if (root / name).is_file()]
    if not files:
        raise FileNotFoundError(f"{root}: no CheXpert label file ({' or '.join(LABEL_FILES)})")
    listing = Listing(KIND)
    for csv in files:
        table = read_table(csv, COLUMNS)
        for path, frontal, view in zip(table["Path"], table["Frontal/Lateral"], table["AP/PA"]):
            _row(root, csv.name, listing, path.strip(), frontal.strip(), view.strip(), n_shards)
    return listing.check()


def _row(root: Path, source: str, listing: Listing, path: str, frontal: str, view: str, n_shards: int) -> None:
    rel = RELEASE_PREFIX.sub("", path)
    match = LAYOUT.fullmatch(rel)
    if not match:
        listing.skip(
            path, f"{source}: Path does not follow CheXpert's layout {{train,valid}}/patientN/studyN/viewN_*.jpg"
        )
        return
    if frontal != "Frontal":
        listing.drop_view(frontal)
        return
    rel = relative_path(root, rel, source)
    if problem := file_problem(root, rel):
        listing.skip(rel, problem)
        return
    _, patient, study, view_name = match.groups()
    listing.add(
        ImageRecord(
            image_id=f"{patient}_{study}_{view_name}",
            patient_id=patient,
            study_id=f"{patient}_{study}",
            view=view or "frontal",
            path=rel,
            shard=shard_of(patient, n_shards),
            source_id=rel,
        )
    )

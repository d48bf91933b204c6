"""Rule list_archive: an archive's adapter listing -> the records table, the skipped files with their reasons, a
summary, and one shard list per shard in the form inference reads (`inference/select_images.LIST_COLUMNS` plus
where the outputs go, mirroring the archive's own folders)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from cxlseg import io
from cxlseg.archives.registry import list_archive

# A shard list's columns: inference's four (named as MIMIC names them), where the outputs go, and the archive's own
# view and key (carried to the per-archive table).
SHARD_LIST_COLUMNS = ["dicom_id", "subject_id", "study_id", "image_path", "out_stem", "view", "source_id"]


@dataclass(frozen=True)
class ListingFiles:
    """What rule list_archive writes: records, skipped files, summary, and the shard lists (shard id -> file)."""

    records: Path
    skipped: Path
    summary: Path
    lists: dict[str, Path]

    @classmethod
    def from_rule(cls, output, shard_ids: list[str]) -> "ListingFiles":
        if len(output.lists) != len(shard_ids):
            raise ValueError(f"{len(output.lists)} shard list files for {len(shard_ids)} shards")
        lists = {s: Path(p) for s, p in zip(shard_ids, output.lists)}
        return cls(Path(output.records), Path(output.skipped), Path(output.summary), lists)


def out_stem(path: str, image_id: str) -> str:
    """Where an image's outputs go, relative to the archive's output root and without suffix: the image's own
    folder in the archive, named by its id (unique, where two files of one folder may share a stem)."""
    return (PurePosixPath(path).parent / image_id).as_posix()


def shard_list(records: pd.DataFrame) -> pd.DataFrame:
    """The records of one shard in the shard-list form inference reads."""
    return pd.DataFrame(
        {
            "dicom_id": records.image_id,
            "subject_id": records.patient_id,
            "study_id": records.study_id,
            "image_path": records.path,
            "out_stem": [out_stem(p, i) for p, i in zip(records.path, records.image_id)],
            "view": records.view,
            "source_id": records.source_id,
        },
        columns=SHARD_LIST_COLUMNS,
    )


def write_listing(kind: str, root: os.PathLike | str, metadata, files: ListingFiles) -> dict:
    """List the archive and write the rule's files; returns the summary (also written as JSON)."""
    listing = list_archive(kind, Path(root), len(files.lists), Path(metadata) if metadata else None).check()
    records = listing.frame().sort_values("image_id", kind="stable").reset_index(drop=True)
    unknown = sorted(set(records.shard) - set(files.lists))
    if unknown:
        raise ValueError(f"{kind}: records in shards {unknown}, which have no list file")
    io.write_parquet(records, files.records)
    io.write_csv(listing.skipped_frame(), files.skipped)
    for shard, path in files.lists.items():
        io.write_parquet(shard_list(records[records.shard == shard]).reset_index(drop=True), path)
    summary = {
        "kind": kind,
        "root": str(root),
        "images": int(len(records)),
        "patients": int(records.patient_id.nunique()),
        "views": {str(k): int(v) for k, v in records.view.value_counts().sort_index().items()},
        "not_frontal": dict(sorted(listing.not_frontal.items())),
        "skipped": int(len(listing.skipped)),
        "skip_reasons": {str(k): int(v) for k, v in listing.skipped_frame().reason.value_counts().items()},
        "per_shard": {s: int((records.shard == s).sum()) for s in files.lists},
    }
    io.write_json(files.summary, summary)
    return summary

"""`archive.kind` -> the adapter that lists that archive's frontal images.

MIMIC-CXR-JPG (`mimic`, the default) is not here: its selection lives in the MIMIC code being moved to its
own layer (#36), and the DAG keeps calling it as it does today; `kinds()` names it so config checks see it.
"""

from __future__ import annotations

from pathlib import Path

from cxlseg.archives import chestxray14, chexpert, folder, padchest, vindr
from cxlseg.archives.records import Listing

MIMIC = "mimic"
ADAPTERS = {
    chexpert.KIND: chexpert.list_images,
    chestxray14.KIND: chestxray14.list_images,
    padchest.KIND: padchest.list_images,
    vindr.KIND: vindr.list_images,
    folder.KIND: folder.list_images,
}


def kinds() -> tuple[str, ...]:
    return (MIMIC, *ADAPTERS)


def list_archive(kind: str, root: Path, n_shards: int, metadata: Path | None = None) -> Listing:
    """The archive's frontal images and skipped files; `metadata` (a CSV) is for `folder` only."""
    if kind == MIMIC:
        raise ValueError("archive kind mimic is listed by the MIMIC selection (cxlseg.mimic), not by an adapter")
    if kind not in ADAPTERS:
        raise ValueError(f"unknown archive kind {kind!r}; expected one of {list(kinds())}")
    if metadata is not None and kind != folder.KIND:
        raise ValueError(f"archive kind {kind} reads its own metadata files; a metadata CSV is for kind folder")
    if kind == folder.KIND:
        return folder.list_images(Path(root), n_shards, metadata)
    return ADAPTERS[kind](Path(root), n_shards)

"""The merge's files, named as the merge_tables and quality_table rules name them."""

from __future__ import annotations

from pathlib import Path

TABLE_NAMES = {name: f"CXLSeg-{name}.csv.gz" for name in ("metadata", "segmented", "split", "mask")}
FAILED_TABLE = "CXLSeg-failed.csv.gz"
QC_TABLE = "CXLSeg-qc.csv.gz"
SUMMARY = "summary.json"


def table_files(folder: Path):
    """The merge_tables rule's outputs, in `folder`."""
    from cxlseg.tables.settings import TableFiles

    folder = Path(folder)
    return TableFiles(
        **{k: folder / v for k, v in TABLE_NAMES.items()}, failed=folder / FAILED_TABLE, summary=folder / SUMMARY
    )

"""Another archive's run in numbers (archive.kind, #34): what MIMIC's run report says of a run, from the
archive's own files, so a person sees at a glance what was kept, skipped (and why), failed and flagged, per shard.

Read from list_archive's summary (kept, skipped with reasons, laterals dropped) and archive_table's table (segmented,
failed with reasons, QC flags); the flag bar is the QC model's, the one inference used.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from cxlseg import io
from cxlseg.archives.settings import ArchiveSettings
from cxlseg.inference.manifest import split_flags

TABLE_COLUMNS = ("image_id", "shard", "status", "error", "qc_flags")


def _read_table(table_csv) -> pd.DataFrame:
    table = pd.read_csv(table_csv, dtype=str, keep_default_na=False)
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{table_csv}: not an archive table, no column {', '.join(missing)}")
    return table


def _counts(table: pd.DataFrame) -> dict:
    ok = table[table["status"] == "ok"]
    return {
        "segmented": int(len(ok)),
        "failed": int(len(table) - len(ok)),
        "flagged": int((ok["qc_flags"] != "").sum()),
    }


def archive_run_summary(listing_summary, table_csv, settings: ArchiveSettings, *, min_predicted_dice: float) -> dict:
    """The summary: totals, reasons and per-shard counts (every configured shard, an empty one too)."""
    listing = io.read_json(listing_summary)
    table = _read_table(table_csv)
    ok = table[table["status"] == "ok"]
    listed = listing["per_shard"]
    return {
        "kind": settings.kind,
        "listed": int(listing["images"]),
        "skipped": int(listing["skipped"]),
        "skip_reasons": listing["skip_reasons"],
        "not_frontal": listing["not_frontal"],
        **_counts(table),
        "failure_reasons": dict(Counter(table.loc[table["status"] != "ok", "error"])),
        "flag_counts": dict(sorted(Counter(f for fl in ok["qc_flags"] for f in split_flags(fl)).items())),
        "flag_bar": {"min_predicted_dice": float(min_predicted_dice)},
        "per_shard": {
            shard: {"listed": int(listed.get(shard, 0)), **_counts(table[table["shard"] == shard])}
            for shard in settings.shard_ids()
        },
    }


def write_archive_run_summary(
    listing_summary, table_csv, out_json, settings: ArchiveSettings, *, min_predicted_dice: float
) -> dict:
    """Rule archive_run_summary's JSON; returns what it wrote."""
    summary = archive_run_summary(listing_summary, table_csv, settings, min_predicted_dice=min_predicted_dice)
    io.write_json(out_json, summary)
    return summary

"""A person's review decisions (the CSV the review page exports), read strictly so that none is lost.

The file has a header with `dicom_id` and `decision` (and optionally `note`); one row per reviewed mask,
decision `accepted` or `rejected`. Anything that cannot be applied as written - an id the run did not
segment, an unknown decision, the same id twice - stops the merge with the file and line, because a
decision silently dropped or overridden would put a rejected mask back into the dataset.
"""

from __future__ import annotations

import csv
import io as _io
import os
from pathlib import Path

import pandas as pd

DECISIONS = ("accepted", "rejected")
COLUMNS = ["dicom_id", "decision", "note"]


class ReviewFileError(ValueError):
    """A decisions file that cannot be applied as written; the message names the file and the line."""


def read_decisions(path: os.PathLike | str, masks: pd.Series | None, failed: pd.Series | None = None) -> pd.DataFrame:
    """The decisions of `path` as (dicom_id, decision, note), in file order.

    `masks`: the dicom_ids that have a mask in this run (the only ones a decision can apply to), or None before
    any shard has finished (the DAG build of a first run): every check but the ids';
    `failed`: dicom_ids whose segmentation failed, so that the error says why such an id has no mask.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet may add a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewFileError(f"{path}: cannot read the review file ({exc})") from exc
    reader = csv.reader(_io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ReviewFileError(f"{path}: empty review file (expected a header: dicom_id,decision,note)")
    header = [h.strip().lower() for h in header]
    missing = [c for c in ("dicom_id", "decision") if c not in header]
    if missing:
        raise ReviewFileError(f"{path}:1: header lacks {', '.join(missing)} (found: {', '.join(header)})")
    unknown_columns = [h for h in header if h not in COLUMNS]
    if unknown_columns:
        raise ReviewFileError(
            f"{path}:1: unknown column(s) {', '.join(unknown_columns)} (allowed: {', '.join(COLUMNS)})"
        )
    at = {name: header.index(name) for name in COLUMNS if name in header}
    known, failed_ids = (None if masks is None else set(masks)), set(failed if failed is not None else [])
    rows, seen = [], {}
    line = reader.line_num
    for record in reader:
        start, line = line + 1, reader.line_num
        if not any(field.strip() for field in record):
            continue  # a blank line holds no decision
        where = f"{path}:{start}"
        if len(record) != len(header):
            raise ReviewFileError(f"{where}: {len(record)} fields, the header has {len(header)}")
        dicom_id = record[at["dicom_id"]].strip()
        decision = record[at["decision"]].strip().lower()
        note = record[at["note"]].strip() if "note" in at else ""
        if decision not in DECISIONS:
            raise ReviewFileError(
                f"{where}: unknown decision {decision!r} for {dicom_id!r} (allowed: accepted, rejected)"
            )
        if known is not None and dicom_id not in known:
            why = "its segmentation failed, there is no mask to review" if dicom_id in failed_ids else "not in this run"
            raise ReviewFileError(f"{where}: unknown dicom_id {dicom_id!r} ({why})")
        if dicom_id in seen:
            raise ReviewFileError(f"{where}: dicom_id {dicom_id!r} already decided on line {seen[dicom_id]}")
        seen[dicom_id] = start
        rows.append((dicom_id, decision, note))
    return pd.DataFrame(rows, columns=COLUMNS)

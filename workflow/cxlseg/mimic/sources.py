"""MIMIC-CXR's source files as the CXLSeg tables read them: report texts, metadata, CheXpert labels, official split.

Everything is read as text so dates, times and blank labels reach the output exactly as in the source.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tqdm import tqdm

from cxlseg.io import safe_join
from cxlseg.mimic import CHEXPERT_LABELS, SPLITS
from cxlseg.mimic import radiology_text as reports

log = logging.getLogger(__name__)


def _report_paths(studies: pd.DataFrame, reports_root: os.PathLike | str) -> list[str]:
    """Report file per study: safe_join once per pXX folder, the rest built from positive integer ids."""
    folders: dict[str, str] = {}
    paths = []
    for subject, study in zip(studies["subject_id"].tolist(), studies["study_id"].tolist()):
        if subject <= 0 or study <= 0:
            raise ValueError(f"invalid ids subject_id={subject} study_id={study}")
        prefix = str(subject)[:2]
        folder = folders.get(prefix)
        if folder is None:
            folder = folders[prefix] = str(safe_join(reports_root, f"files/p{prefix}"))
        paths.append(f"{folder}{os.sep}p{subject}{os.sep}s{study}.txt")
    return paths


def extract_study_reports(
    studies: pd.DataFrame,
    reports_root: os.PathLike | str,
    *,
    workers: int = 8,
    chunk: int = 256,
    progress: bool = True,
    fallbacks: str = "project",
) -> pd.DataFrame:
    """One parsed report per (subject_id, study_id).

    Threads overlap file reads on a cold or network file system; parsing holds
    the GIL, so on a warm page cache workers=1 is ~8% faster (219k reports:
    7.2 s vs 7.8 s on the 2-core dev box).
    """
    jobs = list(zip(_report_paths(studies, reports_root), studies["study_id"].tolist()))
    chunks = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]

    def run(batch):
        return [reports.study_report(path, study, fallbacks) for path, study in batch]

    results: list[tuple[str, str]] = []
    with tqdm(total=len(jobs), desc="reports", unit="study", disable=not progress) as bar:
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for out in pool.map(run, chunks):
                    results.extend(out)
                    bar.update(len(out))
        else:
            for batch in chunks:
                results.extend(run(batch))
                bar.update(len(batch))
    texts, rules = zip(*results) if results else ((), ())
    return pd.DataFrame(
        {
            "subject_id": studies["subject_id"].to_numpy(),
            "study_id": studies["study_id"].to_numpy(),
            "Reports": list(texts),
            "ReportRule": list(rules),
        }
    )


# ---------------------------------------------------------------- MIMIC tables


def _read_csv_as_text(path: os.PathLike | str, what: str) -> pa.Table:
    """Every column as text so dates, times and blanks reach the output exactly as in the source."""
    path = Path(path)
    try:
        header = pacsv.open_csv(path).schema.names
        options = pacsv.ConvertOptions(column_types={c: pa.string() for c in header}, strings_can_be_null=False)
        return pacsv.read_csv(path, convert_options=options)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: not a readable {what} CSV ({exc})") from exc


def read_metadata(metadata_csv: os.PathLike | str, dicom_ids: pd.Series) -> pd.DataFrame:
    """MIMIC-CXR-JPG metadata rows of the given images, all columns as text."""
    table = _read_csv_as_text(metadata_csv, "MIMIC-CXR metadata")
    missing = [c for c in ["dicom_id", "ViewPosition", "StudyDate", "StudyTime"] if c not in table.column_names]
    if missing:
        raise ValueError(f"{metadata_csv}: metadata lacks column(s) {', '.join(missing)}")
    table = table.filter(pc.is_in(table["dicom_id"], value_set=pa.array(dicom_ids.unique(), pa.string())))
    frame = table.to_pandas().drop_duplicates("dicom_id")
    return frame.drop(columns=[c for c in ("subject_id", "study_id") if c in frame])


_LABEL_TEXT = {1.0: "1.0", 0.0: "0.0", -1.0: "-1.0"}


def read_chexpert(chexpert_csv: os.PathLike | str) -> pd.DataFrame:
    """CheXpert labels per study as the source's text ("1.0", "0.0", "-1.0", "" for blank), in source column order.

    Kept as text so a blank stays blank (never 0) and writing 243k rows does
    not pay for float formatting.
    """
    path = Path(chexpert_csv)
    table = _read_csv_as_text(path, "CheXpert")
    missing = [c for c in ["subject_id", "study_id", *CHEXPERT_LABELS] if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: CheXpert table lacks column(s) {', '.join(missing)}")
    labels = [c for c in table.column_names if c in CHEXPERT_LABELS]
    frame = table.select(["subject_id", "study_id", *labels]).to_pandas()
    for column in ["subject_id", "study_id"]:
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype("int64")
    for column in labels:
        frame[column] = _label_text(frame[column], path, column)
    duplicated = frame.duplicated(["subject_id", "study_id"])
    if duplicated.any():
        log.warning("%s: %d duplicate (subject_id, study_id) rows; keeping the first", path, int(duplicated.sum()))
    return frame[~duplicated]


def _label_text(text: pd.Series, path: Path, column: str) -> pd.Categorical:
    """Canonical label text; anything but 1, 0, -1 or blank is an error naming the file and column."""
    trimmed = pc.utf8_trim_whitespace(pa.array(text.to_numpy(), pa.string()))
    blank = pc.equal(trimmed, "").to_numpy(zero_copy_only=False)
    try:
        values = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed).cast(pa.float64())
        values = values.to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        values = pd.to_numeric(text, errors="coerce").to_numpy()
    codes = np.select([values == 1.0, values == 0.0, values == -1.0, blank], [0, 1, 2, 3], -1)
    if (codes < 0).any():
        bad = text[codes < 0].iloc[0]
        raise ValueError(f"{path}: column {column!r} holds {bad!r}; expected 1.0, 0.0, -1.0 or blank")
    return pd.Categorical.from_codes(codes, categories=[*_LABEL_TEXT.values(), ""])


def read_official_split(
    split_csv: os.PathLike | str, what: str = "MIMIC-CXR split", strict: bool = False
) -> pd.DataFrame:
    """MIMIC-CXR-JPG's own split, or a published CXLSeg-split.csv.gz (same layout): dicom_id -> train/validate/test.

    A dicom_id listed twice keeps its first split; with `strict` (the CXLSeg split, whose membership is copied
    exactly) two different splits for one image are an error."""
    table = _read_csv_as_text(split_csv, what)
    missing = [c for c in ["dicom_id", "split"] if c not in table.column_names]
    if missing:
        raise ValueError(f"{split_csv}: split table lacks column(s) {', '.join(missing)}")
    frame = table.select(["dicom_id", "split"]).to_pandas().drop_duplicates()
    bad = ~frame["split"].isin(SPLITS)
    if bad.any():
        raise ValueError(f"{split_csv}: split value {frame['split'][bad].iloc[0]!r} is not one of {', '.join(SPLITS)}")
    twice = frame["dicom_id"].duplicated()
    if strict and twice.any():
        raise ValueError(f"{split_csv}: dicom_id {frame['dicom_id'][twice].iloc[0]} is listed in two splits")
    return frame[~twice]

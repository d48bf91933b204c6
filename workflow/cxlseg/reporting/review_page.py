"""The review page: every mask, worst first, for a person to accept or reject, as static files.

results/review/index.html (page, style and script in one file) loads its data as small script files
(data/run.js, then data/<shard>.<flag>/<n>.js, `page_size` masks each), so it works from file:// with no
server and no network, and a 243k-image run costs the browser one page of records and thumbnails at a
time. Each filter (shard x flag) is a precomputed list of pages: an image sits in the `all` and its shard's
list, for every filter it matches, so the data grow linearly with the images (about 0.1 KB per image and
filter) and never with what the browser has to hold. Thumbnails are the inference job's
(review/thumbs/<shard>/<dicom_id>.jpg, `outputs.review_thumbnail`); decisions stay in the browser
(localStorage) until exported as the CSV that `tables.review_file` applies.

Another archive (archive.kind, #34) gets the same page from its own table (`build_archive_review_page`):
its image, patient and study ids stand where MIMIC's dicom, subject and study ids do, so the page and its
exported CSV (`dicom_id,decision,note`) are the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.inference.manifest import split_flags
from cxlseg.inference.outputs import thumbnail_dir, thumbnail_path
from cxlseg.tables.quality import image_status

log = logging.getLogger(__name__)

PAGE_SIZE = 60
ALL = "all"
ANY_FLAG = "flagged"
# one record per mask, as an array to keep page files small; the page's script reads the same order
RECORD = ["dicom_id", "subject_id", "study_id", "shard", "qc_predicted_dice", "p_not_frontal", "qc_flags", "split"]
RECORD += ["status", "review", "review_note", "thumb"]


def worst_first(qc: pd.DataFrame) -> pd.DataFrame:
    """Flagged masks on top, then by predicted Dice, lowest first (unknown Dice last), then dicom_id: what a person
    should look at first comes first, and the order is the same on every build."""
    order = qc.assign(
        _clean=qc["qc_flags"] != "",
        _dice=qc["qc_predicted_dice"].fillna(np.inf),
    ).sort_values(["_clean", "_dice", "dicom_id"], ascending=[False, True, True], kind="stable")
    return order.drop(columns=["_clean", "_dice"]).reset_index(drop=True)


def _flags(text: str) -> list[str]:
    return split_flags(text)


def _identifier(value):
    """MIMIC's subject and study ids are numbers; another archive's are text ('patient00001', 'study1')."""
    return int(value) if isinstance(value, (int, np.integer)) else str(value)


def _records(qc: pd.DataFrame, thumbs_root: Path) -> list[list]:
    """The page records; `thumb` is False where inference wrote no thumbnail (a run older than thumbnails)."""
    folders = {shard: thumbnail_dir(thumbs_root, shard) for shard in qc["shard"].unique()}
    present = {shard: {e.name for e in os.scandir(d)} if d.is_dir() else set() for shard, d in folders.items()}
    rows = []
    for rec in qc.itertuples(index=False):
        dice, frontal = rec.qc_predicted_dice, rec.p_not_frontal
        rows.append(
            [
                rec.dicom_id,
                _identifier(rec.subject_id),
                _identifier(rec.study_id),
                rec.shard,
                None if pd.isna(dice) else round(float(dice), 3),
                None if pd.isna(frontal) else round(float(frontal), 3),
                rec.qc_flags,
                rec.split,
                rec.status,
                rec.review,
                rec.review_note,
                thumbnail_path(folders[rec.shard], rec.dicom_id).name in present[rec.shard],
            ]
        )
    return rows


def view_members(qc: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row positions (in worst-first order) of every non-empty filter, keyed '<shard>.<flag>'."""
    shards = {ALL: np.ones(len(qc), bool), **{s: (qc["shard"] == s).to_numpy() for s in sorted(qc["shard"].unique())}}
    flag_lists = qc["qc_flags"].map(_flags)
    names = sorted({f for flags in flag_lists for f in flags})
    flags = {ALL: np.ones(len(qc), bool), ANY_FLAG: (qc["qc_flags"] != "").to_numpy()}
    flags.update({name: flag_lists.map(lambda fl, n=name: n in fl).to_numpy() for name in names})
    views = {}
    for shard, in_shard in shards.items():
        for flag, has_flag in flags.items():
            positions = np.flatnonzero(in_shard & has_flag)
            if len(positions):
                views[f"{shard}.{flag}"] = positions
    return views


def _script(call: str, *args) -> str:
    return f"CXLSEG_REVIEW.{call}({', '.join(json.dumps(a, separators=(',', ':')) for a in args)});\n"


def _template() -> str:
    assets = resources.files("cxlseg") / "data" / "review"
    page = (assets / "review.html").read_text(encoding="utf-8")
    style = (assets / "review.css").read_text(encoding="utf-8")
    script = (assets / "review.js").read_text(encoding="utf-8")
    return page.replace("/*STYLE*/", style).replace("/*SCRIPT*/", script)


@dataclass(frozen=True)
class ReviewFiles:
    """The review page (the rule's `page` output), its data folder (`data`, a directory() output) and the
    thumbnails infer_shard wrote (`thumbs`, a params root). The page's script loads data/ and thumbs/ by those
    names beside it, so the rule must put them there."""

    page: Path
    data: Path
    thumbs: Path

    def __post_init__(self) -> None:
        for name in ("page", "data", "thumbs"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        for name in ("data", "thumbs"):
            if getattr(self, name) != self.page.parent / name:
                raise ValueError(
                    f"{getattr(self, name)}: the review page loads its {name} from {self.page.parent / name}"
                )


def thumb_url(files: ReviewFiles) -> str:
    """A thumbnail's address relative to the page, `{shard}` and `{dicom_id}` for the script to fill in: the
    file name is decided once, by `inference.outputs` (which writes the thumbnails)."""
    relative = Path(os.path.relpath(files.thumbs, files.page.parent))
    return thumbnail_path(thumbnail_dir(relative, "{shard}"), "{dicom_id}").as_posix()


def build_review_page(
    qc_csv,
    split_csv,
    files: ReviewFiles,
    *,
    min_predicted_dice: float,
    demo: bool = False,
    page_size: int = PAGE_SIZE,
) -> dict:
    """The page of a MIMIC run, from its CXLSeg-qc and -split tables (see `write_review_page`)."""
    qc = pd.read_csv(qc_csv, dtype={"dicom_id": str}, keep_default_na=False, na_values={"qc_predicted_dice": [""]})
    qc["p_not_frontal"] = pd.to_numeric(qc["p_not_frontal"], errors="coerce")
    split = pd.read_csv(split_csv, dtype={"dicom_id": str}, usecols=["dicom_id", "split"])
    qc = qc.merge(split, on="dicom_id", how="left").fillna({"split": ""})
    return write_review_page(qc, files, min_predicted_dice=min_predicted_dice, demo=demo, page_size=page_size)


def archive_review_frame(table_csv) -> pd.DataFrame:
    """Another archive's table (`tables.archive`) -> the page's rows: its masked images (a failed one has no mask
    to judge), each id under MIMIC's name, with the decisions the table applied (archive.review_file)."""
    table = pd.read_csv(table_csv, dtype=str, keep_default_na=False)
    missing = sorted({"image_id", "patient_id", "study_id", "shard", "split", "status"} - set(table.columns))
    if missing:
        raise ValueError(f"{table_csv}: not an archive table, no column {', '.join(missing)}")
    masked = table[table["status"] == "ok"]
    qc = pd.DataFrame(
        {
            "dicom_id": masked["image_id"],
            "subject_id": masked["patient_id"],
            "study_id": masked["study_id"],
            "shard": masked["shard"],
            "qc_predicted_dice": pd.to_numeric(masked["qc_predicted_dice"], errors="coerce"),
            "p_not_frontal": pd.to_numeric(masked["p_not_frontal"], errors="coerce"),
            "qc_flags": masked["qc_flags"],
            "split": masked["split"],
            "review": masked["review"] if "review" in masked else "",
            "review_note": masked["review_note"] if "review_note" in masked else "",
        }
    ).reset_index(drop=True)
    return qc.assign(status=image_status(qc))


def build_archive_review_page(
    table_csv, files: ReviewFiles, *, min_predicted_dice: float, demo: bool = False, page_size: int = PAGE_SIZE
) -> dict:
    """The page of another archive, from its table (see `write_review_page`)."""
    qc = archive_review_frame(table_csv)
    return write_review_page(qc, files, min_predicted_dice=min_predicted_dice, demo=demo, page_size=page_size)


def write_review_page(
    qc: pd.DataFrame, files: ReviewFiles, *, min_predicted_dice: float, demo: bool = False, page_size: int = PAGE_SIZE
) -> dict:
    """Write the page and its data folder for `qc` (one row per mask, RECORD's columns but `thumb`); thumbnails
    are read from `files.thumbs`. Returns the page's summary (masks, filters, page files, bytes of data)."""
    qc = worst_first(qc)
    records = _records(qc, files.thumbs)
    views = view_members(qc)

    data = files.data
    if data.exists():
        shutil.rmtree(data)  # stale pages of an earlier filter must not linger
    n_files, n_bytes = 0, 0
    for key, positions in views.items():
        for number, start in enumerate(range(0, len(positions), page_size), start=1):
            text = _script("page", key, number, [records[i] for i in positions[start : start + page_size]])
            io.write_text(data / key / f"{number}.js", text)
            n_files, n_bytes = n_files + 1, n_bytes + len(text.encode())
    flag_counts = {k.split(".", 1)[1]: int(len(v)) for k, v in views.items() if k.startswith(f"{ALL}.")}
    run = {
        "run_id": hashlib.sha256("\n".join(sorted(qc["dicom_id"])).encode()).hexdigest()[:16],
        "masks": int(len(qc)),
        "page_size": int(page_size),
        "min_predicted_dice": float(min_predicted_dice),
        "demo": bool(demo),
        "fields": RECORD,
        "views": {k: int(len(v)) for k, v in views.items()},
        "flags": flag_counts,
        "shards": {s: int(len(views[f"{s}.{ALL}"])) for s in sorted(qc["shard"].unique())},
        "status": {k: int(v) for k, v in qc["status"].value_counts().sort_index().items()},
        "applied": [[r.dicom_id, r.review, r.review_note] for r in qc[qc["review"] != ""].itertuples(index=False)],
        "missing_thumbnails": int(sum(not r[-1] for r in records)),
        "thumb_url": thumb_url(files),
    }
    run_text = _script("run", run)
    io.write_text(data / "run.js", run_text)
    ids_text = _script("ids", sorted(qc["dicom_id"]))  # what an imported CSV may decide on, loaded on import
    io.write_text(data / "ids.js", ids_text)
    page = _template()
    io.write_text(files.page, page)
    summary = {
        "masks": run["masks"],
        "filters": len(views),
        "page_files": n_files + 2,
        "data_bytes": n_bytes + len(run_text.encode()) + len(ids_text.encode()),
        "page_bytes": len(page.encode()),
        "missing_thumbnails": run["missing_thumbnails"],
    }
    log.info("review page: %s", summary)
    return summary

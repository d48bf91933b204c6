"""The per-shard manifest: its schema, and every reader and writer of manifests.

`read_manifests` is the one reader of a run's shard manifests: each file through `read_manifest_table` (schema
checked, only the columns asked for), as the manifest schema in pandas, or normalised in Arrow for the tables
(trimmed text, integer ids with their validity, unsafe paths pre-checked), which keeps 243k rows to about a second.

One shard writes one parquet manifest (one row per image: ids, paths, QC, status). Progress goes to
`progress/<shard>.parquet` (see partial_path) so a killed shard resumes where it stopped; an image counts as done only
when the (partial) manifest says ok for the same model and settings AND both output files exist.
Manifests hold no timestamps, so a rerun writes identical bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cxlseg import io

# Column -> pandas dtype (nullable types keep failed rows and reruns byte-identical).
MANIFEST_DTYPES = {
    "dicom_id": "string",
    "subject_id": "string",
    "study_id": "string",
    "source_path": "string",
    "image_path": "string",
    "mask_path": "string",
    "orig_height": "Int64",
    "orig_width": "Int64",
    "decode_factor": "Int64",
    # QC features (qc.qc_metrics), the predicted Dice and the flags
    "member_agreement": "float64",
    "member_agreement_min": "float64",
    "flip_agreement": "float64",
    "mean_fg_prob": "float64",
    "soft_dice": "float64",
    "cleanup_agreement": "float64",
    "boundary_entropy": "float64",
    "mean_entropy": "float64",
    "lung_area_fraction": "float64",
    "n_components": "Int64",
    "n_components_kept": "Int64",
    "left_right_ratio": "float64",
    "lr_log_ratio": "float64",
    "solidity": "float64",
    "centroid_x": "float64",
    "centroid_y": "float64",
    "height_fraction": "float64",
    "p_not_frontal": "float64",
    "film_fraction": "float64",
    "polarity_score": "float64",
    "edge_touch": "float64",
    "perturb_agreement": "float64",
    "film_inverted": "boolean",
    "film_cropped": "boolean",
    "qc_predicted_dice": "float64",
    "qc_flags": "string",
    "status": "string",
    "error": "string",
    "note": "string",
    "mask_rle": "string",
    "model_id": "string",
    "settings_id": "string",
}
REQUIRED_COLUMNS = ("dicom_id", "subject_id", "study_id", "image_path", "mask_path", "status")


FLAG_SEPARATOR = ";"  # qc_flags is one string: the flags, most important first, joined by this


def join_flags(flags) -> str:
    return FLAG_SEPARATOR.join(flags)


def split_flags(text) -> list[str]:
    """The flags of a qc_flags value (empty or missing: none)."""
    return [f for f in str(text or "").split(FLAG_SEPARATOR) if f]


def manifest_frame(records) -> pd.DataFrame:
    """Records or a read-back manifest -> the manifest schema, sorted by dicom_id."""
    df = pd.DataFrame(records)
    for col in MANIFEST_DTYPES:
        if col not in df:
            df[col] = None
    df = df[list(MANIFEST_DTYPES)].astype(MANIFEST_DTYPES)
    return df.sort_values("dicom_id", kind="stable").reset_index(drop=True)


def write_manifest(records, path) -> pd.DataFrame:
    frame = manifest_frame(records)
    io.write_parquet(frame, path)
    return frame


def partial_path(manifest_path) -> Path:
    """The shard's progress: every row computed so far, flushed while it runs and kept once it completes, so a
    rerun that Snakemake forces (its output deleted after a lost controller) recomputes nothing. It lives beside
    the manifests folder, not in it, so nothing that lists manifests ever reads it as one."""
    manifest_path = Path(manifest_path)
    return manifest_path.parent.parent / "progress" / manifest_path.name


def lock_path(manifest_path) -> Path:
    """The lock one shard's job holds while it runs (two jobs of one shard run one after the other)."""
    return partial_path(manifest_path).with_suffix(".lock")


def read_manifest_table(path: os.PathLike | str, columns: Iterable[str] | None = None) -> pa.Table:
    """One manifest as an Arrow table (only `columns` that exist, plus the required ones), or a clear error."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: not a readable parquet manifest ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        raise ValueError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    wanted = None if columns is None else [c for c in dict.fromkeys([*REQUIRED_COLUMNS, *columns]) if c in schema.names]
    return pq.read_table(path, columns=wanted)


def shard_of(path: os.PathLike | str) -> str:
    """The shard a manifest file belongs to: its name up to the first dot."""
    return Path(path).name.split(".")[0]


def read_manifests(
    paths: Iterable[os.PathLike | str], columns: Iterable[str] | None = None, *, normalised: bool = False
) -> pd.DataFrame:
    """Every row of several shard manifests as one frame: in the manifest schema, or (`normalised`) the columns the
    tables are built from, normalised per manifest in Arrow before they are joined (`_normalise_manifest`)."""
    if normalised:
        wanted = [*REQUIRED_COLUMNS, *_OPTIONAL_COLUMNS]
        tables = [_normalised(Path(p), read_manifest_table(p, wanted)) for p in paths]
        if not tables:
            tables = [_normalise_manifest(pa.table({c: pa.array([], pa.string()) for c in REQUIRED_COLUMNS}), "")]
        return pa.concat_tables(tables).to_pandas()
    frames = [read_manifest_table(p, columns).to_pandas() for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return manifest_frame([])
    return manifest_frame(pd.concat(frames, ignore_index=True))


# The columns a normalised read keeps (what the tables are built from), and how each is normalised
_BOOL_COLUMNS = ["film_inverted", "film_cropped"]  # the film check's undoings (False in older manifests)
_OPTIONAL_COLUMNS = [
    "error",
    "qc_flags",
    "source_path",
    "model_id",
    "qc_predicted_dice",
    "p_not_frontal",
    *_BOOL_COLUMNS,
]
_TEXT_COLUMNS = ["dicom_id", "image_path", "mask_path", "status", "error", "qc_flags", "source_path", "model_id"]
_FLOAT_COLUMNS = ["qc_predicted_dice", "p_not_frontal"]
PATH_COLUMNS = ["image_path", "mask_path"]  # checked against the output root (the suspect pre-check)


def _normalised(path: Path, table: pa.Table) -> pa.Table:
    try:
        return _normalise_manifest(table, shard_of(path))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(f"{path}: manifest column of an unexpected type ({exc})") from exc


def _normalise_manifest(table: pa.Table, shard: str) -> pa.Table:
    """Trimmed text (nulls as ''), '/'-separated paths, int64 ids with validity, unsafe-path pre-check, QC
    numbers as float64 (NaN where absent), and the shard the manifest belongs to."""
    n = len(table)
    out: dict[str, pa.ChunkedArray | pa.Array] = {"shard": pa.array([shard] * n, pa.string())}
    for column in _FLOAT_COLUMNS:
        values = table[column].cast(pa.float64()) if column in table.column_names else pa.nulls(n, pa.float64())
        out[column] = pc.fill_null(values, float("nan"))
    for column in _BOOL_COLUMNS:
        values = table[column].cast(pa.bool_()) if column in table.column_names else pa.nulls(n, pa.bool_())
        out[column] = pc.fill_null(values, False)
    for column in _TEXT_COLUMNS:
        values = table[column] if column in table.column_names else pa.nulls(n, pa.string())
        if column == "qc_flags":
            values = _flags_as_text(values)
        out[column] = pc.utf8_trim_whitespace(pc.fill_null(values.cast(pa.string()), ""))
    for column in PATH_COLUMNS:
        out[column] = pc.replace_substring(out[column], "\\", "/")
        out[f"{column}_suspect"] = _unsafe_paths(out[column])
    for column in ["subject_id", "study_id"]:
        out[column], out[f"{column}_valid"] = _ids(table[column])
    return pa.table(out)


def _ids(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """int64 ids and whether each is a positive integer; text like '10000032' or '10000032.0' is accepted."""
    if pa.types.is_integer(column.type):
        values = pc.fill_null(column.cast(pa.int64()), 0)
        return values, pc.greater(values, 0)
    text = pc.utf8_trim_whitespace(pc.fill_null(column.cast(pa.string()), ""))
    text = pc.replace_substring_regex(text, r"\.0+$", "")
    valid = pc.match_substring_regex(text, r"^[1-9][0-9]{0,17}$")
    return pc.if_else(valid, text, "0").cast(pa.int64()), valid


def _flags_as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """QC flags arrive as a list of strings or as one ';'-joined string; the tables want the string."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = pc.binary_join(column.cast(pa.list_(pa.string())), FLAG_SEPARATOR)
    elif pa.types.is_null(column.type):
        column = column.cast(pa.string())
    return pc.fill_null(column.cast(pa.string()), "")


def _unsafe_paths(paths) -> pa.ChunkedArray:
    """Vectorised pre-check with safe_join's rules; only hits are confirmed by safe_join itself."""
    paths = pc.replace_substring(paths, "\\", "/")
    return pc.or_(
        pc.or_(pc.equal(pc.utf8_trim_whitespace(paths), ""), pc.starts_with(paths, "/")),
        pc.or_(
            pc.or_(pc.starts_with(paths, "~"), pc.equal(pc.utf8_slice_codeunits(paths, 1, 2), ":")),
            pc.match_substring_regex(paths, r"(^|/)\.\.(/|$)"),
        ),
    )


def load_done(manifest_path, out_root, model_id: str, settings_id: str, thumbs_dir=None) -> pd.DataFrame:
    """Rows of an earlier (partial or final) run that need no recomputation: ok for this model and these
    settings, with both output files (and the review thumbnail, when `thumbs_dir` is given) still on disk."""
    paths = [p for p in (manifest_path, partial_path(manifest_path)) if Path(p).is_file()]
    if not paths:
        return manifest_frame([])
    prior = manifest_frame(pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True))
    prior = prior.drop_duplicates("dicom_id", keep="last")
    candidate = prior[(prior.status == "ok") & (prior.model_id == model_id) & (prior.settings_id == settings_id)]
    on_disk = [
        io.safe_join(out_root, i).is_file()
        and io.safe_join(out_root, m).is_file()
        and (thumbs_dir is None or io.safe_join(thumbs_dir, f"{d}.jpg").is_file())
        for d, i, m in zip(candidate.dicom_id, candidate.image_path, candidate.mask_path)
    ]
    return candidate[np.array(on_disk, dtype=bool)].reset_index(drop=True)

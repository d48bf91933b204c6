"""Which run the CXLSeg tables describe, and whether the files on disk still match it.

Why: a rerun that is cut off (a kill, a crash, a dropped SSH session, a cancelled Slurm job) can leave masks and
segmented images rewritten, or a shard manifest deleted, while the tables still describe the previous run.
`merge_tables` records in summary.json the config hash, the code (package version, git commit, a fingerprint of
the sources) and a hash of every shard manifest and table it wrote; `check_tables` compares that record with the
files: the run report hands it its declared inputs, the `cxlseg check-run` command (`check_run`) a results folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import pyarrow.parquet as pq

import cxlseg
from cxlseg.fingerprint import code_fingerprint
from cxlseg.inference.manifest import partial_path
from cxlseg.io import UnsafePathError, safe_join

# The results folder's layout as `cxlseg check-run --results` finds it (the rules name the same files)
SUMMARY = "summary.json"
TABLES_DIR = "CXLSeg"  # results/CXLSeg: the tables, summary.json and files/ (masks, segmented images)
MANIFESTS_DIR = Path("infer") / "manifests"
_NOT_HASHED = ("results", "resources")  # where outputs go and how many cores they take: not what they hold
_EXAMPLES = 3


# ---------------------------------------------------------------- what a run is


def config_hash(config: dict) -> str:
    """sha256 (16 hex) of the validated config minus the speed-only keys, `results` and `resources`: two runs
    with the same hash were asked for the same outputs."""
    from cxlseg.config import load_schema

    sections = load_schema()["properties"]
    outcome = {}
    for section, value in config.items():
        if section in _NOT_HASHED:
            continue
        if isinstance(value, dict):
            props = sections.get(section, {}).get("properties", {})
            value = {k: v for k, v in value.items() if not props.get(k, {}).get("speed_only")}
        outcome[section] = value
    return _sha256(json.dumps(outcome, sort_keys=True, default=str).encode())[:16]


def git_commit(folder: os.PathLike | str | None = None) -> dict:
    """{"commit", "dirty"} of the checkout holding `folder` (the package by default); None for both outside git
    or without a git executable. Best effort: never raises."""
    folder = Path(folder) if folder else Path(cxlseg.__file__).resolve().parent
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        dirty = bool(_git(folder, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def _git(folder: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.strip()


def code_identity() -> dict:
    """The code that built the outputs: package version, git commit (None outside git), source fingerprint."""
    git = git_commit()
    return {
        "version": cxlseg.__version__,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "fingerprint": code_fingerprint(),
    }


@dataclass(frozen=True)
class RunRecord:
    """The config's hash, handed to rule merge_tables as a param that Snakemake cannot represent: recorded in
    summary.json, never a rerun trigger (a new config reruns what it changes, not the merge for its own sake)."""

    config_hash: str

    @classmethod
    def from_config(cls, config: dict) -> "RunRecord":
        return cls(config_hash(config))

    def identity(self) -> dict:
        return {"config_hash": self.config_hash, "code": code_identity()}


def run_identity(config: dict | None) -> dict:
    """What summary.json says about the run besides its files: the config hash and the code."""
    return {"config_hash": config_hash(config) if config is not None else None, "code": code_identity()}


# ---------------------------------------------------------------- what a run wrote


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: os.PathLike | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_records(paths: Iterable[os.PathLike | str], *, rows: bool = False) -> dict[str, dict]:
    """File name -> {"sha256", "bytes"} (and "rows" for parquet files when `rows`)."""
    records = {}
    for path in map(Path, paths):
        record = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        if rows:
            record["rows"] = pq.read_metadata(path).num_rows
        records[path.name] = record
    return records


def provenance(run: dict | None, manifest_paths, table_paths) -> dict:
    """summary.json's `provenance`: the run's identity, and the manifests that built the tables and the tables."""
    return {
        **(run if run is not None else run_identity(None)),
        "manifests": file_records(manifest_paths, rows=True),
        "tables": file_records(table_paths),
    }


def quality_record(qc_table: os.PathLike | str, review_file: os.PathLike | str | None) -> dict:
    """summary.json's `provenance.quality`: the quality table as written and the review file it applied (its
    absolute path and hash; None without one)."""
    review = None
    if review_file:
        review = {"path": os.path.abspath(review_file), "sha256": file_sha256(review_file)}
    return {"table": file_records([qc_table]), "review_file": review}


# ---------------------------------------------------------------- does the disk still match


@dataclass
class RunCheck:
    """The outcome of check_tables: `problems` (each a sentence naming the file) empty when the tables describe
    what is on disk; `identity` is what summary.json recorded."""

    tables_dir: Path
    problems: list[str] = field(default_factory=list)
    identity: dict = field(default_factory=dict)
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        """A few lines for a terminal or a log: what matches, or what does not and what to run."""
        if self.ok:
            code = self.identity.get("code", {})
            return (
                f"OK: {self.tables_dir} describes the files on disk "
                f"({len(self.identity.get('manifests', {}))} shard manifest(s), {self.images_checked} image "
                f"file(s) checked; config {self.identity.get('config_hash')}, cxlseg {code.get('version')}, "
                f"commit {code.get('git_commit') or 'unknown'})"
            )
        lines = [f"MISMATCH: the CXLSeg tables in {self.tables_dir} do not describe the files on disk:"]
        lines += [f"  - {p}" for p in self.problems]
        lines.append(FIX)
        return "\n".join(lines)


FIX = (
    "The pipeline was interrupted or rerun after the tables were built. Run the same Snakemake command again "
    "(first with --unlock if the controller was killed): it finishes the unfinished shards, resuming where the "
    "settings are unchanged, and rebuilds the tables."
)


def check_run(results: os.PathLike | str, *, scan_images: bool = True) -> RunCheck:
    """`check_tables` on a results folder: the manifests and tables summary.json records, where the workflow
    writes them, and every image under results/CXLSeg."""
    results = Path(results)
    tables_dir = results / TABLES_DIR
    summary_path = tables_dir / SUMMARY
    record = _read_record(summary_path, RunCheck(tables_dir))
    manifests, tables = {}, {}
    if record is not None:
        for name in record.get("manifests", {}):
            try:
                manifests[name] = safe_join(results / MANIFESTS_DIR, name)
            except UnsafePathError:
                continue  # check_tables names it
        tables = {Path(name).name: tables_dir / Path(name).name for name in record.get("tables", {})}
    check = check_tables(summary_path, manifests.values(), tables.values(), tables_dir, scan_images=scan_images)
    if record is not None:
        check.problems += _quality_problems(tables_dir, record)
    return check


def check_tables(
    summary_path: os.PathLike | str,
    manifests: Iterable[os.PathLike | str],
    tables: Iterable[os.PathLike | str],
    images_root: os.PathLike | str | None,
    *,
    scan_images: bool = True,
) -> RunCheck:
    """Compare summary.json's record with the files: every recorded manifest among `manifests`, present with the
    recorded hash, no unfinished (partial) shard, every table among `tables` as written, and (when `scan_images`)
    no mask or segmented image under `images_root`'s folders written after the tables. Reads only; one stat per
    image file."""
    summary_path = Path(summary_path)
    check = RunCheck(summary_path.parent)
    record = _read_record(summary_path, check)
    if record is None:
        return check
    check.identity = record
    built_at = summary_path.stat().st_mtime_ns
    check.problems += _manifest_problems({Path(p).name: Path(p) for p in manifests}, record.get("manifests", {}))
    check.problems += _table_problems({Path(p).name: Path(p) for p in tables}, record.get("tables", {}))
    if scan_images and images_root is not None:
        folders = [Path(e.path) for e in os.scandir(images_root) if e.is_dir()] if Path(images_root).is_dir() else []
        newer, check.images_checked = [], 0
        for folder in folders:
            found, seen = _files_newer_than(folder, built_at)
            newer, check.images_checked = newer + found, check.images_checked + seen
        if newer:
            examples = ", ".join(str(p.relative_to(images_root)) for p in sorted(newer)[:_EXAMPLES])
            check.problems.append(
                f"{len(newer)} mask/segmented image file(s) were written after the tables (e.g. {examples}): "
                "a later inference run replaced them"
            )
    return check


def _read_record(summary_path: Path, check: RunCheck) -> dict | None:
    """summary.json's provenance record, or None with the reason added to `check`."""
    if not summary_path.is_file():
        check.problems.append(f"{summary_path} is missing: the tables were never built, or their merge was cut off")
        return None
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        check.problems.append(f"{summary_path} is not readable JSON ({exc})")
        return None
    record = summary.get("provenance") if isinstance(summary, dict) else None
    if not isinstance(record, dict):
        check.problems.append(
            f"{summary_path} does not record which manifests built the tables (written by an older cxlseg); "
            "rebuild the tables with --forcerun merge_tables"
        )
        return None
    return record


def _manifest_problems(manifests: dict[str, Path], recorded: dict) -> list[str]:
    problems, present = [], []
    for name, want in sorted(recorded.items()):
        try:
            safe_join(".", name)
        except UnsafePathError as exc:
            problems.append(f"summary.json names an unsafe manifest path {name!r} ({exc})")
            continue
        path = manifests.get(Path(name).name)
        if path is None:
            problems.append(f"summary.json names a manifest {name!r} that is not a shard manifest of this run")
            continue
        if not path.is_file():
            unfinished = " (its progress is in " + str(partial_path(path)) + ")" if partial_path(path).is_file() else ""
            problems.append(f"{path} is missing: its shard was rerun and did not finish{unfinished}")
        elif file_sha256(path) != want.get("sha256"):
            problems.append(f"{path} differs from the manifest the tables were built from (rewritten since)")
        else:
            present.append(path)
    problems += _mixed_versions(present)
    return problems


def _mixed_versions(manifests: list[Path]) -> list[str]:
    """A shard resumes only rows of its own model, settings and code (the manifest's model_id and settings_id),
    but shards rerun one by one can still disagree: the dataset then mixes versions."""
    versions: dict[tuple, list[str]] = {}
    for path in manifests:
        names = set(pq.read_schema(path).names) & {"model_id", "settings_id"}
        table = pq.read_table(path, columns=sorted(names)).to_pydict() if names else {}
        n = pq.read_metadata(path).num_rows
        keys = zip(table.get("model_id", [None] * n), table.get("settings_id", [None] * n))
        for key in {k for k in keys if any(k)}:
            versions.setdefault(key, []).append(path.stem)
    if len(versions) <= 1:
        return []
    made_by = "; ".join(f"{', '.join(sorted(set(s)))} by {m} / settings {i}" for (m, i), s in sorted(versions.items()))
    return [
        f"the shard manifests were made by {len(versions)} different models, settings or code versions ({made_by}): "
        "rerun the older shards with --forcerun infer_shard"
    ]


def _table_problems(tables: dict[str, Path], recorded: dict) -> list[str]:
    problems = []
    for name, want in sorted(recorded.items()):
        path = tables.get(Path(name).name)
        if path is None:
            problems.append(f"summary.json names a table {name!r} that is not a table of this run")
        elif not path.is_file():
            problems.append(f"{path} is missing")
        elif file_sha256(path) != want.get("sha256"):
            problems.append(f"{path} differs from the table summary.json describes (rewritten since)")
    return problems


def _quality_problems(tables_dir: Path, record: dict) -> list[str]:
    """The quality table and the review file it applied, against summary.json's `provenance.quality`."""
    quality = record.get("quality")
    if not isinstance(quality, dict):
        return [
            f"{tables_dir / SUMMARY} does not record the quality table or the review file it applied (written by "
            "an older cxlseg); rebuild it with --forcerun quality_table"
        ]
    problems = _table_problems(
        {Path(n).name: tables_dir / Path(n).name for n in quality.get("table", {})}, quality.get("table", {})
    )
    review = quality.get("review_file")
    if review:
        path = Path(review.get("path", ""))
        if not path.is_file():
            problems.append(f"{path}, the review file the quality table applied, is missing")
        elif file_sha256(path) != review.get("sha256"):
            problems.append(
                f"{path} differs from the review file the quality table applied (edited since): run the workflow "
                "again to apply it"
            )
    return problems


def _files_newer_than(folder: Path, built_at: int) -> tuple[list[Path], int]:
    """Files under `folder` modified after `built_at` (ns), sorted, and how many files were looked at."""
    newer, seen, stack = [], 0, [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                seen += 1
                if entry.stat(follow_symlinks=False).st_mtime_ns > built_at:
                    newer.append(Path(entry.path))
    return sorted(newer), seen

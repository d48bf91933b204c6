"""The one image record every archive adapter yields, and the rules every adapter shares: ids safe as file
names, paths that stay under the archive root, and shards that keep a patient's images together."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from cxlseg.io import UnsafePathError, safe_join

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
UNKNOWN_VIEW = "unknown"  # nothing says which projection it is: the view check decides
MAX_SHARDS = 100  # shard ids are p00..p99, the form the pipeline's shard ids take
RECORD_COLUMNS = ["image_id", "patient_id", "study_id", "view", "path", "shard", "source_id"]
SKIP_COLUMNS = ["path", "reason"]


def image_id_problem(image_id: str) -> str:
    """Why an image id cannot name a file ('' when it can)."""
    return "" if ID_PATTERN.fullmatch(str(image_id)) else f"image id {image_id!r} is not safe as a file name"


@dataclass(frozen=True)
class ImageRecord:
    """One frontal image to segment. `path` is relative to the archive root (POSIX form); `source_id` is the
    key the archive (and CheXmask's table for it) uses, so masks can be compared row by row."""

    image_id: str
    patient_id: str
    study_id: str
    view: str
    path: str
    shard: str
    source_id: str

    def __post_init__(self):
        if problem := image_id_problem(self.image_id):
            raise ValueError(problem)
        for name in ("patient_id", "study_id", "view"):
            if not getattr(self, name):
                raise ValueError(f"{self.path}: empty {name}")


@dataclass
class Listing:
    """What an adapter found: the records to segment, the files it skipped with the reason, and how many
    metadata rows it dropped as not frontal (per view value), so a run can show where every image went."""

    kind: str
    records: list[ImageRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_frontal: dict[str, int] = field(default_factory=dict)
    _paths: dict[str, str] = field(default_factory=dict, repr=False)
    _kept: set[str] = field(default_factory=set, repr=False)

    def add(self, record: ImageRecord) -> None:
        """Keep a record; a second record with an id already taken (a row listed twice) is skipped instead."""
        first = self._paths.setdefault(record.image_id, record.path)
        if first != record.path or record.image_id in self._kept:
            self.skip(record.path, f"image id {record.image_id} is already given to {first}")
            return
        self._kept.add(record.image_id)
        self.records.append(record)

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def drop_view(self, view: str) -> None:
        key = view or "blank"
        self.not_frontal[key] = self.not_frontal.get(key, 0) + 1

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.records], columns=RECORD_COLUMNS)

    def skipped_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.skipped, columns=SKIP_COLUMNS)

    def check(self) -> "Listing":
        """Ids unique and a patient in one shard: what the merge and the split by patient rely on."""
        seen: dict[str, str] = {}
        shards: dict[str, str] = {}
        for r in self.records:
            if r.image_id in seen:
                raise ValueError(f"{self.kind}: image id {r.image_id} given to both {seen[r.image_id]} and {r.path}")
            seen[r.image_id] = r.path
            if shards.setdefault(r.patient_id, r.shard) != r.shard:
                raise ValueError(
                    f"{self.kind}: patient {r.patient_id} is in shards {shards[r.patient_id]} and {r.shard}"
                )
        return self


def shard_of(patient_id: str, n_shards: int) -> str:
    """p00..p{n-1}: a stable hash of the patient (sha256, not Python's salted `hash`), so every run, machine and
    Python version puts a patient's images in the same shard."""
    if not 1 <= n_shards <= MAX_SHARDS:
        raise ValueError(f"archive shards must be within [1, {MAX_SHARDS}], got {n_shards}")
    digest = hashlib.sha256(str(patient_id).encode("utf-8")).digest()
    return f"p{int.from_bytes(digest[:8], 'big') % n_shards:02d}"


def safe_id(text: str) -> str:
    """A file-name-safe id from an archive's own key: characters outside [A-Za-z0-9._-] become '_'."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._-")
    if not slug:
        raise ValueError(f"no usable id in {text!r}")
    return slug


def relative_path(root: Path, rel: str, source: str) -> str:
    """A path from an archive's metadata, checked never to leave the root; POSIX form. `source` names the
    metadata file in the error."""
    try:
        full = safe_join(root, rel)
    except UnsafePathError as exc:
        raise UnsafePathError(f"{source}: {exc}") from None
    return PurePosixPath(*full.relative_to(root).parts).as_posix()


def file_problem(root: Path, rel: str) -> str | None:
    """Why a listed file cannot be segmented before anyone opens it (missing, empty), or None."""
    path = root / rel
    if not path.is_file():
        return "listed in the archive's metadata but not on disk"
    if path.stat().st_size == 0:
        return "file is empty"
    return None


def read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """A metadata CSV (gzip by suffix) as text, every column it needs present, or an error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metadata file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, low_memory=False)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; has {list(table.columns)[:12]}")
    return table

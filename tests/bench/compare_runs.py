"""Compare two demo results/ trees (not a test): did a refactor change what the pipeline writes?

    python tests/bench/compare_runs.py BEFORE/results AFTER/results

Masks, segmented images and review thumbnails byte for byte; the CXLSeg CSV.gz tables decompressed (gzip's
header holds a time stamp); the model selection (selected.json without its checkpoint paths, which name the
checkout). Prints one line per kind; exits 1 when anything differs.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

KINDS = (
    ("images and masks", "CXLSeg/files/**/*", lambda p: p.read_bytes()),
    ("thumbnails", "review/thumbs/**/*.jpg", lambda p: p.read_bytes()),
    ("tables", "CXLSeg/*.csv.gz", lambda p: gzip.decompress(p.read_bytes())),
)


def files(root: Path, pattern: str) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.glob(pattern)) if p.is_file()}


def selection(root: Path) -> dict:
    chosen = json.loads((root / "models" / "selected.json").read_text())
    return {k: v for k, v in chosen.items() if k not in ("checkpoint", "checkpoints")}


def compare(before: Path, after: Path) -> list[str]:
    """What differs, one line each (empty: the same outputs)."""
    bad = []
    for what, pattern, read in KINDS:
        a, b = files(before, pattern), files(after, pattern)
        if a.keys() != b.keys():
            bad.append(f"{what}: file sets differ: {sorted(a.keys() ^ b.keys())[:5]}")
        diff = sorted(k for k in a.keys() & b.keys() if read(a[k]) != read(b[k]))
        print(f"{what}: {len(a)} vs {len(b)} files, {len(diff)} differ {diff[:5]}")
        bad += [f"{what}: {k}" for k in diff]
    same = selection(before) == selection(after)
    print("selection:", "same" if same else f"differs {selection(before)} vs {selection(after)}")
    return bad + ([] if same else ["selection"])


if __name__ == "__main__":
    sys.exit(1 if compare(Path(sys.argv[1]), Path(sys.argv[2])) else 0)

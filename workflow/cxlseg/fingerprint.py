"""Which code ran: a fingerprint of the package's sources and the rule scripts, by content.

Why here, among the shared basics: inference keys a shard's resume on it (a partial manifest written by other code
is not resumed) and the tables record it in summary.json, so both stages read it from below them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cxlseg

_CODE_SUFFIXES = (".py", ".yaml", ".csv")


def _code_files(package: Path | None = None) -> list[tuple[str, Path]]:
    """The package's sources (and, in a checkout, the rule scripts beside it) as (name, path), sorted."""
    package = Path(package) if package else Path(cxlseg.__file__).resolve().parent
    roots = [("cxlseg", package)]
    scripts = package.parent / "scripts"
    if package.parent.name == "workflow" and scripts.is_dir():
        roots.append(("scripts", scripts))
    files = []
    for label, root in roots:
        for path in root.rglob("*"):
            if path.suffix in _CODE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                files.append((f"{label}/{path.relative_to(root).as_posix()}", path))
    return sorted(files)


def code_fingerprint(package: os.PathLike | str | None = None) -> str:
    """sha256 (16 hex) of every source file of the package (this one by default) and the rule scripts, by content:
    the same code in another checkout (or outside git) gives the same fingerprint, any edit a new one."""
    digest = hashlib.sha256()
    for name, path in _code_files(package):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]

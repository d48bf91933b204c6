"""What a benchmark's JSON must carry so that a figure in the docs can be traced and rerun.

Every `--json` a bench writes holds the exact command that produced it and the machine it ran on (cores, load
average, date, git commit): timings from a shared machine are only comparable when the load is known.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def command(script: str, argv: list[str] | None) -> str:
    """The command line that reruns this bench from the project root (argv None: this process's own)."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    return shlex.join(["python", f"tests/bench/{Path(script).name}", *args])


def machine() -> dict:
    """Cores, load, date and code of this run."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or None
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {
        "nproc": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
    }


def results_dir(out: os.PathLike | str, script: str) -> Path:
    """The folder of one benchmark's results under --out (`<out>/<bench name>`): the real-film benchmarks share
    --out to score the same trained folds, so each keeps its summary.json and masks.csv apart."""
    path = Path(out) / Path(script).stem
    path.mkdir(parents=True, exist_ok=True)
    return path


def write(path: os.PathLike | str, result: dict, script: str, argv: list[str] | None = None) -> None:
    """Write result with its `command` and `machine` to path (JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command(script, argv), "machine": machine(), **result}
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=_plain) + "\n")
    print(f"wrote {path}")


def copy(summary: Path, path: os.PathLike | str) -> None:
    """Store a long bench's summary.json (which already names its command and machine) at path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(summary, path)
    print(f"wrote {path}")


def _plain(obj):
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

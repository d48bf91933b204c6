"""Where a run's time went: every rule's benchmark seconds, the wall clock from first job start to last job end,
and the hardware the report was built on.

Why: a researcher planning a 243k run needs compute time per stage and elapsed time, not one or the other; both
come from the `benchmark:` TSVs every rule writes (the file is written when its job ends, so a job ran from
mtime - s to mtime).
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import numpy as np
import pandas as pd

ARCHIVE_SHARD = re.compile(r"p\d\d")  # another archive's shard ids (archives.settings.ArchiveSettings.shard_ids)


def _stage(tsv: Path, root: Path) -> str:
    """A job's rule: the benchmark's folder under the benchmarks folder (one file per job), else its name.
    Another archive's jobs sit in archives/<kind>/: its shards count as `infer`, as MIMIC's do, the rest by name."""
    rel = tsv.relative_to(root)
    if rel.parts[0] == "archives" and len(rel.parts) == 3:
        return "infer" if ARCHIVE_SHARD.fullmatch(tsv.stem) else tsv.stem
    return rel.parts[0] if len(rel.parts) > 1 else tsv.stem


def _root(benchmarks) -> Path:
    """The benchmarks folder: the deepest folder holding every single-job rule's file (a file directly in it)."""
    return Path(os.path.commonpath([Path(p).parent for p in benchmarks]))


def _benchmarks(benchmarks) -> list[tuple[str, Path, pd.DataFrame]]:
    """(rule, file, table) of each benchmark file given (the report rule's declared inputs)."""
    files = sorted(Path(p) for p in benchmarks if Path(p).is_file())
    if not files:
        return []
    root = _root(files)
    return [(_stage(tsv, root), tsv, pd.read_csv(tsv, sep="\t")) for tsv in files]


def benchmark_times(benchmarks) -> pd.DataFrame:
    """Per rule: jobs, seconds summed over its jobs, peak memory (MB); longest first."""
    rows = [
        (
            stage,
            float(df["s"].sum()),
            float(pd.to_numeric(df["max_rss"], errors="coerce").max()) if "max_rss" in df else np.nan,
        )
        for stage, _, df in _benchmarks(benchmarks)
    ]
    if not rows:
        return pd.DataFrame(columns=["stage", "jobs", "seconds", "peak_rss_mb"])
    df = pd.DataFrame(rows, columns=["stage", "seconds", "rss"])
    return (
        df.groupby("stage", sort=False)
        .agg(jobs=("seconds", "size"), seconds=("seconds", "sum"), peak_rss_mb=("rss", "max"))
        .reset_index()
        .sort_values("seconds", ascending=False, ignore_index=True)
    )


def wall_clock(benchmarks) -> dict:
    """First job start to last job end, and the time at least one job ran (gaps between resumed runs excluded)."""
    spans = sorted(
        (tsv.stat().st_mtime - float(df["s"].sum()), tsv.stat().st_mtime) for _, tsv, df in _benchmarks(benchmarks)
    )
    if not spans:
        return {"seconds": np.nan, "busy_seconds": np.nan, "jobs": 0}
    busy, (start, end) = 0.0, spans[0]
    for a, b in spans[1:]:
        if a > end:
            busy, start = busy + end - start, a
        end = max(end, b)
    busy += end - start
    return {"seconds": spans[-1][1] - spans[0][0], "busy_seconds": busy, "jobs": len(spans)}


def shard_throughput(benchmarks, manifests: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Images per second of each infer shard: manifest rows over that shard job's benchmark seconds (the
    infer rule's benchmark file named after the shard)."""
    seconds_of = {tsv.stem: float(df["s"].sum()) for stage, tsv, df in _benchmarks(benchmarks) if stage == "infer"}
    rows = []
    for shard, manifest in manifests.items():
        seconds = seconds_of.get(shard, np.nan)
        rate = len(manifest) / seconds if seconds and seconds > 0 else np.nan
        rows.append((shard, len(manifest), seconds, rate))
    return pd.DataFrame(rows, columns=["shard", "images", "seconds", "images_per_s"])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return float("nan")


def hardware() -> dict:
    """CPU model and cores, memory and GPUs of this host (the report job's; on a cluster, jobs may run elsewhere)."""
    gpus = []
    try:
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch or no driver: report no GPU
        gpus = []
    return {
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "gpus": gpus,
        "system": f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
    }

"""Benchmark: DAG construction at MIMIC scale.

Writes a full-size MIMIC-CXR-JPG metadata file (243,334 frontal rows across p10..p19, plus laterals) and
times `snakemake -n` on it, against a baseline dry-run on a 100-row archive measured in the same run.
The DAG must not read per-image data: targets are <= 30 s and <= 40 inference jobs.

    python tests/bench/bench_dag.py [--frontal 243334] [--chunks 1] [--json docs/bench/dag.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def write_archive(root: Path, frontal: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    lateral = frontal // 2
    n = frontal + lateral
    subjects = 10_000_000 + rng.integers(0, 9_999_999, n)
    meta = pd.DataFrame(
        {
            "dicom_id": [f"{i:08x}-{j:08x}" for i, j in zip(rng.integers(0, 2**32, n), range(n))],
            "subject_id": subjects,
            "study_id": 50_000_000 + rng.integers(0, 9_999_999, n),
            "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
            "ViewPosition": np.where(np.arange(n) < frontal, rng.choice(["AP", "PA"], n), "LATERAL"),
            "Rows": 3056,
            "Columns": 2544,
            "StudyDate": 21800506,
            "StudyTime": 213014.531,
            "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
            "ViewCodeSequence_CodeMeaning": "postero-anterior",
            "PatientOrientationCodeSequence_CodeMeaning": "Erect",
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    meta.to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    for name in ("mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-split.csv.gz"):
        pd.DataFrame({"subject_id": [], "study_id": []}).to_csv(root / name, index=False)


def dry_run(workdir: Path, archive: Path, chunks: int) -> tuple[float, int]:
    overlay = {
        "results": str(workdir / "results"),
        "mimic": {"root": str(archive), "chunks_per_shard": chunks},
        "datasets": {d: {"root": str(workdir / d)} for d in ("shenzhen", "montgomery", "v7")},
    }
    (workdir / "bench.yaml").write_text(yaml.safe_dump(overlay))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "-n",
        "--quiet",
        "rules",
        "--configfile",
        str(ROOT / "config" / "config.yaml"),
        str(workdir / "bench.yaml"),
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    counts = [
        int(line.split()[1])
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.startswith("infer_shard ") and line.split()[1].isdigit()
    ]
    jobs = counts[0] if counts else 0  # Snakemake prints the job-stats table more than once
    return seconds, jobs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frontal", type=int, default=243_334)
    parser.add_argument("--chunks", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the numbers, the command and the machine here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_archive(tmp / "small", 100)
        write_archive(tmp / "full", args.frontal)
        (tmp / "w1").mkdir(), (tmp / "w2").mkdir()
        base_s, base_jobs = dry_run(tmp / "w1", tmp / "small", args.chunks)
        full_s, full_jobs = dry_run(tmp / "w2", tmp / "full", args.chunks)
    print(f"baseline dry-run (100 frontal rows):      {base_s:6.2f} s, {base_jobs} inference jobs")
    print(f"full-size dry-run ({args.frontal:,} frontal rows): {full_s:6.2f} s, {full_jobs} inference jobs")
    print(f"ratio full / baseline: {full_s / base_s:.2f}")
    ok = full_s <= 30 and full_jobs <= 40
    print(f"targets (<= 30 s, <= 40 inference jobs): {'PASS' if ok else 'FAIL'}")
    if args.json:
        result = {
            "frontal_rows": args.frontal,
            "chunks": args.chunks,
            "baseline_100_rows": {"seconds": round(base_s, 3), "inference_jobs": base_jobs},
            "full_size": {"seconds": round(full_s, 3), "inference_jobs": full_jobs},
            "ratio_full_over_baseline": round(full_s / base_s, 3),
            "targets": {"seconds": 30, "inference_jobs": 40, "pass": ok},
        }
        record.write(args.json, result, __file__, argv)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The demo through `snakemake --profile profiles/slurm` on a real single-node Slurm (started by .ci/slurm-up).

CI-only settings (partition, squeue status checks without slurmdbd, no account) are passed on the command
line here, never written into the production profile.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SLURM_UP = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0

pytestmark = pytest.mark.skipif(not SLURM_UP, reason="no running Slurm here (.ci/slurm-up starts one)")

TINY = {
    "demo": {"n_shenzhen": 6, "n_montgomery": 4, "n_v7": 8, "n_mimic_subjects": 6},
    "augment": {"targets": {"tuberculosis": 6, "covid19": 6, "pneumonia": 6, "normal": 6}},
    "train": {"epochs": 1, "batch_size": 4, "max_train_batches": 2},
    "models": {"architectures": ["unet", "sa_unet"]},
    "infer": {"batch_size": 8, "flush_every": 8},
    "classify": {"enabled": False},
    # GPU-style requests: the CI node advertises one fake GPU (gres.conf File=/dev/null).
    "resources": {"train": {"gpu": 1, "mem_mb": 3000, "cpus": 1}, "infer": {"gpu": 1, "mem_mb": 3000, "cpus": 1}},
}
CI_FLAGS = [
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--slurm-no-account",
    "--default-resources",
    "slurm_partition=ci",
    "mem_mb=2000",
    "runtime=30",
    "cpus_per_task=1",
    "--jobs",
    "4",
]


def run_slurm(workdir: Path, *extra: str, timeout: int = 1500) -> str:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--profile",
        str(ROOT / "profiles" / "slurm"),
        "--configfile",
        str(ROOT / "config" / "config.yaml"),
        str(ROOT / "config" / "demo.yaml"),
        str(workdir / "tiny.yaml"),
        *CI_FLAGS,
        *extra,
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # let Snakemake cancel its Slurm jobs
        out, _ = proc.communicate(timeout=120)
        raise AssertionError(f"snakemake on Slurm timed out:\n{out[-4000:]}") from None
    assert proc.returncode == 0, out[-6000:]
    return out


def slurm_job_ids(log: str, rule: str) -> list[str]:
    pattern = rf"\(log: [^)]*rule_{rule}/[^)]*\)"
    return [m.group(1) for m in re.finditer(r"submitted with SLURM jobid (\d+) " + pattern, log)]


def test_demo_runs_through_the_slurm_profile(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    log = run_slurm(tmp_path)
    tables = tmp_path / "results" / "CXLSeg"
    segmented = pd.read_csv(tables / "CXLSeg-segmented.csv.gz")
    assert len(segmented) > 0 and (tables / "CXLSeg-mask.csv.gz").is_file()

    train_jobs = slurm_job_ids(log, "train")
    merge_jobs = slurm_job_ids(log, "merge_tables")
    assert len(train_jobs) == 2 and len(merge_jobs) == 1, log[-3000:]
    gpu_job = subprocess.run(["scontrol", "show", "job", train_jobs[0]], capture_output=True, text=True).stdout
    cpu_job = subprocess.run(["scontrol", "show", "job", merge_jobs[0]], capture_output=True, text=True).stdout
    assert "gpu" in gpu_job, f"train job did not request a GPU:\n{gpu_job}"
    assert "gpu" not in cpu_job.replace("GresTypes", ""), f"CPU rule asked for a GPU:\n{cpu_job}"

    again = run_slurm(tmp_path, "-n")
    assert "Nothing to be done" in again

"""Running the workflow from tests: the tiny demo configuration and a `snakemake` call that fails loudly.

Shared by tests/test_workflow.py and tests/test_report_browser.py through the session fixture `demo_run`
(tests/conftest.py), so the tiny demo trains once per test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
CONFIGS = [str(ROOT / "config" / "config.yaml"), str(ROOT / "config" / "demo.yaml")]

TINY = {
    "demo": {"n_shenzhen": 6, "n_montgomery": 4, "n_v7": 8, "n_mimic_subjects": 10},
    "augment": {"targets": {"tuberculosis": 6, "covid19": 6, "pneumonia": 6, "normal": 6}},
    "train": {"epochs": 1, "batch_size": 4, "max_train_batches": 3},
    "infer": {"batch_size": 8, "flush_every": 8},
    "classify": {"enabled": True, "input_size": 32, "epochs": 1, "batch_size": 8, "max_train_batches": 1},
}


def snakemake(workdir: Path, *args: str, configs=None, timeout=1500) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-d", str(workdir), "--configfile", *(configs or [*CONFIGS, str(workdir / "tiny.yaml")]), *args]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc

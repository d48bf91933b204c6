"""Running the workflow from tests: the one snakemake command line builder, the tiny demo configuration and a
`snakemake` call that fails loudly.

Shared by tests/test_workflow.py and tests/test_report_browser.py through the session fixture `demo_run`
(tests/conftest.py), so the tiny demo trains once per test session; tests/test_interrupted.py,
tests/test_workflow_paper.py and tests/helpers/slurm.py build their command lines with `snakemake_cmd` too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [str(ROOT / "config" / "config.yaml"), str(ROOT / "config" / "demo.yaml")]


def snakemake_cmd(workdir: Path | None, *args: str, configs=(), profile: str | None = None, root: Path = ROOT):
    """This checkout's (or `root`'s) Snakefile under the test's Python: `args` (targets, flags) first, so no
    target is read as one of the config files, then the working folder, the profile and the config files."""
    cmd = [sys.executable, "-m", "snakemake", *args, "-s", str(Path(root) / "Snakefile")]
    cmd += ["-d", str(workdir)] if workdir is not None else []
    cmd += ["--profile", str(Path(root) / "profiles" / profile)] if profile else []
    return cmd + (["--configfile", *map(str, configs)] if configs else [])


def workflow_env() -> dict:
    """The environment a workflow test runs Snakemake in: the test's Python first on PATH (rule scripts use it)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


TINY = {
    "demo": {"n_shenzhen": 6, "n_montgomery": 4, "n_v7": 8, "n_mimic_subjects": 10},
    "augment": {"targets": {"tuberculosis": 6, "covid19": 6, "pneumonia": 6, "normal": 6}},
    "train": {"epochs": 1, "batch_size": 4, "max_train_batches": 3},
    "infer": {"batch_size": 8, "flush_every": 8},
    "classify": {"enabled": True, "input_size": 32, "epochs": 1, "batch_size": 8, "max_train_batches": 1},
}


def snakemake(workdir: Path, *args: str, configs=None, timeout=1500) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(workdir, *args, configs=configs or [*CONFIGS, workdir / "tiny.yaml"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=workflow_env())
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc

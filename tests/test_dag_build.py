"""The DAG build stays light: every Slurm job builds the DAG twice (the job and its step) before its rule runs, and
every dry run builds it once, so what the Snakefile imports is paid over and over. The settings objects it reads
live in modules that load no deep-learning or plotting library."""

import re
import subprocess
import sys

from helpers.workflow import ROOT, workflow_env

HEAVY = ("torch", "torchvision", "segmentation_models_pytorch", "albumentations", "matplotlib", "sklearn")


def dag_build_imports() -> list[str]:
    """The cxlseg modules the Snakefile's rules/common.smk imports at DAG build."""
    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    return sorted(set(re.findall(r"^from (cxlseg[\w.]*) import", text, re.M)))


def test_the_dag_build_imports_settings_modules():
    modules = dag_build_imports()
    assert "cxlseg.config" in modules and len(modules) > 10, modules


def test_the_dag_build_loads_no_deep_learning_or_plotting_library():
    imports = "\n".join(f"import {m}" for m in dag_build_imports())
    path = str(ROOT / "workflow")  # as common.smk puts it first on sys.path
    probe = f"import sys\nsys.path.insert(0, {path!r})\n{imports}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=workflow_env(), cwd=ROOT, check=True
    )
    assert out.stdout.split() == [], f"the DAG build now loads {out.stdout.split()} (see python -X importtime)"

"""Helpers of tests/test_slurm.py: run the tiny demo through the Slurm profile, watch its shard jobs, hurt them.

The cluster is the one .ci/slurm-up starts (several slurmd on this machine, one fake GPU each). A "job's processes"
are the slurmstepd of that Slurm job and everything under it, found in /proc by the job id.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import yaml

from helpers import workflow

ROOT = Path(__file__).resolve().parents[2]
SLURM_STATE = Path(os.environ.get("SLURM_CI_STATE", "/run/cxlseg-slurm-ci"))
TABLES = ("metadata", "segmented", "split", "mask", "failed")
TABLE_FILES = [f"results/CXLSeg/CXLSeg-{t}.csv.gz" for t in TABLES]


def cluster_nodes() -> list[str] | None:
    """The nodes `sinfo` lists, or None when no Slurm runs here."""
    if not shutil.which("sinfo") or subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
        return None
    return subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split()


def require_cluster(nodes: list[str] | None) -> None:
    """.ci/run sets CXLSEG_REQUIRE_SLURM=1: there a missing Slurm (or a node short) fails the test module, never
    skips it silently."""
    import pytest

    if os.environ.get("CXLSEG_REQUIRE_SLURM") == "1" and len(nodes or []) < 3:
        pytest.fail(
            f"CXLSEG_REQUIRE_SLURM=1 but sinfo lists {len(nodes or [])} Slurm nodes (.ci/slurm-up starts 3)",
            pytrace=False,
        )


# CI-only settings (partition, squeue status checks without slurmdbd, no account) and job groups that run the
# short CPU steps of the tiny demo in one Slurm job each (the heavy rules, train and infer_shard, stay one job
# per training run or shard): passed on the command line, never written into the production profile.
CI_FLAGS = [
    "--slurm-status-command",
    "squeue",
    # The Slurm plugin checks again `init` seconds after a check that saw a job end and 10 s later each time after
    # one that saw none (a 40 s start by default, up to 180 s: kind to a busy slurmctld). The tiny demo's jobs last
    # 20-50 s, so from 5 s to 1 s takes a job's end to its successor's start from ~20 s to ~10 s (one squeue a try).
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--slurm-no-account",
    "--default-resources",
    "slurm_partition=ci",
    "mem_mb=2000",
    "runtime=30",
    "cpus_per_task=1",
    "--jobs",
    "6",
    "--groups",
    "demo=prep",
    "ingest=prep",
    "split_training=prep",
    "augment=prep",
    "select_images=prep",
    "evaluate=pick",
    "select_model=pick",
    "calibrate_qc=pick",
    "quality_table=report",
    "merge_tables=report",
    "review_page=report",
    "qc_report=report",
    "run_report=report",
    # another archive's short CPU steps (#34): its synthetic archive and listing, then its tables and pages
    "demo_archive=prep",
    "list_archive=prep",
    "archive_table=report",
    "archive_review_page=report",
    "archive_run_summary=report",
    "archive_run_report=report",
    "archive_qc_report=report",
]
_SHARD_LOG = re.compile(r": (\d+) images, (\d+) already done, (\d+) to compute")


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    """`extra` (targets, flags) goes first: the options that take several values come after it."""
    configs = [ROOT / "config" / "config.yaml", ROOT / "config" / "demo.yaml", workdir / "tiny.yaml"]
    return workflow.snakemake_cmd(workdir, *extra, configs=configs, profile="slurm") + CI_FLAGS


def start(workdir: Path, *extra: str, name: str = "snakemake") -> tuple[subprocess.Popen, Path]:
    """Snakemake on Slurm in the background, its output going to a file that can be read while it runs."""
    out = workdir / f"{name}.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen(
            snakemake_cmd(workdir, *extra), stdout=fh, stderr=subprocess.STDOUT, text=True, env=workflow.workflow_env()
        )
    return proc, out


def finish(proc: subprocess.Popen, out: Path, timeout: int = 900, ok: bool = True) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # let Snakemake cancel its Slurm jobs
        proc.wait(timeout=120)
        raise AssertionError(f"snakemake on Slurm timed out:\n{out.read_text()[-4000:]}") from None
    log = out.read_text()
    assert (proc.returncode == 0) == ok, log[-6000:]
    return log


def run(workdir: Path, *extra: str, timeout: int = 900, ok: bool = True, name: str = "snakemake") -> str:
    return finish(*start(workdir, *extra, name=name), timeout=timeout, ok=ok)


def job_ids(log: str, rule: str) -> dict[str, list[str]]:
    """Slurm job ids per wildcard value (the shard) of a rule, in submission order, from Snakemake's output."""
    ids: dict[str, list[str]] = {}
    for m in re.finditer(r"submitted with SLURM jobid (\d+) \(log: ([^)]*)\)", log):
        job, path = m.groups()
        if f"/rule_{rule}/" in path:
            rest = path.split(f"/rule_{rule}/", 1)[1]
            ids.setdefault(rest.rsplit("/", 1)[0] if "/" in rest else "", []).append(job)
    return ids


def group_job_ids(log: str, group: str) -> list[str]:
    """Slurm job ids of a job group (`--groups rule=group`), in submission order, from Snakemake's output."""
    found = re.finditer(r"submitted with SLURM jobid (\d+) \(log: ([^)]*)\)", log)
    return [m.group(1) for m in found if f"/group_{group}_" in m.group(2)]


def scontrol_job(job_id: str) -> dict[str, str]:
    text = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
    return dict(kv.split("=", 1) for kv in text.split() if "=" in kv)


def wait_for(predicate, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def running_job(workdir: Path, out: Path, shard: str) -> str | None:
    """The Slurm job id that runs a shard now, if any."""
    for job in reversed(job_ids(out.read_text(), "infer_shard").get(shard, [])):
        if scontrol_job(job).get("JobState") == "RUNNING":
            return job
    return None


def flushed(workdir: Path, shard: str) -> dict[str, tuple]:
    """The images a shard has flushed as done: dicom_id -> (inode, mtime) of its image and mask files. An image
    that is segmented again gets new files (atomic writes), so a changed pair means it was redone."""
    progress = workdir / "results" / "infer" / "progress" / f"{shard}.parquet"
    try:
        rows = pd.read_parquet(progress)
    except (FileNotFoundError, OSError, ValueError):
        return {}
    out_root = workdir / "results" / "CXLSeg"
    state = {}
    for row in rows[rows.status == "ok"].itertuples():
        files = [out_root / row.image_path, out_root / row.mask_path]
        if all(f.is_file() for f in files):
            state[row.dicom_id] = tuple((f.stat().st_ino, f.stat().st_mtime_ns) for f in files)
    return state


def file_state(workdir: Path, before: dict[str, tuple]) -> dict[str, tuple]:
    """The same (inode, mtime) pairs now, for the images in `before`."""
    out_root = workdir / "results" / "CXLSeg"
    manifest = pd.concat(pd.read_parquet(p) for p in (workdir / "results" / "infer" / "manifests").glob("*.parquet"))
    rows = manifest.set_index("dicom_id").loc[list(before)]
    return {
        dicom_id: tuple(
            ((out_root / p).stat().st_ino, (out_root / p).stat().st_mtime_ns) for p in (row.image_path, row.mask_path)
        )
        for dicom_id, row in rows.iterrows()
    }


def text(path: Path) -> str:
    """A file's text, or "" while it does not exist (Snakemake deletes a job's log before running it again)."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def shard_counts(workdir: Path, shard: str) -> tuple[int, int, int]:
    """(images, already done, to compute) of the last attempt of a shard, from its log."""
    text = (workdir / "results" / "logs" / "infer" / f"{shard}.log").read_text()
    return tuple(int(x) for x in _SHARD_LOG.findall(text)[-1])


def job_processes(job_id: str) -> tuple[list[int], list[int]]:
    """The slurmstepd processes of a job (its batch step and the srun step that runs the rule) and all their
    descendants: what dies when its node dies."""
    parents, stepd = {}, []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[int(proc.name)] = ppid
        if cmd.startswith(f"slurmstepd: [{job_id}."):
            stepd.append(int(proc.name))
    found, frontier = [], list(stepd)
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier and pid not in stepd]
        found += children
        frontier = children
    return stepd, found


def signal_job(job_id: str, sig: int, include_stepd: bool) -> list[int]:
    """Signal the processes of a job (and its slurmstepd's too when `include_stepd`)."""
    stepd, tasks = job_processes(job_id)
    targets = [*stepd, *tasks] if include_stepd else tasks
    assert tasks, f"no process of Slurm job {job_id} found"
    for pid in targets:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return targets


def node_state(node: str) -> str:
    return subprocess.run(["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def kill_node(node: str) -> None:
    """Lose a node: its slurmd dies (SIGKILL) and so does every job process on it."""
    pid = int(Path(f"/run/slurmd-{node}.pid").read_text())
    os.kill(pid, signal.SIGKILL)


def restart_node(node: str) -> None:
    """Boot the lost node again (ReturnToService=2 puts it back); slurm-down will stop it by its pid."""
    pidfile = Path(f"/run/slurmd-{node}.pid")
    dead = pidfile.read_text().strip()
    subprocess.run(["slurmd", "-N", node], check=True)
    pid = wait_for(lambda: (pidfile.read_text().strip() or dead) != dead and pidfile.read_text().strip(), 10, "slurmd")
    with open(SLURM_STATE / "pids", "a") as fh:
        fh.write(pid + "\n")


def copy_for_inference(trained: Path, dest: Path, **tiny: dict) -> Path:
    """A copy of a finished run with its inference undone (manifests, progress, segmented images, tables), so
    only infer_shard and merge_tables run again; `tiny` overrides sections of its tiny.yaml (resources only:
    nothing that changes an output)."""
    shutil.copytree(
        trained,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("slurm_logs", "locks", "incomplete", "*.out"),
    )
    results = dest / "results"
    for sub in ("infer/manifests", "infer/progress", "CXLSeg"):
        shutil.rmtree(results / sub, ignore_errors=True)
    for log in (results / "logs" / "infer").glob("p1*.log"):
        log.unlink()

    def merge(base: dict, over: dict) -> dict:
        return {**base, **{k: merge(base.get(k, {}), v) if isinstance(v, dict) else v for k, v in over.items()}}

    config = merge(yaml.safe_load((dest / "tiny.yaml").read_text()), tiny)
    (dest / "tiny.yaml").write_text(yaml.safe_dump(config))
    return dest


def assert_same_results(run_dir: Path, reference: Path) -> None:
    """Every shard manifest and CXLSeg table of a run equals the uninterrupted run's, row for row."""
    manifests = sorted(p.name for p in (reference / "results" / "infer" / "manifests").glob("*.parquet"))
    assert manifests and manifests == sorted(p.name for p in (run_dir / "results/infer/manifests").glob("*.parquet"))
    for name in manifests:
        pd.testing.assert_frame_equal(
            pd.read_parquet(run_dir / "results" / "infer" / "manifests" / name),
            pd.read_parquet(reference / "results" / "infer" / "manifests" / name),
            obj=name,
        )
    for table in TABLE_FILES:
        pd.testing.assert_frame_equal(pd.read_csv(run_dir / table), pd.read_csv(reference / table), obj=table)

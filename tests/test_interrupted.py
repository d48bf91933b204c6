"""Interrupted reruns on a one-shard demo (issue 28): the Snakemake controller's process group is killed with
SIGKILL mid-shard, the directory unlocked, and the same command run again. Afterwards every manifest, CXLSeg
table and written image equals an uninterrupted run's, images flushed before the kill are not recomputed when the
settings are unchanged, and `check-run` agrees. Training runs once (the `finished` fixture); each test copies it.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from cxlseg.inference.manifest import partial_path
from cxlseg.tables.provenance import check_run
from helpers.workflow import snakemake_cmd, workflow_env

ROOT = Path(__file__).resolve().parents[1]
SHARD = "p14"  # the demo's largest prefix with these settings: 17 frontal images
ONE_SHARD = {
    "demo": {"n_shenzhen": 6, "n_montgomery": 4, "n_v7": 8, "n_mimic_subjects": 24},
    "augment": {"targets": {"tuberculosis": 6, "covid19": 6, "pneumonia": 6, "normal": 6}},
    "models": {"architectures": ["sa_unet"]},
    "train": {"epochs": 1, "batch_size": 4, "max_train_batches": 3},
    "infer": {"batch_size": 1, "flush_every": 2, "ensemble": 1, "qc": {"calibration_degraded": 2}},
    "view_check": {"enabled": False},
    "classify": {"enabled": False},
    "mimic": {"shards": [SHARD]},
}
THRESHOLD_B = {"infer": {"threshold": 0.3}}
KILL_AT_ROWS = 4
TABLES = ["metadata", "segmented", "split", "mask", "failed"]


def _command(workdir: Path, args, root: Path = ROOT) -> list[str]:
    configs = [root / "config" / "config.yaml", root / "config" / "demo.yaml", workdir / "tiny.yaml"]
    configs += [workdir / "change.yaml"] if (workdir / "change.yaml").is_file() else []
    return snakemake_cmd(workdir, *args, "--cores", "2", configs=configs, profile="local", root=root)


def snakemake(workdir: Path, *args: str, root: Path = ROOT) -> str:
    proc = subprocess.run(
        _command(workdir, args, root), capture_output=True, text=True, timeout=1500, env=workflow_env()
    )
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc.stdout + proc.stderr


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of a process group that are not zombies (Linux /proc)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def progress(workdir: Path) -> Path:
    """The shard's flushed progress (kept after the shard completes, so a forced rerun of it computes nothing)."""
    return partial_path(workdir / "results" / "infer" / "manifests" / f"{SHARD}.parquet")


def kill_mid_shard(workdir: Path, *args: str, root: Path = ROOT) -> int:
    """Run snakemake in its own process group, SIGKILL the group once the shard's partial manifest holds
    KILL_AT_ROWS rows, wait until no process of the group is left, unlock; return the partial's rows."""
    partial = progress(workdir)
    stale = partial.stat().st_mtime_ns if partial.exists() else None  # a partial of an earlier killed run
    log = open(workdir / "killed.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        _command(workdir, args, root), stdout=log, stderr=subprocess.STDOUT, env=workflow_env(), start_new_session=True
    )
    deadline = time.monotonic() + 1200
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if partial.stat().st_mtime_ns != stale and pq.read_metadata(partial).num_rows >= KILL_AT_ROWS:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "snakemake ended before the shard flushed:\n" + (workdir / "killed.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    for _ in range(200):
        if not _alive_in_group(proc.pid):
            break
        time.sleep(0.05)
    assert not _alive_in_group(proc.pid), "a job outlived the controller's process group"
    snakemake(workdir, "--unlock", root=root)
    assert not (workdir / "results" / "infer" / "manifests" / f"{SHARD}.parquet").exists()
    return pq.read_metadata(partial).num_rows


def snapshot(workdir: Path) -> dict:
    """What a run leaves: manifests (as frames), the CXLSeg tables (decompressed) and every written image."""
    results = workdir / "results"
    out = results / "CXLSeg"
    return {
        "manifests": {p.name: pd.read_parquet(p) for p in sorted((results / "infer" / "manifests").glob("*.parquet"))},
        "tables": {t: gzip.decompress((out / f"CXLSeg-{t}.csv.gz").read_bytes()) for t in TABLES},
        "files": {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "files").rglob("*.*"))},
    }


def assert_same_run(workdir: Path, reference: dict, *, ignore_columns=()) -> None:
    got = snapshot(workdir)
    assert list(got["manifests"]) == list(reference["manifests"]) == [f"{SHARD}.parquet"]
    for name, frame in reference["manifests"].items():
        pd.testing.assert_frame_equal(
            got["manifests"][name].drop(columns=list(ignore_columns)), frame.drop(columns=list(ignore_columns))
        )
    for table in TABLES:
        assert got["tables"][table] == reference["tables"][table], table
    assert got["files"].keys() == reference["files"].keys()
    assert [k for k in got["files"] if got["files"][k] != reference["files"][k]] == []
    check = check_run(workdir / "results")
    assert check.ok, check.message()


def resumed(workdir: Path) -> tuple[int, int]:
    """(already done, to compute) from the shard log's last run."""
    text = (workdir / "results" / "logs" / "infer" / f"{SHARD}.log").read_text()
    found = re.findall(r"(\d+) images, (\d+) already done, (\d+) to compute", text)
    assert found, text[-2000:]
    total, done, todo = map(int, found[-1])
    assert done + todo == total
    return done, todo


def flushed_files(workdir: Path) -> dict[str, int]:
    """mtime of every image and mask the partial manifest records as done."""
    out = workdir / "results" / "CXLSeg"
    partial = pd.read_parquet(progress(workdir))
    ok = partial[partial.status == "ok"]
    return {p: (out / p).stat().st_mtime_ns for p in [*ok.image_path, *ok.mask_path]}


def assert_not_recomputed(workdir: Path, flushed_rows: int, mtimes: dict[str, int]) -> None:
    assert resumed(workdir)[0] == flushed_rows
    out = workdir / "results" / "CXLSeg"
    assert {p: (out / p).stat().st_mtime_ns for p in mtimes} == mtimes


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """One uninterrupted one-shard demo run (trained once for every test here) and its snapshot."""
    workdir = tmp_path_factory.mktemp("finished")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(ONE_SHARD))
    snakemake(workdir)
    assert pq.read_metadata(workdir / "results" / "infer" / "lists" / f"{SHARD}.parquet").num_rows >= 12
    assert check_run(workdir / "results").ok
    assert "Nothing to be done" in snakemake(workdir, "-n")
    return workdir, snapshot(workdir)


@pytest.fixture(scope="session")
def finished_b(finished, tmp_path_factory):
    """The uninterrupted run with infer.threshold B (from the finished run: no retraining)."""
    workdir = copy_run(finished[0], tmp_path_factory.mktemp("finished-b") / "run")
    (workdir / "change.yaml").write_text(yaml.safe_dump(THRESHOLD_B))
    snakemake(workdir)
    reference = snapshot(workdir)
    assert reference["files"] != finished[1]["files"]  # B changes the masks
    return workdir, reference


@pytest.fixture(scope="session")
def killed_forcerun(finished, tmp_path_factory):
    """The finished run after `--forcerun infer_shard` was killed mid-shard and `--unlock`: the manifest gone,
    the tables and the report left from the finished run, a partial manifest of the new run. The finished shard's
    kept progress is removed first: with it the forced rerun would compute nothing (tested below)."""
    workdir = copy_run(finished[0], tmp_path_factory.mktemp("killed") / "run")
    progress(workdir).unlink()
    rows = kill_mid_shard(workdir, "--forcerun", "infer_shard")
    return workdir, rows


@pytest.mark.integration
def test_missing_manifest_is_rebuilt_with_everything_downstream(finished, tmp_path):
    workdir = copy_run(finished[0], tmp_path / "run")
    (workdir / "results" / "infer" / "manifests" / f"{SHARD}.parquet").unlink()
    downstream = {"merge_tables", "quality_table", "qc_report", "review_page", "run_report"}
    assert planned(snakemake(workdir, "-n")) == {"infer_shard": 1, **dict.fromkeys(downstream, 1)}
    (workdir / "results" / "models" / "selected.json").unlink()
    jobs = planned(snakemake(workdir, "-n"))
    assert {"select_model", "calibrate_qc", "infer_shard", *downstream} <= set(jobs)
    assert "train" not in jobs


def planned(text: str) -> dict[str, int]:
    """The rule -> count table of a dry run, without the target rule."""
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    jobs = {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.M)}
    jobs.pop("all", None)
    return jobs


@pytest.mark.integration
def test_forcerun_killed_then_plain_command_finishes_the_shard(killed_forcerun, finished, tmp_path):
    workdir = copy_run(killed_forcerun[0], tmp_path / "run")
    mtimes = flushed_files(workdir)
    check = check_run(workdir / "results")
    assert not check.ok and any(f"{SHARD}.parquet is missing" in p for p in check.problems)
    snakemake(workdir)
    assert_not_recomputed(workdir, killed_forcerun[1], mtimes)
    assert_same_run(workdir, finished[1])


@pytest.mark.integration
def test_forcerun_of_a_finished_shard_computes_nothing(finished, tmp_path):
    workdir = copy_run(finished[0], tmp_path / "run")
    snakemake(workdir, "--forcerun", "infer_shard")
    done, todo = resumed(workdir)
    assert todo == 0 and done == len(finished[1]["manifests"][f"{SHARD}.parquet"])
    assert_same_run(workdir, finished[1])


@pytest.mark.integration
def test_forcerun_killed_then_forcerun_again_resumes(killed_forcerun, finished, tmp_path):
    workdir = copy_run(killed_forcerun[0], tmp_path / "run")
    mtimes = flushed_files(workdir)
    snakemake(workdir, "--forcerun", "infer_shard")
    assert_not_recomputed(workdir, killed_forcerun[1], mtimes)
    assert_same_run(workdir, finished[1])


@pytest.mark.integration
def test_changed_threshold_after_a_kill_discards_the_stale_partial_then_resumes_its_own(
    killed_forcerun, finished_b, tmp_path
):
    """Two rows in one run (one retraining less): killed under threshold A, run with B (the A partial is
    discarded: "0 already done"), that B run killed mid-shard too, then the plain command resumes B's rows."""
    workdir = copy_run(killed_forcerun[0], tmp_path / "run")
    (workdir / "change.yaml").write_text(yaml.safe_dump(THRESHOLD_B))
    rows = kill_mid_shard(workdir)
    assert resumed(workdir) == (0, len(finished_b[1]["manifests"][f"{SHARD}.parquet"]))
    mtimes = flushed_files(workdir)
    snakemake(workdir)
    assert_not_recomputed(workdir, rows, mtimes)
    assert_same_run(workdir, finished_b[1])


@pytest.mark.integration
def test_changed_rule_script_killed_then_plain_command_finishes(finished, tmp_path):
    """A new release (here: an edited workflow/scripts/infer_shard.py in a copy of the repository) reruns the
    shards; killed mid-shard, the plain command finishes the shard with the new code, resuming its own rows."""
    root = tmp_path / "repo"
    skip = shutil.ignore_patterns(".git", ".venv", ".snakemake", "results", "resources", "__pycache__", "tests")
    shutil.copytree(ROOT, root, ignore=skip)
    script = root / "workflow" / "scripts" / "infer_shard.py"
    script.write_text(script.read_text() + "\n# release 2: same outputs, new code\n")
    workdir = copy_run(finished[0], tmp_path / "run")
    rows = kill_mid_shard(workdir, root=root)
    mtimes = flushed_files(workdir)
    snakemake(workdir, root=root)
    assert_not_recomputed(workdir, rows, mtimes)
    assert_same_run(workdir, finished[1], ignore_columns=["settings_id"])  # the settings id holds the code
    ids = set(snapshot(workdir)["manifests"][f"{SHARD}.parquet"].settings_id)
    assert len(ids) == 1 and ids != set(finished[1]["manifests"][f"{SHARD}.parquet"].settings_id)
    assert "Nothing to be done" in snakemake(workdir, "-n", root=root)

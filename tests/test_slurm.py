"""The demo through `snakemake --profile profiles/slurm` on a real multi-node Slurm (started by .ci/slurm-up), and
the faults of a bad night on a cluster: a time limit, a lost node, a cancelled job, a killed controller, a job
over its memory. After each the run completes, every manifest and CXLSeg table equals the uninterrupted run's, and
no image flushed before the fault is segmented again.

The whole tiny demo runs once (session fixture, the uninterrupted reference); each fault test copies it with its
inference undone and runs only the shards and the tables again. Shards are kept busy long enough to hurt mid-way by
batch size 1 and a flush every 2 images, not by more data.
"""

import shutil
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from helpers import slurm as sf

CLUSTER = sf.cluster_nodes()
SLURM_UP, NODES = CLUSTER is not None, CLUSTER or []

pytestmark = pytest.mark.skipif(not SLURM_UP, reason="no running Slurm here (.ci/slurm-up starts one)")
sf.require_cluster(NODES)

# demo seed 3 puts the archive's subjects in three prefixes: three shards, one per node
SHARDS = ["p14", "p15", "p17"]
TINY = {
    "demo": {"seed": 3, "n_shenzhen": 6, "n_montgomery": 4, "n_v7": 8, "n_mimic_subjects": 30},
    "augment": {"targets": {"tuberculosis": 6, "covid19": 6, "pneumonia": 6, "normal": 6}},
    "train": {"epochs": 1, "batch_size": 4, "max_train_batches": 2},
    "models": {"architectures": ["unet", "sa_unet"]},
    "infer": {"batch_size": 1, "flush_every": 2, "qc": {"calibration_degraded": 4}},
    "mimic": {"shards": SHARDS},
    "view_check": {"enabled": False},
    "classify": {"enabled": False},
    # GPU-style requests: each CI node advertises one fake GPU (gres.conf File=/dev/null).
    "resources": {"train": {"gpu": 1, "mem_mb": 3000, "cpus": 1}, "infer": {"gpu": 1, "mem_mb": 3000, "cpus": 1}},
}


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The tiny demo run once, uninterrupted, through the Slurm profile: (its folder, Snakemake's output)."""
    workdir = tmp_path_factory.mktemp("slurm-reference")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    log = sf.run(workdir, name="reference")
    demo = yaml.safe_load((workdir / "resources" / "demo" / "demo.json").read_text())
    assert sorted(demo["prefixes"]) == SHARDS, "the demo seed no longer spreads the archive over these shards"
    return workdir, log


def infer_again(reference, tmp_path, **resources):
    return sf.copy_for_inference(reference[0], tmp_path / "run", resources=resources)


def test_demo_runs_through_the_slurm_profile(reference):
    workdir, log = reference
    tables = workdir / "results" / "CXLSeg"
    assert len(pd.read_csv(tables / "CXLSeg-segmented.csv.gz")) > 0
    assert (tables / "CXLSeg-mask.csv.gz").is_file() and (workdir / "results" / "report" / "summary.html").is_file()

    train_jobs = [j for ids in sf.job_ids(log, "train").values() for j in ids]
    report_jobs = sf.group_job_ids(log, "report")  # merge_tables, the pages and the report: CPU rules
    assert len(train_jobs) == 2 and len(report_jobs) == 1, log[-3000:]
    gpu_job = subprocess.run(["scontrol", "show", "job", train_jobs[0]], capture_output=True, text=True).stdout
    cpu_job = subprocess.run(["scontrol", "show", "job", report_jobs[0]], capture_output=True, text=True).stdout
    assert "gpu" in gpu_job, f"train job did not request a GPU:\n{gpu_job}"
    assert "gpu" not in cpu_job.replace("GresTypes", ""), f"CPU rules asked for a GPU:\n{cpu_job}"

    again = sf.run(workdir, "-n", name="dry")
    assert "Nothing to be done" in again


@pytest.mark.skipif(len(NODES) < 3, reason="needs the three nodes of .ci/slurm-up")
def test_shards_spread_over_the_nodes(reference):
    """Each shard job asks for a GPU and every node has one: the shards run on different nodes and still write
    one dataset, so nothing depends on a node-local path beyond the shared results folder."""
    workdir, log = reference
    shard_jobs = sf.job_ids(log, "infer_shard")
    assert sorted(shard_jobs) == SHARDS
    nodes = {shard: sf.scontrol_job(ids[-1])["NodeList"] for shard, ids in shard_jobs.items()}
    print("shard -> node:", nodes)
    assert len(set(nodes.values())) > 1, nodes
    assert set(nodes.values()) <= set(NODES)


def _resumed_without_redoing(run_dir, shard, before):
    """The last attempt of a shard resumed at least what was flushed before the fault, and none of those images
    was segmented again (their files are the very ones written before the fault)."""
    images, done, computed = sf.shard_counts(run_dir, shard)
    assert before, f"{shard}: nothing was flushed before the fault"
    assert done >= len(before) and done + computed == images and computed < images, (shard, images, done, before)
    assert sf.file_state(run_dir, before) == before, f"{shard}: an image flushed before the fault was redone"
    return images, done, computed


@pytest.mark.skipif(len(NODES) < 3, reason="needs the three nodes of .ci/slurm-up")
def test_a_bad_night_time_limit_lost_node_and_scancel(reference, tmp_path):
    """One run, three shards, three faults once each shard has flushed: p14 hangs until Slurm's 1-minute time limit
    kills it (TIMEOUT, retried with runtime x retry_growth), p15's node dies (slurmd and the job's processes killed;
    Slurm requeues the job), p17 is scancelled (retried). The run completes with the uninterrupted results."""
    run_dir = infer_again(reference, tmp_path, infer={"runtime": 1}, retry_growth=2)
    proc, out = sf.start(run_dir, *sf.TABLE_FILES)
    faults, before, node = {}, {}, None
    try:
        deadline = time.monotonic() + 300
        while len(faults) < 3 and time.monotonic() < deadline and proc.poll() is None:
            for shard in SHARDS:
                if shard in faults or len(sf.flushed(run_dir, shard)) < 2:
                    continue
                job = sf.running_job(run_dir, out, shard)
                if job is None:
                    continue
                before[shard] = sf.flushed(run_dir, shard)
                if shard == "p14":  # hung mid-shard (say, a stalled file system) until the time limit
                    sf.signal_job(job, signal.SIGSTOP, include_stepd=False)
                elif shard == "p15":
                    node = sf.scontrol_job(job)["NodeList"]
                    sf.kill_node(node)
                    sf.signal_job(job, signal.SIGKILL, include_stepd=True)
                else:
                    subprocess.run(["scancel", job], check=True)
                faults[shard] = job
                before[shard] = sf.flushed(run_dir, shard)  # what the fault left
            time.sleep(0.25)
        assert len(faults) == 3, f"not every shard was hurt mid-way: {faults}\n{out.read_text()[-3000:]}"
        sf.wait_for(lambda: sf.node_state(node).startswith("down"), 60, f"Slurm to mark {node} down")
        sf.restart_node(node)
        log = sf.finish(proc, out)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)
        if node and not sf.node_state(node).startswith(("idle", "mix", "alloc")):
            subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)

    states = {shard: sf.scontrol_job(job) for shard, job in faults.items()}
    assert states["p14"]["JobState"] == "TIMEOUT", states["p14"]
    assert states["p17"]["JobState"] == "CANCELLED", states["p17"]
    assert int(states["p15"].get("Restarts", 0)) >= 1 or len(sf.job_ids(log, "infer_shard")["p15"]) > 1
    retried = sf.job_ids(log, "infer_shard")["p14"][-1]
    assert sf.scontrol_job(retried)["TimeLimit"] == "00:02:00"  # 1 min x retry_growth 2 on the second attempt
    for shard in SHARDS:
        print(shard, "images, already done, computed:", _resumed_without_redoing(run_dir, shard, before[shard]))
    sf.assert_same_results(run_dir, reference[0])


def test_a_killed_controller_leaves_its_jobs_running_and_a_restart_redoes_nothing(reference, tmp_path):
    """SIGKILL the Snakemake controller while its shard jobs run. The jobs are Slurm's, not the controller's: they
    keep running, write their shards and, through the shared .snakemake folder, mark them complete themselves, so
    the same command (after --unlock) does not run them again. A job still running when the controller is back
    (one is held with SIGSTOP until then) is resubmitted: the new job waits for the old one's shard lock, then
    finds every image done and computes none."""
    run_dir = infer_again(reference, tmp_path)
    proc, out = sf.start(run_dir, *sf.TABLE_FILES, name="killed")
    try:
        sf.wait_for(lambda: any(len(sf.flushed(run_dir, s)) >= 2 for s in SHARDS), 300, "a shard to flush")
        jobs = {s: sf.running_job(run_dir, out, s) for s in SHARDS}
        held = next(s for s in SHARDS if jobs[s] and len(sf.flushed(run_dir, s)) >= 2)
        sf.signal_job(jobs[held], signal.SIGSTOP, include_stepd=False)
        proc.kill()  # kill -9 of the controller, mid-shard
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    old = {s: j for s, j in jobs.items() if j}
    at_kill = {s: len(sf.flushed(run_dir, s)) for s in old}

    def carried_on(shard: str) -> bool:
        """A job the controller's death did not end: it flushed more images since, or finished its shard."""
        return (
            len(sf.flushed(run_dir, shard)) > at_kill[shard] or sf.scontrol_job(old[shard])["JobState"] == "COMPLETED"
        )

    others = [s for s in old if s != held]
    sf.wait_for(lambda: all(carried_on(s) for s in others), 120, f"jobs {others} to go on without their controller")
    assert sf.scontrol_job(old[held])["JobState"] == "RUNNING"  # stopped, not ended: Slurm still holds it
    assert list((run_dir / ".snakemake" / "locks").iterdir()), "the dead controller left no lock"
    before = {s: sf.flushed(run_dir, s) for s in SHARDS}

    sf.run(run_dir, "--unlock", name="unlock")
    proc, out = sf.start(run_dir, *sf.TABLE_FILES, name="restart")
    shard_log = run_dir / "results" / "logs" / "infer" / f"{held}.log"
    try:
        try:  # the restarted controller resubmits the shard still running; its new job waits for the old one's lock
            sf.wait_for(lambda: "waiting for it to finish" in sf.text(shard_log), 300, "the new job to wait")
        finally:
            sf.signal_job(old[held], signal.SIGCONT, include_stepd=False)
        log = sf.finish(proc, out)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(120)

    resubmitted = sf.job_ids(log, "infer_shard")
    assert held in resubmitted, log[-3000:]
    for job in old.values():
        assert sf.scontrol_job(job)["JobState"] == "COMPLETED", sf.scontrol_job(job)
    for shard in SHARDS:
        images, done, computed = sf.shard_counts(run_dir, shard)
        print(
            shard,
            "resubmitted" if shard in resubmitted else "kept",
            "(images, already done, computed):",
            images,
            done,
            computed,
        )
        manifest = pd.read_parquet(run_dir / "results" / "infer" / "manifests" / f"{shard}.parquet")
        ok = int((manifest.status == "ok").sum())
        if shard in resubmitted:  # the old job finished it while the new one waited: only failed images tried again
            assert done == ok and computed == images - ok
        else:  # the old job's own run, the only one
            assert done == 0 and computed == images
        assert sf.file_state(run_dir, before[shard]) == before[shard]
    sf.assert_same_results(run_dir, reference[0])


def test_out_of_memory_names_the_key_then_a_retry_gets_more_memory(reference, tmp_path):
    """A shard job over its memory request is killed by Slurm. With no retries left the run stops and says which
    rule and which config key to raise; with the profile's retries the next attempt asks for mem_mb x retry_growth
    and completes."""
    run_dir = infer_again(reference, tmp_path, infer={"mem_mb": 500}, retry_growth=4)
    one_shard = "results/infer/manifests/p14.parquet"
    failed = sf.run(run_dir, one_shard, "--retries", "0", ok=False, name="oom")
    assert "cxlseg: rule infer_shard: Slurm killed it for exceeding its memory request" in failed, failed[-3000:]
    assert "raise resources.infer.mem_mb (now 500)" in failed

    log = sf.run(run_dir, *sf.TABLE_FILES, name="retried")
    for shard, ids in sf.job_ids(log, "infer_shard").items():
        memory = [sf.scontrol_job(j)["MinMemoryNode"] for j in ids]
        states = [sf.scontrol_job(j)["JobState"] for j in ids]
        print(shard, "attempts:", list(zip(ids, states, memory)))
        assert states[-1] == "COMPLETED" and len(ids) >= 2 and states[0] != "COMPLETED", (shard, states, memory)
        assert memory[:2] == ["500M", "2000M"]  # 500 MB x retry_growth 4 on the second attempt
    sf.assert_same_results(run_dir, reference[0])


@pytest.mark.skipif(len(NODES) < 3, reason="needs the three nodes of .ci/slurm-up")
def test_another_archive_runs_through_the_slurm_profile_on_the_trained_models(reference, tmp_path):
    """#34: a hospital's DICOM folder (archive.kind folder) on the reference run's models: its shards are GPU jobs
    spread over the nodes, its tables and pages one CPU job, nothing trained again, and a second run does nothing."""
    workdir = tmp_path / "run"
    shutil.copytree(reference[0], workdir, symlinks=True, ignore=shutil.ignore_patterns("slurm_logs", "*.out"))
    tiny = yaml.safe_load((workdir / "tiny.yaml").read_text())
    (workdir / "tiny.yaml").write_text(yaml.safe_dump({**tiny, "archive": {"kind": "folder", "shards": 3}}))
    log = sf.run(workdir, name="folder")
    assert not sf.job_ids(log, "train") and not sf.job_ids(log, "infer_shard"), log[-3000:]
    shard_jobs = sf.job_ids(log, "infer_archive_shard")
    assert len(shard_jobs) == 3, log[-3000:]
    nodes = {shard: sf.scontrol_job(ids[-1])["NodeList"] for shard, ids in shard_jobs.items()}
    assert len(set(nodes.values())) > 1, nodes
    for ids in shard_jobs.values():
        assert "gpu" in _job_text(ids[-1]), f"an archive shard did not request a GPU:\n{_job_text(ids[-1])}"
    report_jobs = sf.group_job_ids(log, "report")
    assert len(report_jobs) == 1 and "gpu" not in _job_text(report_jobs[0]).replace("GresTypes", "")
    out = workdir / "results" / "archives" / "folder"
    table = pd.read_csv(out / "folder-masks.csv.gz", dtype=str, keep_default_na=False)
    assert (table.status == "ok").sum() >= len(table) - 1 and len(table) > 0
    assert (out / "report" / "summary.html").is_file() and (out / "qc" / "qc_report.html").is_file()
    assert (out / "review" / "index.html").is_file()
    assert "Nothing to be done" in sf.run(workdir, "-n", name="folder-dry")


def _job_text(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout


def test_slurm_tests_leave_the_cluster_whole():
    """Runs last: every node is back in service for whoever uses the cluster next."""
    states = {n: sf.node_state(n) for n in NODES}
    assert all(s.startswith(("idle", "mix", "alloc")) for s in states.values()), states

"""cxlseg.cluster: the advice printed when a run failed on the cluster (the Snakefile's onerror)."""

from cxlseg.cluster import Failure, advice, failure_advice, failures

CONFIG = {"resources": {"infer": {"mem_mb": 500, "runtime": 1}, "retry_growth": 4}}


def _error(rule, status, logs="results/logs/x.log"):
    return (
        f"[Thu Dec  3 08:02:46 2026]\nError in rule {rule}:\n"
        f"    message: SLURM-job '42' failed, SLURM status is: '{status}'. Detailed failure reason unavailable.\n"
        f"    jobid: 7\n    log: {logs} (check log file(s) for error details)\n\n"
    )


def test_failures_read_the_status_and_the_slurm_log(tmp_path):
    slurm_log = tmp_path / ".snakemake" / "slurm_logs" / "rule_infer_shard" / "p14" / "42.log"
    slurm_log.parent.mkdir(parents=True)
    slurm_log.write_text("slurmstepd-ci1: error: StepId=42.batch exceeded memory limit (9 > 5), being killed\n")
    text = (
        _error("infer_shard", "FAILED", f"results/logs/infer/p14.log, {slurm_log.relative_to(tmp_path)}")
        + _error("infer_shard", "FAILED", f"results/logs/infer/p14.log, {slurm_log.relative_to(tmp_path)}")
        + _error("train", "TIMEOUT")
        + _error("merge_tables", "CANCELLED")
        + _error("evaluate", "NODE_FAIL")
        + _error("select_model", "FAILED")
    )
    assert failures(text, tmp_path) == [  # one line per rule and cause
        Failure("infer_shard", "memory", "FAILED"),
        Failure("train", "time", "TIMEOUT"),
        Failure("merge_tables", "cancelled", "CANCELLED"),
        Failure("evaluate", "node", "NODE_FAIL"),
        Failure("select_model", "other", "FAILED"),
    ]
    assert failures(_error("infer_shard", "OUT_OF_MEMORY")) == [Failure("infer_shard", "memory", "OUT_OF_MEMORY")]
    assert failures("Building DAG of jobs...\nNothing to be done.\n") == []


def test_advice_names_the_rule_and_the_key_to_raise(tmp_path):
    memory = advice(Failure("infer_shard", "memory", "OUT_OF_MEMORY"), CONFIG)
    assert memory.startswith("rule infer_shard: Slurm killed it for exceeding its memory request")
    assert "raise resources.infer.mem_mb (now 500) or resources.retry_growth (now 4)" in memory
    time = advice(Failure("train", "time", "TIMEOUT"), CONFIG)
    assert "raise resources.train.runtime (now the default)" in time
    fixed = advice(Failure("demo", "memory", "FAILED"), CONFIG)  # a rule with no resources section
    assert "--set-resources demo:mem_mb=<more>" in fixed
    assert "run the same command again" in advice(Failure("merge_tables", "cancelled", "CANCELLED"), CONFIG)

    log = tmp_path / "snakemake.log"
    log.write_text(_error("infer_shard", "TIMEOUT"))
    assert failure_advice([str(log), str(tmp_path / "missing.log")], CONFIG) == [
        advice(Failure("infer_shard", "time", "TIMEOUT"), CONFIG)
    ]

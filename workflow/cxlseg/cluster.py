"""What to do after a run failed on the cluster, read from Snakemake's log and the Slurm logs it names.

When Slurm kills a job for its time or memory limit on every attempt, Snakemake only says "SLURM status is
FAILED" or "TIMEOUT"; the user needs the rule and the config key that raises the limit. The Snakefile's
`onerror` prints these lines (README, "When a job fails on the cluster").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cxlseg.config import load_schema

# rule -> the section under `resources` whose mem_mb/runtime it requests (workflow/rules/*.smk); a section the
# schema does not have is named as a --set-resources override instead
RESOURCE_SECTION = {
    "train": "train",
    "infer_shard": "infer",
    "calibrate_qc": "infer",
    "classify": "classify",
    "evaluate": "evaluate",
    "augment": "augment",
    "select_images": "select_images",
    "merge_tables": "tables",
    "view_samples": "view_check",
    "view_phantoms": "view_check",
    "train_view_check": "view_check",
}
MEMORY_SIGNS = ("exceeded memory limit", "oom-kill", "oom_kill", "out_of_memory", "out of memory")
TIME_SIGNS = ("due to time limit",)
_STATUS = re.compile(r"SLURM status is: '(\w+)'")
_LOG = re.compile(r"(\S+\.log)\b")


@dataclass(frozen=True)
class Failure:
    rule: str
    cause: str  # memory, time, cancelled, node or other
    status: str


def _cause(status: str, text: str) -> str:
    text = text.lower()
    if status == "OUT_OF_MEMORY" or any(s in text for s in MEMORY_SIGNS):
        return "memory"
    if status in ("TIMEOUT", "DEADLINE") or any(s in text for s in TIME_SIGNS):
        return "time"
    if status in ("CANCELLED", "PREEMPTED"):
        return "cancelled"
    if status in ("NODE_FAIL", "BOOT_FAIL"):
        return "node"
    return "other"


def failures(log_text: str, root: Path | str = ".") -> list[Failure]:
    """Each failed job of a Snakemake log, with why Slurm ended it (from its status and its Slurm log)."""
    found = []
    for block in re.split(r"^(?=Error in rule )", log_text, flags=re.M)[1:]:
        lines = block.splitlines()
        rule = lines[0].removeprefix("Error in rule ").rstrip(":").strip()
        body = [ln for ln in lines[1:] if ln.startswith((" ", "\t"))]
        text = "\n".join(body)
        status = (_STATUS.findall(text) or [""])[-1]
        for log in _LOG.findall(text):
            path = Path(root) / log
            if "slurm_logs" in log and path.is_file():
                text += "\n" + path.read_text(errors="replace")[-20000:]
        found.append(Failure(rule, _cause(status, text), status))
    return list(dict.fromkeys(found))


def advice(failure: Failure, config: dict) -> str:
    """One line: what happened to the rule's jobs and which key to raise before running the same command again."""
    rule, resources = failure.rule, config.get("resources", {})
    section = RESOURCE_SECTION.get(failure.rule)
    if section not in load_schema()["properties"]["resources"]["properties"]:
        section = None
    growth = resources.get("retry_growth", 1)
    if failure.cause in ("memory", "time"):
        key, what = ("mem_mb", "its memory request") if failure.cause == "memory" else ("runtime", "its time limit")
        if section:
            now = resources.get(section, {}).get(key, "the default")
            raise_it = f"raise resources.{section}.{key} (now {now}) or resources.retry_growth (now {growth})"
        else:
            raise_it = f"raise it with --set-resources {rule}:{key}=<more> or resources.retry_growth (now {growth})"
        return (
            f"rule {rule}: Slurm killed it for exceeding {what} on its last attempt ({failure.status or 'FAILED'}); "
            f"{raise_it} or allow more --retries, then run the same command again (finished work is kept)."
        )
    if failure.cause == "cancelled":
        return f"rule {rule}: its job was cancelled or preempted; run the same command again (finished work is kept)."
    if failure.cause == "node":
        return f"rule {rule}: its node failed; run the same command again (finished work is kept)."
    return f"rule {rule}: the job failed ({failure.status or 'see its log'}); read its log before running it again."


def failure_advice(log_paths, config: dict, root: Path | str = ".") -> list[str]:
    """Advice lines for every failed job in Snakemake's log file(s)."""
    text = "\n".join(Path(p).read_text(errors="replace") for p in log_paths if p and Path(p).is_file())
    return [advice(f, config) for f in failures(text, root)]

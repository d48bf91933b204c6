"""The 243k rehearsal (issue #37), a command, not a timed test: N full-size films in MIMIC-CXR-JPG's layout through
the real DAG (select_images -> infer_shard per p10..p19 -> merge_tables -> quality_table -> review_page, qc_report,
run_report) on the Slurm of .ci/slurm-up through profiles/slurm, then `snakemake --report` and `cxlseg check-run`.

    python tests/bench/bench_rehearsal.py --n 2000 --json docs/bench/rehearsal-2000.json
    python tests/bench/bench_rehearsal.py --project docs/bench/rehearsal-*.json      # the README's 243k table

The network is replaced by a stand-in of known cost: the tiny models a demo-mode prep run trains once (config/demo.yaml
+ TINY below: 1 epoch, unet + sa_unet, 8 base channels, 128 px input; one model, no flip pass) in <work>/prep. Each N copies that run (its
.snakemake included, so training is not redone) and points the demo's MIMIC folder at an archive of N films, so
every stage after training reads the full-size archive. The stand-in's forward cost per image is timed in the same
run (same Predictor, same batch size, on these cores); --project swaps it for the production network's cost from
docs/bench/throughput-*.json.

The archive: a pool of a few distinct phantom films (3056x2544 or 2544x3056, JPEG near 1.4 MB like MIMIC's), each
hard-linked many times, so disk stays bounded while every image is still decoded; two frontal films a study, three
studies a subject, subjects spread evenly over p10..p19, one report per study, metadata, CheXpert labels and split
under MIMIC's own names.

Sources: job start/end from `scontrol show job` polled during the run (the CI cluster has no accounting, so no
sacct); peak memory per job from each rule's Snakemake `benchmark:` TSV (max_rss); the controller's peak RSS by
polling the snakemake process (psutil).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import psutil
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import record  # noqa: E402
from bench_throughput import MIMIC_BYTES, encode_near  # noqa: E402
from cxlseg import io  # noqa: E402
from cxlseg.config import load_config, section_defaults  # noqa: E402
from cxlseg.mimic import CHEXPERT_LABELS, image_relpath, report_relpath  # noqa: E402
from cxlseg.phantoms.mimic_archive import METADATA_COLUMNS, SPLIT_COLUMNS, VIEW_CODES  # noqa: E402
from cxlseg.phantoms.render import render_phantom  # noqa: E402
from helpers import slurm as sf  # noqa: E402
from helpers import workflow  # noqa: E402

FULL = 243_324  # frontal films with a report in MIMIC-CXR-JPG 2.0.0 (the CXLSeg tables' rows)
PREFIXES = [f"p{p}" for p in range(10, 20)]
SHAPES = ((3056, 2544), (2544, 3056))
IMAGES_PER_STUDY, STUDIES_PER_SUBJECT = 2, 3
# The tiniest training that gives the DAG real checkpoints; every stage after training runs at its configured size.
TINY = {
    "demo": {"seed": 3, "n_shenzhen": 6, "n_montgomery": 4, "n_v7": 8, "n_mimic_subjects": 10},
    "augment": {"targets": {"tuberculosis": 6, "covid19": 6, "pneumonia": 6, "normal": 6}},
    "train": {"epochs": 1, "batch_size": 4, "max_train_batches": 2},
    "models": {"architectures": ["unet", "sa_unet"]},
    # the stand-in: one tiny model, no flip pass (QC's perturbed pass stays); --project swaps in the production cost
    "infer": {"batch_size": 4, "ensemble": 1, "tta_flip": False, "qc": {"calibration_degraded": 4}},
    "mimic": {"shards": PREFIXES},
    "view_check": {"enabled": False},
    "classify": {"enabled": False},
    # one fake GPU per CI node: infer_shard jobs spread one per node, as on a GPU cluster
    "resources": {"train": {"gpu": 1, "mem_mb": 3000, "cpus": 1}, "infer": {"gpu": 1, "mem_mb": 3000, "cpus": 1}},
}
PREP_TARGETS = ["results/models/selected.json", "results/models/qc_calibration.json"]
# Stages after training, in DAG order (rule names as Snakemake's Slurm log paths and benchmark files name them).
STAGES = ["select_images", "infer_shard", "merge_tables", "quality_table", "review_page", "qc_report", "run_report"]
REPORT = ("snakemake_report", "check_run")
REPORT_TEXT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___-year-old with cough.

 TECHNIQUE:  Chest PA and lateral.

 COMPARISON:  None.

 FINDINGS:

 The lungs are {lungs}.  Heart size is normal.  No pleural effusion or pneumothorax.

 IMPRESSION:

 {impression}
"""


# ---------------------------------------------------------------------------------------------------- the archive


def make_pool(pool: Path, size: int) -> list[tuple[Path, int, int]]:
    """`size` distinct full-size phantom films, JPEG near MIMIC's 1.4 MB (cached): (path, rows, columns)."""
    films = []
    for i in range(size):
        rows, cols = SHAPES[i % 2]
        path = pool / f"film-{i:03d}-{rows}x{cols}.jpg"
        if not path.exists():
            image = render_phantom(np.random.default_rng([37, i]), rows, cols).image
            with io.atomic_path(path) as tmp:
                tmp.write_bytes(encode_near(image, MIMIC_BYTES))
        films.append((path, rows, cols))
    return films


def archive_rows(n: int) -> pd.DataFrame:
    """n frontal films: two a study, three studies a subject, subjects dealt round-robin over p10..p19."""
    j = np.arange(n)
    study, subject = j // IMAGES_PER_STUDY, j // (IMAGES_PER_STUDY * STUDIES_PER_SUBJECT)
    return pd.DataFrame(
        {
            "dicom_id": [f"{k:08x}-{n:08x}-0000a37e" for k in j],
            "subject_id": [f"{10 + s % 10}{s:06d}" for s in subject],
            "study_id": [f"5{s:07d}" for s in study],
            "view": np.where(j % 2 == 0, "PA", "AP"),
        }
    )


def make_archive(root: Path, n: int, pool_size: int) -> dict:
    """The archive of n films under root (rebuilt from scratch, hard links into the pool beside it)."""
    films = make_pool(root.parent / "pool", pool_size)
    if root.exists():
        shutil.rmtree(root)
    rows = archive_rows(n)
    rng = np.random.default_rng(n)
    meta = []
    for k, r in enumerate(rows.itertuples()):
        src, height, width = films[k % len(films)]
        dest = root / image_relpath(r.subject_id, r.study_id, r.dicom_id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dest)
        meta.append(
            [r.dicom_id, r.subject_id, r.study_id, "CHEST (PA AND LAT)", r.view, height, width, 21500101, 120000.0]
            + ["CHEST (PA AND LAT)", VIEW_CODES[r.view], "Erect"]
        )
    studies = rows.drop_duplicates("study_id")
    labels = rng.choice([1.0, 0.0, -1.0, np.nan], size=(len(studies), len(CHEXPERT_LABELS)), p=[0.1, 0.1, 0.05, 0.75])
    for s in studies.itertuples():
        sick = int(s.study_id) % 7 == 0
        text = REPORT_TEXT.format(
            lungs="notable for a right lower lobe opacity" if sick else "clear",
            impression="Right lower lobe pneumonia." if sick else "No acute cardiopulmonary process.",
        )
        io.write_text(root / report_relpath(s.subject_id, s.study_id), text)
    names = section_defaults("mimic")
    io.write_csv(pd.DataFrame(meta, columns=METADATA_COLUMNS), root / names["metadata"])
    chexpert = pd.DataFrame(labels, columns=CHEXPERT_LABELS)
    chexpert.insert(0, "study_id", studies.study_id.to_numpy())
    chexpert.insert(0, "subject_id", studies.subject_id.to_numpy())
    io.write_csv(chexpert, root / names["chexpert"])
    split = rows.assign(split=np.where(rows.subject_id.str[-2:] == "00", "test", "train"))
    io.write_csv(split[SPLIT_COLUMNS], root / names["split"])
    sizes = [f.stat().st_size for f, _, _ in films]
    return {
        "films": n,
        "studies": int(len(studies)),
        "subjects": int(rows.subject_id.nunique()),
        "per_prefix": {p: int(v) for p, v in rows.subject_id.str[:2].radd("p").value_counts().sort_index().items()},
        "pool_films": len(films),
        "mean_jpeg_mb": round(float(np.mean(sizes)) / 1e6, 3),
        "apparent_gb": round(sum(sizes[k % len(films)] for k in range(n)) / 1e9, 2),
    }


# ---------------------------------------------------------------------------------------------------- the run


def configs(workdir: Path) -> list[Path]:
    return [REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml", workdir / "tiny.yaml"]


def slurm_flags() -> list[str]:
    """The CI-only Slurm flags of tests/helpers/slurm.py without its job groups: every rule is its own job, as
    with the production profile on a cluster."""
    flags = list(sf.CI_FLAGS)
    return flags[: flags.index("--groups")] if "--groups" in flags else flags


def prep(work: Path) -> Path:
    """The tiny demo trained once in <work>/prep (local cores: training is not what is measured)."""
    prep_dir = work / "prep"
    prep_dir.mkdir(parents=True, exist_ok=True)
    (prep_dir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    cmd = workflow.snakemake_cmd(prep_dir, *PREP_TARGETS, "--cores", "2", configs=configs(prep_dir))
    out = subprocess.run(cmd, capture_output=True, text=True, env=workflow.workflow_env(), timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"prep run failed:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}")
    return prep_dir


def run_dir_for(work: Path, prep_dir: Path, archive: Path, n: int) -> Path:
    """A copy of the prep run whose demo MIMIC folder is the archive of n films."""
    run = work / f"run-{n}"
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(prep_dir, run, symlinks=True, ignore=shutil.ignore_patterns("locks", "incomplete", "*.out"))
    mimic = run / "resources" / "demo" / "mimic-cxr-jpg"
    shutil.rmtree(mimic)
    mimic.symlink_to(archive.resolve(), target_is_directory=True)
    # the archive's tables are now newer than selection's (absent) outputs: everything after training runs
    return run


class Poller(threading.Thread):
    """Every `every` s: the controller's RSS (with psutil) and every Slurm job's state and times."""

    def __init__(self, pid: int, every: float = 2.0):
        super().__init__(daemon=True)
        self.proc, self.every, self.stop = psutil.Process(pid), every, threading.Event()
        self.peak_rss, self.jobs = 0, {}

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
            except psutil.Error:
                pass
            self.poll_jobs()
            self.stop.wait(self.every)
        self.poll_jobs()

    def poll_jobs(self) -> None:
        out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            job = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if "JobId" in job:
                self.jobs[job["JobId"]] = job


def job_rules(log: str) -> dict[str, str]:
    """Slurm job id -> rule name, from Snakemake's 'submitted with SLURM jobid' lines."""
    found = re.finditer(r"submitted with SLURM jobid (\d+) \(log: ([^)]*)\)", log)
    return {m.group(1): re.search(r"/rule_([a-z0-9_]+?)/", m.group(2) + "/").group(1) for m in found}


def _t(stamp: str | None) -> float | None:
    if not stamp or stamp in ("Unknown", "None"):
        return None
    return datetime.datetime.fromisoformat(stamp).timestamp()


def covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of intervals."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def file_census(root: Path) -> dict[Path, tuple[int, int]]:
    """Every file under root (symlinks not followed): path -> (blocks bytes, inode)."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            st = path.lstat()
            found[path] = (st.st_blocks * 512, st.st_ino)
    return found


def run_snakemake(run: Path, name: str, *extra: str, timeout: float) -> tuple[str, float, float, int, dict]:
    """Snakemake on Slurm: (log, start, end, controller peak RSS bytes, jobs seen)."""
    cmd = workflow.snakemake_cmd(run, *extra, configs=configs(run), profile="slurm") + slurm_flags()
    out = run / f"{name}.out"
    start = time.time()
    with open(out, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True, env=workflow.workflow_env())
    poller = Poller(proc.pid)
    poller.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(120)
        raise SystemExit(f"snakemake timed out after {timeout} s:\n{out.read_text()[-3000:]}") from None
    finally:
        poller.stop.set()
        poller.join()
    end = time.time()
    log = out.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"snakemake failed ({run}):\n{log[-6000:]}")
    return log, start, end, poller.peak_rss, poller.jobs


def benchmarks(run: Path) -> pd.DataFrame:
    """Every benchmark TSV the run wrote: rule, job, seconds, max_rss MB."""
    rows = []
    for path in sorted((run / "results" / "benchmarks").rglob("*.tsv")):
        rel = path.relative_to(run / "results" / "benchmarks")
        t = pd.read_csv(path, sep="\t")
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        rule = {"infer": "infer_shard"}.get(rule, rule)
        rows.append({"rule": rule, "job": str(rel), "s": float(t.s.iloc[-1]), "max_rss_mb": float(t.max_rss.iloc[-1])})
    return pd.DataFrame(rows)


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    """(seconds, peak RSS MB (GNU time when present), output) of a command run here, not on Slurm."""
    gnu = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    full = [gnu, "-f", "MAXRSS_KB=%M", *cmd] if gnu else cmd
    start = time.monotonic()
    out = subprocess.run(full, cwd=cwd, capture_output=True, text=True, env=workflow.workflow_env(), timeout=7200)
    seconds = time.monotonic() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    rss = re.findall(r"MAXRSS_KB=(\d+)", out.stderr)
    return seconds, int(rss[-1]) // 1024 if rss else -1, out.stdout + out.stderr


def stand_in_cost(run: Path, archive: Path, repeats: int = 6, trials: int = 5) -> dict:
    """Forward cost per image of the stand-in (the tiny model infer_shard loads), timed on a pool film with the
    threads an infer job has (resources.infer.cpus); the median of `trials`, since other jobs share these cores."""
    import torch
    from cxlseg.inference.settings import InferSettings
    from cxlseg.inference.shard import inference_predictor

    config = load_config(*configs(run))
    settings = InferSettings.from_config(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(config["resources"]["infer"]["cpus"]))
    try:
        with contextlib.chdir(run):  # selected.json names the checkpoints relative to the run's folder
            predictor = inference_predictor(io.read_json("results/models/selected.json"), settings)
        image = cv2.imread(str(next((archive.parent / "pool").glob("*.jpg"))), cv2.IMREAD_GRAYSCALE)
        batch = predictor.spec.to_tensor(np.stack([predictor.spec.prepare(image)] * settings.batch_size))
        predictor.forward(batch)  # warm up
        times = []
        for _ in range(trials):
            start = time.perf_counter()
            for _ in range(repeats):
                predictor.forward(batch)
            times.append((time.perf_counter() - start) / (repeats * settings.batch_size))
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    return {
        "what": f"{predictor.model_id}: tiny demo-trained model(s), {predictor.spec.net_size} px, tta_flip "
        f"{settings.tta_flip}, batch {settings.batch_size}",
        "forward_s_per_image": round(float(np.median(times)), 5),
        "trials_s_per_image": [round(t, 5) for t in times],
        "torch_threads": used,
    }


def rehearse(work: Path, n: int, pool_size: int, timeout: float) -> dict:
    archive = work / f"archive-{n}"
    t0 = time.monotonic()
    archive_info = make_archive(archive, n, pool_size)
    archive_info["build_s"] = round(time.monotonic() - t0, 1)
    prep_dir = prep(work)
    run = run_dir_for(work, prep_dir, archive, n)
    before = file_census(run)
    log, start, end, controller_rss, seen = run_snakemake(run, "rehearsal", timeout=timeout)
    rules = job_rules(log)
    jobs = []
    for job_id, rule in rules.items():
        info = seen.get(job_id, {})
        jobs.append(
            {"id": job_id, "rule": rule, "state": info.get("JobState"), "node": info.get("NodeList")}
            | {"start": _t(info.get("StartTime")), "end": _t(info.get("EndTime"))}
        )
    timed_jobs = [j for j in jobs if j["start"] and j["end"]]
    bench = benchmarks(run)
    new_bench = bench[bench.rule.isin(STAGES)]
    stages = {}
    for stage in STAGES:
        mine = [j for j in timed_jobs if j["rule"] == stage]
        b = new_bench[new_bench.rule == stage]
        if not mine and b.empty:
            continue
        stages[stage] = {
            "jobs": len([j for j in jobs if j["rule"] == stage]),
            "wall_s": round(max(j["end"] for j in mine) - min(j["start"] for j in mine), 1) if mine else None,
            "job_s_sum": round(float(b.s.sum()), 1),
            "job_s_max": round(float(b.s.max()), 1) if len(b) else None,  # None: the rule has no benchmark file
            "peak_rss_mb": round(float(b.max_rss_mb.max()), 1) if len(b) else None,
        }
    busy = covered([(j["start"], j["end"]) for j in timed_jobs])
    first = min((j["start"] for j in timed_jobs), default=end)
    last = max((j["end"] for j in timed_jobs), default=end)

    after = file_census(run)
    new = {p: v for p, v in after.items() if p not in before}
    per_dir: dict[Path, int] = {}
    for p in new:
        per_dir[p.parent] = per_dir.get(p.parent, 0) + 1
    fullest = max(per_dir, key=per_dir.get)
    seen_inodes, disk = set(), 0
    for size, ino in new.values():
        if ino not in seen_inodes:
            seen_inodes.add(ino)
            disk += size
    results_new = [p for p in new if (run / "results") in p.parents]

    report_s, report_rss, _ = timed(
        [*workflow.snakemake_cmd(run, "--report", "report.html", configs=configs(run))], cwd=run
    )
    check_s, check_rss, check_out = timed(
        [sys.executable, "-m", "cxlseg.cli", "check-run", "--results", "results"], run
    )
    review = run / "results" / "review"
    review_data = sum(p.stat().st_size for p in review.rglob("*") if p.is_file() and "thumbs" not in p.parts)
    thumbs = [p for p in (review / "thumbs").rglob("*") if p.is_file()]
    run_report = run / "results" / "report"
    result = {
        "n": n,
        "archive": archive_info,
        "stand_in": stand_in_cost(run, archive),
        "total_s": round(end - start, 1),
        "stages": stages,
        "controller": {
            "peak_rss_mb": round(controller_rss / 2**20, 1),
            "idle_s": round((end - start) - busy, 1),
            "before_first_job_s": round(first - start, 1),
            "after_last_job_s": round(end - last, 1),
            "between_jobs_s": round((last - first) - busy, 1),
        },
        "jobs_submitted": len(jobs),
        "jobs_per_rule": {r: sum(j["rule"] == r for j in jobs) for r in sorted({j["rule"] for j in jobs})},
        "jobs": [{k: v for k, v in j.items()} for j in jobs],
        "job_s": {r["job"]: round(r["s"], 2) for r in new_bench.to_dict("records")},
        "job_peak_rss_mb": {r["job"]: round(r["max_rss_mb"], 1) for r in new_bench.to_dict("records")},
        "files": {
            "written": len(new),
            "under_results": len(results_new),
            "under_dot_snakemake": sum((run / ".snakemake") in p.parents for p in new),
            "most_in_one_folder": per_dir[fullest],
            "fullest_folder": str(fullest.relative_to(run)),
            "bytes_on_disk": disk,
            "bytes_per_image": round(disk / n),
        },
        "report": {
            "snakemake_report_s": round(report_s, 1),
            "snakemake_report_peak_rss_mb": report_rss,
            "report_html_bytes": (run / "report.html").stat().st_size,
            "run_report_bytes": sum(p.stat().st_size for p in run_report.rglob("*") if p.is_file()),
            "review_page_s": stages.get("review_page", {}).get("job_s_max"),
            "review_data_bytes": review_data,
            "review_thumbs": len(thumbs),
            "run_report_s": stages.get("run_report", {}).get("job_s_max"),
            "check_run_s": round(check_s, 1),
            "check_run_peak_rss_mb": check_rss,
            "check_run_ok": check_out.startswith("OK"),
        },
        "workdir": str(run),
    }
    return result


# ---------------------------------------------------------------------------------------------------- projection

# figures fitted per N and projected to FULL films: name -> (reader from a JSON, unit)
FIGURES = {
    "total_s": lambda r: r["total_s"],
    "controller_idle_s": lambda r: r["controller"]["idle_s"],
    "controller_peak_rss_mb": lambda r: r["controller"]["peak_rss_mb"],
    "jobs_submitted": lambda r: r["jobs_submitted"],
    "files_written": lambda r: r["files"]["written"],
    "most_in_one_folder": lambda r: r["files"]["most_in_one_folder"],
    "bytes_on_disk": lambda r: r["files"]["bytes_on_disk"],
    "snakemake_report_s": lambda r: r["report"]["snakemake_report_s"],
    "report_html_bytes": lambda r: r["report"]["report_html_bytes"],
    "review_data_bytes": lambda r: r["report"]["review_data_bytes"],
    "check_run_s": lambda r: r["report"]["check_run_s"],
    **{f"{s}_job_s_max": (lambda r, s=s: r["stages"][s]["job_s_max"]) for s in STAGES},
    **{f"{s}_peak_rss_mb": (lambda r, s=s: r["stages"][s]["peak_rss_mb"]) for s in STAGES},
}


def fit(ns: list[int], ys: list[float]) -> dict:
    """The log-log slope (1: linear, > 1: superlinear) and the value at FULL films: the larger of the power law and
    the straight line a + b N (a fixed cost plus one per film; a power law would shrink the per-film part)."""
    ns_, ys_ = np.asarray(ns, float), np.maximum(np.asarray(ys, float), 1e-9)
    if len(ns_) < 2:
        return {"slope": None, "at_243k": None}
    slope, intercept = np.polyfit(np.log(ns_), np.log(ys_), 1)
    b, a = np.polyfit(ns_, ys_, 1)
    power, line = float(np.exp(intercept) * FULL**slope), float(a + b * FULL)
    return {"slope": round(float(slope), 2), "at_243k": max(power, line), "power_law": power, "linear": line}


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def production_cost() -> dict:
    """The production network's measured forward cost per image: bench_throughput's one-thread CPU run of the
    production recipe (one model, flip TTA, batch 2) times config.yaml's infer.ensemble. No GPU was measured."""
    path = REPO / "docs" / "bench" / "throughput-cpu-192-1thread-batch2.json"
    t = json.loads(path.read_text())
    ensemble = int(load_config(REPO / "config" / "config.yaml")["infer"]["ensemble"])
    stages = t["stage_ms_per_image"]["cpu"]
    per_model = stages["forward"] / 1000
    return {
        "besides_forward_core_s": round(sum(v for k, v in stages.items() if k != "forward") / 1000, 4),
        "source": str(path.relative_to(REPO)),
        "device": t["device"],
        "forward_core_s_per_model": round(per_model, 4),
        "ensemble": ensemble,
        "forward_s_per_image": round(per_model * ensemble, 4),
    }


def infer_line(runs: list[dict]) -> dict:
    """infer_shard job seconds = startup + per_image x images a shard, fitted over the N measured (mean job)."""
    xs = [r["n"] / r["stages"]["infer_shard"]["jobs"] for r in runs]
    ys = [r["stages"]["infer_shard"]["job_s_sum"] / r["stages"]["infer_shard"]["jobs"] for r in runs]
    per_image, startup = np.polyfit(xs, ys, 1)
    return {"startup_s": round(float(max(startup, 0.0)), 2), "s_per_image": round(float(per_image), 5)}


def shard_plan(nodes: int, shards: int, startup_s: float, s_per_image: float) -> tuple[int, float]:
    """(chunks_per_shard, seconds of the shard stage): shard jobs run one per node in rounds; splitting each
    shard in c chunks adds a job startup per chunk and fills the last round. The c in 1..8 that ends soonest
    among those whose jobs stay under an hour (a killed or requeued job then loses less)."""

    def job_s(c: int) -> float:
        return startup_s + FULL / (shards * c) * s_per_image

    def stage_s(c: int) -> float:
        return math.ceil(shards * c / nodes) * job_s(c)

    short = [c for c in range(1, 9) if job_s(c) <= 3600] or [8]
    best = min(short, key=stage_s)
    return best, stage_s(best)


def project(paths: list[str], nodes=(1, 4, 10)) -> dict:
    """Each figure's log-log growth over the N measured, and hours per stage for 243,324 films on 1, 4 and 10
    GPU nodes: shard jobs run one per node (10 shards, so ceil(10 / nodes) rounds), each costing the rehearsal's
    startup plus, per image, what the rehearsal spent besides the stand-in's forward plus the production forward;
    every other stage is one job that cannot be split, projected on its fitted growth."""
    runs = sorted((json.loads(Path(p).read_text()) for p in paths), key=lambda r: r["n"])
    ns = [r["n"] for r in runs]
    figures = {}
    for name, read in FIGURES.items():
        try:
            ys = [read(r) for r in runs]
        except KeyError:
            continue
        if all(y is not None for y in ys):
            figures[name] = {"measured": dict(zip(map(str, ns), ys)), **fit(ns, ys)}
    line = infer_line(runs)
    # the largest run's: timed with an infer job's threads (the first 2,000 and 5,000 runs used 2, under contention)
    stand_in = float(runs[-1]["stand_in"]["forward_s_per_image"])
    prod = production_cost()
    # never below what bench_throughput measured for decode, clean-up + QC and writes alone: on 2 shared cores the
    # rehearsal's slope and the stand-in's timing are both noisy, and their difference can come out near zero
    besides = max(line["s_per_image"] - stand_in, prod["besides_forward_core_s"])
    per_image = besides + prod["forward_s_per_image"]
    shards = len(PREFIXES)
    serial = {s: figures[f"{s}_job_s_max"]["at_243k"] for s in STAGES if s != "infer_shard"}
    table = {}
    for k in nodes:
        chunks, infer_s = shard_plan(k, shards, line["startup_s"], per_image)
        _, floor_s = shard_plan(k, shards, line["startup_s"], besides)
        hours = {"infer_shard": infer_s / 3600, **{s: v / 3600 for s, v in serial.items()}}
        table[str(k)] = {
            "chunks_per_shard": chunks,  # the mimic.chunks_per_shard that ends the shard stage soonest
            "infer_job_h": round((line["startup_s"] + FULL / (shards * chunks) * per_image) / 3600, 2),
            # a lower bound for a GPU node: the network free, what is left is decode, QC, writes and job startup
            "infer_shard_forward_free_h": round(floor_s / 3600, 2),
            "hours": {s: round(h, 2) for s, h in hours.items()},
            "total_h": round(sum(hours.values()), 2),
            "dominant": max(hours, key=hours.get),
        }
    return {
        "ns": ns,
        "figures": figures,
        "infer_shard": {
            **line,
            "stand_in_forward_s_per_image": round(stand_in, 4),
            "besides_network_s_per_image": round(besides, 4),
            "production_forward": prod,
            "s_per_image_at_243k": round(per_image, 4),
            "one_shard_job_h": round((line["startup_s"] + FULL / shards * per_image) / 3600, 2),
        },
        "nodes": table,
    }


def measured_table(paths: list[str]) -> str:
    """docs/scale.md's table: one column per N."""
    runs = sorted((json.loads(Path(p).read_text()) for p in paths), key=lambda r: r["n"])
    rows = [("films", lambda r: f"{r['n']:,}"), ("total wall clock (s)", lambda r: f"{r['total_s']:,.0f}")]
    for s in STAGES:
        rows.append((f"{s}: wall s (jobs; longest job s; peak MB)", lambda r, s=s: _stage(r["stages"].get(s))))
    rows += [
        ("controller idle, no job running (s)", lambda r: f"{r['controller']['idle_s']:.0f}"),
        ("  of which before the first job / between jobs / after the last", lambda r: _idle(r["controller"])),
        ("controller peak RSS (MB)", lambda r: f"{r['controller']['peak_rss_mb']:.0f}"),
        ("jobs submitted", lambda r: str(r["jobs_submitted"])),
        ("files written (results / .snakemake)", lambda r: _files(r["files"])),
        (
            "most files in one folder",
            lambda r: f"{r['files']['most_in_one_folder']:,} ({r['files']['fullest_folder']})",
        ),
        ("bytes on disk per image", lambda r: f"{r['files']['bytes_per_image']:,}"),
        ("peak RSS of any job (MB)", lambda r: f"{max(r['job_peak_rss_mb'].values()):.0f}"),
        ("`snakemake --report`: s, report.html bytes", lambda r: _report(r["report"])),
        ("review page data bytes (thumbnails)", lambda r: _review(r["report"])),
        (
            "`cxlseg check-run`: s (peak MB)",
            lambda r: f"{r['report']['check_run_s']} ({r['report']['check_run_peak_rss_mb']})",
        ),
        ("stand-in forward s/image", lambda r: str(r["stand_in"]["forward_s_per_image"])),
        ("load average at the end", lambda r: str(r["machine"]["load_average"][0])),
    ]
    head = "| | " + " | ".join(f"N = {r['n']:,}" for r in runs) + " |"
    lines = [head, "|---" * (len(runs) + 1) + "|"]
    lines += ["| " + name + " | " + " | ".join(read(r) for r in runs) + " |" for name, read in rows]
    return "\n".join(lines)


def _stage(s: dict | None) -> str:
    return "-" if not s else f"{s['wall_s']} ({s['jobs']}; {s['job_s_max']}; {s['peak_rss_mb']:.0f})"


def _idle(c: dict) -> str:
    return f"{c['before_first_job_s']:.0f} / {c['between_jobs_s']:.0f} / {c['after_last_job_s']:.0f}"


def _files(f: dict) -> str:
    return f"{f['written']:,} ({f['under_results']:,} / {f['under_dot_snakemake']:,})"


def _report(r: dict) -> str:
    return f"{r['snakemake_report_s']} s, {r['report_html_bytes']:,}"


def _review(r: dict) -> str:
    return f"{r['review_data_bytes']:,} ({r['review_thumbs']:,})"


def markdown(proj: dict) -> str:
    """README's "243k on a cluster" table."""
    f = proj["figures"]
    at = lambda name: f[name]["at_243k"]  # noqa: E731
    stages = " | ".join(f"{s} (h)" for s in STAGES)
    lines = [
        f"| GPU nodes | chunks_per_shard | jobs | files | disk (GB) | {stages} | total (h) | dominant "
        "| one infer job (h) | infer_shard, network free (h) |",
        "|---" * (len(STAGES) + 9) + "|",
    ]
    for k, row in proj["nodes"].items():
        hours = " | ".join(f"{row['hours'][s]:.2f}" for s in STAGES)
        lines.append(
            f"| {k} | {row['chunks_per_shard']} | {at('jobs_submitted') + len(PREFIXES) * (row['chunks_per_shard'] - 1):,.0f} "
            f"| {at('files_written'):,.0f} | {at('bytes_on_disk') / 1e9:,.1f} | {hours} | {row['total_h']:.2f} "
            f"| {row['dominant']} | {row['infer_job_h']:.2f} | {row['infer_shard_forward_free_h']:.2f} |"
        )
    return "\n".join(lines)


def growth_table(proj: dict) -> str:
    """docs/scale.md's growth table: each figure's log-log slope over the N measured and its value at 243,324."""
    lines = ["| figure | " + " | ".join(f"N = {n:,}" for n in proj["ns"]) + " | slope | at 243,324 |"]
    lines.append("|---" * (len(proj["ns"]) + 3) + "|")
    for name, v in proj["figures"].items():
        measured = " | ".join(_num(v["measured"][str(n)]) for n in proj["ns"])
        lines.append(f"| {name} | {measured} | {v['slope']} | {_num(v['at_243k'])} |")
    return "\n".join(lines)


def write_docs(paths: list[str]) -> None:
    """Rewrite the generated blocks of docs/scale.md (measured per N, growth) and README.md (243k on a cluster)."""
    proj = project(paths)
    blocks = {
        REPO / "docs" / "scale.md": {
            "measured": measured_table(paths),
            "growth": growth_table(proj),
            "projection": markdown(proj),
        },
        REPO / "README.md": {"projection": markdown(proj)},
    }
    for doc, parts in blocks.items():
        text = doc.read_text()
        for name, body in parts.items():
            begin, end = f"<!-- rehearsal:{name} -->", f"<!-- /rehearsal:{name} -->"
            if begin not in text or end not in text:
                raise SystemExit(f"{doc}: no {begin} ... {end} block to fill")
            head, rest = text.split(begin, 1)
            text = head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]
        doc.write_text(text)
        print(f"wrote {doc}")


# ---------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, help="films in the archive")
    parser.add_argument("--work", type=Path, default=Path("/work/rehearsal"), help="archives, prep and runs")
    parser.add_argument("--pool", type=int, default=8, help="distinct films the archive hard-links")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds the Slurm run may take")
    parser.add_argument("--json", type=Path, help="write the result here (docs/bench/rehearsal-<N>.json)")
    parser.add_argument("--project", nargs="+", help="rehearsal JSONs: fit each figure and project to 243,324")
    parser.add_argument("--docs", action="store_true", help="with --project: rewrite the tables in the docs")
    args = parser.parse_args(argv)
    if args.project:
        paths = sorted(p for pattern in args.project for p in glob.glob(pattern))
        result = project(paths)
        if args.docs:
            write_docs(paths)
        print(json.dumps({k: v for k, v in result.items() if k != "figures"}, indent=1))
        print(measured_table(paths))
        print()
        print(growth_table(result))
        print()
        print(markdown(result))
        return result
    if not args.n:
        parser.error("--n or --project is required")
    result = rehearse(args.work, args.n, args.pool, args.timeout)
    print(json.dumps({k: v for k, v in result.items() if k != "jobs"}, indent=1))
    if args.json:
        record.write(args.json, result, __file__, argv)
    return result


if __name__ == "__main__":
    main()

"""Other archives in the DAG (#34): a dry-run of each kind plans its listing, shards and table on the shared
models and none of MIMIC's jobs; with the default kind the MIMIC DAG is exactly what it was; and one integration
run segments every kind's synthetic archive in one results folder after one training, then applies a review file
to one archive and resumes an interrupted shard of another on the same folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from cxlseg.archives import pixels, rle
from cxlseg.config import default_config
from cxlseg.inference.manifest import partial_path
from helpers.workflow import CONFIGS, TINY, snakemake, snakemake_cmd, workflow_env

KINDS = ("chexpert", "chestxray14", "padchest", "vindr", "folder")
ARCHIVE_RULES = {
    "archive_qc_report",
    "archive_run_report",
    "demo_archive",
    "list_archive",
    "infer_archive_shard",
    "archive_table",
    "archive_review_page",
    "archive_run_summary",
}
MIMIC_ONLY = {"select_images", "infer_shard", "merge_tables", "quality_table", "evaluate_inference", "qc_report"}
# The demo's MIMIC DAG as it was before other archives were wired in (main at 3a0c828), job counts per rule.
MIMIC_DEMO_JOBS = {
    "demo": 1, "view_phantoms": 1, "ingest": 3, "select_images": 1, "view_samples": 1, "split_training": 1,
    "augment": 1, "train": 4, "train_view_check": 1, "evaluate": 4, "select_model": 1, "calibrate_qc": 1,
    "evaluate_inference": 1, "infer_shard": 10, "merge_tables": 1, "qc_report": 1, "classify": 8,
    "quality_table": 1, "classify_summary": 1, "review_page": 1, "table3_pages": 1, "run_report": 1, "all": 1,
}  # fmt: skip


def planned_jobs(text: str) -> dict[str, int]:
    """The rule -> count table of a dry-run ('Job stats')."""
    stats, in_table = {}, False
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("Job stats"):
            in_table = True
        elif in_table and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            stats[parts[0]] = int(parts[1])
        elif in_table and parts and parts[0] == "total":
            break
    return stats


def dry_run(tmp_path: Path, change: dict) -> subprocess.CompletedProcess:
    (tmp_path / "change.yaml").write_text(yaml.safe_dump(change))
    cmd = snakemake_cmd(tmp_path, "-n", "-F", configs=[*CONFIGS, tmp_path / "change.yaml"])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=workflow_env())


def test_the_mimic_dag_is_unchanged(tmp_path):
    proc = dry_run(tmp_path, {"archive": {"kind": "mimic"}})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned_jobs(proc.stdout + proc.stderr) == MIMIC_DEMO_JOBS


@pytest.mark.parametrize("kind", KINDS)
def test_a_dry_run_of_each_kind_plans_its_listing_shards_and_table(tmp_path, kind):
    shards = default_config()["archive"]["shards"]
    proc = dry_run(tmp_path, {"archive": {"kind": kind}})
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert {r: jobs.get(r) for r in ARCHIVE_RULES} == {
        "demo_archive": 1,
        "list_archive": 1,
        "infer_archive_shard": shards,
        "archive_table": 1,
        "archive_review_page": 1,
        "archive_run_summary": 1,
        "archive_qc_report": 1,
        "archive_run_report": 1,
    }
    assert jobs["train"] == 4 and jobs["calibrate_qc"] == 1 and jobs["train_view_check"] == 1  # the shared models
    assert MIMIC_ONLY.isdisjoint(jobs) and "classify" not in jobs
    text = proc.stdout + proc.stderr
    assert f"results/archives/{kind}/{kind}-masks.csv.gz" in text
    assert f"results/archives/{kind}/review/index.html" in text
    assert f"results/archives/{kind}/report/run_summary.json" in text
    assert f"results/archives/{kind}/report/summary.html" in text
    assert f"results/archives/{kind}/qc/qc_report.html" in text
    assert f"resources/demo-archives/{kind}.json" in text


def test_another_archive_without_a_root_stops_the_dag_naming_the_key(tmp_path):
    proc = dry_run(tmp_path, {"demo": {"enabled": False}, "archive": {"kind": "padchest"}})
    assert proc.returncode != 0 and "archive.root" in proc.stdout + proc.stderr


def test_an_unknown_kind_stops_the_dag(tmp_path):
    proc = dry_run(tmp_path, {"archive": {"kind": "mimic-iv"}})
    assert proc.returncode != 0 and "mimic-iv" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def every_archive(tmp_path_factory):
    """One results folder: the models trained once (with the first kind), then each other kind's archive."""
    workdir = tmp_path_factory.mktemp("archives")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump({**TINY, "classify": {"enabled": False}}))
    for kind in KINDS:
        run_kind(workdir, kind)
    return workdir


def kind_configs(workdir: Path, kind: str, **archive) -> list:
    (workdir / "kind.yaml").write_text(yaml.safe_dump({"archive": {"kind": kind, **archive}}))
    return [*CONFIGS, workdir / "tiny.yaml", workdir / "kind.yaml"]


def run_kind(workdir: Path, kind: str, *args: str, **archive) -> subprocess.CompletedProcess:
    return snakemake(workdir, "-c2", *args, configs=kind_configs(workdir, kind, **archive), timeout=1500)


@pytest.mark.integration
@pytest.mark.parametrize("kind", KINDS)
def test_every_archive_goes_through_the_whole_dag(every_archive, kind):
    out = every_archive / "results" / "archives" / kind
    expected = json.loads((every_archive / "resources" / "demo-archives" / f"{kind}.json").read_text())
    expected = expected["expected"]
    table = pd.read_csv(out / f"{kind}-masks.csv.gz", dtype=str, keep_default_na=False)
    skipped = pd.read_csv(out / "listing" / "skipped.csv", dtype=str, keep_default_na=False)
    listing = json.loads((out / "listing" / "summary.json").read_text())
    assert len(table) == len(expected["kept"]) and table.image_id.is_unique
    assert sum(listing["not_frontal"].values()) == expected["dropped"]  # laterals dropped, counted by view
    assert set(expected["skipped"]) <= set(skipped.path) and (skipped.reason != "").all()
    ok = table[table.status == "ok"]
    assert len(ok) >= len(table) - 1 and set(ok.split) <= {"train", "validate", "test"}
    root = every_archive / "resources" / "demo-archives" / kind
    for row in ok.to_dict("records"):
        image = pixels.read_pixels(root / row["path"]).data
        height, width = int(row["Height"]), int(row["Width"])
        rle.check_shape(height, width, image.shape, row["path"])  # the RLE's size is the original image's
        lungs = rle.decode(row["Left Lung"], height, width) | rle.decode(row["Right Lung"], height, width)
        assert lungs.any() and (out / "images" / row["mask_path"]).is_file()
        assert Path(row["mask_path"]).parent == Path(row["path"]).parent  # mirrors the archive's folders
        assert np.isfinite(float(row["qc_predicted_dice"])) and np.isfinite(float(row["p_not_frontal"]))
    assert (every_archive / "results" / "models" / "selected.json").is_file()
    run = json.loads((out / "review" / "data" / "run.js").read_text().split("(", 1)[1].rsplit(")", 1)[0])
    assert (out / "review" / "index.html").stat().st_size > 0  # the review page, with a thumbnail for every mask
    assert run["masks"] == len(ok) and run["missing_thumbnails"] == 0
    summary = json.loads((out / "report" / "run_summary.json").read_text())
    assert (summary["kind"], summary["listed"], summary["segmented"]) == (kind, len(table), len(ok))
    assert summary["skipped"] == len(skipped) and sum(s["listed"] for s in summary["per_shard"].values()) == len(table)
    assert not (every_archive / "results" / "CXLSeg").exists()  # MIMIC's outputs untouched by other archives
    assert (table.review == "").all() and set(table.qc_status) <= {"ok", "flagged", ""}  # no review file yet
    assert (table.excluded == "True").sum() == len(table) - (ok.qc_flags == "").sum()  # failed or flagged
    page = (out / "report" / "summary.html").read_text()  # the run report page
    assert f"{kind}: run summary" in page and "Per shard" in page and "flag bar" in page and "Time per stage" in page
    qc = json.loads((out / "qc" / "qc_summary.json").read_text())  # the QC report
    assert (qc["masks"], qc["flagged"]) == (len(ok), int((ok.qc_flags != "").sum()))
    assert f"QC-flagged images ({qc['flagged']})" in (out / "qc" / "qc_report.html").read_text()
    assert (out / "qc" / "flagged_overlays.jpg").stat().st_size > 0 and (out / "qc" / "predicted_dice.png").is_file()


RERUN_AFTER_REVIEW = {"archive_table", "archive_review_page", "archive_run_summary", "archive_qc_report"}


@pytest.mark.integration
def test_a_review_file_reruns_the_archive_table_and_its_readers_not_inference(every_archive):
    """archive.review_file: a dry run plans the table and what reads it, no shard; the run writes the decisions
    into the table and the review page; a file naming an image the run does not have stops the DAG build."""
    out = every_archive / "results" / "archives" / "padchest"
    before = pd.read_csv(out / "padchest-masks.csv.gz", dtype=str, keep_default_na=False).set_index("image_id")
    masked = before[before.status == "ok"].index
    decisions = every_archive / "padchest-decisions.csv"
    decisions.write_text(f"dicom_id,decision,note\n{masked[0]},rejected,bad lung\n{masked[1]},accepted,\n")
    plan = run_kind(every_archive, "padchest", "-n", review_file=str(decisions))
    jobs = planned_jobs(plan.stdout + plan.stderr)
    assert RERUN_AFTER_REVIEW <= set(jobs) <= RERUN_AFTER_REVIEW | {"archive_run_report", "all"}, jobs
    run_kind(every_archive, "padchest", review_file=str(decisions))
    after = pd.read_csv(out / "padchest-masks.csv.gz", dtype=str, keep_default_na=False).set_index("image_id")
    assert after.loc[masked[0], ["review", "review_note", "qc_status", "excluded"]].tolist() == [
        "rejected", "bad lung", "rejected", "True"
    ]  # fmt: skip
    assert after.loc[masked[1], ["review", "qc_status", "excluded"]].tolist() == ["accepted", "accepted", "False"]
    keep = [c for c in before.columns if c not in ("review", "review_note", "qc_status", "excluded")]
    pd.testing.assert_frame_equal(after[keep], before[keep])  # the masks themselves are the same
    run = json.loads((out / "review" / "data" / "run.js").read_text().split("(", 1)[1].rsplit(")", 1)[0])
    assert [masked[0], "rejected", "bad lung"] in run["applied"]
    decisions.write_text(f"dicom_id,decision\n{masked[0]},rejected\nnot-an-image,accepted\n")
    proc = subprocess.run(
        snakemake_cmd(every_archive, "-n", configs=kind_configs(every_archive, "padchest", review_file=str(decisions))),
        capture_output=True, text=True, timeout=300, env=workflow_env(),
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"archive.review_file refused: {decisions}:3: unknown dicom_id" in text


@pytest.mark.integration
def test_an_interrupted_archive_shard_resumes_without_segmenting_finished_images_again(every_archive):
    """A shard cut off after a flush (its manifest gone, its progress holding the first rows): the plain command
    segments only the rest, and the table is the uninterrupted run's."""
    kind = "chestxray14"
    out = every_archive / "results" / "archives" / kind
    first = pd.read_csv(out / f"{kind}-masks.csv.gz", dtype=str, keep_default_na=False)
    ok = first[first.status == "ok"]
    shard = ok.shard.value_counts().index[0]
    manifest = out / "manifests" / f"{shard}.parquet"
    progress = partial_path(manifest)
    rows = pd.read_parquet(progress)
    first_ok = int(np.flatnonzero(rows.status.to_numpy() == "ok")[0])
    kept, redone = rows.iloc[[first_ok]], rows.drop(index=rows.index[first_ok])
    assert len(redone) >= 1
    pq.write_table(pq.read_table(progress).take([first_ok]), progress)  # the rows flushed before the cut
    manifest.unlink()
    stamp = {p: (out / "images" / p).stat().st_mtime_ns for p in rows.mask_path.dropna()}
    run_kind(every_archive, kind)
    again = pd.read_csv(out / f"{kind}-masks.csv.gz", dtype=str, keep_default_na=False)
    # the resumed shard batches fewer films together: float32 sums in another order move the networks' scores
    # in the 7th digit, nothing else (masks, flags and every other column are the same)
    scores = ["qc_predicted_dice", "p_not_frontal"]
    pd.testing.assert_frame_equal(again.drop(columns=scores), first.drop(columns=scores))
    for column in scores:
        np.testing.assert_allclose(pd.to_numeric(again[column]), pd.to_numeric(first[column]), rtol=1e-5)
    for path in kept.mask_path:  # finished before the cut: not segmented again
        assert (out / "images" / path).stat().st_mtime_ns == stamp[path]
    for path in redone.mask_path.dropna():
        assert (out / "images" / path).stat().st_mtime_ns != stamp[path]
    assert len(pd.read_parquet(manifest)) == len(rows)

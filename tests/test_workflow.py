"""The Snakemake workflow end to end on a tiny generated demo (lint, dry-runs, a full run, a no-op rerun)."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.browser import chromium_page, chromium_path
from helpers.workflow import CONFIGS, ROOT, snakemake, snakemake_cmd

COLUMNS = {
    "CXLSeg-metadata.csv.gz": [
        "dicom_id",
        "subject_id",
        "study_id",
        "Reports",
        "PatientOrientation",
        "ViewPosition",
        "StudyDate",
        "StudyTime",
    ],
    "CXLSeg-segmented.csv.gz": [
        "dicom_id",
        "subject_id",
        "study_id",
        "DicomPath",
        "Atelectasis",
        "Pleural Effusion",
        "No Finding",
    ],
    "CXLSeg-split.csv.gz": ["dicom_id", "subject_id", "study_id", "split"],
    "CXLSeg-mask.csv.gz": ["dicom_id", "subject_id", "study_id", "DicomPath"],
}


def test_lint_is_clean():
    proc = subprocess.run(snakemake_cmd(None, "--lint"), capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_every_job_has_an_output_in_the_default_target(tmp_path):
    """Snakemake rebuilds a missing intermediate only when something asks for it: with one output of every job in
    rule all, the plain command reruns a shard whose rerun was cut off (its manifest deleted), and what follows."""
    (tmp_path / "more.yaml").write_text(yaml.safe_dump({"mimic": {"chunks_per_shard": 2}}))
    proc = subprocess.run(
        snakemake_cmd(tmp_path, "-n", "--forceall", configs=[*CONFIGS, tmp_path / "more.yaml"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs, rule = [], None
    for line in proc.stdout.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):$", line):
            rule = match[1]
        elif line.startswith(("    output: ", "    input: ")) and rule:
            jobs.append((rule, line.split(": ", 1)[0].strip(), set(line.split(": ", 1)[1].split(", "))))
    targets = set().union(*(files for rule, kind, files in jobs if rule == "all" and kind == "input"))
    outputs = [(rule, files) for rule, kind, files in jobs if kind == "output"]
    assert {rule for rule, _ in outputs} >= {"demo", "ingest", "train", "select_images", "infer_shard", "classify"}
    assert sum(rule == "infer_shard" for rule, _ in outputs) == 20
    assert [(rule, sorted(files)) for rule, files in outputs if not files & targets] == []
    assert {f"results/infer/manifests/p1{i}-c{c}.parquet" for i in range(10) for c in (0, 1)} <= targets


def test_bad_config_key_stops_the_dag(tmp_path):
    (tmp_path / "bad.yaml").write_text("train: {epocs: 3}\n")
    cmd = snakemake_cmd(tmp_path, "-n", configs=[*CONFIGS, tmp_path / "bad.yaml"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "train.epocs" in proc.stdout + proc.stderr


def expected_dicom_ids(archive: Path) -> set[str]:
    """Independently: frontal images whose study has a report file with report text and whose JPEG decodes."""
    meta = pd.read_csv(archive / "mimic-cxr-2.0.0-metadata.csv.gz", dtype={"dicom_id": str})
    meta = meta[meta["ViewPosition"].isin(["AP", "PA"])]
    empty = set(json.loads((archive.parent / "demo.json").read_text())["studies_with_empty_report"])
    assert empty, "the demo must hold a study whose report extracts to nothing"
    keep = set()
    for row in meta.itertuples():
        if f"s{row.study_id}" in empty:
            continue
        study_dir = archive / "files" / f"p{str(row.subject_id)[:2]}" / f"p{row.subject_id}"
        image = study_dir / f"s{row.study_id}" / f"{row.dicom_id}.jpg"
        if not (study_dir / f"s{row.study_id}.txt").is_file() or not image.is_file():
            continue
        data = image.read_bytes()
        if data.rstrip(b"\0").endswith(b"\xff\xd9") and cv2.imdecode(np.frombuffer(data, np.uint8), 0) is not None:
            keep.add(row.dicom_id)
    return keep


@pytest.mark.integration
def test_tables_have_exactly_the_segmentable_images(demo_run):
    out = demo_run / "results" / "CXLSeg"
    expected = expected_dicom_ids(demo_run / "resources" / "demo" / "mimic-cxr-jpg")
    assert len(expected) >= 10
    for name, columns in COLUMNS.items():
        table = pd.read_csv(out / name, dtype={"dicom_id": str})
        assert list(table.columns[: len(columns)]) == columns or set(columns) <= set(table.columns), name
        assert set(table["dicom_id"]) == expected, name
        assert table["dicom_id"].is_unique, name
    split = pd.read_csv(out / "CXLSeg-split.csv.gz")
    assert set(split["split"]) <= {"train", "validate", "test"}
    assert split.groupby("subject_id")["split"].nunique().max() == 1


@pytest.mark.integration
def test_every_listed_file_exists_at_224(demo_run):
    out = demo_run / "results" / "CXLSeg"
    for name in ("CXLSeg-segmented.csv.gz", "CXLSeg-mask.csv.gz"):
        for rel in pd.read_csv(out / name)["DicomPath"]:
            image = cv2.imread(str(out / rel), cv2.IMREAD_UNCHANGED)
            assert image is not None, rel
            assert image.shape[:2] == (224, 224), rel


@pytest.mark.integration
def test_corrupt_and_truncated_are_reported_not_fatal(demo_run):
    demo = yaml.safe_load((demo_run / "resources" / "demo" / "demo.json").read_text())
    failed = pd.read_csv(demo_run / "results" / "CXLSeg" / "CXLSeg-failed.csv.gz", dtype={"dicom_id": str})
    bad = {d for key in ("corrupt", "truncated") for d in demo[key]} if "corrupt" in demo else set()
    assert bad, "the demo archive must contain a corrupt and a truncated JPEG"
    assert bad <= set(failed["dicom_id"])


@pytest.mark.integration
def test_models_report_and_rerun(demo_run):
    models = demo_run / "results" / "models"
    assert (models / "selected.json").is_file()
    assert (models / "comparison.md").read_text().count("|") > 10
    assert (demo_run / "results" / "classify" / "table3.md").is_file()
    dry = snakemake(demo_run, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    snakemake(demo_run, "--report", str(demo_run / "report.html"))
    html = (demo_run / "report.html").read_text(errors="replace")
    assert "comparison" in html.lower()


@pytest.mark.integration
def test_paper_config_pointed_at_the_demo_archive_plans_the_full_dag(demo_run, tmp_path):
    archive = demo_run / "resources" / "demo"
    overlay = {
        "results": str(tmp_path / "results"),
        "datasets": {
            "shenzhen": {"root": str(archive / "shenzhen")},
            "montgomery": {"root": str(archive / "montgomery")},
            "v7": {"root": str(archive / "v7")},
        },
        "mimic": {"root": str(archive / "mimic-cxr-jpg")},
    }
    (tmp_path / "real.yaml").write_text(yaml.safe_dump(overlay))
    proc = snakemake(tmp_path, "-n", configs=[CONFIGS[0], str(tmp_path / "real.yaml")])
    text = proc.stdout + proc.stderr
    for rule, count in [("ingest", 3), ("train", 4), ("evaluate", 4), ("infer_shard", 10), ("merge_tables", 1)]:
        assert any(line.split()[:2] == [rule, str(count)] for line in text.splitlines()), (
            f"{rule} x{count} missing:\n{text[-2000:]}"
        )


def planned_jobs(text: str) -> dict[str, int]:
    """The rule -> count table of a dry-run ('Job stats')."""
    stats, in_table = {}, False
    for line in text.splitlines():
        if line.startswith("Job stats"):
            in_table = True
        elif in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                stats[parts[0]] = int(parts[1])
            elif parts and parts[0] == "total":
                break
    return stats


def dry_run_with(workdir: Path, tmp_path: Path, change: dict) -> dict[str, int]:
    (tmp_path / "change.yaml").write_text(yaml.safe_dump(change))
    proc = snakemake(workdir, "-n", configs=[*CONFIGS, str(workdir / "tiny.yaml"), str(tmp_path / "change.yaml")])
    return planned_jobs(proc.stdout + proc.stderr)


@pytest.mark.integration
def test_postprocess_change_reruns_inference_not_training(demo_run, tmp_path):
    jobs = dry_run_with(demo_run, tmp_path, {"infer": {"postprocess": {"closing": 7}}})
    assert jobs.get("infer_shard") == 10 and "merge_tables" in jobs
    assert "train" not in jobs and "augment" not in jobs and "ingest" not in jobs


@pytest.mark.integration
def test_performance_knobs_rerun_nothing(demo_run, tmp_path):
    jobs = dry_run_with(demo_run, tmp_path, {"infer": {"batch_size": 3, "num_workers": 1}, "train": {"num_workers": 1}})
    assert jobs == {}


@pytest.mark.integration
def test_other_archives_settings_leave_every_mimic_output_as_it_is(demo_run, tmp_path):
    """#34: with archive.kind mimic, every archive key (and the demo's archive keys) may change and no MIMIC job
    reruns: the finished MIMIC outputs are what the code before other archives made (its DAG: test_archive_dag)."""
    change = {
        "archive": {"kind": "mimic", "root": "elsewhere", "shards": 7, "metadata": "meta.csv", "review_file": "r.csv"},
        "demo": {"archive_patients": 3, "archive_side": [96, 128]},
    }
    assert dry_run_with(demo_run, tmp_path, change) == {}


@pytest.mark.integration
def test_training_change_reruns_training_and_downstream(demo_run, tmp_path):
    jobs = dry_run_with(demo_run, tmp_path, {"train": {"lr": 0.0005}})
    assert jobs.get("train") == len(
        yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["models"]["architectures"]
    )
    for rule in ("evaluate", "select_model", "infer_shard", "merge_tables"):
        assert rule in jobs, rule
    assert "augment" not in jobs and "ingest" not in jobs


@pytest.mark.integration
def test_qc_predicts_dice_and_flags_mislabelled_views(demo_run):
    """The calibrated QC model and the view check reach every manifest; films labelled PA/AP that are lateral
    films or CT slices are flagged not_frontal, the real frontal phantoms are not."""
    results = demo_run / "results"
    demo = json.loads((demo_run / "resources" / "demo" / "demo.json").read_text())
    manifest = pd.concat(pd.read_parquet(p) for p in (results / "infer" / "manifests").glob("*.parquet"))
    ok = manifest[manifest.status == "ok"].set_index("dicom_id")
    assert ok["qc_predicted_dice"].between(0, 1).all() and ok["p_not_frontal"].between(0, 1).all()
    mislabelled = set(demo["mislabelled_views"]) & set(ok.index)
    assert mislabelled, "the demo must segment its mislabelled views"
    not_frontal = ok["qc_flags"].fillna("").str.split(";").apply(lambda f: "not_frontal" in f)
    assert not_frontal[list(mislabelled)].all()
    assert not_frontal.drop(list(mislabelled)).mean() <= 0.1
    text = (results / "qc" / "qc_report.md").read_text()
    assert "## Predicted Dice model" in text and "## Predicted vs true Dice" in text
    # the bar calibration picked (infer.qc.good_flag_rate) flags few good masks on the demo too (issue #35)
    summary = json.loads((results / "qc" / "qc_summary.json").read_text())
    model = json.loads((results / "models" / "qc_calibration.json").read_text())
    assert summary["flag_bar"] == {"min_predicted_dice": model["min_predicted_dice"], "good_flag_rate": 0.03}
    truth = summary["truth"]  # the tiny demo's one-epoch models may make no good mask at all
    assert truth["n_good"] == 0 or truth["good_flagged"] <= 0.10
    assert f"predicted Dice < {model['min_predicted_dice']:.3f}, picked to flag 3 %" in text
    assert cv2.imread(str(results / "qc" / "predicted_vs_true_dice.png")) is not None
    assert cv2.imread(str(results / "models" / "qc_calibration.png")) is not None


@pytest.mark.integration
def test_qc_and_view_check_changes_rerun_only_what_depends_on_them(demo_run, tmp_path):
    qc = dry_run_with(demo_run, tmp_path, {"infer": {"qc": {"min_predicted_dice": 0.8}}})
    assert "calibrate_qc" in qc and qc.get("infer_shard") == 10 and "qc_report" in qc
    assert "train" not in qc and "train_view_check" not in qc and "select_model" not in qc
    view = dry_run_with(demo_run, tmp_path, {"view_check": {"threshold": 0.6}})
    assert "train_view_check" in view and view.get("infer_shard") == 10
    assert "train" not in view and "calibrate_qc" not in view
    ensemble = dry_run_with(demo_run, tmp_path, {"infer": {"ensemble": 3}})  # config.yaml has 2
    assert "calibrate_qc" in ensemble and ensemble.get("infer_shard") == 10 and "train" not in ensemble


def review_cards(page) -> list[str]:
    return page.locator("#grid .card").evaluate_all("cards => cards.map(c => c.dataset.id)")


def wait_for_view(page, view: str) -> None:
    page.wait_for_function(f"document.querySelector('#grid').dataset.view === '{view}'")


@pytest.mark.integration
@pytest.mark.skipif(chromium_path() is None, reason="Debian chromium is not installed")
def test_review_page_decisions_reach_the_qc_table_without_rerunning_inference(demo_run, tmp_path):
    """The demo's review page in headless Chromium: worst first, thumbnails, filters and pages, no console error; a
    decision clicked there comes out in the exported CSV, and that CSV as tables.review_file changes CXLSeg-qc.csv.gz
    on a rerun that runs neither inference nor the merge (the four tables stay as published)."""
    from cxlseg.reporting.review_page import ReviewFiles, build_review_page, worst_first

    results = demo_run / "results"
    qc = pd.read_csv(results / "CXLSeg" / "CXLSeg-qc.csv.gz", dtype={"dicom_id": str}, keep_default_na=False)
    qc["qc_predicted_dice"] = pd.to_numeric(qc["qc_predicted_dice"])
    order = worst_first(qc)["dicom_id"].tolist()
    not_frontal = set(qc.loc[qc["qc_flags"].str.contains("not_frontal"), "dicom_id"])
    assert not_frontal and len(order) > 10 and len(order) > len(not_frontal)
    # the same data in pages of 5, beside the run's page, to page through the demo's few masks
    paged = tmp_path / "paged"
    paged.mkdir()
    (paged / "thumbs").symlink_to(results / "review" / "thumbs")
    build_review_page(
        results / "CXLSeg" / "CXLSeg-qc.csv.gz",
        results / "CXLSeg" / "CXLSeg-split.csv.gz",
        ReviewFiles(paged / "index.html", paged / "data", paged / "thumbs"),
        min_predicted_dice=0.9,
        demo=True,
        page_size=5,
    )
    with chromium_page() as page:
        page.goto((paged / "index.html").as_uri())
        wait_for_view(page, "all.all/1")
        assert review_cards(page) == order[:5]
        page.click("#next")
        wait_for_view(page, "all.all/2")
        assert review_cards(page) == order[5:10]
        assert page.locator("#range").inner_text() == f"masks 6–10 of {len(order)}"

        page.goto((results / "review" / "index.html").as_uri())
        wait_for_view(page, "all.all/1")
        assert review_cards(page) == order[:60]
        assert page.locator("#banner").is_visible()  # a demo run says so
        first = page.locator(".card img").first
        first.scroll_into_view_if_needed()
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=first.element_handle())
        page.select_option("#flag", "not_frontal")
        wait_for_view(page, "all.not_frontal/1")
        assert review_cards(page) == [d for d in order if d in not_frontal]
        shard = qc.loc[qc["dicom_id"].isin(not_frontal), "shard"].iloc[0]
        page.select_option("#shard", shard)
        wait_for_view(page, f"{shard}.not_frontal/1")
        assert set(review_cards(page)) == not_frontal & set(qc.loc[qc["shard"] == shard, "dicom_id"])
        page.select_option("#flag", "all")
        page.select_option("#shard", "all")
        wait_for_view(page, "all.all/1")

        worst, second = order[0], order[1]
        page.locator(f'.card[data-id="{worst}"] button.reject').click()
        page.locator(f'.card[data-id="{worst}"] input.note').fill("mask misses the lungs")
        page.locator(f'.card[data-id="{worst}"] input.note').press("Tab")
        page.locator(f'.card[data-id="{second}"] button.accept').click()
        with page.expect_download() as download:
            page.click("#export")
        decisions = tmp_path / "decisions.csv"
        download.value.save_as(decisions)
        assert page.errors == []
    exported = pd.read_csv(decisions, dtype=str, keep_default_na=False)
    assert list(exported.columns) == ["dicom_id", "decision", "note"]
    assert exported["dicom_id"].tolist() == sorted([worst, second])
    assert exported.set_index("dicom_id").to_dict("index") == {
        worst: {"decision": "rejected", "note": "mask misses the lungs"},
        second: {"decision": "accepted", "note": ""},
    }

    # fed back: a copy of the finished run, so the other tests keep theirs (checkpoints and the archive, only read
    # here, as hard links: 400 MB less to copy)
    run = tmp_path / "run"

    def link_inputs(src, dst):
        shared = Path(src).relative_to(demo_run).parts[:2] in {("results", "models"), ("resources", "demo")}
        return os.link(src, dst) if shared else shutil.copy2(src, dst)

    shutil.copytree(demo_run, run, symlinks=True, copy_function=link_inputs)
    change = {"tables": {"review_file": str(decisions)}}
    jobs = dry_run_with(run, tmp_path, change)
    assert "quality_table" in jobs and "review_page" in jobs
    for rule in ("infer_shard", "merge_tables", "classify", "train", "calibrate_qc"):
        assert rule not in jobs, jobs
    tables_before = {p.name: p.read_bytes() for p in (run / "results" / "CXLSeg").glob("CXLSeg-*.csv.gz")}
    snakemake(run, "--cores", "2", configs=[*CONFIGS, str(run / "tiny.yaml"), str(tmp_path / "change.yaml")])
    after = pd.read_csv(run / "results" / "CXLSeg" / "CXLSeg-qc.csv.gz", dtype={"dicom_id": str}, keep_default_na=False)
    after = after.set_index("dicom_id")
    assert (after.at[worst, "status"], after.at[worst, "review"]) == ("rejected", "rejected")
    assert after.at[worst, "review_note"] == "mask misses the lungs"
    assert (after.at[second, "status"], after.at[second, "review"]) == ("accepted", "accepted")
    assert (after.drop(index=[worst, second])["review"] == "").all()
    for name, data in tables_before.items():
        if name != "CXLSeg-qc.csv.gz":
            assert (run / "results" / "CXLSeg" / name).read_bytes() == data, name
    assert worst in (run / "results" / "review" / "data" / "run.js").read_text()  # the page shows it as decided

    # dropping rejected images changes the tables: then the merge (not inference) reruns too
    jobs = dry_run_with(run, tmp_path, {"tables": {"review_file": str(decisions), "drop_rejected": True}})
    assert "merge_tables" in jobs and "infer_shard" not in jobs

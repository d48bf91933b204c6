"""Which run the tables describe (cxlseg.tables.provenance): the config hash, the code identity, and check_run,
which `cxlseg check-run` and the run report use to tell when the files on disk no longer match the tables."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cxlseg
import pytest
from cxlseg.cli import main
from cxlseg.inference.manifest import partial_path, write_manifest
from cxlseg.io import write_json
from cxlseg.reporting.run_identity import identity_section
from cxlseg.tables import provenance

TABLES = ["CXLSeg-metadata.csv.gz", "CXLSeg-mask.csv.gz", "CXLSeg-failed.csv.gz"]
QC = "CXLSeg-qc.csv.gz"
OLD = 1_600_000_000  # seconds: files written before the tables


def _rows(shard: str, n: int, settings_id: str = "s1") -> list[dict]:
    rows = []
    for i in range(n):
        folder = f"files/{shard}/{shard}000001/s5000000{i}"
        rows.append(
            {
                "dicom_id": f"{shard}-{i}",
                "subject_id": f"{shard[1:]}000001",
                "study_id": f"5000000{i}",
                "image_path": f"{folder}/{shard}-{i}.jpg",
                "mask_path": f"{folder}/{shard}-{i}-mask.jpg",
                "status": "ok",
                "model_id": "unet-1",
                "settings_id": settings_id,
            }
        )
    return rows


def build_results(root: Path, shards=(("p10", 2), ("p11", 3))) -> Path:
    """A finished results folder as merge_tables leaves it: manifests, images, tables, then summary.json."""
    results = root / "results"
    manifests = []
    for shard, n in shards:
        rows = _rows(shard, n)
        manifests.append(results / provenance.MANIFESTS_DIR / f"{shard}.parquet")
        write_manifest(rows, manifests[-1])
        for row in rows:
            for rel in (row["image_path"], row["mask_path"]):
                path = results / "CXLSeg" / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"jpeg")
                os.utime(path, (OLD, OLD))
    tables = []
    for name in TABLES:
        tables.append(results / "CXLSeg" / name)
        tables[-1].write_bytes(name.encode())
    run = {"config_hash": "c0ffee", "code": {"version": "0.1.0", "git_commit": None, "fingerprint": "f"}}
    record = provenance.provenance(run, manifests, tables)
    (results / "CXLSeg" / QC).write_bytes(b"quality")
    (root / "review.csv").write_text("dicom_id,decision\np10-0,rejected\n")
    record["quality"] = provenance.quality_record(results / "CXLSeg" / QC, root / "review.csv")
    write_json(results / "CXLSeg" / provenance.SUMMARY, {"provenance": record})
    return results


def problems(results) -> str:
    check = provenance.check_run(results)
    assert check.ok == (not check.problems)
    return "\n".join(check.problems)


def test_a_finished_run_matches(tmp_path):
    results = build_results(tmp_path)
    check = provenance.check_run(results)
    assert check.ok and check.images_checked == 10, check.problems
    assert check.identity["config_hash"] == "c0ffee" and set(check.identity["manifests"]) == {
        "p10.parquet",
        "p11.parquet",
    }
    assert check.message().startswith("OK:")


def test_a_rerun_cut_off_after_the_tables_is_caught(tmp_path):
    """What Snakemake leaves after a killed rerun of a shard: the manifest deleted, a partial one, new masks."""
    results = build_results(tmp_path)
    manifest = results / provenance.MANIFESTS_DIR / "p11.parquet"
    partial_path(manifest).parent.mkdir(parents=True, exist_ok=True)
    manifest.rename(partial_path(manifest))
    (results / "CXLSeg" / _rows("p11", 1)[0]["mask_path"]).write_bytes(b"new")
    found = problems(results)
    assert "p11.parquet is missing" in found
    assert "did not finish (its progress is in" in found and "progress/p11.parquet" in found
    assert "1 mask/segmented image file(s) were written after the tables" in found and "p11-0-mask.jpg" in found
    assert "p10" not in found
    message = provenance.check_run(results).message()
    assert message.startswith("MISMATCH") and "--unlock" in message and "same Snakemake command" in message
    assert "written after" not in problems_without_images(results)


def problems_without_images(results) -> str:
    return "\n".join(provenance.check_run(results, scan_images=False).problems)


def test_a_rewritten_manifest_or_table_is_caught(tmp_path):
    results = build_results(tmp_path)
    manifest = results / provenance.MANIFESTS_DIR / "p10.parquet"
    write_manifest(_rows("p10", 1), manifest)
    (results / "CXLSeg" / TABLES[1]).write_bytes(b"other")
    (results / "CXLSeg" / TABLES[2]).unlink()
    found = problems(results)
    assert "p10.parquet differs from the manifest the tables were built from" in found
    assert f"{TABLES[1]} differs from the table summary.json describes" in found
    assert f"{TABLES[2]} is missing" in found


def test_a_rewritten_quality_table_or_an_edited_review_file_is_caught(tmp_path, capsys):
    """The quality table is rebuilt on its own (a new review file): summary.json records it and the review file it
    applied, so check-run sees a quality table or a review file changed after the run."""
    results = build_results(tmp_path)
    (results / "CXLSeg" / QC).write_bytes(b"rebuilt by hand")
    assert (
        problems(results)
        == f"{results / 'CXLSeg' / QC} differs from the table summary.json describes (rewritten since)"
    )
    (results / "CXLSeg" / QC).write_bytes(b"quality")
    (tmp_path / "review.csv").write_text("dicom_id,decision\np10-0,accepted\n")
    assert main(["check-run", "--results", str(results), "--skip-images"]) == 1
    assert (
        f"{tmp_path / 'review.csv'} differs from the review file the quality table applied" in capsys.readouterr().err
    )
    (tmp_path / "review.csv").unlink()
    assert "review.csv, the review file the quality table applied, is missing" in problems(results)
    summary = results / "CXLSeg" / provenance.SUMMARY
    record = json.loads(summary.read_text())
    del record["provenance"]["quality"]
    write_json(summary, record)
    assert "does not record the quality table or the review file it applied" in problems(results)


def test_the_same_bytes_written_again_still_match(tmp_path):
    """A manifest rewritten with identical content (a deterministic rerun) is what the tables describe."""
    results = build_results(tmp_path)
    manifest = results / provenance.MANIFESTS_DIR / "p10.parquet"
    data = manifest.read_bytes()
    manifest.unlink()
    manifest.write_bytes(data)
    assert problems(results) == ""


def test_shards_of_different_versions_are_caught(tmp_path):
    """Each shard is made by one version (the settings id holds the code fingerprint), but shards rerun one by one
    after a code change would mix versions in one dataset."""
    results = build_results(tmp_path)
    manifests = results / provenance.MANIFESTS_DIR
    write_manifest(_rows("p11", 3, settings_id="s2"), manifests / "p11.parquet")
    record = json.loads((results / "CXLSeg" / provenance.SUMMARY).read_text())
    record["provenance"]["manifests"] = provenance.file_records(sorted(manifests.glob("*.parquet")), rows=True)
    write_json(results / "CXLSeg" / provenance.SUMMARY, record)
    found = problems(results)
    assert "made by 2 different models, settings or code versions" in found
    assert "p10 by unet-1 / settings s1" in found and "p11 by unet-1 / settings s2" in found


def test_no_summary_an_old_summary_or_an_unsafe_name(tmp_path):
    results = build_results(tmp_path)
    summary = results / "CXLSeg" / provenance.SUMMARY
    record = json.loads(summary.read_text())
    record["provenance"]["manifests"]["../../../etc/passwd"] = {"sha256": "x"}
    write_json(summary, record)
    assert "unsafe manifest path '../../../etc/passwd'" in problems(results)
    write_json(summary, {"rows": {"segmented": 5}})
    assert "does not record which manifests built the tables" in problems(results)
    summary.write_text("{not json")
    assert "is not readable JSON" in problems(results)
    summary.unlink()
    assert "summary.json is missing: the tables were never built" in problems(results)


def test_check_run_command_exit_status_and_message(tmp_path, capsys):
    results = build_results(tmp_path)
    assert main(["check-run", "--results", str(results)]) == 0
    assert "OK:" in capsys.readouterr().out
    (results / provenance.MANIFESTS_DIR / "p10.parquet").unlink()
    assert main(["check-run", "--results", str(results), "--skip-images"]) == 1
    err = capsys.readouterr().err
    assert "MISMATCH" in err and "p10.parquet is missing" in err


def test_report_section_shows_the_run_and_warns(tmp_path):
    results = build_results(tmp_path)
    section = identity_section(provenance.check_run(results))
    assert "Which run the tables describe" in section and "c0ffee" in section and "p11.parquet" in section
    assert "class='banner'" not in section
    manifest = results / provenance.MANIFESTS_DIR / "p10.parquet"
    partial_path(manifest).parent.mkdir(parents=True, exist_ok=True)
    manifest.rename(partial_path(manifest))
    warned = identity_section(provenance.check_run(results))
    assert "class='banner'" in warned and "p10.parquet is missing: its shard was rerun and did not finish" in warned


def test_config_hash_ignores_speed_and_place_not_outcome(make_config):
    base = provenance.config_hash(make_config())
    assert len(base) == 16
    faster = make_config(infer={"batch_size": 3, "num_workers": 5}, resources={"infer": {"cpus": 3}})
    assert provenance.config_hash(faster) == base
    assert provenance.config_hash(make_config(results="elsewhere")) == base
    assert provenance.config_hash(make_config(infer={"threshold": 0.4})) != base
    assert provenance.config_hash(make_config(seed=3)) != base


def test_git_commit_is_best_effort(tmp_path, monkeypatch):
    assert provenance.git_commit(tmp_path) == {"commit": None, "dirty": None}  # not a checkout
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert provenance.git_commit(repo) == {"commit": head, "dirty": False}
    (repo / "a.py").write_text("x = 2\n")
    assert provenance.git_commit(repo) == {"commit": head, "dirty": True}
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert provenance.git_commit(repo) == {"commit": None, "dirty": None}  # no git executable


@pytest.mark.parametrize("config", [None, {"seed": 1}])
def test_run_identity_names_config_and_code(config):
    identity = provenance.run_identity(config)
    assert (identity["config_hash"] is None) == (config is None)
    assert identity["code"]["version"] == cxlseg.__version__ and len(identity["code"]["fingerprint"]) == 16

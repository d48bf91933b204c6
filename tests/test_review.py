"""Reading a person's review decisions (cxlseg.tables.review): what is accepted, and every way a file is refused
with its line. Applying them to the tables is test_tables.py's; the review page test_review_page.py's."""

import subprocess

import pandas as pd
import pytest
from cxlseg.tables.review import ReviewFileError, read_decisions

MASKS = pd.Series(["d1", "d2", "d3"])


def decisions(tmp_path, text: str, encoding="utf-8") -> pd.DataFrame:
    path = tmp_path / "review.csv"
    path.write_bytes(text.encode(encoding))
    return read_decisions(path, MASKS, pd.Series(["d9"]))


def test_what_the_page_exports_and_what_a_spreadsheet_saves_read_the_same(tmp_path):
    page = decisions(tmp_path, 'dicom_id,decision,note\nd1,accepted,\nd2,rejected,"cuts the\nleft base, redo"\n')
    assert page.to_dict("records") == [
        {"dicom_id": "d1", "decision": "accepted", "note": ""},
        {"dicom_id": "d2", "decision": "rejected", "note": "cuts the\nleft base, redo"},
    ]
    sheet = decisions(tmp_path, "\ufeffDecision,DICOM_ID\r\n Accepted ,d1\r\n\r\nREJECTED,d3\r\n", encoding="utf-8")
    assert sheet.to_dict("records") == [
        {"dicom_id": "d1", "decision": "accepted", "note": ""},
        {"dicom_id": "d3", "decision": "rejected", "note": ""},
    ]
    assert decisions(tmp_path, "dicom_id,decision\n").empty  # a header and no decision: nothing to apply


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty review file"),
        ("id,decision\nd1,accepted\n", "review.csv:1: header lacks dicom_id"),
        ("dicom_id,decision,reviewer\nd1,accepted,me\n", "review.csv:1: unknown column(s) reviewer"),
        ("dicom_id,decision\nd1,accepted,extra\n", "review.csv:2: 3 fields, the header has 2"),
        ("dicom_id,decision,note\nd1,ok,\n", "review.csv:2: unknown decision 'ok' for 'd1'"),
        ("dicom_id,decision,note\nd1,,\n", "review.csv:2: unknown decision ''"),
        ('dicom_id,decision,note\nd1,rejected,"two\nlines"\nd4,rejected,\n', "review.csv:4: unknown dicom_id 'd4'"),
        ("dicom_id,decision\nd9,rejected\n", "its segmentation failed"),
        (
            "dicom_id,decision\nd2,accepted\nd3,accepted\nd2,accepted\n",
            "review.csv:4: dicom_id 'd2' already decided on line 2",
        ),
    ],
)
def test_a_decision_that_cannot_be_applied_is_refused_with_its_line(tmp_path, text, message):
    with pytest.raises(ReviewFileError) as err:
        decisions(tmp_path, text)
    assert message in str(err.value) and str(tmp_path / "review.csv") in str(err.value)


def test_an_unreadable_file_is_named(tmp_path):
    (tmp_path / "review.csv").write_bytes(b"dicom_id,decision\n\xff\xfe,accepted\n")
    with pytest.raises(ReviewFileError, match="review.csv: cannot read"):
        read_decisions(tmp_path / "review.csv", MASKS)
    with pytest.raises(ReviewFileError, match="cannot read"):
        read_decisions(tmp_path / "missing.csv", MASKS)


# ---------------------------------------------------------------- refused at DAG build, before any output is deleted

SHARDS = [f"p{n}" for n in range(10, 20)]  # config/demo.yaml's


def finished_run(workdir):
    """A results folder (demo layout) whose shards have finished: a manifest per shard, and a quality table."""
    from cxlseg.inference.manifest import write_manifest

    for shard in SHARDS:
        folder = f"files/{shard}/{shard}000001/s50000001"
        row = {
            "dicom_id": f"{shard}-0",
            "subject_id": f"{shard[1:]}000001",
            "study_id": "50000001",
            "image_path": f"{folder}/{shard}-0.jpg",
            "mask_path": f"{folder}/{shard}-0-mask.jpg",
            "status": "ok",
            "model_id": "unet-1",
            "settings_id": "s1",
        }
        write_manifest([row], workdir / "results" / "infer" / "manifests" / f"{shard}.parquet")
    qc = workdir / "results" / "CXLSeg" / "CXLSeg-qc.csv.gz"
    qc.parent.mkdir(parents=True, exist_ok=True)
    qc.write_bytes(b"the previous quality table")
    return qc


def build_dag(workdir, review, *args):
    import yaml
    from helpers.workflow import CONFIGS, snakemake_cmd, workflow_env

    (workdir / "review.yaml").write_text(yaml.safe_dump({"tables": {"review_file": str(review)}}))
    cmd = snakemake_cmd(workdir, *args, "results/CXLSeg/CXLSeg-qc.csv.gz", configs=[*CONFIGS, workdir / "review.yaml"])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=workflow_env())


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "dicom_id,decision\np10-0,accepted\nnope,rejected\n",
            "review.csv:3: unknown dicom_id 'nope' (not in this run)",
        ),
        (
            "dicom_id,decision\np10-0,accepted\np10-0,rejected\n",
            "review.csv:3: dicom_id 'p10-0' already decided on line 2",
        ),
        (
            "dicom_id,decision\np10-0,maybe\n",
            "review.csv:2: unknown decision 'maybe' for 'p10-0' (allowed: accepted, rejected)",
        ),
        ("id,decision\np10-0,accepted\n", "review.csv:1: header lacks dicom_id (found: id, decision)"),
    ],
)
def test_a_bad_review_file_stops_the_run_with_one_line_and_keeps_the_quality_table(tmp_path, text, message):
    qc = finished_run(tmp_path)
    review = tmp_path / "review.csv"
    review.write_text(text)
    proc = build_dag(tmp_path, review, "-c1", "--allowed-rules", "quality_table")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [f"tables.review_file refused: {tmp_path}/{message}"], proc.stderr
    assert qc.read_bytes() == b"the previous quality table"


def test_before_any_shard_finished_the_dag_build_checks_all_but_the_ids(tmp_path):
    review = tmp_path / "review.csv"
    review.write_text("dicom_id,decision\nnot-yet-segmented,accepted\n")
    assert build_dag(tmp_path, review, "-n").returncode == 0  # the rule itself checks the ids
    review.write_text("dicom_id,decision\nd1,accepted\nd1,accepted\n")
    proc = build_dag(tmp_path, review, "-n")
    assert proc.returncode != 0 and "review.csv:3: dicom_id 'd1' already decided on line 2" in proc.stderr


def test_reading_without_ids_checks_everything_else(tmp_path):
    path = tmp_path / "review.csv"
    path.write_text("dicom_id,decision\nanything,rejected\n")
    assert read_decisions(path, None).to_dict("records") == [
        {"dicom_id": "anything", "decision": "rejected", "note": ""}
    ]

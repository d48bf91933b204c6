"""The quality table CXLSeg-qc.csv.gz (rule quality_table, cxlseg.tables.quality): one row per mask with its
quality, models and review decision, summary.json completed with it, and the review file checked at DAG build. It
reads only the shard manifests (and the review file), so these tests need no MIMIC sources; how it sits beside the
four tables is test_tables.py's."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cxlseg.tables.provenance import file_sha256
from cxlseg.tables.quality import QC_COLUMNS, check_review_file, model_names, write_qc_table
from cxlseg.tables.review import ReviewFileError
from helpers.tables import QC_TABLE, archive_rows, tables_settings, write_decisions, write_manifest


@pytest.fixture
def manifests(tmp_path):
    """The two shards of test_tables.py's archive: d2 flagged, d3 turned upright, d5 failed, d8 an unsafe path."""
    rows_a, rows_b = archive_rows()
    return [
        write_manifest(tmp_path / "manifests/p10.parquet", rows_a),
        write_manifest(tmp_path / "manifests/p11.parquet", rows_b, flags_as_string=True),
    ]


def qc_of(tmp_path, manifests, review=None, name="qc", **settings) -> tuple[pd.DataFrame, dict]:
    """Rule quality_table's table (by dicom_id) and counts, with the tables settings `settings`."""
    out = tmp_path / name / QC_TABLE
    counts = write_qc_table(manifests, out, tables_settings(review_file=review, **settings), review_csv=review)
    return pd.read_csv(out, keep_default_na=False).set_index("dicom_id"), counts


def test_qc_table_lists_every_mask_with_its_quality(tmp_path, manifests):
    qc, counts = qc_of(tmp_path, manifests)
    assert list(qc.reset_index().columns) == QC_COLUMNS
    assert qc.index.tolist() == ["d1", "d2", "d3", "d4", "d6", "d7"]  # no failed (d5) or unsafe (d8) image
    assert qc.at["d2", "status"] == "flagged" and qc.at["d2", "qc_flags"] == "low_lung_area;one_component"
    assert (qc.drop(index="d2")["status"] == "ok").all() and qc["in_tables"].all()
    assert qc.at["d1", "shard"] == "p10" and qc.at["d4", "shard"] == "p11"
    assert qc["qc_predicted_dice"].tolist() == [0.9] * 6 and (qc["review"] == "").all()
    assert (qc["models"] == "unet").all()
    # the film check's undoings, False where a manifest predates the check (p11) or left the film as it was
    assert qc["film_inverted"].tolist() == [False, False, True, False, False, False] and not qc["film_cropped"].any()
    assert counts["flagged"] == 1 and counts["by_status"] == {"rejected": 0, "accepted": 0, "flagged": 1, "ok": 5}

    strict, _ = qc_of(tmp_path, manifests, name="strict", include_flagged=False)
    assert strict.at["d2", "status"] == "flagged" and not strict.at["d2", "in_tables"]


def test_model_names_drop_the_weight_digests():
    ids = pd.Series(["unetplusplus-0123abcd4567+sa_unet-89abcdef0123", "unet-a1b2c3d4e5f6", None, "my-net"])
    assert model_names(ids).tolist() == ["unetplusplus+sa_unet", "unet", "", "my-net"]


def test_review_decisions_reach_the_qc_table(tmp_path, manifests):
    review = write_decisions(
        tmp_path / "decisions.csv",
        'dicom_id,decision,note\nd2,accepted,"fine, QC was wrong"\nd4,rejected,clavicle in the mask\n',
    )
    qc, counts = qc_of(tmp_path, manifests, review)
    assert (qc.at["d2", "status"], qc.at["d2", "review"], qc.at["d2", "review_note"]) == (
        "accepted",
        "accepted",
        "fine, QC was wrong",
    )
    assert qc.at["d2", "qc_flags"] == "low_lung_area;one_component"  # QC's verdict stays visible
    assert (qc.at["d4", "status"], qc.at["d4", "review"]) == ("rejected", "rejected") and qc.at["d4", "in_tables"]
    assert counts["review"] == {"file": review, "accepted": 1, "rejected": 1, "rejected_in_tables": 1}

    dropped, counts = qc_of(tmp_path, manifests, review, name="dropped", drop_rejected=True)
    assert not dropped.at["d4", "in_tables"] and counts["review"]["rejected_in_tables"] == 0
    strict, _ = qc_of(tmp_path, manifests, review, name="strict", include_flagged=False)
    assert strict.at["d2", "in_tables"]  # accepted by a person: back in the tables


def test_the_quality_table_completes_summary_json_with_itself_and_the_review_file(tmp_path, manifests):
    """Rule quality_table writes summary.json: the merge's, plus the quality table's hash and the review file's."""
    review = write_decisions(tmp_path / "decisions.csv", "dicom_id,decision,note\nd4,rejected,\n")
    merged = tmp_path / "merge_summary.json"
    merged.write_text(json.dumps({"rows": {"segmented": 6}, "provenance": {"config_hash": "abc"}}))
    summary, table = tmp_path / "summary.json", tmp_path / QC_TABLE
    write_qc_table(
        manifests, table, tables_settings(review_file=review), merged=merged, summary=summary, review_csv=review
    )
    record = json.loads(summary.read_text())
    assert record["rows"] == {"segmented": 6} and record["quality"]["review"]["rejected"] == 1
    assert record["provenance"] == {
        "config_hash": "abc",
        "quality": {
            "table": {QC_TABLE: {"sha256": file_sha256(table), "bytes": table.stat().st_size}},
            "review_file": {"path": str(review), "sha256": file_sha256(review)},
        },
    }


def test_a_bad_review_file_is_refused_at_dag_build_against_the_manifests_on_disk(tmp_path, manifests):
    """check_review_file reads the file as the rule will: ids checked once every manifest is there, the rest always."""
    failed = write_decisions(tmp_path / "failed.csv", "dicom_id,decision\nd5,rejected\n")
    with pytest.raises(ReviewFileError, match=r"failed\.csv:2: unknown dicom_id 'd5' \(its segmentation failed"):
        check_review_file(failed, manifests)
    unsafe = write_decisions(tmp_path / "unsafe.csv", "dicom_id,decision\nd8,rejected\n")
    with pytest.raises(ReviewFileError, match=r"unsafe\.csv:2: unknown dicom_id 'd8'"):
        check_review_file(unsafe, manifests)
    check_review_file(write_decisions(tmp_path / "good.csv", "dicom_id,decision\nd2,accepted\n"), manifests)

    first_run = [*manifests, tmp_path / "manifests/p12.parquet"]  # a shard not yet segmented: ids unknown
    check_review_file(failed, first_run)
    maybe = write_decisions(tmp_path / "maybe.csv", "dicom_id,decision\nd1,maybe\n")
    with pytest.raises(ReviewFileError, match=r"maybe\.csv:2: unknown decision 'maybe'"):
        check_review_file(maybe, first_run)

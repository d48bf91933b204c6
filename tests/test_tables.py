"""The four CXLSeg tables, the failed table, review decisions applied, and the summary (merge_tables); the quality
table (CXLSeg-qc, rule quality_table) is test_quality.py's, the split functions test_splits.py's, the source
readers test_sources.py's, reading a decisions file test_review.py's."""

from __future__ import annotations

import gzip
import hashlib
import json

import cxlseg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cxlseg.config import ConfigError
from cxlseg.inference import manifest
from cxlseg.inference.manifest import read_manifests
from cxlseg.io import UnsafePathError, safe_join
from cxlseg.mimic import CHEXPERT_LABELS
from cxlseg.mimic import radiology_text as reports
from cxlseg.phantoms.mimic_archive import METADATA_COLUMNS  # the columns of MIMIC-CXR-JPG's metadata CSV
from cxlseg.tables import merge as tables
from cxlseg.tables.merge import merge_tables
from cxlseg.tables.quality import write_qc_table
from cxlseg.tables.settings import TablesSettings
from cxlseg.training.splits import split_by_image
from helpers.tables import (
    FAILED_TABLE,
    QC_TABLE,
    SUMMARY,
    TABLE_NAMES,
    archive_rows,
    image_row,
    table_files,
    tables_settings,
    write_decisions,
    write_manifest,
)

REPORT_FULL = " FINAL REPORT\n INDICATION:  Cough.\n \n FINDINGS:  Lungs clear.\n \n IMPRESSION:  Normal.\n"
REPORT_COMPARISON = " FINAL REPORT\n COMPARISON:  Stable since ___.\n"
REPORT_EMPTY = " FINAL REPORT\n Cancelled.\n"


def write_mimic(root, rows, reports_text, chexpert_rows, *, skip_metadata=()):
    """Metadata, CheXpert and report files for the images of `rows`."""
    meta = [
        {
            "dicom_id": r["dicom_id"],
            "subject_id": r["subject_id"],
            "study_id": r["study_id"],
            "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
            "ViewPosition": "PA",
            "Rows": 3056,
            "Columns": 2544,
            "StudyDate": "21800506",
            "StudyTime": "213014.531",
            "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
            "ViewCodeSequence_CodeMeaning": "postero-anterior",
            "PatientOrientationCodeSequence_CodeMeaning": "Erect",
        }
        for r in rows
        if r["dicom_id"] not in skip_metadata
    ]
    meta.append(
        {
            c: v
            for c, v in zip(
                METADATA_COLUMNS, ["lateral-only", 10000032, 50000001, "", "LL", 1, 1, "1", "1", "", "", ""]
            )
        }
    )
    pd.DataFrame(meta, columns=METADATA_COLUMNS).to_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    pd.DataFrame(chexpert_rows, columns=["subject_id", "study_id", *CHEXPERT_LABELS]).to_csv(
        root / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False
    )
    for (subject, study), text in reports_text.items():
        path = root / "reports" / f"files/p{str(subject)[:2]}/p{subject}/s{study}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def archive(tmp_path):
    """Three subjects in three pXX prefixes; one failed, one flagged, one unsafe, one study without a report file."""
    rows_a, rows_b = archive_rows()
    manifests = [
        write_manifest(tmp_path / "manifests/p10.parquet", rows_a),
        write_manifest(tmp_path / "manifests/p11.parquet", rows_b, flags_as_string=True),
    ]
    reports_text = {
        (10000032, 50414267): REPORT_FULL,
        (10000032, 53189527): REPORT_COMPARISON,
        (11000011, 51000001): REPORT_FULL,
        (12000022, 52000002): REPORT_EMPTY,
    }
    labels = np.full((4, 14), np.nan)
    labels[0, :3] = [1.0, 0.0, -1.0]
    labels[1, 8] = 1.0
    chexpert = [
        [10000032, 50414267, *labels[0]],
        [10000032, 53189527, *labels[1]],
        [11000011, 51000001, *labels[2]],
        [12000022, 52000003, *labels[3]],
    ]
    write_mimic(tmp_path, rows_a + rows_b, reports_text, chexpert)
    return tmp_path, manifests


SETTING_KEYS = {
    "split_source",
    "split_unit",
    "train",
    "validate",
    "test",
    "include_flagged",
    "seed",
    "cxlseg_split",
    "cxlseg_split_missing",
    "report_text",
    "review_file",
    "drop_rejected",
}


def run_merge(tmp_path, manifests, out="out", **kw):
    kw.setdefault("progress", False)
    settings = tables_settings(**{k: kw.pop(k) for k in list(kw) if k in SETTING_KEYS})
    # the files the rule declares as inputs when the config names them
    kw.setdefault("review_csv", settings.review_file)
    kw.setdefault("cxlseg_split_csv", settings.cxlseg_split)
    summary = merge_tables(
        manifests,
        tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz",
        tmp_path / "mimic-cxr-2.0.0-chexpert.csv.gz",
        tmp_path / "reports",
        table_files(tmp_path / out),
        settings,
        **kw,
    )
    summary["qc"] = write_qc_table(
        manifests, tmp_path / out / QC_TABLE, settings, review_csv=kw["review_csv"]
    )  # its own rule
    return summary, {k: pd.read_csv(tmp_path / out / name) for k, name in TABLE_NAMES.items()}


def test_tables_columns_rows_and_dtypes(archive):
    tmp_path, manifests = archive
    summary, t = run_merge(tmp_path, manifests)
    ok = ["d1", "d2", "d3", "d4", "d6", "d7"]
    for name, frame in t.items():
        assert frame["dicom_id"].tolist() == ok, name
        assert frame["subject_id"].dtype == np.int64 and frame["study_id"].dtype == np.int64
    assert list(t["metadata"].columns[:8]) == [
        "dicom_id",
        "subject_id",
        "study_id",
        "Reports",
        "PatientOrientation",
        "ViewPosition",
        "StudyDate",
        "StudyTime",
    ]
    assert set(METADATA_COLUMNS) <= set(t["metadata"].columns) and t["metadata"].columns[-1] == "ReportRule"
    assert list(t["segmented"].columns) == ["dicom_id", "subject_id", "study_id", "DicomPath", *CHEXPERT_LABELS]
    assert all(t["segmented"][c].dtype == np.float64 for c in CHEXPERT_LABELS)
    assert list(t["split"].columns) == ["dicom_id", "subject_id", "study_id", "split"]
    assert list(t["mask"].columns) == ["dicom_id", "subject_id", "study_id", "DicomPath"]
    assert t["segmented"]["DicomPath"][0] == "files/p10/p10000032/s50414267/d1.jpg"
    assert t["mask"]["DicomPath"][0] == "files/p10/p10000032/s50414267/d1-mask.jpg"
    assert summary["rows"] == {"metadata": 6, "segmented": 6, "split": 6, "mask": 6}


def test_metadata_values_pass_through_as_text(archive):
    tmp_path, manifests = archive
    run_merge(tmp_path, manifests)
    meta = pd.read_csv(tmp_path / "out" / "CXLSeg-metadata.csv.gz", dtype=str, keep_default_na=False)
    row = meta.iloc[0]
    assert (row["StudyDate"], row["StudyTime"], row["ViewPosition"], row["PatientOrientation"]) == (
        "21800506",
        "213014.531",
        "PA",
        "Erect",
    )
    assert row["Reports"] == "Lungs clear. Normal." and row["ReportRule"] == "findings+impression"
    by_id = meta.set_index("dicom_id")
    assert (by_id.at["d3", "Reports"], by_id.at["d3", "ReportRule"]) == ("Stable since ___.", "comparison")
    assert (by_id.at["d6", "Reports"], by_id.at["d6", "ReportRule"]) == ("", "none")
    assert (by_id.at["d7", "Reports"], by_id.at["d7", "ReportRule"]) == ("", reports.NO_REPORT_FILE)


def test_chexpert_values_and_blanks_kept_as_in_source(archive):
    tmp_path, manifests = archive
    run_merge(tmp_path, manifests)
    with gzip.open(tmp_path / "out" / "CXLSeg-segmented.csv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[1] == "d1,10000032,50414267,files/p10/p10000032/s50414267/d1.jpg,1.0,0.0,-1.0" + "," * 11
    # study 52000002 has no CheXpert row at all: every label blank, never 0
    d6 = next(line for line in lines if line.startswith("d6,"))
    assert d6.endswith("," * 14)


def test_failed_and_unsafe_images_only_in_failed_table(archive):
    tmp_path, manifests = archive
    summary, t = run_merge(tmp_path, manifests)
    failed = pd.read_csv(tmp_path / "out" / FAILED_TABLE, keep_default_na=False)
    assert list(failed.columns) == tables.FAILED_COLUMNS
    rejected = failed[failed["status"] == "failed"].set_index("dicom_id")
    assert set(rejected.index) == {"d5", "d8"}
    assert "truncated JPEG" in rejected.at["d5", "reason"]
    assert rejected.at["d8", "reason"].startswith("unsafe image_path") and "'..'" in rejected.at["d8", "reason"]
    for frame in t.values():
        assert not frame["dicom_id"].isin(["d5", "d8"]).any()
    assert summary["failed"] == 2 and summary["images_ok"] == 6
    # grouped by the failure's own reason, not one "segmentation failed" bucket
    assert summary["failed_by_reason"] == {"truncated JPEG (no end-of-image marker)": 1, "unsafe image_path": 1}


def read_qc(tmp_path, out="out") -> pd.DataFrame:
    return pd.read_csv(tmp_path / out / QC_TABLE, keep_default_na=False).set_index("dicom_id")


def test_the_qc_table_lists_the_masked_images_and_joins_the_four_tables(archive):
    """Run as the two rules run: the quality table has a row per image of the four tables, joined on the ids (its
    own columns are test_quality.py's)."""
    tmp_path, manifests = archive
    summary, t = run_merge(tmp_path, manifests)
    qc = read_qc(tmp_path)
    assert qc.index.tolist() == t["segmented"]["dicom_id"].tolist() == ["d1", "d2", "d3", "d4", "d6", "d7"]
    assert len(pd.merge(t["segmented"], qc.reset_index(), on=["dicom_id", "subject_id", "study_id"])) == 6
    failed = pd.read_csv(tmp_path / "out" / FAILED_TABLE, keep_default_na=False)
    assert set(failed["status"]) == {"failed"} and "d2" not in failed["dicom_id"].tolist()  # failures only
    assert summary["flagged"] == summary["qc"]["flagged"] == 1

    summary, t = run_merge(tmp_path, manifests, out="strict", include_flagged=False)
    assert "d2" not in t["segmented"]["dicom_id"].tolist()
    assert summary["rows"]["segmented"] == 5


def test_review_decisions_leave_the_tables_as_published_unless_they_drop_rejected(archive):
    tmp_path, manifests = archive
    run_merge(tmp_path, manifests, out="plain")
    review = write_decisions(
        tmp_path / "decisions.csv",
        'dicom_id,decision,note\nd2,accepted,"fine, QC was wrong"\nd4,rejected,clavicle in the mask\n',
    )
    summary, t = run_merge(tmp_path, manifests, review_file=review)
    for name in TABLE_NAMES.values():  # without drop_rejected the four tables are byte for byte as before
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name

    summary, t = run_merge(tmp_path, manifests, out="dropped", review_file=review, drop_rejected=True)
    assert "d4" not in t["segmented"]["dicom_id"].tolist() and summary["rows"]["segmented"] == 5
    assert not read_qc(tmp_path, "dropped").at["d4", "in_tables"]
    # a flagged image a person accepted stays in the tables even when flagged ones are dropped
    summary, t = run_merge(tmp_path, manifests, out="strict", review_file=review, include_flagged=False)
    assert "d2" in t["segmented"]["dicom_id"].tolist()


def test_the_merge_reads_the_review_and_split_files_it_is_handed(archive):
    """The rule declares the review file and the published split as inputs, and those are the files read: the
    settings only say what to do with them (the path in them here names no file at all)."""
    tmp_path, manifests = archive
    review = write_decisions(tmp_path / "decisions.csv", "dicom_id,decision,note\nd4,rejected,clavicle\n")
    split = _published_split(tmp_path / "published.csv.gz", [(d, "test") for d in ("d1", "d2", "d3", "d6", "d7")])
    nowhere = str(tmp_path / "no-such-file.csv")
    summary, t = run_merge(
        tmp_path,
        manifests,
        review_file=nowhere,
        drop_rejected=True,
        review_csv=review,
        split_source="cxlseg",
        cxlseg_split=nowhere,
        cxlseg_split_csv=split,
    )
    assert "d4" not in t["segmented"]["dicom_id"].tolist() and read_qc(tmp_path).at["d4", "review"] == "rejected"
    assert set(t["split"]["split"]) == {"test"} and summary["split"]["cxlseg_split"] == str(split)


@pytest.mark.parametrize(
    "body, message",
    [
        ("d1,accepted,\nnope,rejected,\n", "decisions.csv:3: unknown dicom_id 'nope' (not in this run)"),
        ("d5,rejected,\n", "decisions.csv:2: unknown dicom_id 'd5' (its segmentation failed"),
        ("d1,accepted,\n\nd3,maybe,\n", "decisions.csv:4: unknown decision 'maybe'"),
        ("d1,accepted,\nd1,rejected,\n", "decisions.csv:3: dicom_id 'd1' already decided on line 2"),
    ],
)
def test_a_review_file_that_cannot_be_applied_stops_the_merge(archive, body, message):
    tmp_path, manifests = archive
    review = write_decisions(tmp_path / "decisions.csv", "dicom_id,decision,note\n" + body)
    with pytest.raises(ValueError) as err:
        run_merge(tmp_path, manifests, review_file=review)
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing half-applied


def test_qc_flags_as_list_or_string_give_same_tables(tmp_path):
    rows = [image_row(10000032, 50414267, "d1", flags=["a", "b"]), image_row(10000032, 50414267, "d2")]
    as_list = write_manifest(tmp_path / "list/p10.parquet", rows)
    as_text = write_manifest(tmp_path / "text/p10.parquet", rows, flags_as_string=True)
    write_mimic(tmp_path, rows, {(10000032, 50414267): REPORT_FULL}, [])
    run_merge(tmp_path, [as_list], out="a")
    run_merge(tmp_path, [as_text], out="b")
    for name in [FAILED_TABLE, QC_TABLE, *TABLE_NAMES.values()]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_authors_scripts_expectations(archive):
    """segmentation/, classification/ and report generation/split.py of the CXLSeg repository."""
    tmp_path, manifests = archive
    _, t = run_merge(tmp_path, manifests)
    mask = t["mask"].rename(columns={"DicomPath": "DicomPathMask"})
    merged = pd.merge(pd.merge(t["segmented"], t["split"]), mask)
    assert len(merged) == len(t["segmented"]) and merged["dicom_id"].is_unique
    assert set(merged["split"]) <= {"train", "validate", "test"}
    assert merged["DicomPathMask"].str.endswith("-mask.jpg").all()
    features = merged[merged.columns[~merged.columns.isin(["dicom_id", "subject_id", "study_id", "split"])]]
    assert list(features.columns) == ["DicomPath", *CHEXPERT_LABELS, "DicomPathMask"]
    with_reports = pd.merge(pd.merge(t["segmented"], t["split"]), t["metadata"])
    assert len(with_reports) == len(t["segmented"]) and "Reports" in with_reports


def test_reports_parsed_once_per_study(archive, monkeypatch):
    tmp_path, manifests = archive
    calls = []
    original = reports.extract_report
    monkeypatch.setattr(
        reports,
        "extract_report",
        lambda text, study_id=None, fallbacks="project": calls.append(study_id) or original(text, study_id, fallbacks),
    )
    summary, _ = run_merge(tmp_path, manifests, report_workers=1)
    assert len(calls) == 4  # 5 studies, one without a report file
    assert sorted(calls) == ["s50414267", "s51000001", "s52000002", "s53189527"]  # MIT-LCP rules need the id
    assert summary["studies"] == 5
    assert summary["reports_by_rule"] == {"comparison": 1, "findings+impression": 2, "no_file": 1, "none": 1}
    assert summary["studies_without_report"] == [
        {"subject_id": 12000022, "study_id": 52000002, "reason": "no extractable section"},
        {"subject_id": 12000022, "study_id": 52000003, "reason": "no report file"},
    ]


def test_summary_json_and_reproducible_bytes(archive):
    tmp_path, manifests = archive
    summary, _ = run_merge(tmp_path, manifests, out="one")
    run_merge(tmp_path, list(reversed(manifests)), out="two", report_workers=1)
    for name in [FAILED_TABLE, QC_TABLE, SUMMARY, *TABLE_NAMES.values()]:
        if name != SUMMARY:
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    on_disk = json.loads((tmp_path / "one" / SUMMARY).read_text())
    assert on_disk["rows"] == summary["rows"] and on_disk["flagged"] == 1 and on_disk["failed"] == 2
    assert on_disk["studies_without_chexpert"] == 1


def test_summary_records_the_run_and_a_hash_of_every_manifest_and_table(archive):
    tmp_path, manifests = archive
    run = {"config_hash": "0123456789abcdef", "code": {"version": "9.9", "git_commit": None}}
    run_merge(tmp_path, manifests, run=run)
    record = json.loads((tmp_path / "out" / SUMMARY).read_text())["provenance"]
    assert record["config_hash"] == run["config_hash"] and record["code"] == run["code"]
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert record["manifests"] == {
        p.name: {"sha256": sha(p), "bytes": p.stat().st_size, "rows": pq.read_metadata(p).num_rows} for p in manifests
    }
    written = [FAILED_TABLE, *TABLE_NAMES.values()]
    assert {k: v["sha256"] for k, v in record["tables"].items()} == {n: sha(tmp_path / "out" / n) for n in written}
    run_merge(tmp_path, manifests, out="plain")  # no run given: the code is still recorded, the config hash not
    plain = json.loads((tmp_path / "plain" / SUMMARY).read_text())["provenance"]
    assert plain["config_hash"] is None and plain["code"]["version"] == cxlseg.__version__
    assert len(plain["code"]["fingerprint"]) == 16


def test_duplicate_rows_across_manifests_keep_the_ok_one(tmp_path):
    rows = [image_row(10000032, 50414267, "d1", status="failed", error="oom")]
    again = [image_row(10000032, 50414267, "d1")]
    manifests = [write_manifest(tmp_path / "m/a.parquet", rows), write_manifest(tmp_path / "m/b.parquet", again)]
    write_mimic(tmp_path, again, {(10000032, 50414267): REPORT_FULL}, [])
    summary, t = run_merge(tmp_path, manifests)
    assert t["segmented"]["dicom_id"].tolist() == ["d1"]
    assert summary["duplicate_rows_dropped"] == 1 and summary["failed"] == 0


def test_missing_metadata_row_is_blank_and_counted(tmp_path):
    rows = [image_row(10000032, 50414267, "d1"), image_row(10000032, 50414267, "d2")]
    manifest = write_manifest(tmp_path / "m/a.parquet", rows)
    write_mimic(tmp_path, rows, {(10000032, 50414267): REPORT_FULL}, [], skip_metadata={"d2"})
    summary, t = run_merge(tmp_path, [manifest])
    assert summary["images_without_metadata"] == 1
    assert t["metadata"].set_index("dicom_id")["ViewPosition"].isna().tolist() == [False, True]


def test_invalid_ids_become_failed_rows(tmp_path):
    rows = [image_row(10000032, 50414267, "d1"), dict(image_row(10000032, 50414267, "d2"), subject_id="../p1")]
    frame = pd.DataFrame(rows).astype({"subject_id": str})
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    write_mimic(tmp_path, rows[:1], {(10000032, 50414267): REPORT_FULL}, [])
    summary, t = run_merge(tmp_path, [tmp_path / "a.parquet"])
    assert t["split"]["dicom_id"].tolist() == ["d1"]
    assert summary["failed_by_reason"] == {"invalid subject_id": 1}


def test_bad_inputs_name_the_file(tmp_path):
    bad = write_manifest(tmp_path / "bad.parquet", [{"dicom_id": "d1", "subject_id": 1}])
    with pytest.raises(ValueError, match=r"bad\.parquet.*image_path"):
        read_manifests([bad], normalised=True)
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="garbage.parquet"):
        read_manifests([tmp_path / "garbage.parquet"], normalised=True)


def test_unsafe_path_precheck_matches_safe_join():
    candidates = pd.Series(
        ["files/p10/a.jpg", "/abs.jpg", "~/x.jpg", "C:/x.jpg", "a/../b.jpg", "..", "a\\..\\b", " ", "a..b/c.jpg"]
    )
    flagged = manifest._unsafe_paths(pa.array(candidates.tolist())).to_pylist()
    for path, hit in zip(candidates, flagged):
        try:
            safe_join("/root", path)
            rejected = False
        except UnsafePathError:
            rejected = True
        assert hit == rejected, path


def test_empty_manifest_list_writes_empty_tables(tmp_path):
    write_mimic(tmp_path, [], {}, [])
    summary, t = run_merge(tmp_path, [])
    assert all(len(frame) == 0 for frame in t.values())
    assert list(t["split"].columns) == ["dicom_id", "subject_id", "study_id", "split"]
    assert summary["rows"]["metadata"] == 0


# ---------------------------------------------------------------- split


def large_manifest(tmp_path, n_rows=50_000, n_subjects=20_000, seed=0):
    """Realistic skew: most patients have one or two images, a few have dozens."""
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.5, n_subjects) + 1.0
    subject_of_row = np.sort(
        np.concatenate([np.arange(n_subjects), rng.choice(n_subjects, n_rows - n_subjects, p=weights / weights.sum())])
    )
    subjects = 10_000_000 + subject_of_row * 487
    studies = 50_000_000 + subject_of_row * 10 + rng.integers(0, 3, n_rows)
    dicoms = [f"{i:08x}-0000" for i in range(n_rows)]
    folders = [f"files/p{str(s)[:2]}/p{s}/s{t}/{d}" for s, t, d in zip(subjects, studies, dicoms)]
    frame = pd.DataFrame(
        {
            "dicom_id": dicoms,
            "subject_id": subjects,
            "study_id": studies,
            "image_path": [f + ".jpg" for f in folders],
            "mask_path": [f + "-mask.jpg" for f in folders],
            "status": "ok",
            "qc_flags": "",
            "error": "",
        }
    )
    path = tmp_path / "large.parquet"
    frame.to_parquet(path, index=False)
    return path, frame


def test_split_proportions_and_no_leakage_on_large_manifest(tmp_path):
    manifest, frame = large_manifest(tmp_path)
    pd.DataFrame(columns=METADATA_COLUMNS).to_csv(tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    pd.DataFrame(columns=["subject_id", "study_id", *CHEXPERT_LABELS]).to_csv(
        tmp_path / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False
    )
    summary, t = run_merge(tmp_path, [manifest], report_workers=4)
    split = t["split"]
    assert len(split) == 50_000 and set(split["split"]) == {"train", "validate", "test"}
    assert split.groupby("subject_id")["split"].nunique().max() == 1
    assert summary["split"]["subjects_on_several_sides"] == 0
    image_share = split["split"].value_counts(normalize=True)
    subject_share = split.drop_duplicates("subject_id")["split"].value_counts(normalize=True)
    for name, target in zip(["train", "validate", "test"], [0.8, 0.1, 0.1]):
        assert abs(image_share[name] - target) <= 0.01, (name, image_share[name])
        assert abs(subject_share[name] - target) <= 0.01, (name, subject_share[name])


# ---------------------------------------------------------------- split_unit


def test_merge_tables_passes_split_unit(archive):
    tmp_path, manifests = archive
    summary, t = run_merge(tmp_path, manifests, out="by_image", split_unit="image")
    assert summary["split"]["unit"] == "image"
    expected = split_by_image(t["split"]["dicom_id"], (0.8, 0.1, 0.1), seed=42)
    assert t["split"]["split"].tolist() == expected[t["split"]["dicom_id"]].tolist()


def test_official_split_followed_with_patient_fallback(archive):
    tmp_path, manifests = archive
    pd.DataFrame(
        {
            "dicom_id": ["d1", "d3", "d4", "d6"],
            "study_id": 0,
            "subject_id": 0,
            "split": ["test", "test", "validate", "train"],
        }
    ).to_csv(tmp_path / "split.csv.gz", index=False)
    summary, t = run_merge(tmp_path, manifests, split_source="official", official_split_csv=tmp_path / "split.csv.gz")
    split = t["split"].set_index("dicom_id")["split"].to_dict()
    # d2 is missing from the official file and follows its patient (d1, d3); d7 follows d6
    assert split == {"d1": "test", "d2": "test", "d3": "test", "d4": "validate", "d6": "train", "d7": "train"}
    assert summary["split"]["images_not_in_official_split"] == 2 and summary["split"]["source"] == "official"


def test_official_split_needs_its_file_and_known_values(archive):
    tmp_path, manifests = archive
    with pytest.raises(ValueError, match="official_split_csv"):
        run_merge(tmp_path, manifests, split_source="official")
    with pytest.raises(ValueError, match="split_source"):
        run_merge(tmp_path, manifests, split_source="by_study")
    pd.DataFrame({"dicom_id": ["d1"], "split": ["val"]}).to_csv(tmp_path / "split.csv", index=False)
    with pytest.raises(ValueError, match=r"split\.csv.*'val'"):
        run_merge(tmp_path, manifests, split_source="official", official_split_csv=tmp_path / "split.csv")


def _published_split(path, rows):
    frame = pd.DataFrame(rows, columns=["dicom_id", "split"]).assign(subject_id=0, study_id=0)
    frame[["subject_id", "study_id", "dicom_id", "split"]].to_csv(path, index=False)
    return path


PUBLISHED = [("d1", "test"), ("d2", "validate"), ("d3", "train"), ("d4", "validate"), ("d5", "train"), ("z9", "test")]


def test_cxlseg_split_copies_the_published_membership_and_reports_the_rest(archive, caplog):
    """Membership copied image by image (d2 validate although its patient's other images are test); d6, d7 are
    not listed and get no split row (default 'omit'); d5 (failed here) and z9 are listed but not in the tables."""
    tmp_path, manifests = archive
    path = _published_split(tmp_path / "CXLSeg-split.csv.gz", PUBLISHED)
    with caplog.at_level("WARNING"):
        summary, t = run_merge(tmp_path, manifests, out="cx", split_source="cxlseg", cxlseg_split=str(path))
    assert t["split"].set_index("dicom_id")["split"].to_dict() == {
        "d1": "test",
        "d2": "validate",
        "d3": "train",
        "d4": "validate",
    }
    assert {"d6", "d7"} <= set(t["segmented"]["dicom_id"])  # still segmented and tabled, only without a split
    info = summary["split"]
    assert (info["source"], info["unit"], info["missing_policy"]) == ("cxlseg", "image", "omit")
    assert info["selected_not_in_cxlseg_split"] == 2 and info["examples_selected_not_in_cxlseg_split"] == ["d6", "d7"]
    assert info["cxlseg_split_not_selected"] == 2 and info["examples_cxlseg_split_not_selected"] == ["d5", "z9"]
    assert info["images_without_split"] == 2 and info["assigned_outside_cxlseg_split"] == 0
    assert summary["rows"]["split"] == 4 and summary["rows"]["segmented"] == 6
    assert "2 selected image(s) are not in the published split" in caplog.text
    assert "2 listed image(s) were not selected" in caplog.text


def test_cxlseg_split_random_policy_assigns_the_unlisted_and_counts_them(archive):
    tmp_path, manifests = archive
    path = _published_split(tmp_path / "CXLSeg-split.csv.gz", PUBLISHED)
    summary, t = run_merge(
        tmp_path,
        manifests,
        out="cx_random",
        split_source="cxlseg",
        cxlseg_split=str(path),
        cxlseg_split_missing="random",
        split_unit="image",
    )
    split = t["split"].set_index("dicom_id")["split"].to_dict()
    assert {k: split[k] for k in ("d1", "d2", "d3", "d4")} == dict(PUBLISHED[:4])
    assert set(split) == {"d1", "d2", "d3", "d4", "d6", "d7"}
    assert summary["split"]["assigned_outside_cxlseg_split"] == 2 and summary["split"]["images_without_split"] == 0


def test_cxlseg_split_needs_its_file_and_one_split_per_image(archive, make_config):
    tmp_path, manifests = archive
    with pytest.raises(ValueError, match="tables.cxlseg_split"):
        run_merge(tmp_path, manifests, split_source="cxlseg")
    with pytest.raises(ConfigError, match="tables.cxlseg_split"):
        make_config(tables={"split_source": "cxlseg"})
    twice = _published_split(tmp_path / "twice.csv", [("d1", "test"), ("d1", "train")])
    with pytest.raises(ValueError, match=r"twice\.csv: dicom_id d1 is listed in two splits"):
        run_merge(tmp_path, manifests, split_source="cxlseg", cxlseg_split=str(twice))


def test_unreadable_report_file_is_recorded_not_fatal(archive):
    tmp_path, manifests = archive
    (tmp_path / "reports/files/p12/p12000022/s52000003.txt").mkdir(parents=True)  # a folder where the file should be
    summary, t = run_merge(tmp_path, manifests)
    rules = t["metadata"].set_index("dicom_id")["ReportRule"]
    assert rules["d7"] == reports.UNREADABLE_REPORT
    assert {"subject_id": 12000022, "study_id": 52000003, "reason": "report file unreadable"} in summary[
        "studies_without_report"
    ]


def test_manifest_with_string_ids_and_null_paths_as_infer_writes_them(tmp_path):
    rows = [image_row(10000032, 50414267, "d1"), image_row(10000032, 50414267, "d2", status="failed", error="corrupt")]
    frame = pd.DataFrame(rows)
    frame["qc_flags"] = frame["qc_flags"].map(";".join)
    frame.loc[1, ["image_path", "mask_path"]] = None
    frame = frame.astype(
        {
            c: "string"
            for c in ["dicom_id", "subject_id", "study_id", "image_path", "mask_path", "qc_flags", "status", "error"]
        }
    )
    frame.to_parquet(tmp_path / "p10.parquet", index=False)
    write_mimic(tmp_path, rows, {(10000032, 50414267): REPORT_FULL}, [])
    summary, t = run_merge(tmp_path, [tmp_path / "p10.parquet"])
    assert t["mask"]["dicom_id"].tolist() == ["d1"] and t["mask"]["subject_id"].dtype == np.int64
    assert summary["failed_by_reason"] == {"corrupt": 1}


def test_failures_are_grouped_by_their_own_reason(tmp_path):
    rows = [
        image_row(10000032, 50414267, "d1"),
        image_row(10000032, 50414267, "d2", status="failed", error="file not found: files/p10/x/d2.jpg"),
        image_row(10000032, 50414267, "d3", status="failed", error="file not found: files/p10/x/d3.jpg"),
        image_row(10000032, 50414267, "d4", status="failed", error="writing outputs failed: disk full"),
        image_row(10000032, 50414267, "d5", status="failed"),
    ]
    manifest = write_manifest(tmp_path / "m/a.parquet", rows)
    write_mimic(tmp_path, rows, {(10000032, 50414267): REPORT_FULL}, [])
    summary, _ = run_merge(tmp_path, [manifest])
    assert summary["failed_by_reason"] == {"file not found": 2, "no error recorded": 1, "writing outputs failed": 1}
    failed = pd.read_csv(tmp_path / "out" / FAILED_TABLE, keep_default_na=False).set_index("dicom_id")
    assert failed.at["d2", "reason"] == "segmentation failed: file not found: files/p10/x/d2.jpg"  # full text kept


def test_report_text_mode_reaches_the_extraction(archive, monkeypatch, make_config):
    """mimic.report_text (TablesSettings.report_text) is what every study's report is extracted with."""
    tmp_path, manifests = archive
    modes = []
    original = reports.extract_report
    monkeypatch.setattr(
        reports,
        "extract_report",
        lambda text, study_id=None, fallbacks="project": modes.append(fallbacks) or original(text, study_id, fallbacks),
    )
    run_merge(tmp_path, manifests, out="paper_text", report_text="paper", report_workers=1)
    assert modes and set(modes) == {"paper"}
    assert TablesSettings.from_config(make_config(mimic={"report_text": "paper"})).report_text == "paper"


def test_settings_from_the_tables_section(make_config):
    settings = TablesSettings.from_config(make_config(seed=3, tables={"split_unit": "image", "include_flagged": False}))
    assert settings.ratios == (0.8, 0.1, 0.1) and settings.seed == 3
    assert settings.split_unit == "image" and settings.include_flagged is False and settings.split_source == "random"

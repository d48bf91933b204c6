"""Which MIMIC-CXR-JPG images are segmented, and in which shard (cxlseg.inference.select_images, no torch)."""

import dataclasses
import gzip

import pandas as pd
import pytest
from cxlseg import io
from cxlseg.config import ConfigError
from cxlseg.inference.select_images import (
    DROP_CAUSES,
    EMPTY_REPORT,
    NO_REPORT_FILE,
    UNREADABLE_REPORT,
    SelectionSettings,
    select_images,
    study_report_status,
    write_selection,
)
from cxlseg.mimic import report_relpath

REPORT = " FINAL REPORT\n FINDINGS:  Lungs clear.\n \n IMPRESSION:  Normal.\n"
EMPTY = " FINAL REPORT\n INDICATION:  Cough.\n"  # a file whose CXLSeg report text is empty


def settings(make_config, **mimic) -> SelectionSettings:
    return SelectionSettings.from_config(make_config(mimic=mimic))


def _metadata(tmp_path, reports_root=None):
    root = tmp_path / "mimic"
    reports_root = reports_root or root
    rows = [  # dicom_id, subject, study, view, report file
        ("aa-01", "10000001", "50000001", "PA", REPORT),
        ("aa-02", "10000001", "50000001", "LATERAL", REPORT),
        ("aa-03", "10000001", "50000001", "AP", REPORT),  # same study: one report check
        ("aa-04", "10000002", "50000002", "AP", None),  # no report file
        ("aa-05", "11000003", "50000003", "PA", REPORT),
        ("aa-06", "11000003", "50000004", "PA", REPORT),
        ("aa-07", "11000004", "50000005", "AP", REPORT),
        ("../x", "11000004", "50000005", "AP", REPORT),  # unsafe dicom_id
        ("aa-09", "11/../1", "50000006", "PA", REPORT),  # unsafe subject_id
        ("aa-10", "13000001", "50000007", "PA", REPORT),  # prefix not configured
        ("aa-05", "11000003", "50000003", "PA", REPORT),  # duplicate dicom_id
        ("aa-12", "12000005", "50000008", "PA", EMPTY),  # report file with no CXLSeg text
        ("aa-13", "12000005", "50000008", "AP", EMPTY),
        ("aa-14", "12000006", "50000009", "PA", None),  # no report file
    ]
    for _, subject, study, _, text in rows:
        if text is not None and subject.isdigit():
            path = reports_root / report_relpath(subject, study)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    meta = pd.DataFrame(
        [
            {
                "dicom_id": d,
                "subject_id": s,
                "study_id": t,
                "PerformedProcedureStepDescription": "CHEST",
                "ViewPosition": v,
                "Rows": 3000,
                "Columns": 2500,
                "StudyDate": "21800101",
                "StudyTime": "1",
            }
            for d, s, t, v, _ in rows
        ]
    )
    csv = tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz"
    with gzip.open(csv, "wt") as fh:
        meta.to_csv(fh, index=False)
    return csv, root


def test_select_images_filters_and_counts(tmp_path, make_config):
    csv, root = _metadata(tmp_path)
    table, summary = select_images(csv, root, None, settings(make_config, shards=["p10", "p11", "p12"]))
    assert summary["metadata_images"] == 14
    assert summary["frontal_images"] == 13
    assert summary["valid_id_images"] == 10
    assert {e["reason"].split(" ")[0] for e in summary["excluded"]} == {"dicom_id", "subject_id", "duplicate"}
    assert summary["frontal_studies"] == 8 and summary["frontal_studies_with_report"] == 5
    assert summary["images_with_report"] == 6
    assert summary["images_in_shards"] == 5
    assert summary["images_per_shard"] == {"p10": 2, "p11": 3, "p12": 0}
    assert list(table.dicom_id) == ["aa-01", "aa-03", "aa-05", "aa-06", "aa-07"]
    assert table.loc[0, "image_path"] == "files/p10/p10000001/s50000001/aa-01.jpg"
    assert table.loc[0, "report_path"] == "files/p10/p10000001/s50000001.txt"
    assert table.rows.iloc[0] == 3000


def test_missing_and_empty_reports_are_dropped_and_counted_apart(tmp_path, make_config):
    csv, root = _metadata(tmp_path)
    table, summary = select_images(csv, root, None, settings(make_config, shards=["p10", "p11", "p12"]))
    assert not table.dicom_id.isin(["aa-04", "aa-12", "aa-13", "aa-14"]).any()
    assert summary[f"studies_{NO_REPORT_FILE}"] == 2 and summary[f"images_{NO_REPORT_FILE}"] == 2
    assert summary[f"studies_{EMPTY_REPORT}"] == 1 and summary[f"images_{EMPTY_REPORT}"] == 2
    assert summary[f"studies_{NO_REPORT_FILE}_ids"] == [
        {"subject_id": "10000002", "study_id": "50000002"},
        {"subject_id": "12000006", "study_id": "50000009"},
    ]
    assert summary[f"studies_{EMPTY_REPORT}_ids"] == [{"subject_id": "12000005", "study_id": "50000008"}]
    assert summary["images_with_report"] == (
        summary["valid_id_images"] - summary[f"images_{NO_REPORT_FILE}"] - summary[f"images_{EMPTY_REPORT}"]
    )
    assert summary[f"studies_{UNREADABLE_REPORT}"] == 0 and summary[f"images_{UNREADABLE_REPORT}"] == 0
    assert (
        sum(summary[f"studies_{cause}"] for cause in DROP_CAUSES)
        == summary["frontal_studies"] - summary["frontal_studies_with_report"]
    )


def test_unreadable_report_is_counted_apart_from_a_missing_one(tmp_path, make_config):
    csv, root = _metadata(tmp_path)
    (root / report_relpath("12000006", "50000009")).mkdir(parents=True)  # a folder where the report should be
    table, summary = select_images(csv, root, None, settings(make_config, shards=["p10", "p11", "p12"]))
    assert "aa-14" not in set(table.dicom_id)
    assert summary[f"studies_{UNREADABLE_REPORT}_ids"] == [{"subject_id": "12000006", "study_id": "50000009"}]
    assert summary[f"studies_{UNREADABLE_REPORT}"] == 1 and summary[f"images_{UNREADABLE_REPORT}"] == 1
    assert summary[f"studies_{NO_REPORT_FILE}_ids"] == [{"subject_id": "10000002", "study_id": "50000002"}]
    assert summary[f"images_{NO_REPORT_FILE}"] == 1 and summary[f"images_{EMPTY_REPORT}"] == 2


def test_study_report_status(tmp_path):
    for study, text in (("1", REPORT), ("2", EMPTY), ("3", "")):
        path = tmp_path / report_relpath("10000001", study)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert study_report_status("10000001", "1", tmp_path) == ""
    assert study_report_status("10000001", "2", tmp_path) == EMPTY_REPORT
    assert study_report_status("10000001", "3", tmp_path) == EMPTY_REPORT
    assert study_report_status("10000001", "4", tmp_path) == NO_REPORT_FILE
    (tmp_path / report_relpath("10000001", "5")).mkdir()  # unreadable: a folder where the file should be
    assert study_report_status("10000001", "5", tmp_path) == UNREADABLE_REPORT


def test_reports_root_apart_from_the_images(tmp_path, make_config):
    csv, root = _metadata(tmp_path, reports_root=tmp_path / "reports")
    _, alone = select_images(csv, root, None, settings(make_config, shards=["p10", "p11"]))
    _, apart = select_images(csv, root, tmp_path / "reports", settings(make_config, shards=["p10", "p11"]))
    assert alone["images_with_report"] == 0 and apart["images_in_shards"] == 5


def test_chunks_are_balanced_and_deterministic(tmp_path, make_config):
    csv, root = _metadata(tmp_path)
    chosen = settings(make_config, shards=["p10", "p11", "p12"], chunks_per_shard=2)
    table, summary = select_images(csv, root, None, chosen)
    assert summary["images_per_shard"] == {"p10-c0": 1, "p10-c1": 1, "p11-c0": 2, "p11-c1": 1, "p12-c0": 0, "p12-c1": 0}
    again, _ = select_images(csv, root, None, chosen)
    pd.testing.assert_frame_equal(table, again)


def test_write_selection_writes_a_list_for_every_shard(tmp_path, make_config):
    csv, root = _metadata(tmp_path)
    chosen = settings(make_config, shards=["p10", "p11", "p12"])
    table, summary = select_images(csv, root, None, chosen)
    lists = {s: tmp_path / "infer" / "lists" / f"{s}.parquet" for s in chosen.shard_ids}
    write_selection(
        table, summary, tmp_path / "infer" / "selection.parquet", tmp_path / "infer" / "selection_summary.json", lists
    )
    assert (tmp_path / "infer" / "selection.parquet").is_file()
    written = io.read_json(tmp_path / "infer" / "selection_summary.json")
    assert written["images_in_shards"] == summary["images_in_shards"] == 5
    assert written[f"studies_{EMPTY_REPORT}"] == 1
    assert sorted(p.name for p in (tmp_path / "infer" / "lists").iterdir()) == [
        "p10.parquet",
        "p11.parquet",
        "p12.parquet",
    ]
    empty = pd.read_parquet(tmp_path / "infer" / "lists" / "p12.parquet")
    assert len(empty) == 0 and "dicom_id" in empty.columns


def test_settings_from_the_mimic_section(make_config):
    built = SelectionSettings.from_config(make_config())
    assert built == SelectionSettings(
        views=("AP", "PA"), shards=tuple(f"p{i}" for i in range(10, 20)), chunks_per_shard=1, report_text="project"
    )
    assert settings(make_config, shards=["p10"], chunks_per_shard=3).shard_ids == ["p10-c0", "p10-c1", "p10-c2"]
    with pytest.raises(ConfigError, match="mimic.shards.0"):
        make_config(mimic={"shards": ["../p10"]})


def test_bad_shard_names_fail_before_the_report_scan(tmp_path):
    bad = SelectionSettings(views=("PA",), shards=("../p10",), chunks_per_shard=1, report_text="project")
    with pytest.raises(ValueError, match="shard ids"):
        select_images(tmp_path / "absent.csv", tmp_path, None, bad)
    with pytest.raises(ValueError, match="chunks_per_shard"):
        select_images(
            tmp_path / "absent.csv", tmp_path, None, dataclasses.replace(bad, shards=("p10",), chunks_per_shard=0)
        )


def test_missing_metadata_column_is_named(tmp_path, make_config):
    csv = tmp_path / "m.csv"
    pd.DataFrame({"dicom_id": ["a"], "subject_id": ["10"]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="study_id"):
        select_images(csv, tmp_path, None, settings(make_config))

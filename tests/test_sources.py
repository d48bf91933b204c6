"""MIMIC-CXR's source files as the tables read them (cxlseg.mimic.sources): reports per study, CheXpert, official split."""

from __future__ import annotations

import pandas as pd
import pytest
from cxlseg.mimic import CHEXPERT_LABELS, report_relpath, sources
from cxlseg.mimic import radiology_text as reports

REPORT_FULL = " FINAL REPORT\n INDICATION:  Cough.\n \n FINDINGS:  Lungs clear.\n \n IMPRESSION:  Normal.\n"


def test_bulk_report_paths_match_mimic_report_relpath(tmp_path):
    """The fast path builder of extract_study_reports agrees with the one MIMIC layout definition."""
    studies = pd.DataFrame({"subject_id": [10000032, 19999999, 11000011], "study_id": [50414267, 59999999, 51000001]})
    expected = [str(tmp_path / report_relpath(s, t)) for s, t in zip(studies["subject_id"], studies["study_id"])]
    assert sources._report_paths(studies, tmp_path) == expected
    assert report_relpath(10000032, 50414267) == "files/p10/p10000032/s50414267.txt"
    for subject, study in ((0, 1), (-1, 50414267), (10000032, 0)):
        with pytest.raises(ValueError, match="invalid ids"):
            sources._report_paths(pd.DataFrame({"subject_id": [subject], "study_id": [study]}), tmp_path)


def _write_report(root, subject, study, text):
    path = root / report_relpath(subject, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("workers", [1, 3])
def test_extract_study_reports_rules_missing_and_unreadable_files(tmp_path, workers):
    # s50913680 has an MIT-LCP per-study rule (forced 'recommendations' section): the study id must reach it
    forced = " FINAL REPORT\n FINDINGS:  Lungs clear.\n \n RECOMMENDATION(S):  Follow-up CT in 3 months.\n"
    _write_report(tmp_path, 10000032, 50414267, REPORT_FULL)
    _write_report(tmp_path, 11851243, 50913680, forced)
    (tmp_path / report_relpath(12000022, 52000003)).mkdir(parents=True)  # a folder where the file should be
    studies = pd.DataFrame(
        {"subject_id": [10000032, 11851243, 12000022, 12000022], "study_id": [50414267, 50913680, 52000002, 52000003]}
    )
    out = sources.extract_study_reports(studies, tmp_path, workers=workers, chunk=1, progress=False)
    assert list(out.columns) == ["subject_id", "study_id", "Reports", "ReportRule"]
    assert out["study_id"].tolist() == studies["study_id"].tolist()  # input order, whatever the threads do
    assert out["ReportRule"].tolist() == [
        "findings+impression",
        reports.STUDY_RULE,
        reports.NO_REPORT_FILE,
        reports.UNREADABLE_REPORT,
    ]
    assert out["Reports"].tolist()[0] == "Lungs clear. Normal."
    assert out["Reports"].tolist()[1] == reports.extract_report(forced, study_id="s50913680")[0] != "Lungs clear."
    assert out["Reports"].tolist()[2:] == ["", ""]


def test_read_chexpert_keeps_text_and_names_bad_values(tmp_path):
    frame = pd.DataFrame({"subject_id": [1, 1], "study_id": [2, 2], **{c: ["1.0", "0.0"] for c in CHEXPERT_LABELS}})
    frame.loc[0, "Edema"] = ""
    frame.to_csv(tmp_path / "ok.csv", index=False)
    labels = sources.read_chexpert(tmp_path / "ok.csv")
    assert len(labels) == 1  # the duplicate study keeps its first row
    assert labels["Edema"].iloc[0] == "" and labels["Atelectasis"].iloc[0] == "1.0"
    frame.assign(Edema="yes").to_csv(tmp_path / "chexpert.csv", index=False)
    with pytest.raises(ValueError, match=r"chexpert\.csv.*'Edema'"):
        sources.read_chexpert(tmp_path / "chexpert.csv")
    frame.drop(columns="Edema").to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ValueError, match="Edema"):
        sources.read_chexpert(tmp_path / "short.csv")


def test_read_official_split_accepts_only_mimic_split_names(tmp_path):
    pd.DataFrame({"dicom_id": ["a", "b", "c", "a"], "split": ["train", "validate", "test", "test"]}).to_csv(
        tmp_path / "split.csv", index=False
    )
    split = sources.read_official_split(tmp_path / "split.csv")
    assert split.set_index("dicom_id")["split"].to_dict() == {"a": "train", "b": "validate", "c": "test"}
    pd.DataFrame({"dicom_id": ["a"], "split": ["val"]}).to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(ValueError, match=r"old\.csv.*'val'"):
        sources.read_official_split(tmp_path / "old.csv")


def test_read_metadata_keeps_text_and_drops_ids(tmp_path):
    pd.DataFrame(
        {
            "dicom_id": ["a", "b"],
            "subject_id": [1, 1],
            "study_id": [2, 2],
            "ViewPosition": ["PA", "AP"],
            "StudyDate": ["21800506", "21800507"],
            "StudyTime": ["0213.500", "1"],
        }
    ).to_csv(tmp_path / "meta.csv", index=False)
    meta = sources.read_metadata(tmp_path / "meta.csv", pd.Series(["b"]))
    assert meta.to_dict("records") == [
        {"dicom_id": "b", "ViewPosition": "AP", "StudyDate": "21800507", "StudyTime": "1"}
    ]
    with pytest.raises(ValueError, match="StudyTime"):
        pd.DataFrame({"dicom_id": ["a"], "ViewPosition": ["PA"], "StudyDate": ["1"]}).to_csv(
            tmp_path / "m.csv", index=False
        )
        sources.read_metadata(tmp_path / "m.csv", pd.Series(["a"]))

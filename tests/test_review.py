"""Reading a person's review decisions (cxlseg.tables.review): what is accepted, and every way a file is refused
with its line. Applying them to the tables is test_tables.py's; the review page test_review_page.py's."""

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

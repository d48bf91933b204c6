"""Another archive's table (#34) with a person's review applied (archive.review_file, through MIMIC's reader and
checks), and its lungs' Height x Width checked against the image's size as the shard read it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cxlseg import io
from cxlseg.archives import rle
from cxlseg.inference.manifest import write_manifest
from cxlseg.tables import archive as archive_table_module
from cxlseg.tables.archive import ArchiveTableFiles, archive_table, checked_lungs, manifest_review_rows
from cxlseg.tables.quality import check_review_file
from cxlseg.tables.review import ReviewFileError

# image id -> (patient, flags, status): a clean mask, two flagged ones, one failed file
IMAGES = {
    "a1": ("pa", "", "ok"),
    "b1": ("pb", "low_predicted_dice", "ok"),
    "c1": ("pc", "not_frontal", "ok"),
    "d1": ("pd", "", "failed"),
}


def two_lungs(size: int = 64) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[10:50, 8:26] = 1
    mask[12:54, 38:58] = 1
    return mask * np.uint8(255)


def an_archive_run(tmp_path: Path, review: str | None = None) -> ArchiveTableFiles:
    """Records, one shard manifest and the masks of IMAGES (text ids, as every archive but MIMIC has)."""
    records, manifest = [], []
    for image_id, (patient, flags, status) in IMAGES.items():
        records.append(
            {"image_id": image_id, "patient_id": patient, "study_id": f"{patient}_s1", "view": "PA",
             "path": f"{patient}/{image_id}.png", "shard": "p00", "source_id": f"{patient}/{image_id}.png"}
        )  # fmt: skip
        row = {"dicom_id": image_id, "subject_id": patient, "study_id": f"{patient}_s1", "status": status}
        if status == "ok":
            io.write_image(tmp_path / "out" / patient / f"{image_id}-mask.png", two_lungs())
            row.update(image_path=f"{patient}/{image_id}.jpg", mask_path=f"{patient}/{image_id}-mask.png")
            row.update(orig_height=90, orig_width=70, qc_predicted_dice=0.9, p_not_frontal=0.1, qc_flags=flags)
        else:
            row.update(image_path=None, mask_path=None, error="DICOM: the codec is unknown")
        manifest.append(row)
    io.write_parquet(pd.DataFrame(records), tmp_path / "records.parquet")
    write_manifest(manifest, tmp_path / "p00.parquet")
    review_file = None
    if review is not None:
        review_file = tmp_path / "decisions.csv"
        review_file.write_text(review)
    return ArchiveTableFiles(
        tmp_path / "records.parquet",
        [tmp_path / "p00.parquet"],
        tmp_path / "t.csv.gz",
        tmp_path / "s.json",
        review_file,
    )


def read_table(files: ArchiveTableFiles) -> pd.DataFrame:
    return pd.read_csv(files.table, dtype=str, keep_default_na=False).set_index("image_id")


def test_the_review_file_sets_each_decision_status_and_exclusion(tmp_path):
    files = an_archive_run(tmp_path, "dicom_id,decision,note\nb1,accepted,fine on the film\nc1,rejected,lateral\n")
    summary = archive_table(files, tmp_path / "out", "chexpert")
    table = read_table(files)
    assert table.loc[["a1", "b1", "c1", "d1"], "review"].tolist() == ["", "accepted", "rejected", ""]
    assert table.loc["b1", "review_note"] == "fine on the film" and table.loc["c1", "review_note"] == "lateral"
    assert table.loc[["a1", "b1", "c1", "d1"], "qc_status"].tolist() == ["ok", "accepted", "rejected", ""]
    assert table.loc[["a1", "b1", "c1", "d1"], "excluded"].tolist() == ["False", "False", "True", "True"]
    assert summary["review"] == {"file": str(files.review), "accepted": 1, "rejected": 1}
    assert summary["excluded"] == 2


def test_without_a_review_a_flagged_mask_is_excluded_until_someone_accepts_it(tmp_path):
    files = an_archive_run(tmp_path)
    archive_table(files, tmp_path / "out", "chexpert")
    table = read_table(files)
    assert table.loc[["a1", "b1", "c1"], "qc_status"].tolist() == ["ok", "flagged", "flagged"]
    assert table.loc[["a1", "b1", "c1", "d1"], "excluded"].tolist() == ["False", "True", "True", "True"]
    assert (table["review"] == "").all()


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "dicom_id,decision\na1,accepted\nzz9,rejected\n",
            r"decisions\.csv:3: unknown dicom_id 'zz9' \(not in this run\)",
        ),
        (
            "dicom_id,decision\na1,accepted\n\na1,rejected\n",
            r"decisions\.csv:4: dicom_id 'a1' already decided on line 2",
        ),
        ("dicom_id,decision\nd1,rejected\n", r"decisions\.csv:2: unknown dicom_id 'd1' \(its segmentation failed"),
        ("dicom_id,decision\na1,maybe\n", r"decisions\.csv:2: unknown decision 'maybe'"),
    ],
)
def test_a_review_file_that_cannot_apply_stops_the_table_naming_file_and_line(tmp_path, text, message):
    files = an_archive_run(tmp_path, text)
    with pytest.raises(ReviewFileError, match=message):
        archive_table(files, tmp_path / "out", "chexpert")
    assert not files.table.exists()
    with pytest.raises(ReviewFileError, match=message):  # and at DAG build, against the archive's manifests
        check_review_file(files.review, files.manifests, rows=manifest_review_rows)


def test_the_dag_build_check_reads_text_ids_as_the_archive_table_does(tmp_path):
    """MIMIC's rows refuse every text id as an invalid subject id; the archive's rows accept the masked ones."""
    files = an_archive_run(tmp_path, "dicom_id,decision\nb1,accepted\n")
    check_review_file(files.review, files.manifests, rows=manifest_review_rows)
    with pytest.raises(ReviewFileError, match="segmentation failed"):
        check_review_file(files.review, files.manifests)


def test_lungs_with_a_swapped_height_and_width_are_refused():
    lung = np.zeros((90, 70), np.uint8)
    lung[10:40, 5:30] = 1
    columns = rle.lung_columns(lung.T, lung.T)  # 70 x 90: the image's width x height
    with pytest.raises(rle.ShapeMismatch, match="m.png: Height x Width 70 x 90 .* swapped"):
        checked_lungs(columns, (90, 70), "m.png")
    assert checked_lungs(rle.lung_columns(lung, lung), (90, 70), "m.png")["Height"] == 90


def test_the_table_refuses_lungs_whose_size_is_not_the_one_the_shard_read(tmp_path, monkeypatch):
    """The shape check sits on what goes into the table: a Height x Width swapped on the way (as some of
    CheXmask's own files are) stops the table, naming the mask file, instead of writing scrambled masks."""
    swap = archive_table_module.rle.lung_columns

    def swapped(left, right):
        columns = swap(left, right)
        return {**columns, "Height": columns["Width"], "Width": columns["Height"]}

    monkeypatch.setattr(archive_table_module.rle, "lung_columns", swapped)
    files = an_archive_run(tmp_path)
    with pytest.raises(rle.ShapeMismatch, match=r"a1-mask\.png: Height x Width 70 x 90 .* swapped"):
        archive_table(files, tmp_path / "out", "chexpert")

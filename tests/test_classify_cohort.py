"""Labels and image files of the Table-III cohort, read from the published CXLSeg tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cxlseg.classify import cohort
from cxlseg.io import write_csv
from cxlseg.mimic import CHEXPERT_LABELS
from helpers import TABLE3_LABELS

VALUES = np.array([[1.0, 0.0, -1.0, np.nan]])


@pytest.mark.parametrize(
    "policy, targets, mask",
    [
        ("ones", [1, 0, 1, 0], [1, 1, 1, 1]),
        ("zeros", [1, 0, 0, 0], [1, 1, 1, 1]),
        ("ignore", [1, 0, 0, 0], [1, 1, 0, 1]),
    ],
)
def test_uncertain_policies_and_blank_is_negative(policy, targets, mask):
    got_targets, got_mask = cohort.encode_labels(VALUES, policy)
    np.testing.assert_array_equal(got_targets[0], targets)
    np.testing.assert_array_equal(got_mask[0], mask)


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="'maybe'.*ones, zeros, ignore"):
        cohort.encode_labels(VALUES, "maybe")


def segmented_table(rows, labels=TABLE3_LABELS):
    """A CXLSeg-segmented table with `labels` given per row and the other CheXpert labels blank."""
    frame = pd.DataFrame(rows, columns=["dicom_id", "subject_id", "study_id", "DicomPath", *labels])
    for extra in CHEXPERT_LABELS:
        if extra not in frame:
            frame[extra] = np.nan
    return frame


def test_load_labels_reads_the_published_layout(tmp_path):
    path = tmp_path / "CXLSeg-segmented.csv.gz"
    write_csv(segmented_table([["d1", 10000001, 50000001, "files/x/d1.jpg", 1.0, -1.0, None, 0.0]]), path)
    labels = cohort.load_labels(path, TABLE3_LABELS, "ignore")
    np.testing.assert_array_equal(labels.targets, [[1, 0, 0, 0]])
    np.testing.assert_array_equal(labels.mask, [[1, 0, 1, 1]])
    assert labels.frame["dicom_id"].tolist() == ["d1"]


def test_all_fourteen_labels_load_with_blank_as_negative(tmp_path):
    path = tmp_path / "CXLSeg-segmented.csv.gz"
    write_csv(segmented_table([["d1", 10000001, 50000001, "d1.jpg", 1.0, -1.0, None, 0.0]]), path)
    labels = cohort.load_labels(path, CHEXPERT_LABELS, "ones")
    assert labels.targets.shape == (1, 14) and labels.labels == CHEXPERT_LABELS
    assert labels.targets.sum() == 2  # Lung Lesion 1 and the uncertain Pneumonia; the blank 12 count as 0


def test_load_labels_names_file_and_bad_value(tmp_path):
    path = tmp_path / "CXLSeg-segmented.csv.gz"
    write_csv(segmented_table([["d1", 10000001, 50000001, "p.jpg", 2.0, 0.0, 0.0, 0.0]]), path)
    with pytest.raises(ValueError, match=r"CXLSeg-segmented.csv.gz.*'Lung Lesion' holds '2.0'"):
        cohort.load_labels(path, TABLE3_LABELS, "ones")
    no_pneumonia = segmented_table([["d1", 10000001, 50000001, "p.jpg", 1.0, 0.0, 0.0, 0.0]]).drop(columns="Pneumonia")
    write_csv(no_pneumonia, path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Pneumonia'\]"):
        cohort.load_labels(path, TABLE3_LABELS, "ones")
    with pytest.raises(ValueError, match="unknown CheXpert label"):
        cohort.load_labels(path, ["Flu"], "ones")


def test_load_cohort_rejects_unknown_split(tmp_path):
    write_csv(
        segmented_table([["d1", 10000001, 50000001, "p.jpg", 1.0, 0.0, 0.0, 0.0]]), tmp_path / "CXLSeg-segmented.csv.gz"
    )
    write_csv(
        pd.DataFrame({"dicom_id": ["d1"], "subject_id": [10000001], "study_id": [50000001], "split": ["val"]}),
        tmp_path / "CXLSeg-split.csv.gz",
    )
    with pytest.raises(ValueError, match=r"CXLSeg-split.csv.gz: split values \['val'\]"):
        cohort.load_cohort(
            tmp_path / "CXLSeg-segmented.csv.gz", tmp_path / "CXLSeg-split.csv.gz", TABLE3_LABELS, "ones"
        )


def test_image_paths_follow_mimic_and_cxlseg_layouts(tmp_path):
    original = cohort.image_path("original", "seg", "mimic", 10000032, 50414267, "abc", "ignored.jpg")
    assert original.as_posix() == "mimic/files/p10/p10000032/s50414267/abc.jpg"
    segmented = cohort.image_path("segmented", "seg", "mimic", 10000032, 50414267, "abc", "files/p10/abc.jpg")
    assert segmented.as_posix() == "seg/files/p10/abc.jpg"
    with pytest.raises(ValueError, match="'..' not allowed"):
        cohort.image_path("segmented", "seg", "mimic", 1, 1, "a", "../a.jpg")

"""Patient- and subject-level splits (cxlseg.training.splits): training data by patient, the CXLSeg tables by subject or
image, split names train / validate / test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cxlseg.config import section_defaults
from cxlseg.mimic import SPLITS
from cxlseg.training.splits import (
    SPLIT_UNITS,
    assign_split,
    combine_and_split,
    image_split_sizes,
    split_by_image,
    split_by_patient,
    split_by_subject,
)


def test_split_vocabulary_is_mimics():
    assert SPLITS == ("train", "validate", "test") and SPLIT_UNITS == ("subject", "image")


# ---------------------------------------------------------------- training data, by patient


def _toy_manifest(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for dataset, labels in (("shenzhen", ["normal", "tuberculosis"]), ("v7", ["covid19", "pneumonia", "normal"])):
        for p in range(40):
            label = labels[p % len(labels)]
            for k in range(1 if dataset == "shenzhen" else int(rng.integers(1, 4))):
                rows.append({"dataset": dataset, "image_id": f"{dataset}{p}_{k}", "patient_id": str(p), "label": label})
    return pd.DataFrame(rows)


def test_split_by_patient_no_leakage_stratified_and_deterministic():
    df = _toy_manifest()
    a = split_by_patient(df, ratios=(0.8, 0.1, 0.1), seed=3)
    b = split_by_patient(df.sample(frac=1.0, random_state=1), ratios=(0.8, 0.1, 0.1), seed=3)
    sides = a.groupby(["dataset", "patient_id"])["split"].nunique()
    assert (sides == 1).all()  # zero patient leakage
    merged = a.merge(b[["dataset", "image_id", "split"]], on=["dataset", "image_id"], suffixes=("", "_b"))
    assert (merged["split"] == merged["split_b"]).all()  # row order does not matter
    for label, part in a.groupby("label"):
        share = part["split"].value_counts(normalize=True)
        assert 0.65 <= share["train"] <= 0.9, label
        assert share.get("validate", 0) > 0 and share.get("test", 0) > 0, label
    c = split_by_patient(df, ratios=(0.8, 0.1, 0.1), seed=4)
    assert not (c.sort_values("image_id")["split"].values == a.sort_values("image_id")["split"].values).all()


def test_split_tiny_data_fills_every_split_and_checks_ratios():
    df = pd.DataFrame(
        {
            "dataset": "shenzhen",
            "image_id": list("abcd"),
            "patient_id": list("abcd"),
            "label": ["normal", "normal", "tuberculosis", "tuberculosis"],
        }
    )
    out = split_by_patient(df, ratios=(0.8, 0.1, 0.1), seed=0)
    assert set(out["split"]) == {"train", "validate", "test"}
    with pytest.raises(ValueError, match="sum"):
        split_by_patient(df, ratios=(0.8, 0.3, 0.1), seed=0)


def test_combine_and_split_writes_parquet_and_refuses_duplicates(tmp_path):
    df = _toy_manifest()
    paths = []
    for dataset, part in df.groupby("dataset"):
        paths.append(tmp_path / f"{dataset}.parquet")
        part.to_parquet(paths[-1], index=False)
    out = combine_and_split(paths, tmp_path / "dataset.parquet", ratios=(0.8, 0.1, 0.1), seed=1)
    assert len(out) == len(df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dataset.parquet"), out)
    with pytest.raises(ValueError, match="duplicate"):
        combine_and_split(paths + paths[:1], tmp_path / "again.parquet", ratios=(0.8, 0.1, 0.1), seed=1)


# ---------------------------------------------------------------- the CXLSeg tables, by subject or image


def test_split_by_subject_is_seeded_and_order_free():
    subjects = np.arange(10_000_000, 10_001_000)
    a = split_by_subject(subjects, (0.8, 0.1, 0.1), seed=42)
    b = split_by_subject(subjects[::-1], (0.8, 0.1, 0.1), seed=42)
    c = split_by_subject(subjects, (0.8, 0.1, 0.1), seed=7)
    assert a.equals(b) and not a.equals(c)
    assert a.value_counts().to_dict() == {"train": 800, "validate": 100, "test": 100}
    assert split_by_subject(subjects, (1.0, 0.0, 0.0), 42).eq("train").all()


@pytest.mark.parametrize("ratios", [(0.8, 0.1), (0.9, 0.1, 0.1), (1.2, -0.1, -0.1)])
def test_split_ratios_validated(ratios):
    with pytest.raises(ValueError, match="ratios"):
        split_by_subject([1, 2, 3], ratios, 42)
    with pytest.raises(ValueError, match="ratios"):
        split_by_image(["a", "b", "c"], ratios, 42)


def synthetic_images(n: int, images_per_subject: int = 3, seed: int = 0) -> pd.DataFrame:
    """n image rows (MIMIC-like dicom ids), a few per subject, in shuffled order; nothing is written."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    frame = pd.DataFrame(
        {
            "dicom_id": [f"{i:08x}-bde0afdd-112c0b34-7bc16630-4e384014" for i in ids],
            "subject_id": 10_000_000 + ids // images_per_subject,
            "study_id": 50_000_000 + ids // images_per_subject,
        }
    )
    return frame.iloc[rng.permutation(n)].reset_index(drop=True)


def test_image_split_reproduces_the_published_counts():
    """CXLSeg-split: 194,660 / 24,332 / 24,332 of 243,324 (rounding 80% would give train 194,659)."""
    images = synthetic_images(243_324)
    split, info = assign_split(
        images, source="random", ratios=(0.8, 0.1, 0.1), seed=42, split_unit="image", missing="omit"
    )
    assert pd.Series(split).value_counts().to_dict() == {"train": 194_660, "validate": 24_332, "test": 24_332}
    assert info["images"] == {"train": 194_660, "validate": 24_332, "test": 24_332} and info["unit"] == "image"
    assert image_split_sizes(243_324) == (194_660, 24_332, 24_332)


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 19, 30, 99, 1_000, 243_323, 243_325])
def test_image_split_sizes_add_up(n):
    train, validate, test = image_split_sizes(n)
    assert train + validate + test == n and validate == test == int(n * 0.1 + 1e-9)
    assert image_split_sizes(n, (1.0, 0.0, 0.0)) == (n, 0, 0)


def test_image_split_is_seeded_and_order_free():
    images = synthetic_images(5_000)
    a = split_by_image(images["dicom_id"], (0.8, 0.1, 0.1), seed=42)
    b = split_by_image(images["dicom_id"][::-1], (0.8, 0.1, 0.1), seed=42)
    c = split_by_image(images["dicom_id"], (0.8, 0.1, 0.1), seed=7)
    assert a.equals(b) and not a.equals(c)
    first, _ = assign_split(
        images, source="random", ratios=(0.8, 0.1, 0.1), seed=42, split_unit="image", missing="omit"
    )
    shuffled = images.sample(frac=1, random_state=1)
    second, _ = assign_split(
        shuffled, source="random", ratios=(0.8, 0.1, 0.1), seed=42, split_unit="image", missing="omit"
    )
    by_id = dict(zip(shuffled["dicom_id"], second))
    assert [by_id[d] for d in images["dicom_id"]] == list(first)


def test_subject_unit_never_puts_a_subject_in_two_splits_and_image_unit_may():
    images = synthetic_images(6_000, images_per_subject=4)
    for unit in ("subject", "image"):
        split, info = assign_split(
            images, source="random", ratios=(0.8, 0.1, 0.1), seed=3, split_unit=unit, missing="omit"
        )
        sides = images.assign(split=split).groupby("subject_id")["split"].nunique()
        assert info["unit"] == unit and info["subjects_on_several_sides"] == int((sides > 1).sum())
        if unit == "subject":
            assert sides.max() == 1
        else:
            assert sides.max() > 1


def test_subject_unit_is_the_schema_default():
    """The default lives in the schema only (assign_split has none): whole subjects on one side."""
    images = synthetic_images(600)
    unit = section_defaults("tables")["split_unit"]
    assert unit == "subject"
    split, _ = assign_split(images, source="random", ratios=(0.8, 0.1, 0.1), seed=3, split_unit=unit, missing="omit")
    assert images.assign(split=split).groupby("subject_id")["split"].nunique().max() == 1


def test_unknown_split_unit_rejected():
    with pytest.raises(ValueError, match="split_unit"):
        assign_split(
            synthetic_images(10), source="random", ratios=(0.8, 0.1, 0.1), seed=3, split_unit="study", missing="omit"
        )

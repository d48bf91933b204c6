"""Ingest of the native Shenzhen, Montgomery and V7-labs layouts (the patient split: test_splits.py)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg import io
from cxlseg.ingest.labels import label_from_finding
from cxlseg.ingest.lung_masks import MaskError, binarise_mask, render_polygons
from cxlseg.ingest.readers import MANIFEST_COLUMNS, REJECT_COLUMNS, ingest_dataset
from helpers.training import ingest_files


def _reason(rejects: pd.DataFrame, image_id: str) -> str:
    rows = rejects[rejects["image_id"] == image_id]
    assert len(rows) == 1, f"{image_id}: expected one reject row, got {rows.to_dict('records')}"
    return rows["reason"].iloc[0]


def _check_outputs(result, out, expected_accepted: dict):
    assert list(result.manifest.columns) == MANIFEST_COLUMNS
    assert list(result.rejects.columns) == REJECT_COLUMNS
    assert dict(zip(result.manifest["image_id"], result.manifest["label"])) == expected_accepted
    pd.testing.assert_frame_equal(pd.read_parquet(out / "manifest.parquet"), result.manifest)
    assert len(pd.read_csv(out / "rejects.csv")) == len(result.rejects)
    counts = json.loads((out / "counts.json").read_text())
    assert counts["accepted"] == len(expected_accepted)
    assert counts["per_class"] == result.counts
    assert sorted(p.stem for p in (out / "masks").glob("*.png")) == sorted(expected_accepted)
    for row in result.manifest.itertuples():
        mask = io.read_image(out / row.mask_path)
        assert mask.shape == (row.height, row.width)
        assert set(np.unique(mask)) == {0, 255}


def test_shenzhen_layout_and_bad_cases(tmp_path, layouts):
    root, out = tmp_path / "shenzhen", tmp_path / "out"
    spec = layouts.make_shenzhen(root)
    result = ingest_dataset("shenzhen", root, ingest_files(out))
    _check_outputs(result, out, spec["accepted"])
    for image_id, fragment in spec["rejected"].items():
        assert fragment in _reason(result.rejects, image_id)
    assert len(result.rejects) == len(spec["rejected"])
    row = result.manifest.set_index("image_id").loc["CHNCXR_0002_1"]
    assert row.patient_id == "CHNCXR_0002" and row.image_path == "CXR_png/CHNCXR_0002_1.png"
    assert result.counts == {"tuberculosis": 2, "normal": 3}
    assert json.loads((out / "counts.json").read_text())["rejects_by_reason"]["no mask"] == 1


def test_montgomery_merges_left_and_right_and_reads_12_bit(tmp_path, layouts):
    root, out = tmp_path / "mont", tmp_path / "out"
    spec = layouts.make_montgomery(root)
    result = ingest_dataset("montgomery", root, ingest_files(out))
    _check_outputs(result, out, spec["accepted"])
    for image_id, fragment in spec["rejected"].items():
        assert fragment in _reason(result.rejects, image_id)
    manifest = result.manifest.set_index("image_id")
    for image_id, area in spec["areas"].items():
        mask = io.read_mask(out / manifest.loc[image_id, "mask_path"])
        assert int(mask.sum()) == area  # union of both lungs, neither dropped
    assert manifest.loc["MCUCXR_0001_0", "bit_depth"] == 16
    assert manifest.loc["MCUCXR_0003_0", "bit_depth"] == 8
    # both orientations kept as they are
    assert (manifest.loc["MCUCXR_0001_0", "height"], manifest.loc["MCUCXR_0001_0", "width"]) == (56, 46)
    assert (manifest.loc["MCUCXR_0002_1", "height"], manifest.loc["MCUCXR_0002_1", "width"]) == (46, 56)


def test_twelve_bit_png_maps_to_full_8_bit_range_without_wrap(tmp_path, layouts):
    mask = np.zeros((40, 30), np.uint8)
    mask[10:30, 5:25] = 1
    deep = layouts.twelve_bit(mask)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), deep)
    gray = io.read_gray(path)
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255
    # monotone mapping: ordering of the 12-bit values survives (no clipping at 255, no wrap-around)
    order = np.argsort(deep.ravel(), kind="stable")
    assert (np.diff(gray.ravel()[order].astype(int)) >= 0).all()
    # lungs (dark, ~600 of 4095) are far from the body (~2600): naive >>8 or clipping would merge or wrap them
    assert gray[mask == 1].mean() < 60 and gray[mask == 0].mean() > 140


def test_v7_darwin_json(tmp_path, layouts):
    root, out = tmp_path / "v7", tmp_path / "out"
    spec = layouts.make_v7_json(root)
    result = ingest_dataset("v7", root, ingest_files(out), mask_source="json")
    _check_outputs(result, out, spec["accepted"])
    for image_id, fragment in spec["rejected"].items():
        assert fragment in _reason(result.rejects, image_id), image_id
    manifest = result.manifest.set_index("image_id")
    for image_id, area in spec["areas"].items():
        assert int(io.read_mask(out / manifest.loc[image_id, "mask_path"]).sum()) == area
    assert manifest.loc["covid-a", "patient_id"] == "P1" == manifest.loc["covid-b", "patient_id"]
    assert manifest.loc["viral", "patient_id"] == "viral"
    assert manifest.loc["covid-a", "view"] == "PA"
    counts = json.loads((out / "counts.json").read_text())
    assert counts["rejects_by_reason"]["lateral view"] == 1
    assert counts["rejects_by_reason"]["CT slice"] == 1


def test_darwin_polygons_with_hole_and_island_give_hand_computed_area(layouts):
    HOLED, HOLED_AREA, rect = layouts.HOLED, layouts.HOLED_AREA, layouts.rect
    mask = render_polygons([HOLED], (48, 64))
    assert int(mask.sum()) == HOLED_AREA == 820
    assert mask[25, 25] == 0 and mask[15, 15] == 1 and mask[11, 52] == 1
    # Darwin 2.0 spelling (polygon.paths) and 1.0 additional_paths give the same mask
    v2 = {"name": "Lung", "polygon": {"paths": HOLED["complex_polygon"]["path"]}}
    paths = HOLED["complex_polygon"]["path"]
    v1_extra = {"name": "Lung", "polygon": {"path": paths[0], "additional_paths": paths[1:]}}
    assert (render_polygons([v2], (48, 64)) == mask).all()
    assert (render_polygons([v1_extra], (48, 64)) == mask).all()
    # two overlapping annotations are united, not XOR-ed
    both = render_polygons(
        [{"polygon": {"path": rect(0, 0, 9, 9)}}, {"polygon": {"path": rect(5, 0, 14, 9)}}], (20, 20)
    )
    assert int(both.sum()) == 15 * 10


def test_v7_png_masks_with_index_csv(tmp_path, layouts):
    root, out = tmp_path / "v7png", tmp_path / "out"
    spec = layouts.make_v7_png(root)
    result = ingest_dataset("v7", root, ingest_files(out), mask_source="png")
    _check_outputs(result, out, spec["accepted"])
    assert dict(zip(result.manifest["image_id"], result.manifest["patient_id"])) == spec["patients"]
    assert sorted(r.split(" (")[0].split(":")[0] for r in result.rejects["reason"]) == sorted(spec["reject_reasons"])
    unsafe = result.rejects[result.rejects["reason"].str.startswith("unsafe path")]
    assert set(unsafe["file"]) == {"../x.jpg", "/etc/passwd", "../../etc/shadow"}
    assert result.manifest.set_index("image_id").loc["c2", "view"] == "AP Supine"


def test_png_mode_needs_index_and_unknown_dataset_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="index.csv"):
        ingest_dataset("v7", tmp_path, ingest_files(tmp_path / "out"), mask_source="png")
    with pytest.raises(ValueError, match="unknown dataset"):
        ingest_dataset("chexpert", tmp_path, ingest_files(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="CXR_png"):
        ingest_dataset("shenzhen", tmp_path, ingest_files(tmp_path / "out"))


def test_binarise_mask_accepts_0_1_and_0_255_only():
    base = np.zeros((4, 4), np.uint8)
    base[1:3, 1:3] = 1
    assert (binarise_mask(base) == base).all()
    assert (binarise_mask(base * 255) == base).all()
    assert (binarise_mask(np.dstack([base * 255] * 3)) == base).all()
    with pytest.raises(MaskError, match="not binary"):
        binarise_mask(base * 255 + np.eye(4, dtype=np.uint8) * 3)
    with pytest.raises(MaskError, match="no 0 background"):
        binarise_mask(base + 5)


@pytest.mark.parametrize(
    "finding,label",
    [
        ("COVID-19", "covid19"),
        ("COVID-19, ARDS", "covid19"),
        ("Pneumonia/Viral/COVID-19", "covid19"),
        ("Viral Pneumonia", "pneumonia"),
        ("Bacterial Pneumonia", "pneumonia"),
        ("Fungal Pneumonia", "pneumonia"),
        ("No Pneumonia", "normal"),
        ("No Finding", "normal"),
        ("normal", "normal"),
        ("", None),
        ("Lateral", None),
    ],
)
def test_label_from_finding(finding, label):
    assert label_from_finding(finding) == label


def test_darwin_2_document_and_malformed_polygon(tmp_path, layouts):
    lungs, radiograph, write, rect = layouts.lungs, layouts.radiograph, layouts.write, layouts.rect
    root = tmp_path / "v7"
    left, right = lungs(48, 64)
    for name in ("v2doc", "malformed"):
        write(root / "images" / f"{name}.png", radiograph(left | right))
    (root / "annotations").mkdir()
    v2 = {
        "version": "2.0",
        "item": {"name": "v2doc.png", "slots": [{"width": 64, "height": 48}]},
        "annotations": [
            {"name": "Lung", "polygon": {"paths": [rect(4, 5, 23, 34)]}},
            {"name": "Lung", "polygon": {"paths": [rect(40, 5, 51, 34)]}},
            {"name": "Bacterial Pneumonia", "tag": {}},
        ],
    }
    bad = {
        "image": {"width": 64, "height": 48},
        "annotations": [
            {"name": "Lung", "polygon": {"path": [{"x": 1}, {"x": 2}, {"x": 3}]}},
            {"name": "COVID-19", "tag": {}},
        ],
    }
    (root / "annotations" / "v2doc.json").write_text(json.dumps(v2))
    (root / "annotations" / "malformed.json").write_text(json.dumps(bad))
    result = ingest_dataset("v7", root, ingest_files(tmp_path / "out"))
    assert result.counts == {"pneumonia": 1}
    assert int(io.read_mask(tmp_path / "out" / "masks" / "v2doc.png").sum()) == layouts.TWO_LUNGS_AREA
    assert "malformed polygon" in _reason(result.rejects, "malformed")

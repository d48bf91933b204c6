"""The per-shard manifest (cxlseg.inference.manifest): schema, readers, and which earlier rows count as done."""

import pandas as pd
import pytest
from cxlseg import io
from cxlseg.inference.manifest import (
    MANIFEST_DTYPES,
    load_done,
    manifest_frame,
    partial_path,
    read_manifest_table,
    read_manifests,
    write_manifest,
)


def record(dicom_id, status="ok", model_id="m", settings_id="s", **extra):
    return {
        "dicom_id": dicom_id,
        "subject_id": "10000032",
        "study_id": "50000001",
        "image_path": f"files/p10/p10000032/s50000001/{dicom_id}.jpg",
        "mask_path": f"files/p10/p10000032/s50000001/{dicom_id}-mask.png",
        "status": status,
        "model_id": model_id,
        "settings_id": settings_id,
        "qc_predicted_dice": 0.9,
        **extra,
    }


def test_manifest_frame_has_the_schema_sorted_by_dicom_id():
    frame = manifest_frame([record("b"), record("a", status="failed", error="oops")])
    assert list(frame.columns) == list(MANIFEST_DTYPES) and frame.dicom_id.tolist() == ["a", "b"]
    assert {c: str(t) for c, t in frame.dtypes.items()} == MANIFEST_DTYPES
    assert frame.loc[1, "error"] is pd.NA and frame.loc[0, "decode_factor"] is pd.NA
    assert len(manifest_frame([])) == 0 and list(manifest_frame([]).columns) == list(MANIFEST_DTYPES)


def test_written_bytes_do_not_depend_on_record_order(tmp_path):
    write_manifest([record("a"), record("b")], tmp_path / "one.parquet")
    write_manifest([record("b"), record("a")], tmp_path / "two.parquet")
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()


def test_partial_path():
    assert str(partial_path("out/manifests/p10.parquet")) == "out/progress/p10.parquet"  # not among the manifests


def test_read_manifests_concatenates_and_selects_columns(tmp_path):
    write_manifest([record("b")], tmp_path / "p10.parquet")
    write_manifest([record("a")], tmp_path / "p11.parquet")
    write_manifest([], tmp_path / "p12.parquet")
    frame = read_manifests([tmp_path / f"p1{i}.parquet" for i in range(3)])
    assert frame.dicom_id.tolist() == ["a", "b"] and list(frame.columns) == list(MANIFEST_DTYPES)
    table = read_manifest_table(tmp_path / "p10.parquet", columns=["qc_predicted_dice", "not_a_column"])
    assert set(table.column_names) == {
        "dicom_id",
        "subject_id",
        "study_id",
        "image_path",
        "mask_path",
        "status",
        "qc_predicted_dice",
    }
    assert len(read_manifests([])) == 0


def test_bad_manifests_name_the_file(tmp_path):
    pd.DataFrame({"dicom_id": ["a"], "subject_id": ["1"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"bad\.parquet.*study_id"):
        read_manifests([tmp_path / "bad.parquet"])
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"garbage\.parquet"):
        read_manifest_table(tmp_path / "garbage.parquet")


def _touch_outputs(out_root, rec):
    for rel in (rec["image_path"], rec["mask_path"]):
        path = out_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_load_done_needs_ok_same_model_same_settings_and_files(tmp_path):
    out = tmp_path / "out"
    records = [
        record("a"),
        record("b"),
        record("c", status="failed"),
        record("d", model_id="other"),
        record("e", settings_id="other"),
        record("f"),
    ]
    for rec in records[:-1]:
        _touch_outputs(out, rec)
    (out / records[1]["mask_path"]).unlink()  # b lost its mask
    manifest = tmp_path / "p10.parquet"
    write_manifest(records, manifest)
    assert load_done(manifest, out, "m", "s").dicom_id.tolist() == ["a"]
    assert load_done(tmp_path / "absent.parquet", out, "m", "s").empty


def test_load_done_reads_the_partial_manifest_and_prefers_its_rows(tmp_path):
    out = tmp_path / "out"
    manifest = tmp_path / "p10.parquet"
    for rec in (record("a"), record("b")):
        _touch_outputs(out, rec)
    write_manifest([record("a"), record("b")], manifest)
    io.write_parquet(manifest_frame([record("b", status="failed"), record("a")]), partial_path(manifest))
    assert load_done(manifest, out, "m", "s").dicom_id.tolist() == ["a"]  # the later (partial) row of b wins
    manifest.unlink()
    assert load_done(manifest, out, "m", "s").dicom_id.tolist() == ["a"]

import cv2
import pandas as pd

from cxlseg import io, qc
from test_infer import _run, shard  # noqa: F401  (fixture reused: a tiny shard with good and bad images)


def test_qc_report_lists_failed_and_flagged(shard):  # noqa: F811
    tmp_path, mimic, list_path = shard
    out_root, manifest, _, _ = _run(tmp_path, mimic, list_path, qc_thresholds={"min_qc_score": 1.01})
    io.write_json(tmp_path / "selection.json", {"frontal_images": 7, "images_in_shards": 6})
    result = qc.write_qc_report([manifest], tmp_path / "selection.json", out_root=out_root, mimic_root=mimic,
                                markdown_path=tmp_path / "qc.md", overlays_path=tmp_path / "qc.png")
    text = (tmp_path / "qc.md").read_text()
    frame = pd.read_parquet(manifest)
    for dicom_id in frame.loc[frame.status == "failed", "dicom_id"]:
        assert dicom_id in text.split("## Failed images")[1].split("##")[0]
    assert result["flagged"] == int((frame.status == "ok").sum()) > 0
    assert "frontal_images" in text
    sheet = cv2.imread(str(tmp_path / "qc.png"))
    assert sheet is not None and sheet.shape[0] > 100


def test_empty_run_still_writes_a_report(tmp_path):
    empty = tmp_path / "p10.parquet"
    io.write_parquet(pd.DataFrame({"dicom_id": pd.Series([], dtype=str), "status": pd.Series([], dtype=str),
                                   "qc_flags": pd.Series([], dtype=str)}), empty)
    io.write_json(tmp_path / "selection.json", {"frontal_images": 0})
    result = qc.write_qc_report([empty], tmp_path / "selection.json", out_root=tmp_path, mimic_root=tmp_path,
                                markdown_path=tmp_path / "qc.md", overlays_path=tmp_path / "qc.png")
    assert result["images"] == 0
    assert (tmp_path / "qc.png").is_file() and "Inference quality control" in (tmp_path / "qc.md").read_text()


def test_short_flags():
    assert qc._short_flags("a;b;c;d") == "a, b +2"
    assert qc._short_flags("") == ""

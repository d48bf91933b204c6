"""Outputs get a plain open()'s mode (0666 under the umask), never a temporary file's 0600: a shared results
folder stays readable by the group that runs the next stage."""

import os
import stat

import pandas as pd
import pytest
from cxlseg.config import default_config
from cxlseg.mimic import CHEXPERT_LABELS, report_relpath
from cxlseg.tables.merge import merge_tables
from cxlseg.tables.settings import TablesSettings
from cxlseg.training.trainer import train_model
from helpers.tables import TABLE_NAMES, table_files
from helpers.training import model_files


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_checkpoint_written_by_train_model(umask_022, store, tmp_path, train_config):
    train_model(store, model_files(tmp_path), train_config(epochs=1))
    for name in ("checkpoint_best.pt", "checkpoint_last.pt", "history.csv", "model.json"):
        assert mode(tmp_path / name) == 0o644, name


def test_mask_and_segmented_image_written_by_infer_shard(umask_022, shard, infer_run):
    for mask_format in ("png", "jpg"):
        run = infer_run(shard, out=mask_format, mask_format=mask_format)
        ok = pd.read_parquet(run.manifest).query("status == 'ok'")
        assert len(ok)
        for rec in ok.itertuples():
            assert mode(run.out_root / rec.image_path) == 0o644, rec.image_path
            assert mode(run.out_root / rec.mask_path) == 0o644, rec.mask_path
        assert mode(run.manifest) == 0o644


def test_tables_written_by_merge_tables(umask_022, tmp_path):
    row = {
        "dicom_id": "d1",
        "subject_id": "10000032",
        "study_id": "50414267",
        "status": "ok",
        "qc_flags": "",
        "image_path": "files/p10/p10000032/s50414267/d1.jpg",
        "mask_path": "files/p10/p10000032/s50414267/d1-mask.jpg",
    }
    pd.DataFrame([row]).to_parquet(tmp_path / "p10.parquet", index=False)
    pd.DataFrame([{"dicom_id": "d1", "ViewPosition": "PA", "StudyDate": "21800506", "StudyTime": "1"}]).to_csv(
        tmp_path / "metadata.csv.gz", index=False
    )
    pd.DataFrame([{"subject_id": 10000032, "study_id": 50414267, **{c: 1.0 for c in CHEXPERT_LABELS}}]).to_csv(
        tmp_path / "chexpert.csv.gz", index=False
    )
    report = tmp_path / "reports" / report_relpath(10000032, 50414267)
    report.parent.mkdir(parents=True)
    report.write_text(" FINAL REPORT\n FINDINGS:  Clear.\n")
    merge_tables(
        [tmp_path / "p10.parquet"],
        tmp_path / "metadata.csv.gz",
        tmp_path / "chexpert.csv.gz",
        tmp_path / "reports",
        table_files(tmp_path / "out"),
        TablesSettings.from_config(default_config()),
        progress=False,
    )
    written = [*TABLE_NAMES.values(), "CXLSeg-failed.csv.gz", "summary.json"]
    assert {name: mode(tmp_path / "out" / name) for name in written} == {name: 0o644 for name in written}
    assert pd.read_csv(tmp_path / "out" / "CXLSeg-segmented.csv.gz")["dicom_id"].tolist() == ["d1"]

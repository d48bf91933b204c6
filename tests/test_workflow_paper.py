"""`--configfile config/config.yaml config/demo.yaml config/paper.yaml` runs end to end on the demo, and its outputs
are CXLSeg's where the README's "Faithful to CXLSeg" table says so: Table II's multipliers, Table IV's four models
scored both ways, SA-UNet segmenting, linear-resized 3-channel segmented images, the per-image split.

Kept cheap by one more overlay (tiny.yaml): a smaller demo archive, one epoch of two batches at a 64 px network
input, one classifier.
"""

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers.workflow import snakemake_cmd, workflow_env

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [str(ROOT / "config" / name) for name in ("config.yaml", "demo.yaml", "paper.yaml")]
TINY = {
    "demo": {"n_shenzhen": 6, "n_montgomery": 4, "n_v7": 8, "n_mimic_subjects": 8},
    "train": {"epochs": 1, "max_train_batches": 2, "input_size": 64},
    "infer": {"batch_size": 4, "flush_every": 8},
    "view_check": {"samples_per_view": 24, "validate_per_view": 8, "epochs": 2, "archive_samples": 20},
    "classify": {"models": ["mobilenet_v2"], "input_size": 32, "epochs": 1, "batch_size": 8, "max_train_batches": 1},
}
ARCHS = ["plain_unet", "plain_unetplusplus", "attention_unet", "sa_unet"]


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("paper-run")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    cmd = snakemake_cmd(workdir, "--cores", "2", configs=[*CONFIGS, workdir / "tiny.yaml"], profile="local")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3000, env=workflow_env())
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return workdir


@pytest.mark.integration
def test_table_ii_multipliers_grow_each_dataset_and_class(paper_run):
    index = pd.read_parquet(paper_run / "results" / "training" / "store" / "train_index.parquet")
    originals = index[~index.augmented].groupby(["dataset", "label"]).size()
    totals = index.groupby(["dataset", "label"]).size()
    multipliers = yaml.safe_load(Path(CONFIGS[2]).read_text())["augment"]["multipliers"]
    assert len(originals) >= 4
    for (dataset, label), n in originals.items():
        assert totals[dataset, label] == round(n * multipliers[dataset].get(label, 1)), (dataset, label)


@pytest.mark.integration
def test_table_iv_has_the_papers_models_scored_both_ways_and_sa_unet_segments(paper_run):
    models = paper_run / "results" / "models"
    table = pd.read_csv(models / "comparison.csv").set_index("model")
    assert sorted(table.index) == sorted(ARCHS)
    paper = table[["paper_loss_pct", "paper_soft_dice", "paper_soft_iou", "paper_recall", "paper_precision"]]
    assert np.isfinite(paper.to_numpy()).all() and (paper["paper_loss_pct"] > 0).all()
    assert "paper_soft_dice" in (models / "comparison.md").read_text()
    assert json.loads((models / "selected.json").read_text())["architecture"] == "sa_unet"
    checkpoint = torch.load(models / "sa_unet" / "checkpoint_best.pt", weights_only=True, map_location="cpu")
    assert checkpoint["config"]["interpolation"] == "linear" and checkpoint["config"]["clahe_space"] == "lab"


@pytest.mark.integration
def test_segmented_images_are_cxlsegs_pixels(paper_run):
    """3-channel JPEGs, AND(INTER_LINEAR resize of the original, mask) within JPEG noise; one split by image.
    The demo's inverted film is written upright (the film check: CXLSeg-qc says so), so its original is inverted
    back before comparing."""
    out = paper_run / "results" / "CXLSeg"
    archive = paper_run / "resources" / "demo" / "mimic-cxr-jpg"
    segmented = pd.read_csv(out / "CXLSeg-segmented.csv.gz", dtype={"dicom_id": str})
    masks = pd.read_csv(out / "CXLSeg-mask.csv.gz", dtype={"dicom_id": str}).set_index("dicom_id")["DicomPath"]
    inverted = pd.read_csv(out / "CXLSeg-qc.csv.gz", dtype={"dicom_id": str}).set_index("dicom_id")["film_inverted"]
    assert len(segmented) >= 5 and inverted.sum() == 1
    errors = []
    for row in segmented.itertuples():
        seg = cv2.imread(str(out / row.DicomPath), cv2.IMREAD_UNCHANGED)
        assert seg.shape == (224, 224, 3), row.DicomPath
        written = cv2.imread(str(out / masks[row.dicom_id]), cv2.IMREAD_GRAYSCALE) > 127
        mask = cv2.erode(written.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # inside, off the JPEG edges
        original = cv2.imread(str(archive / row.DicomPath), cv2.IMREAD_UNCHANGED)
        if mask.sum() < 500 or original.ndim != 2 or original.dtype != np.uint8:  # plain 8-bit gray films only
            continue
        if inverted[row.dicom_id]:
            original = 255 - original
        reference = np.where(mask, cv2.resize(original, (224, 224)), 0)
        gray = cv2.cvtColor(seg, cv2.COLOR_BGR2GRAY).astype(int)
        errors.append(np.abs(gray - reference)[mask].mean())
    assert errors and max(errors) <= 1.6, errors
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"]["unit"] == "image" and summary["split"]["source"] == "random"

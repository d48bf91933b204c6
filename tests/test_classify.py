"""Table III end to end: settings from the schema, tiny runs of every classifier, the two tables and the figure."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import pkgutil

import cv2
import cxlseg.classify as classify
import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg.classify.run import RunFiles, train_and_evaluate
from cxlseg.classify.settings import ClassifySettings
from cxlseg.classify.table3 import Table3Files, summarise
from cxlseg.config import build_settings, default_config, load_schema, speed_only_keys
from cxlseg.io import write_csv, write_image
from cxlseg.mimic import CHEXPERT_LABELS, image_relpath
from cxlseg.preprocess import prepare
from helpers import TABLE3_LABELS
from test_classify_cohort import segmented_table

MODELS = ("resnet50", "mobilenet_v2", "densenet121", "inception_v3")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- settings come from the schema, nowhere else ------------------------------------------------------

SCHEMA = load_schema()["properties"]["classify"]["properties"]


def test_settings_have_one_field_per_schema_key_and_no_defaults():
    fields = dataclasses.fields(ClassifySettings)
    assert [f.name for f in fields] == list(SCHEMA)
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields)
    settings = build_settings(ClassifySettings, default_config()["classify"])
    assert settings.labels == CHEXPERT_LABELS and settings.report_labels == TABLE3_LABELS
    assert (settings.patience, settings.resize, settings.augment) == (3, "pad", True)


def test_no_function_restates_a_schema_default():
    """Keyword defaults for config keys would silently disagree with the schema (as epochs 1 vs 10 once did)."""
    keys = set(SCHEMA) | {"classes", "hidden", "in_channels", "seed", "image_size", "clahe_clip", "clahe_tiles"}
    offenders = []
    for info in pkgutil.iter_modules(classify.__path__):
        module = importlib.import_module(f"cxlseg.classify.{info.name}")
        for name, obj in vars(module).items():
            if inspect.isfunction(obj) and obj.__module__ == module.__name__:
                offenders += [
                    f"{info.name}.{name}({p})"
                    for p, spec in inspect.signature(obj).parameters.items()
                    if p in keys and spec.default is not inspect.Parameter.empty
                ]
    assert offenders == []


def test_schema_keys_are_documented_and_only_speed_keys_are_speed_only():
    assert all("default" in v and v.get("description") for v in SCHEMA.values())
    assert speed_only_keys("classify") == {"num_workers", "device", "amp"}


def test_report_labels_must_be_trained_labels(tmp_path):
    settings = build_settings(ClassifySettings, default_config()["classify"], labels=["Edema", "Pneumonia"])
    with pytest.raises(ValueError, match=r"report_labels \['Lung Lesion', 'Atelectasis', 'Pleural Effusion'\]"):
        train_and_evaluate(settings, "resnet50", "original", **_where(tmp_path, tmp_path, tmp_path / "r"), seed=1)


# --- a tiny end-to-end run --------------------------------------------------------------------------

# split -> per-image (Lung Lesion, Pneumonia, Atelectasis, Pleural Effusion); Lung Lesion never positive in test;
# the other ten CheXpert labels stay blank (negative)
DESIGN = {
    "train": [
        (1, 1, 0, 0),
        (0, 0, 1, 1),
        (1, 0, -1, 0),
        (0, 1, 0, 1),
        (0, 0, 0, 0),
        (1, 1, 1, None),
        (0, 0, 1, 0),
        (0, 1, 0, 1),
    ],
    "validate": [(1, 0, 1, 0), (0, 1, 0, 1), (0, 0, 0, 0)],
    "test": [(0, 1, 1, 0), (0, 0, 0, 1), (0, 1, 0, 0), (0, -1, 1, 1)],
}
CORRUPT = "d00"  # the first train original is not a JPEG


def _fake_cxlseg(tmp_path, design=DESIGN):
    """A CXLSeg folder with its segmented images, and a MIMIC-CXR-JPG archive of the portrait originals."""
    rng = np.random.default_rng(0)
    cxlseg_root, mimic_root = tmp_path / "CXLSeg", tmp_path / "mimic"
    seg_rows, split_rows = [], []
    for i, (split, labels) in enumerate((s, r) for s, rows in design.items() for r in rows):
        dicom_id, subject_id, study_id = f"d{i:02d}", 10000000 + i, 50000000 + i
        rel = image_relpath(subject_id, study_id, dicom_id)
        image = (rng.random((90, 72)) * 200).astype(np.uint8)
        if labels[3] == 1:
            image[60:, :] = 230  # a crude effusion
        lungs = np.zeros((224, 224), np.uint8)
        cv2.ellipse(lungs, (70, 110), (40, 80), 0, 0, 360, 1, -1)
        cv2.ellipse(lungs, (154, 110), (40, 80), 0, 0, 360, 1, -1)
        (mimic_root / rel).parent.mkdir(parents=True, exist_ok=True)
        if dicom_id == CORRUPT:
            (mimic_root / rel).write_bytes(b"not a jpeg at all")
        else:
            write_image(mimic_root / rel, image)
        write_image(cxlseg_root / rel, prepare(image, 224) * lungs)
        seg_rows.append([dicom_id, subject_id, study_id, rel, *labels])
        split_rows.append([dicom_id, subject_id, study_id, split])
    write_csv(segmented_table(seg_rows), cxlseg_root / "CXLSeg-segmented.csv.gz")
    write_csv(
        pd.DataFrame(split_rows, columns=["dicom_id", "subject_id", "study_id", "split"]),
        cxlseg_root / "CXLSeg-split.csv.gz",
    )
    return cxlseg_root, mimic_root


def _small(**overrides):
    tiny = dict(input_size=32, epochs=2, batch_size=4, head_hidden=8, device="cpu", num_workers=0, recalibrate_bn=True)
    return build_settings(ClassifySettings, default_config()["classify"], **{**tiny, **overrides})


def run_files(folder) -> RunFiles:
    """The classify rule's outputs for one run, in `folder`."""
    return RunFiles(folder / "metrics.json", folder / "predictions.csv", folder / "skipped.csv")


def _where(cxlseg_root, mimic_root, run_dir) -> dict:
    """train_and_evaluate's files as the classify rule passes them."""
    return {
        "segmented": cxlseg_root / "CXLSeg-segmented.csv.gz",
        "split": cxlseg_root / "CXLSeg-split.csv.gz",
        "images_root": cxlseg_root,
        "mimic_root": mimic_root,
        "out": run_files(run_dir),
    }


def _summarise(runs, out, report_labels):
    """summarise with the classify_summary rule's outputs in `out`."""
    names = ("table3.csv", "table3.md", "table3_all_labels.csv", "table3_all_labels.md", "roc.png", "skipped.csv")
    copies = [out / f"predictions_{run.name}.csv" for run in runs]
    return summarise([run_files(run) for run in runs], Table3Files(*(out / n for n in names), copies), report_labels)


def _run(settings, model, kind, cxlseg_root, mimic_root, out):
    return train_and_evaluate(settings, model, kind, **_where(cxlseg_root, mimic_root, out / f"{model}_{kind}"), seed=7)


def test_every_classifier_on_both_inputs_then_table3(tmp_path):
    cxlseg_root, mimic_root = _fake_cxlseg(tmp_path)
    out, settings = tmp_path / "table3", _small()
    for model in MODELS:
        for kind in ("original", "segmented"):
            _run(settings, model, kind, cxlseg_root, mimic_root, out)
    table = _summarise(
        [out / f"{m}_{k}" for m in MODELS for k in ("original", "segmented")], out, settings.report_labels
    )

    assert list(zip(table["model"], table["input"])) == [(m, k) for m in MODELS for k in ("original", "segmented")]
    reported = sorted({c.rsplit(" ", 1)[0] for c in table.columns if c.endswith(" AUC")})
    assert reported == sorted([*TABLE3_LABELS, "mean"])  # the paper's four, not all fourteen
    # Lung Lesion has no positives in test: sensitivity and AUC are NaN, specificity is not
    assert table["Lung Lesion AUC"].isna().all() and table["Lung Lesion sensitivity"].isna().all()
    assert table["Lung Lesion specificity"].notna().all()
    assert table["Pleural Effusion AUC"].between(0, 1).all() and table["mean AUC"].notna().all()
    mean_auc = table[[f"{c} AUC" for c in ("Pneumonia", "Atelectasis", "Pleural Effusion")]].mean(axis=1)
    np.testing.assert_allclose(table["mean AUC"], mean_auc)  # the mean is over the report labels only

    assert len(pd.read_csv(out / "table3.csv")) == 8
    markdown = (out / "table3.md").read_text()
    assert "## Pleural Effusion" in markdown and "| resnet50 | segmented |" in markdown and "n/a" in markdown
    assert "## Edema" not in markdown and "14 sigmoid outputs" in markdown and "patience 3" in markdown

    every = pd.read_csv(out / "table3_all_labels.csv")
    assert every["label"].tolist() == list(CHEXPERT_LABELS) and every.shape == (14, 1 + 8 * 4)
    edema = every.set_index("label").loc["Edema"]  # blank everywhere -> all negative: no AUC, no sensitivity
    assert edema.filter(like="AUC").isna().all() and edema.filter(like="sensitivity").isna().all()
    assert edema.filter(like="specificity").notna().all()
    all_md = (out / "table3_all_labels.md").read_text()
    assert all_md.count("| Support Devices |") == 4  # one row per label in each metric's table
    assert "| label | resnet50 original | resnet50 segmented | mobilenet_v2 original |" in all_md

    png = cv2.imread(str(out / "roc.png"))
    assert png is not None and 300 < png.shape[0] <= 700  # one row of panels: fits a 1366x768 screen
    skipped = pd.read_csv(out / "skipped.csv")
    assert skipped["dicom_id"].tolist() == [CORRUPT] and set(skipped["input"]) == {"original"}
    assert "JPEG" in skipped["reason"].iloc[0]

    predictions = pd.read_csv(out / "predictions_densenet121_segmented.csv")
    assert sorted(set(predictions["split"])) == ["test", "validate"] and len(predictions) == 7
    assert predictions[[f"{c}_score" for c in CHEXPERT_LABELS]].stack().between(0, 1).all()
    for model in MODELS:  # BatchNorm statistics recomputed after the short training: scores depend on the image
        scores = pd.read_csv(out / f"predictions_{model}_original.csv")["Pleural Effusion_score"]
        assert scores.nunique() > 1, model
    metrics = json.loads((out / "densenet121_original" / "metrics.json").read_text())
    assert metrics["per_label"]["Lung Lesion"]["AUC"] is None and len(metrics["per_label"]) == 14
    assert metrics["counts"] == {"train": 8, "validate": 3, "test": 4, "skipped": 1}
    assert [h["batches"] for h in metrics["history"]] == [2, 2] and 1 <= metrics["best_epoch"] <= 2
    assert all(math.isfinite(h["val_loss"]) for h in metrics["history"])


def test_one_pair_is_deterministic_and_ignores_uncertain(tmp_path):
    cxlseg_root, mimic_root = _fake_cxlseg(tmp_path)
    settings = _small(uncertain="ignore")
    first = _run(settings, "mobilenet_v2", "segmented", cxlseg_root, mimic_root, tmp_path / "a")
    _run(settings, "mobilenet_v2", "segmented", cxlseg_root, mimic_root, tmp_path / "b")
    run = "mobilenet_v2_segmented"
    for name in ("predictions.csv", "metrics.json"):  # same seed: same weights, batches and jitter
        assert (tmp_path / "a" / run / name).read_bytes() == (tmp_path / "b" / run / name).read_bytes()
    # the uncertain Pneumonia label of the last test image is left out of its metrics
    assert first["per_label"]["Pneumonia"]["n_test"] == 3
    predictions = pd.read_csv(tmp_path / "a" / run / "predictions.csv")
    assert predictions["Pneumonia_label"].isna().sum() == 1


def test_empty_validate_split_and_loader_workers(tmp_path):
    """Without validate images: every epoch runs, thresholds fall back to 0.5; DataLoader workers load the same."""
    cxlseg_root, mimic_root = _fake_cxlseg(tmp_path, {"train": DESIGN["train"], "test": DESIGN["test"]})
    metrics = _run(
        _small(num_workers=1, input_size=48, patience=1),
        "mobilenet_v2",
        "original",
        cxlseg_root,
        mimic_root,
        tmp_path / "o",
    )
    assert metrics["counts"]["validate"] == 0 and metrics["counts"]["skipped"] == 1
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] == 2
    assert {v["threshold_rule"] for v in metrics["per_label"].values()} == {"fallback_0.5"}
    assert math.isfinite(metrics["per_label"]["Pleural Effusion"]["AUC"])


def test_bad_runs_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown input 'masks'"):
        train_and_evaluate(_small(), "resnet50", "masks", **_where(tmp_path, tmp_path, tmp_path / "o"), seed=1)
    with pytest.raises(FileNotFoundError, match="resnet50_original/metrics.json"):
        _summarise([tmp_path / "resnet50_original"], tmp_path, TABLE3_LABELS)

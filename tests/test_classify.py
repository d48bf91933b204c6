"""Tests of the Table-III classifier comparison: metrics by hand, label policies, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from cxlseg import classify as cl
from cxlseg.io import read_gray, write_csv, write_image
from cxlseg.preprocess import prepare

CLASSES = list(cl.DEFAULT_CLASSES)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- metrics against hand-computed values -----------------------------------------------------------

Y = np.array([0, 0, 1, 1, 0, 1])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.5, 0.9])


def test_auc_matches_pair_count():
    # positives 0.35, 0.8, 0.9 vs negatives 0.1, 0.4, 0.5: 1 + 3 + 3 of 9 pairs ordered correctly
    assert cl.auc(Y, S) == pytest.approx(7 / 9)


def test_auc_counts_ties_as_half():
    # pairs (pos 0.5, neg 0.5)=0.5, (0.5, 0.2)=1, (0.8, 0.5)=1, (0.8, 0.2)=1 -> 3.5 / 4
    assert cl.auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.8]) == pytest.approx(0.875)
    assert cl.auc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)


def test_auc_is_nan_without_both_classes():
    assert math.isnan(cl.auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(cl.auc([0, 0], [0.2, 0.5]))


def test_youden_threshold_hand_computed():
    # thresholds 0.9, 0.8, 0.5, 0.4, 0.35, 0.1 give J = 1/3, 2/3, 1/3, 0, 1/3, 0
    assert cl.youden_threshold(Y, S) == pytest.approx(0.8)


def test_youden_threshold_prefers_highest_on_ties_and_nan_without_a_class():
    # 0.7 and 0.3 both reach J = 1/2; the higher threshold wins
    assert cl.youden_threshold([1, 0, 1, 0], [0.7, 0.5, 0.3, 0.1]) == pytest.approx(0.7)
    assert math.isnan(cl.youden_threshold([0, 0, 0], [0.1, 0.2, 0.3]))


def test_binary_metrics_hand_computed():
    # predictions at 0.5: 1 0 1 0 0 -> TP 1, FN 1, FP 1, TN 2
    out = cl.binary_metrics([1, 1, 0, 0, 0], [0.9, 0.4, 0.6, 0.2, 0.1], 0.5)
    assert out == pytest.approx({"accuracy": 0.6, "sensitivity": 0.5, "specificity": 2 / 3})


def test_binary_metrics_without_positives_reports_nan_sensitivity():
    out = cl.binary_metrics([0, 0, 0], [0.9, 0.1, 0.2], 0.5)
    assert math.isnan(out["sensitivity"])
    assert out["specificity"] == pytest.approx(2 / 3) and out["accuracy"] == pytest.approx(2 / 3)


def test_roc_curve_points_and_validation():
    fpr, tpr, thr = cl.roc_curve([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    assert thr[0] == np.inf and list(thr[1:]) == [0.8, 0.5, 0.2]
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        cl.auc([0, 2], [0.1, 0.2])


def test_evaluate_classes_falls_back_when_validate_lacks_positives():
    targets = np.array([[0.0], [0.0], [0.0]])
    val = (targets, np.ones_like(targets), np.array([[0.2], [0.7], [0.4]]))
    test = (np.array([[1.0], [0.0]]), np.ones((2, 1)), np.array([[0.6], [0.3]]))
    out = cl.evaluate_classes(["Pneumonia"], val, test)["Pneumonia"]
    assert out["threshold_rule"] == "fallback_0.5" and out["threshold"] == 0.5
    assert out["accuracy"] == 1.0 and out["AUC"] == 1.0


# --- labels -----------------------------------------------------------------------------------------

VALUES = np.array([[1.0, 0.0, -1.0, np.nan]])


@pytest.mark.parametrize("policy, targets, mask", [
    ("ones", [1, 0, 1, 0], [1, 1, 1, 1]),
    ("zeros", [1, 0, 0, 0], [1, 1, 1, 1]),
    ("ignore", [1, 0, 0, 0], [1, 1, 0, 1]),
])
def test_uncertain_policies_and_blank_is_negative(policy, targets, mask):
    got_targets, got_mask = cl.encode_labels(VALUES, policy)
    np.testing.assert_array_equal(got_targets[0], targets)
    np.testing.assert_array_equal(got_mask[0], mask)


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="'maybe'.*ones, zeros, ignore"):
        cl.encode_labels(VALUES, "maybe")


def test_masked_bce_gives_ignored_entries_no_gradient():
    logits = torch.zeros(1, 2, requires_grad=True)
    loss = cl.masked_bce(logits, torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(2))
    assert logits.grad[0, 1] == 0 and logits.grad[0, 0] != 0


def _segmented_table(rows):
    frame = pd.DataFrame(rows, columns=["dicom_id", "subject_id", "study_id", "DicomPath", *CLASSES])
    for extra in cl.CHEXPERT_CLASSES:
        if extra not in frame:
            frame[extra] = np.nan
    return frame


def test_load_labels_reads_the_published_layout(tmp_path):
    path = tmp_path / "CXLSeg-segmented.csv.gz"
    write_csv(_segmented_table([["d1", 10000001, 50000001, "files/x/d1.jpg", 1.0, -1.0, None, 0.0]]), path)
    labels = cl.load_labels(path, uncertain="ignore")
    np.testing.assert_array_equal(labels.targets, [[1, 0, 0, 0]])
    np.testing.assert_array_equal(labels.mask, [[1, 0, 1, 1]])
    assert labels.frame["dicom_id"].tolist() == ["d1"]


def test_load_labels_names_file_and_bad_value(tmp_path):
    path = tmp_path / "CXLSeg-segmented.csv.gz"
    write_csv(_segmented_table([["d1", 10000001, 50000001, "p.jpg", 2.0, 0.0, 0.0, 0.0]]), path)
    with pytest.raises(ValueError, match=r"CXLSeg-segmented.csv.gz.*'Lung Lesion' holds '2.0'"):
        cl.load_labels(path)
    no_pneumonia = _segmented_table([["d1", 10000001, 50000001, "p.jpg", 1.0, 0.0, 0.0, 0.0]]).drop(columns="Pneumonia")
    write_csv(no_pneumonia, path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Pneumonia'\]"):
        cl.load_labels(path)


def test_load_cohort_rejects_unknown_split(tmp_path):
    write_csv(_segmented_table([["d1", 10000001, 50000001, "p.jpg", 1.0, 0.0, 0.0, 0.0]]),
              tmp_path / "CXLSeg-segmented.csv.gz")
    write_csv(pd.DataFrame({"dicom_id": ["d1"], "subject_id": [10000001], "study_id": [50000001], "split": ["val"]}),
              tmp_path / "CXLSeg-split.csv.gz")
    with pytest.raises(ValueError, match=r"CXLSeg-split.csv.gz: split values \['val'\]"):
        cl.load_cohort(tmp_path)


def test_original_relpath_follows_mimic_layout():
    assert cl.original_relpath(10000032, 50414267, "abc") == "files/p10/p10000032/s50414267/abc.jpg"


# --- images -----------------------------------------------------------------------------------------


def _one_image_frame(dicom_path):
    return pd.DataFrame({"subject_id": [10000001], "study_id": [50000001], "dicom_id": ["d1"],
                         "DicomPath": [dicom_path]})


def test_original_and_segmented_share_preprocessing(tmp_path):
    """With an all-lung mask the segmented input equals the original input: the only difference is the AND."""
    rng = np.random.default_rng(1)
    original = (rng.random((120, 100)) * 255).astype(np.uint8)
    rel = cl.original_relpath(10000001, 50000001, "d1")
    write_image(tmp_path / "mimic" / rel, original, [cv2.IMWRITE_JPEG_QUALITY, 100])
    write_image(tmp_path / "seg" / "d1.png", prepare(read_gray(tmp_path / "mimic" / rel), 224))  # lossless
    frame, ones = _one_image_frame("d1.png"), np.ones((1, 4), np.float32)
    kinds = {}
    for kind in cl.INPUT_KINDS:
        source = cl.ImageSource(kind, str(tmp_path / "seg"), str(tmp_path / "mimic"), input_size=48)
        kinds[kind] = cl.ImageDataset(frame, ones, ones, source)[0]
    assert kinds["original"]["ok"] and kinds["segmented"]["ok"]
    assert kinds["original"]["x"].shape == (3, 48, 48)
    torch.testing.assert_close(kinds["original"]["x"], kinds["segmented"]["x"])


def test_dataset_flags_unsafe_and_missing_files(tmp_path):
    ones = np.ones((1, 4), np.float32)
    source = cl.ImageSource("segmented", str(tmp_path), str(tmp_path), input_size=32)
    item = cl.ImageDataset(_one_image_frame("../outside.jpg"), ones, ones, source)[0]
    assert not item["ok"] and "'..' not allowed" in item["reason"] and item["x"].shape == (3, 32, 32)
    item = cl.ImageDataset(_one_image_frame("files/missing.jpg"), ones, ones, source)[0]
    assert not item["ok"] and item["reason"] == "file not found" and item["file"].endswith("missing.jpg")


def test_batchnorm_recalibration_restores_momentum():
    net = cl.Classifier(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.BatchNorm2d(2),
                                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()), 3)
    frame = pd.DataFrame({"subject_id": [1] * 4, "study_id": [1] * 4, "dicom_id": list("abcd"),
                          "DicomPath": list("abcd")})

    class Bright(cl.ImageDataset):
        def __getitem__(self, index):
            return {"x": torch.full((3, 8, 8), float(index)), "y": self.targets[index], "m": self.mask[index],
                    "index": index, "ok": True, "file": "", "reason": ""}

    ones = np.ones((4, 1), np.float32)
    dataset = Bright(frame, ones, ones, cl.ImageSource("segmented", ".", "."))
    used = cl.recalibrate_batchnorm(net, torch.utils.data.DataLoader(dataset, batch_size=2), torch.device("cpu"),
                                    False, cl._SkipLog("segmented"))
    norm = net.backbone[1]
    assert used == 2 and norm.momentum == 0.1 and not net.training
    assert norm.running_mean.abs().sum() > 0  # statistics now describe the data, not the initial (0, 1)


def test_summarise_names_a_missing_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="resnet50_original/metrics.json"):
        cl.summarise([tmp_path / "resnet50_original"], tmp_path)


# --- classifiers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", cl.DEFAULT_MODELS)
def test_every_classifier_takes_small_inputs(name):
    torch.manual_seed(0)
    net = cl.create_classifier(name, num_classes=4).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_create_classifier_options():
    with pytest.raises(ValueError, match="'vgg16'.*resnet50, mobilenet_v2, densenet121, inception_v3"):
        cl.create_classifier("vgg16", 4)
    gray = cl.create_classifier("mobilenet_v2", 2, in_channels=1).eval()
    with torch.no_grad():
        assert gray(torch.rand(1, 1, 32, 32)).shape == (1, 2)
    inception = cl.create_classifier("inception_v3", 3)
    assert inception.backbone.AuxLogits is None and inception.min_size == 75
    # pretrained maps to torchvision's default weights (resolved here, never downloaded)
    from torchvision.models import Inception_V3_Weights, ResNet50_Weights

    assert cl.classifier_weights("resnet50", True) is ResNet50_Weights.DEFAULT
    assert cl.classifier_weights("inception_v3", True) is Inception_V3_Weights.DEFAULT
    assert cl.classifier_weights("densenet121", False) is None


# --- a tiny end-to-end run --------------------------------------------------------------------------

# split -> per-image (Lung Lesion, Pneumonia, Atelectasis, Pleural Effusion); Lung Lesion never positive in test
DESIGN = {
    "train": [(1, 1, 0, 0), (0, 0, 1, 1), (1, 0, -1, 0), (0, 1, 0, 1), (0, 0, 0, 0), (1, 1, 1, None), (0, 0, 1, 0),
              (0, 1, 0, 1)],
    "validate": [(1, 0, 1, 0), (0, 1, 0, 1), (0, 0, 0, 0)],
    "test": [(0, 1, 1, 0), (0, 0, 0, 1), (0, 1, 0, 0), (0, -1, 1, 1)],
}
CORRUPT = "d00"  # the first train original is not a JPEG


def _fake_cxlseg(tmp_path, design=DESIGN):
    """A CXLSeg folder, its segmented images and a MIMIC-CXR-JPG archive of the same images."""
    rng = np.random.default_rng(0)
    cxlseg_root, mimic_root = tmp_path / "CXLSeg", tmp_path / "mimic"
    seg_rows, split_rows = [], []
    i = 0
    for split, label_rows in design.items():
        for labels in label_rows:
            dicom_id, subject_id, study_id = f"d{i:02d}", 10000000 + i, 50000000 + i
            rel = cl.original_relpath(subject_id, study_id, dicom_id)
            image = (rng.random((90, 72)) * 200).astype(np.uint8)
            if labels[3] == 1:
                image[60:, :] = 230  # a crude effusion
            lungs = np.zeros((224, 224), np.uint8)
            cv2.ellipse(lungs, (70, 110), (40, 80), 0, 0, 360, 1, -1)
            cv2.ellipse(lungs, (154, 110), (40, 80), 0, 0, 360, 1, -1)
            segmented = prepare(image, 224) * lungs
            (mimic_root / rel).parent.mkdir(parents=True, exist_ok=True)
            if dicom_id == CORRUPT:
                (mimic_root / rel).write_bytes(b"not a jpeg at all")
            else:
                write_image(mimic_root / rel, image)
            write_image(cxlseg_root / rel, segmented)
            seg_rows.append([dicom_id, subject_id, study_id, rel, *labels])
            split_rows.append([dicom_id, subject_id, study_id, split])
            i += 1
    write_csv(_segmented_table(seg_rows), cxlseg_root / "CXLSeg-segmented.csv.gz")
    write_csv(pd.DataFrame(split_rows, columns=["dicom_id", "subject_id", "study_id", "split"]),
              cxlseg_root / "CXLSeg-split.csv.gz")
    return cxlseg_root, mimic_root


SMALL = dict(input_size=32, epochs=1, batch_size=4, device="cpu", seed=7)


def test_run_comparison_end_to_end(tmp_path):
    cxlseg_root, mimic_root = _fake_cxlseg(tmp_path)
    out = tmp_path / "table3"
    table = cl.run_comparison(cxlseg_root, cxlseg_root, mimic_root, out, **SMALL)

    assert list(zip(table["model"], table["input"])) == [
        (m, i) for m in cl.DEFAULT_MODELS for i in ("original", "segmented")]
    for name in CLASSES + ["mean"]:
        for metric in cl.METRICS:
            assert f"{name} {metric}" in table.columns
    # Lung Lesion has no positives in test: sensitivity and AUC are NaN, specificity is not
    assert table["Lung Lesion AUC"].isna().all() and table["Lung Lesion sensitivity"].isna().all()
    assert table["Lung Lesion specificity"].notna().all()
    assert table["Pleural Effusion AUC"].between(0, 1).all()
    assert table["mean AUC"].notna().all()

    on_disk = pd.read_csv(out / "table3.csv")
    assert len(on_disk) == 8 and set(on_disk["input"]) == {"original", "segmented"}
    markdown = (out / "table3.md").read_text()
    assert "## Pleural Effusion" in markdown and "| resnet50 | segmented |" in markdown and "n/a" in markdown
    png = cv2.imread(str(out / "roc.png"))
    assert png is not None and png.shape[0] > 400

    skipped = pd.read_csv(out / "skipped.csv")
    assert skipped["dicom_id"].tolist() == [CORRUPT] and set(skipped["input"]) == {"original"}
    assert "JPEG" in skipped["reason"].iloc[0]

    predictions = pd.read_csv(out / "predictions_densenet121_segmented.csv")
    assert sorted(set(predictions["split"])) == ["test", "validate"] and len(predictions) == 7
    assert predictions["Pneumonia_score"].between(0, 1).all()
    # BatchNorm statistics recomputed after the short training: scores still depend on the image
    for model in cl.DEFAULT_MODELS:
        scores = pd.read_csv(out / f"predictions_{model}_original.csv")["Pleural Effusion_score"]
        assert scores.nunique() > 1, model
    metrics = json.loads((out / "densenet121_original" / "metrics.json").read_text())
    assert metrics["per_class"]["Lung Lesion"]["AUC"] is None
    assert metrics["counts"] == {"train": 8, "validate": 3, "test": 4, "skipped": 1}
    assert metrics["history"][0]["batches"] == 2


def test_one_pair_is_deterministic_and_ignores_uncertain(tmp_path):
    cxlseg_root, mimic_root = _fake_cxlseg(tmp_path)
    kwargs = dict(cxlseg_dir=cxlseg_root, cxlseg_root=cxlseg_root, mimic_root=mimic_root, uncertain="ignore", **SMALL)
    first = cl.train_and_evaluate("mobilenet_v2", "segmented", out_dir=tmp_path / "a", **kwargs)
    cl.train_and_evaluate("mobilenet_v2", "segmented", out_dir=tmp_path / "b", **kwargs)
    run = "mobilenet_v2_segmented"
    for name in ("predictions.csv", "metrics.json"):
        assert (tmp_path / "a" / run / name).read_bytes() == (tmp_path / "b" / run / name).read_bytes()
    # the uncertain Pneumonia label of the last test image is left out of its metrics
    assert first["per_class"]["Pneumonia"]["n_test"] == 3
    predictions = pd.read_csv(tmp_path / "a" / run / "predictions.csv")
    assert predictions["Pneumonia_label"].isna().sum() == 1


def test_empty_validate_split_and_loader_workers(tmp_path):
    """A demo split without validate images falls back to 0.5 thresholds; DataLoader workers load the same data."""
    design = {"train": DESIGN["train"], "test": DESIGN["test"]}
    cxlseg_root, mimic_root = _fake_cxlseg(tmp_path, design)
    metrics = cl.train_and_evaluate("mobilenet_v2", "original", cxlseg_dir=cxlseg_root, cxlseg_root=cxlseg_root,
                                    mimic_root=mimic_root, out_dir=tmp_path / "o", num_workers=1,
                                    **{**SMALL, "input_size": 48})
    assert metrics["counts"]["validate"] == 0 and metrics["counts"]["skipped"] == 1
    assert {v["threshold_rule"] for v in metrics["per_class"].values()} == {"fallback_0.5"}
    assert math.isfinite(metrics["per_class"]["Pleural Effusion"]["AUC"])


def test_bad_settings_are_named(tmp_path):
    cxlseg_root, mimic_root = _fake_cxlseg(tmp_path)
    kwargs = dict(cxlseg_dir=cxlseg_root, cxlseg_root=cxlseg_root, mimic_root=mimic_root, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="unknown input 'masks'"):
        cl.train_and_evaluate("resnet50", "masks", **kwargs)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        cl.train_and_evaluate("resnet50", "original", batch_size=1, **kwargs)

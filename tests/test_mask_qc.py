"""Quality control (cxlseg.inference.mask_qc): ground-truth-free metrics and flags, overlays, the check against ground truth;
and the QC report (cxlseg.reporting.qc_report)."""

import dataclasses
import math

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg import io
from cxlseg.config import build_settings, default_config
from cxlseg.inference import postprocess as pp
from cxlseg.inference.mask_qc import (
    QCSettings,
    assess,
    flagged_overlays,
    mask_overlay,
    overlay,
    qc_flags,
    qc_metrics,
    qc_tracking,
    qc_vs_truth,
    read_truth,
)
from cxlseg.reporting.qc_report import _short_flags, markdown_table, overlay_sheet, write_qc_report


@pytest.fixture(scope="module")
def thresholds():
    """QC thresholds at the schema's defaults, built as the infer rule builds them."""
    return build_settings(QCSettings, default_config()["infer"]["qc"])


def test_qc_metrics_of_a_good_mask(thresholds, lung_fields):
    mask = lung_fields.mask()
    metrics = qc_metrics(lung_fields.prob(mask), mask, threshold=0.5)
    assert 0.1 < metrics["lung_area_fraction"] < 0.4
    assert metrics["n_components"] == 2
    assert 1.0 < metrics["left_right_ratio"] < 1.5 and metrics["lr_log_ratio"] == pytest.approx(
        math.log(metrics["left_right_ratio"]), abs=0.01
    )
    assert metrics["mean_fg_prob"] == pytest.approx(0.97)
    assert metrics["cleanup_agreement"] == 1.0 and metrics["solidity"] > 0.95
    assert 0.45 < metrics["centroid_x"] < 0.55 and 0.45 < metrics["centroid_y"] < 0.55
    assert 0.55 < metrics["height_fraction"] < 0.7
    assert math.isnan(metrics["member_agreement"]) and math.isnan(metrics["flip_agreement"])  # none given
    with_agreement = qc_metrics(
        lung_fields.prob(mask), mask, {"member_agreement": 0.9, "flip_agreement": 0.95}, threshold=0.5
    )
    assert with_agreement["member_agreement"] == 0.9 and with_agreement["flip_agreement"] == 0.95
    assert qc_flags(metrics, thresholds) == []


def test_qc_flags_fire_on_bad_masks(thresholds, qc_model, lung_fields):
    empty = np.zeros((224, 224), np.uint8)
    assert (
        qc_flags(qc_metrics(np.full((224, 224), 0.1, np.float32), empty, threshold=0.5), thresholds)[0] == "empty_mask"
    )
    metrics, flags = assess(np.full((224, 224), 0.1, np.float32), empty, None, thresholds, qc_model, 0.5)
    assert metrics["qc_predicted_dice"] == 0.0  # no lung, no Dice
    assert flags == ["empty_mask", "low_predicted_dice"]  # found by the low_predicted_dice filter too

    one_lung = lung_fields.mask()
    one_lung[:, 112:] = 0
    m = qc_metrics(lung_fields.prob(one_lung), one_lung, threshold=0.5)
    assert math.isinf(m["left_right_ratio"]) and m["lr_log_ratio"] > 5
    assert "left_right_imbalance" in qc_flags(m, thresholds)

    rng = np.random.default_rng(0)
    noisy_prob = np.clip(lung_fields.prob(lung_fields.mask(), 0.6) + rng.normal(0, 0.25, (224, 224)), 0, 1).astype(
        np.float32
    )
    cleaned = pp.clean_mask(
        noisy_prob, build_settings(pp.CleanupSettings, default_config()["infer"]["postprocess"]), threshold=0.5
    )
    m, flags = assess(noisy_prob, cleaned, {"flip_agreement": 0.62}, thresholds, qc_model, 0.5)
    good, good_flags = assess(
        lung_fields.prob(lung_fields.mask()), lung_fields.mask(), {"flip_agreement": 0.99}, thresholds, qc_model, 0.5
    )
    assert m["cleanup_agreement"] < 0.9 and m["soft_dice"] < good["soft_dice"]
    assert m["qc_predicted_dice"] < 0.8 < good["qc_predicted_dice"]
    assert {"fragmented", "low_predicted_dice"} <= set(flags) and good_flags == []
    reasons = flags[flags.index("low_predicted_dice") + 1 :]
    assert {"low_soft_dice", "low_flip_agreement"} <= set(reasons)  # the features that explain it


@pytest.mark.parametrize("bar", [0.0, 0.5, 1.0])
def test_an_empty_mask_is_low_predicted_dice_under_every_bar_with_or_without_a_model(thresholds, qc_model, bar):
    empty = qc_metrics(np.full((64, 64), 0.1, np.float32), np.zeros((64, 64), np.uint8), threshold=0.5)
    both = ["empty_mask", "low_predicted_dice"]  # docs/qc.md: the low_predicted_dice filter finds it
    assert qc_flags(empty, thresholds) == both  # no QC model loaded
    for predicted in (0.0, math.nan):
        assert qc_flags({**empty, "qc_predicted_dice": predicted}, thresholds, qc_model.with_bar(bar)) == both


def test_a_nan_predicted_dice_is_no_evidence_of_a_good_mask(thresholds, qc_model, lung_fields):
    metrics = qc_metrics(lung_fields.prob(lung_fields.mask()), lung_fields.mask(), threshold=0.5)
    assert qc_flags({**metrics, "qc_predicted_dice": 0.95}, thresholds, qc_model) == []
    assert "low_predicted_dice" in qc_flags({**metrics, "qc_predicted_dice": math.nan}, thresholds, qc_model)
    assert qc_flags(metrics, thresholds) == []  # no model, no prediction: anatomy rules only


def test_qc_flags_follow_the_configured_thresholds(thresholds, make_config, qc_model, lung_fields):
    metrics = qc_metrics(lung_fields.prob(lung_fields.mask()), lung_fields.mask(), threshold=0.5)
    replace = dataclasses.replace
    assert qc_flags(metrics, replace(thresholds, min_lung_area_fraction=0.5)) == ["small_lung_area"]
    assert qc_flags(metrics, replace(thresholds, max_lung_area_fraction=0.1)) == ["large_lung_area"]
    assert qc_flags(metrics, replace(thresholds, max_left_right_ratio=1.0)) == ["left_right_imbalance"]
    assert qc_flags(metrics, replace(thresholds, max_components=1)) == ["fragmented"]
    metrics["qc_predicted_dice"] = 0.93
    assert qc_flags(metrics, thresholds, qc_model) == []  # 0.93 >= the model's bar 0.9
    assert qc_flags(metrics, thresholds, qc_model.with_bar(0.95))[0] == "low_predicted_dice"  # the model's bar
    configured = build_settings(QCSettings, make_config(infer={"qc": {"min_lung_area_fraction": 0.5}})["infer"]["qc"])
    assert qc_flags(metrics, configured) == ["small_lung_area"]


def test_overlay_is_bgr_and_tints_only_the_mask(lung_fields):
    image = np.full((224, 224), 100, np.uint8)
    out = overlay(image, pp.label_lungs(lung_fields.mask()))
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (100, 100, 100)
    assert tuple(out[110, 68]) != (100, 100, 100) and tuple(out[110, 68]) != tuple(out[115, 158])
    small = overlay(np.full((448, 448), 50, np.uint8), lung_fields.mask())  # mask resized to the image
    assert small.shape == (448, 448, 3)


def test_read_truth_accepts_0_255_and_lung_labels(tmp_path, lung_fields):
    cv2.imwrite(str(tmp_path / "a.png"), lung_fields.mask() * 255)
    cv2.imwrite(str(tmp_path / "b.png"), pp.label_lungs(lung_fields.mask()))
    assert np.array_equal(read_truth(tmp_path / "a.png"), lung_fields.mask())
    assert np.array_equal(read_truth(tmp_path / "b.png"), lung_fields.mask())


# --------------------------------------------------------------------------- on an inference run


def test_qc_vs_truth_tracks_dice(shard, infer_run):
    run = infer_run(shard)
    truth_dir = shard.root / "mimic-truth"
    truth_dir.mkdir()
    manifest = pd.read_parquet(run.manifest)
    for rec in manifest[manifest.status == "ok"].itertuples():
        truth = np.zeros((int(rec.orig_height), int(rec.orig_width)), np.uint8)
        h, w = truth.shape
        cv2.ellipse(truth, (int(w * 0.3), int(h * 0.5)), (int(w * 0.15), int(h * 0.3)), 0, 0, 360, 1, -1)
        cv2.ellipse(truth, (int(w * 0.7), int(h * 0.52)), (int(w * 0.13), int(h * 0.28)), 0, 0, 360, 2, -1)
        cv2.imwrite(str(truth_dir / f"{rec.dicom_id}.png"), truth)
    validation = qc_vs_truth(manifest, truth_dir, run.out_root, size=224)
    assert list(validation.columns) == ["dicom_id", "qc_predicted_dice", "qc_flags", "dice"]
    assert len(validation) == 5 and (validation.dice > 0.85).all()
    tracking = qc_tracking(validation, good_dice=0.9)
    assert tracking["n"] == 5 and tracking["mean_dice"] > 0.85
    # preprocess.interpolation linear: the truth is resized as the authors resized masks (linear, > 0.5)
    linear = qc_vs_truth(manifest, truth_dir, run.out_root, size=224, interpolation="linear")
    assert (linear.dice > 0.85).all() and not np.allclose(linear.dice, validation.dice)

    # poor masks get a low predicted Dice and a low true Dice
    poor = pd.DataFrame(
        {
            "dicom_id": list("abcd"),
            "qc_predicted_dice": [0.95, 0.9, 0.5, 0.2],
            "qc_flags": ["", "x", "x", "x"],
            "dice": [0.96, 0.91, 0.52, 0.2],
        }
    )
    result = qc_tracking(poor, good_dice=0.9)
    assert result["spearman"] == pytest.approx(1.0) and result["pearson"] > 0.99
    assert result["mae"] == pytest.approx(0.01)
    assert result["good_flagged"] == 0.5 and result["bad_caught"] == 1.0
    assert result["mean_dice_flagged"] < result["mean_dice_unflagged"]
    assert math.isnan(qc_tracking(poor.head(2), good_dice=0.9)["spearman"])


def test_flagged_overlays_lowest_score_first(shard, infer_run, qc_model):
    run = infer_run(shard, qc_model=qc_model.with_bar(1.0))  # every ok image is flagged
    manifest = pd.read_parquet(run.manifest)
    overlays = flagged_overlays(manifest, shard.mimic, run.out_root, size=224, max_images=2)
    assert len(overlays) == 2
    scores = sorted(manifest.loc[manifest.status == "ok", "qc_predicted_dice"])
    assert [row["qc_predicted_dice"] for row, _ in overlays] == pytest.approx(scores[:2])
    for row, image in overlays:
        assert image.shape == (224, 224, 3) and image.dtype == np.uint8 and "low_predicted_dice" in row["qc_flags"]


def test_overlay_of_separate_lungs_has_two_colours(shard, infer_run):
    run = infer_run(shard, separate_lungs=True)
    rec = next(pd.read_parquet(run.manifest).query("status == 'ok'").itertuples(index=False))
    image = mask_overlay(rec, shard.mimic, run.out_root, 224)
    assert image.shape == (224, 224, 3) and tuple(image[112, 60]) != tuple(image[112, 160])


def _calibration_files(tmp_path, qc_model):
    """A saved predicted-Dice model and a calibration table, as rule calibrate_qc leaves them."""
    qc_model.save(tmp_path / "qc_calibration.json")
    table = pd.DataFrame({"predicted_cv": [0.5, 0.8, 0.95, 0.97], "dice": [0.45, 0.82, 0.94, 0.98]})
    table.to_csv(tmp_path / "qc_calibration.csv", index=False)
    return dict(
        qc_model_path=tmp_path / "qc_calibration.json",
        calibration_table=tmp_path / "qc_calibration.csv",
        dice_plot_path=tmp_path / "dice.png",
    )


def _shard_qc_report(run, shard, qc_model, **options) -> dict:
    """The QC report of one inference run, read from and written beside the test shard (qc.md, qc.png)."""
    return write_qc_report(
        [run.manifest],
        shard.root / "selection.json",
        out_root=run.out_root,
        mimic_root=shard.mimic,
        markdown_path=shard.root / "qc.md",
        overlays_path=shard.root / "qc.png",
        size=224,
        **_calibration_files(shard.root, qc_model),
        **options,
    )


def test_qc_report_lists_failed_and_flagged(shard, infer_run, qc_model):
    run = infer_run(shard, qc_model=qc_model.with_bar(1.0))
    io.write_json(
        shard.root / "selection.json",
        {
            "frontal_images": 7,
            "images_in_shards": 6,
            "studies_empty_report_ids": [{"subject_id": "1", "study_id": "2"}],
        },
    )
    result = _shard_qc_report(run, shard, qc_model)
    text = (shard.root / "qc.md").read_text()
    frame = pd.read_parquet(run.manifest)
    for dicom_id in frame.loc[frame.status == "failed", "dicom_id"]:
        assert dicom_id in text.split("## Failed images")[1].split("##")[0]
    assert result["flagged"] == int((frame.status == "ok").sum()) > 0
    assert "frontal_images" in text and "| studies_empty_report_ids | 1 |" in text  # lists are counted
    assert "Predicted vs true Dice" not in text and result["tracking"] == {}
    assert "## Predicted Dice model" in text and "soft_dice" in text  # what the model reads
    film_section = text.split("## Film check (0)")[1].split("##")[0]  # upright films: nothing undone
    assert "polarity_score" in film_section and "0 of 5 films" in film_section
    assert cv2.imread(str(shard.root / "dice.png")) is not None
    sheet = cv2.imread(str(shard.root / "qc.png"))
    assert sheet is not None and sheet.shape[0] > 100


def test_qc_report_with_ground_truth_tracks_dice(shard, infer_run, qc_model):
    run = infer_run(shard, qc_model=qc_model)
    truth_dir = shard.root / "truth"
    truth_dir.mkdir()
    for rec in pd.read_parquet(run.manifest).query("status == 'ok'").itertuples():
        cv2.imwrite(str(truth_dir / f"{rec.dicom_id}.png"), io.read_mask(run.out_root / rec.mask_path) * 255)
    io.write_json(shard.root / "selection.json", {})
    paths = dict(html_path=shard.root / "qc.html", summary_path=shard.root / "qc.json")
    result = _shard_qc_report(run, shard, qc_model, truth_dir=truth_dir, demo=True, **paths)
    assert result["tracking"]["n"] == 5 and result["tracking"]["mean_dice"] == pytest.approx(1.0)
    assert "Predicted vs true Dice" in (shard.root / "qc.md").read_text()
    page = (shard.root / "qc.html").read_text()  # the same sections as a page the report shows inline
    assert page.startswith("<!DOCTYPE html>") and "Synthetic demo run" in page and "<table" in page
    assert "Predicted vs true Dice" in page and "n (masks)" in page and "bad_caught" not in page
    truth = io.read_json(shard.root / "qc.json")["truth"]  # quoted by the run summary; NaN stored as null
    assert truth["n"] == 5 and truth["mean_dice"] == pytest.approx(1.0) and truth["bad_caught"] is None


def test_empty_run_still_writes_a_report(tmp_path, qc_model):
    empty = tmp_path / "p10.parquet"
    columns = ("dicom_id", "subject_id", "study_id", "image_path", "mask_path", "status", "qc_flags")
    io.write_parquet(pd.DataFrame({c: pd.Series([], dtype=str) for c in columns}), empty)
    io.write_json(tmp_path / "selection.json", {"frontal_images": 0})
    result = write_qc_report(
        [empty],
        tmp_path / "selection.json",
        out_root=tmp_path,
        mimic_root=tmp_path,
        markdown_path=tmp_path / "qc.md",
        overlays_path=tmp_path / "qc.png",
        size=224,
        **_calibration_files(tmp_path, qc_model),
    )
    assert result["images"] == 0
    assert (tmp_path / "qc.png").is_file() and "Inference quality control" in (tmp_path / "qc.md").read_text()


def test_report_helpers(tmp_path):
    assert _short_flags("a;b;c;d") == "a, b +2"
    assert _short_flags("") == "" and _short_flags(None) == ""
    table = markdown_table(pd.DataFrame({"a": [1.23456, float("nan")], "b": ["x", "y"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1.235 | x |", "| n/a | y |"]
    assert markdown_table(pd.DataFrame()) == "_none_\n"
    overlay_sheet([], tmp_path / "none.png")
    assert cv2.imread(str(tmp_path / "none.png")) is not None

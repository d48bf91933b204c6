"""QC calibration (cxlseg.qc.calibration): the calibration table and the rule's artefacts."""

import dataclasses

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg.inference.predictor import Predictor
from cxlseg.inference.qc_model import QCModel
from cxlseg.qc import calibration
from cxlseg.qc.calibration import calibrate, cross_validated, flag_bar, flagged_by, measure, pick_bar
from helpers.shards import fit_toy_qc_model


def test_measure_gives_one_row_per_mask_with_features_and_true_dice(trained, infer_settings):
    from cxlseg.training.store import load_split

    images, masks, _ = load_split(trained.store, "test")
    predictor = Predictor.from_checkpoints(trained.checkpoint, device="cpu", tta_flip=True)
    settings = infer_settings(batch_size=4)
    ids = [f"test/{i}" for i in range(len(images))]
    table = measure(images, masks, ids, predictor, settings, degraded=2, seed=0, progress=False)
    again = measure(images, masks, ids, predictor, settings, degraded=2, seed=0, progress=False)
    assert len(table) == 3 * len(images) and (table.degradation == "clean").sum() == len(images)
    pd.testing.assert_frame_equal(table, again)  # seeded
    assert table["dice"].between(0, 1).all() and table["flip_agreement"].notna().all()
    assert table["member_agreement"].isna().all()  # one model
    assert table["polarity_score"].notna().all() and table["film_fraction"].between(0, 1).all()  # the film check
    assert (
        table.loc[table.degradation == "clean", "dice"].mean() > table.loc[table.degradation != "clean", "dice"].mean()
    )


def test_cross_validated_predictions_never_see_their_own_image(monkeypatch):
    """Each row is predicted by a model fitted on none of its image's variants: the folds themselves are checked
    (a linear QC model cannot memorise a row, so a leaking split would not show in the predictions)."""
    _, table, dice = fit_toy_qc_model(n=40)
    # two variants per image, 20 rows apart: a split that ignores the image puts them in different folds
    table = table.assign(dice=dice, image_id=[f"img{i % 20}" for i in range(len(table))])
    folds, held_out = [], calibration.held_out_predictions

    def recording(table, splits, **kwargs):
        folds.extend((np.asarray(fit), np.asarray(held)) for fit, held in splits)
        return held_out(table, folds, **kwargs)

    monkeypatch.setattr(calibration, "held_out_predictions", recording)
    predicted = calibration.cross_validated(table, good_dice=0.9, folds=4)
    assert np.isfinite(predicted).all() and np.mean(np.abs(predicted - dice)) < 0.05
    assert len(folds) == 4 and sorted(np.concatenate([held for _, held in folds])) == list(range(len(table)))
    images = table["image_id"].to_numpy()
    for fit, held in folds:
        assert not set(images[fit]) & set(images[held]), "an image on both sides of a fold"


def test_cross_validation_holds_out_a_patient_with_all_their_films():
    _, table, dice = fit_toy_qc_model(n=40)
    # two identical films per patient, under different ids: held out together, one model predicts both alike
    table = pd.concat([table, table], ignore_index=True).assign(dice=np.concatenate([dice, dice]))
    table["image_id"] = [f"img{i}" for i in range(len(table))]
    table["patient"] = [f"pat{i % 40}" for i in range(len(table))]
    grouped = cross_validated(table, good_dice=0.9, folds=4)
    assert np.isfinite(grouped).all() and np.array_equal(grouped[:40], grouped[40:])
    by_image = cross_validated(table.drop(columns="patient"), good_dice=0.9, folds=4)  # no patient: by film
    assert not np.array_equal(by_image[:40], by_image[40:])


def test_the_bar_flags_the_configured_share_of_good_masks():
    dice = np.r_[np.full(100, 0.95), np.full(20, 0.5)]
    predicted = np.r_[np.linspace(0.80, 0.99, 100), np.linspace(0.2, 0.7, 20)]
    bar = pick_bar(dice, predicted, good_dice=0.9, rate=0.03)
    assert (predicted[:100] < bar).sum() == 3 and bar == pytest.approx(predicted[3])
    assert pick_bar(dice, predicted, good_dice=0.9, rate=0.0) == pytest.approx(0.80)  # none flagged
    assert pick_bar(dice[100:], predicted[100:], good_dice=0.9, rate=0.03) == 1.0  # no good mask: vouch for none


def test_flag_bar_is_picked_or_fixed_as_configured(infer_settings):
    n = 60
    table = pd.DataFrame({"dice": np.r_[np.full(50, 0.95), np.full(10, 0.4)], "degradation": "clean"})
    table = table.assign(lung_area_fraction=0.3, n_components=2, left_right_ratio=1.1)
    predicted = np.r_[np.linspace(0.84, 0.98, 50), np.linspace(0.2, 0.6, 10)]
    calibrated = infer_settings(qc={"good_flag_rate": 0.1})
    bar, rate = flag_bar(table, predicted, calibrated.qc)
    assert rate == 0.1 and flagged_by(table, predicted, calibrated)[:50].mean() == pytest.approx(0.1)
    assert flagged_by(table, predicted, calibrated)[50:].all()
    fixed = infer_settings(qc={"min_predicted_dice": 0.9, "good_flag_rate": 0.1})
    assert flag_bar(table, predicted, fixed.qc) == (0.9, None)
    assert flagged_by(table, predicted, fixed)[:n].sum() == 10 + int((predicted[:50] < 0.9).sum())


def test_calibrate_writes_a_loadable_model_table_and_plot(trained, infer_settings, tmp_path):
    predictor = Predictor.from_checkpoints(trained.checkpoint, device="cpu", tta_flip=True)
    settings = infer_settings(batch_size=8, qc={"calibration_degraded": 2})
    out = tmp_path / "models"
    model = calibrate(trained.store, predictor, settings, out / "qc.json", out / "qc.csv", out / "qc.png", seed=1)
    loaded = QCModel.load(out / "qc.json")
    assert loaded.features == model.features and loaded.coef == model.coef and loaded.iso_y == model.iso_y
    table = pd.read_csv(out / "qc.csv")
    assert len(table) == 3 * 12 and table["predicted_cv"].between(0, 1).all()  # validate 6 + test 6, x3
    assert set(table["image_id"].str.split("/").str[0]) == {"validate", "test"}  # never the training split
    cv = model.info["cross_validated"]
    assert cv["all"]["n"] == 36 and cv["clean"]["n"] == 12 and model.info["model_id"] == predictor.model_id
    assert cv2.imread(str(out / "qc.png")) is not None
    assert (out / "qc.json").stat().st_mode & 0o044  # readable by the lab
    # the bar is picked on the cross-validated predictions of the good masks and stored in the model
    good = table["dice"] >= 0.9
    assert loaded.good_flag_rate == 0.03 and loaded.good_dice == 0.9
    assert (table.loc[good, "predicted_cv"] < loaded.min_predicted_dice).mean() <= 0.03
    assert table["patient"].nunique() <= 12 and model.info["n_images"] == 12  # every held-out film, by patient
    fixed = dataclasses.replace(settings, qc=dataclasses.replace(settings.qc, min_predicted_dice=0.8))
    again = calibrate(trained.store, predictor, fixed, out / "f.json", out / "f.csv", out / "f.png", seed=1)
    assert (again.min_predicted_dice, again.good_flag_rate) == (0.8, None)

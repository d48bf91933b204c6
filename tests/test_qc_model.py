"""The predicted-Dice model (cxlseg.inference.qc_model): fit, predict, explain, save/load, and the tracking numbers."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from cxlseg.inference.qc_model import FEATURES, QCModel, centred_knots, describe, tracking
from helpers.shards import fit_toy_qc_model


def test_fit_learns_the_features_that_carry_dice_and_drops_empty_ones():
    model, table, dice = fit_toy_qc_model()
    assert "member_agreement" not in model.features  # all NaN (one model): left out
    assert set(model.features) == {"soft_dice", "flip_agreement", "lung_area_fraction"}
    assert [name for name, _ in describe(model)][:2] in (
        ["soft_dice", "flip_agreement"],
        ["flip_agreement", "soft_dice"],
    )
    predicted = model.predict(table)
    assert np.all((predicted >= 0) & (predicted <= 1))
    assert np.mean(np.abs(predicted - dice)) < 0.03
    assert model.info["n_masks"] == len(table)


def test_centred_knots_put_one_knot_at_the_centre_of_each_plateau():
    # an isotonic fit's knots: plateaus at 0.5 (x 0..2), 0.8 (x 3..5), a single knot 0.9 (x 6), 0.95 (x 7..9)
    x, y = centred_knots([0, 2, 3, 5, 6, 7, 9], [0.5, 0.5, 0.8, 0.8, 0.9, 0.95, 0.95])
    assert x.tolist() == [1, 4, 6, 8] and y.tolist() == [0.5, 0.8, 0.9, 0.95]
    # masks inside one plateau of the plain isotonic map are no longer tied
    assert np.interp(3.5, x, y) < np.interp(4.5, x, y)
    assert centred_knots([0.2], [0.7])[1].tolist() == [0.7]  # one knot stays one knot


def test_a_fitted_map_rises_strictly_so_the_ridge_order_survives():
    model, table, _ = fit_toy_qc_model()
    assert np.all(np.diff(model.iso_y) > 0) and np.all(np.diff(model.iso_x) > 0)
    z = model._z(table[list(model.features)].to_numpy(np.float64)) @ np.array(model.coef) + model.intercept
    inside = (z > model.iso_x[0]) & (z < model.iso_x[-1])
    order = np.argsort(z[inside])
    assert np.all(np.diff(model.predict(table)[inside][order]) > 0)  # distinct scores, distinct predicted Dice


def test_prediction_rises_with_agreement_and_is_zero_for_an_empty_mask(qc_model):
    base = {"soft_dice": 0.95, "flip_agreement": 0.97, "lung_area_fraction": 0.3}
    assert qc_model.predict_one(base) > qc_model.predict_one({**base, "flip_agreement": 0.7})
    assert qc_model.predict_one({**base, "lung_area_fraction": 0.0}) == 0.0
    assert 0 <= qc_model.predict_one({**base, "soft_dice": math.nan}) <= 1  # NaN stands in as the median


def test_reasons_name_the_out_of_range_feature(qc_model):
    metrics = {"soft_dice": 0.97, "flip_agreement": 0.3, "lung_area_fraction": 0.3}
    assert qc_model.reasons(metrics) == ["low_flip_agreement"]
    both = {"soft_dice": 0.2, "flip_agreement": 0.3, "lung_area_fraction": 0.3}
    assert set(qc_model.reasons(both)) == {"low_soft_dice", "low_flip_agreement"}
    within = {"soft_dice": 0.9, "flip_agreement": 0.9, "lung_area_fraction": 0.3}
    assert len(qc_model.reasons(within)) == 1  # none out of range: the feature pulling hardest


def test_save_and_load_round_trip_and_reject_bad_files(qc_model, tmp_path):
    path = tmp_path / "qc.json"
    qc_model.save(path)
    again = QCModel.load(path)
    assert again == qc_model
    table = pd.DataFrame({"soft_dice": [0.6, 0.99], "flip_agreement": [0.7, 0.99], "lung_area_fraction": [0.3, 0.3]})
    assert np.array_equal(again.predict(table), qc_model.predict(table))

    data = json.loads(path.read_text())
    bad_cases = {
        "format": {**data, "format": "something-else"},
        "lengths": {**data, "coef": data["coef"][:-1]},
        "unknown feature": {**data, "features": ["soft_dice", "rm -rf", "lung_area_fraction"]},
        "extra key": {**data, "surprise": 1},
        "no bar": {**data, "min_predicted_dice": None},
        "bar above 1": {**data, "min_predicted_dice": 1.5},
        "rate of 1": {**data, "good_flag_rate": 1.0},
        "old format, no bar": {k: v for k, v in data.items() if k not in ("min_predicted_dice", "good_flag_rate")},
    }
    for bad in bad_cases.values():
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="bad.json"):
            QCModel.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a cxlseg predicted-Dice model"):
        QCModel.load(tmp_path / "list.json")


def test_the_flag_bar_is_saved_with_the_rate_it_was_picked_for(qc_model, tmp_path):
    unfitted_bar = QCModel.fit(*fit_toy_qc_model()[1:], good_dice=0.9)
    assert math.isnan(unfitted_bar.min_predicted_dice)
    with pytest.raises(ValueError, match="no flag bar"):
        unfitted_bar.save(tmp_path / "none.json")
    qc_model.with_bar(0.8731, 0.03).save(tmp_path / "qc.json")
    saved = json.loads((tmp_path / "qc.json").read_text())  # top-level fields, beside info
    assert (saved["min_predicted_dice"], saved["good_flag_rate"], saved["good_dice"]) == (0.8731, 0.03, 0.9)
    loaded = QCModel.load(tmp_path / "qc.json")
    assert (loaded.min_predicted_dice, loaded.good_flag_rate) == (0.8731, 0.03)
    assert qc_model.good_flag_rate is None  # the fixture's bar is fixed


def test_fit_refuses_too_little_or_flat_data():
    table = pd.DataFrame({"soft_dice": [0.9] * 10})
    with pytest.raises(ValueError, match="no QC feature varies"):
        QCModel.fit(table, np.linspace(0.5, 1, 10), good_dice=0.9)
    with pytest.raises(ValueError, match="at least 5"):
        QCModel.fit(pd.DataFrame({"soft_dice": [0.1, 0.5]}), [0.2, 0.6], good_dice=0.9)
    with pytest.raises(ValueError, match="missing"):
        fit_toy_qc_model()[0].predict(pd.DataFrame({"soft_dice": [0.9]}))


def test_tracking_numbers():
    result = tracking([0.95, 0.9, 0.5, 0.2], [0.96, 0.91, 0.52, 0.2], [False, True, True, True], good_dice=0.9)
    assert result["pearson"] > 0.99 and result["spearman"] == pytest.approx(1.0)
    assert result["mae"] == pytest.approx(0.01) and result["n"] == 4
    assert result["n_good"] == 2 and result["good_flagged"] == 0.5 and result["bad_caught"] == 1.0
    flat = tracking([0.9, 0.9, 0.9], [0.8, 0.9, 0.95], good_dice=0.9)
    assert math.isnan(flat["pearson"]) and "good_flagged" not in flat
    assert set(FEATURES) >= {"member_agreement", "flip_agreement", "solidity", "centroid_y"}


def test_the_ridge_target_is_chosen_by_grouped_cross_validation():
    _, table, dice = fit_toy_qc_model(n=60)
    groups = [f"img{i // 3}" for i in range(len(table))]
    chosen = QCModel.fit(table, dice, good_dice=0.9, groups=groups)
    assert chosen.info["target"] in ("dice", "log") and set(chosen.info["cv_mae_good"]) == {"dice", "log"}
    errors = chosen.info["cv_mae_good"]
    assert chosen.info["target"] == min(errors, key=errors.get)
    forced = QCModel.fit(table, dice, good_dice=0.9, groups=groups, target="log")
    assert forced.info["target"] == "log" and "cv_mae_good" not in forced.info
    assert (
        QCModel.fit(table, dice, good_dice=0.9).info["target"] == "dice"
    )  # no groups: no honest comparison, the plain target

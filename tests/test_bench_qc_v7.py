"""The QC benchmark's summary on a synthetic masks table (training and measuring need ../shared, never here)."""

import json

import numpy as np
import pandas as pd
import pytest


def _masks_table(rng: np.random.Generator) -> pd.DataFrame:
    """Three folds x two ensemble sizes; true Dice follows member and flip agreement, as it does on real films."""
    rows = []
    for fold in range(3):
        for k in (1, 2):
            for i in range(30):
                for degradation in ("clean", "blur"):
                    dice = rng.uniform(0.9, 0.98) if degradation == "clean" else rng.uniform(0.3, 0.95)
                    agree = np.clip(dice + rng.normal(0, 0.01), 0, 1)
                    rows.append(
                        {
                            "image_id": f"{fold}/img{i}",
                            "degradation": degradation,
                            "fold": fold,
                            "k": k,
                            "members": "a" if k == 1 else "a+b",
                            "seconds_per_mask": 0.05 * k,
                            "dice": dice,
                            "flip_agreement": agree,
                            "member_agreement": agree if k == 2 else np.nan,
                            "soft_dice": np.clip(dice + rng.normal(0, 0.03), 0, 1),
                            "lung_area_fraction": rng.uniform(0.2, 0.35),
                            "n_components": 2,
                            "left_right_ratio": 1.1,
                        }
                    )
    return pd.DataFrame(rows)


def test_summary_from_a_masks_table(load_bench, tmp_path, capsys):
    bench = load_bench("bench_qc_v7")
    table = tmp_path / "masks.csv"
    _masks_table(np.random.default_rng(0)).to_csv(table, index=False)
    result = bench.main(
        ["--data", str(tmp_path / "unused"), "--folds", "3", "--table", str(table), "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert "good-flag" in out and "bad-caught" in out and "ridge target" in out
    by_k = result["by_ensemble"]
    assert set(by_k) == {1, 2} and by_k[2]["members"] == "a+b" and by_k[2]["ms_per_mask"] == pytest.approx(100)
    two = by_k[2]
    assert two["all"]["pearson"] > 0.9 and two["all"]["bad_caught"] > 0.5 and two["clean"]["n"] == 90
    assert json.loads((tmp_path / "bench_qc_v7" / "summary.json").read_text())["by_ensemble"]["2"]["members"] == "a+b"


@pytest.fixture(scope="module")
def readers(load_bench):
    return load_bench("readers")


def _operating_set():
    """100 good masks predicted 0.800, 0.801, ..., 0.899; failed masks (Dice < 0.85) predicted 0.70, 0.8005, 0.802,
    0.804, 0.90, 0.95 (an anatomy rule flags it) and NaN; two masks between failed and good (Dice 0.87)."""
    predicted = [0.8 + 0.001 * i for i in range(100)] + [0.70, 0.8005, 0.802, 0.804, 0.90, 0.95, np.nan, 0.75, 0.99]
    dice = [0.95] * 100 + [0.5, 0.8, 0.84, 0.6, 0.7, 0.3, 0.2, 0.87, 0.87]
    always = np.zeros(len(dice), bool)
    always[105] = True
    return np.array(predicted), np.array(dice), always


def test_failed_masks_caught_at_1_3_5_percent_of_good_masks_flagged(readers):
    predicted, dice, always = _operating_set()
    held = np.zeros(len(dice), bool)
    held[[0, 1, 2, 3, 4, 5, 103, 104]] = True  # six good masks, failed ones predicted 0.804 and 0.90
    result = readers.qc_at_definition(predicted, dice, always, {"all": np.ones(len(dice), bool), "held": held})
    assert result["bars"] == pytest.approx({"0.01": 0.801, "0.03": 0.803, "0.05": 0.805})
    every = result["parts"]["all"]
    assert (every["n"], every["n_failed"], every["n_good"]) == (109, 7, 100)
    caught = {r: every["at_rate"][r]["failed_caught"] for r in ("0.01", "0.03", "0.05")}
    assert caught == pytest.approx({"0.01": 4 / 7, "0.03": 5 / 7, "0.05": 6 / 7})  # NaN and anatomy: always
    assert [every["at_rate"][r]["good_flagged"] for r in ("0.01", "0.03", "0.05")] == pytest.approx([0.01, 0.03, 0.05])
    part = result["parts"]["held"]  # judged at the bars of every mask, not at bars of its own
    assert [part["at_rate"][r]["failed_caught"] for r in ("0.01", "0.03", "0.05")] == [0.0, 0.0, 0.5]
    assert [part["at_rate"][r]["good_flagged"] for r in ("0.01", "0.03", "0.05")] == pytest.approx(
        [1 / 6, 3 / 6, 5 / 6]
    )


def _pairs_auroc(predicted, low):
    """AUROC by counting: the share of (low, other) pairs where the low mask is predicted lower (ties: half)."""
    p = np.nan_to_num(predicted, nan=-1.0)
    pairs = [(a, b) for a in p[low] for b in p[~low]]
    return np.mean([1.0 if a < b else 0.5 if a == b else 0.0 for a, b in pairs])


def test_auroc_of_predicted_dice_at_both_definitions(readers):
    from sklearn.metrics import roc_auc_score

    predicted, dice, always = _operating_set()
    result = readers.qc_at_definition(predicted, dice, always, {"all": np.ones(len(dice), bool)})["parts"]["all"]
    for below in (0.85, 0.9):
        expected = _pairs_auroc(predicted, dice < below)
        assert result[f"auroc_dice_below_{below}"] == pytest.approx(expected)
        assert expected == pytest.approx(roc_auc_score(dice < below, -np.nan_to_num(predicted, nan=-1.0)))
    assert result["auroc_dice_below_0.85"] != pytest.approx(result["auroc_dice_below_0.9"])  # the 0.87 masks count
    assert np.isnan(readers.auroc([0.9, 0.8], [0.95, 0.96], 0.85))  # no failed mask: no AUROC


def test_new_definition_and_readers_from_a_masks_table(load_bench, tmp_path, monkeypatch):
    bench = load_bench("bench_qc_v7")
    rng = np.random.default_rng(1)
    table = _masks_table(rng)
    clean = table.index[(table["degradation"] == "clean") & table["image_id"].str.endswith(("img1", "img2"))]
    table.loc[clean, "dice_reader2"] = table.loc[clean, "dice"] - 0.02
    table.loc[clean, "human"] = rng.uniform(0.9, 0.96, len(clean))
    (tmp_path / "in").mkdir()
    table.to_csv(tmp_path / "in" / "masks.csv", index=False)
    fitted_on = []
    spy = bench.held_out_predictions

    def held_out_predictions(t, splits, **kw):
        splits = list(splits)
        fitted_on.append(set().union(*(set(t["degradation"].iloc[f]) for f, _ in splits)))
        return spy(t, splits, **kw)

    monkeypatch.setattr(bench, "held_out_predictions", held_out_predictions)
    args = ["--data", str(tmp_path), "--table", str(tmp_path / "in" / "masks.csv"), "--out", str(tmp_path)]
    result = bench.main([*args, "--holdout", "blur"])
    assert {"clean", "blur"} in fitted_on and {"clean"} in fitted_on  # today's QC, and one fitted without blur
    two = result["by_ensemble"][2]
    new = two["at_new_definition"]
    assert new["holdout"] == ["blur"] and set(new["parts"]) == {"all", "clean", "held_out_kinds", "held_out: blur"}
    assert new["parts"]["held_out: blur"]["n"] == 90 and new["parts"]["clean"]["n"] == 90
    on_k2 = table[(table["k"] == 2) & table["human"].notna()]
    pooled = two["readers"]["pooled"]
    assert pooled["reader1_vs_reader2"]["n"] == 6
    assert pooled["reader1_vs_reader2"]["mean"] == pytest.approx(on_k2["human"].mean())
    assert pooled["model_vs_reader2"]["mean"] == pytest.approx(on_k2["dice"].mean() - 0.02)
    assert pooled["model_vs_reader1"]["n"] == 90 and set(two["readers"]["per_fold"]) == {0, 1, 2}


def test_no_good_mask_no_operating_point(readers):
    result = readers.qc_at_definition([0.5, 0.6], [0.4, 0.7], [False, False], {"all": np.ones(2, bool)})
    assert np.isnan(result["parts"]["all"]["at_rate"]["0.03"]["failed_caught"])  # not "all caught"

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
    assert json.loads((tmp_path / "summary.json").read_text())["by_ensemble"]["2"]["members"] == "a+b"

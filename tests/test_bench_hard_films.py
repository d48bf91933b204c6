"""The hard-film benchmark's account of where bad masks come from (its data, ../shared/data/v7-real, is never needed)."""

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg.metrics import dice
from cxlseg.preprocess import resize_mask
from helpers.bench import reader2, write_v7_like


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("bench_hard_films")


def masks(rows):
    return pd.DataFrame(rows, columns=["patient_id", "degradation", "dice"])


def test_bad_masks_are_traced_to_the_fewest_patients_holding_most_of_them(bench):
    table = masks(
        [(1, "clean", 0.88)]
        + [(1, "noise", 0.85)] * 5
        + [(2, "clean", 0.95), (2, "blur", 0.87), (2, "noise", 0.86)]
        + [(3, "clean", 0.96), (3, "tilt", 0.89)]
        + [(4, "clean", 0.97)] * 3
    )
    where = bench.bad_by_patient(table)
    assert where["n_bad"] == 9 and where["n_patients"] == 4
    # patient 1 holds 6 of 9 (< 75 %), so patient 2 is needed too; patient 3 is not
    assert where["top"] == {"1": {"bad": 6, "clean_dice": 0.88}, "2": {"bad": 2, "clean_dice": 0.95}}


def test_no_bad_mask_names_no_patient(bench):
    where = bench.bad_by_patient(masks([(1, "clean", 0.95), (2, "clean", 0.93)]))
    assert where == {"n_bad": 0, "n_patients": 2, "top": {}}


def test_tiny_run_over_patient_folds_scores_each_reader(bench, tmp_path):
    """Every film of index.csv in patient folds, the clean masks against reader 2's own outlines and the human band
    from the two outlines at 224 px; QC at the new definition beside today's."""
    data = write_v7_like(tmp_path / "v7-real")
    summary = bench.main(
        ["--data", str(data), "--out", str(tmp_path / "out"), "--folds", "2", "--epochs", "1", "--archs", "unet"]
        + ["--variants", "+film", "--copies", "0", "--qc-folds", "2", "--holdout", "motion"]
    )  # fmt: skip
    stores = sorted((tmp_path / "out").glob("fold*/store"))
    assert len(stores) == 2
    # the shipped recipe's networks where bench_real_v7 and bench_qc_v7 put theirs: one --out shares them
    assert all((store.parent / "unet" / "checkpoint_best.pt").is_file() for store in stores)
    tested = []
    for store in stores:
        test = pd.read_parquet(store / "test_index.parquet")
        seen = pd.concat(pd.read_parquet(store / f"{s}_index.parquet") for s in ("train", "validate"))
        assert not set(test.patient_id) & set(seen.patient_id)  # no patient straddles test and training
        tested += list(test.image_id)
    assert sorted(tested) == sorted(f"img{i}" for i in range(11))  # every readable film tested once

    def outline(i, second=False):
        mask = cv2.imread(str(data / "masks" / f"img{i}.png"), cv2.IMREAD_GRAYSCALE) > 0
        return resize_mask(resize_mask((reader2(mask, i) if second else mask).astype(np.uint8), 448), 224)  # as read

    band = [dice(outline(i), outline(i, second=True)) for i in range(6)]
    pooled = summary["variants"]["+film"]["readers"]["pooled"]
    assert pooled["reader1_vs_reader2"]["n"] == 6 and pooled["reader1_vs_reader2"]["mean"] == pytest.approx(
        np.mean(band)
    )
    assert pooled["model_vs_reader1"]["n"] == 11 and pooled["model_vs_reader2"]["n"] == 6
    assert pooled["model_vs_reader2"]["mean"] != pytest.approx(pooled["model_vs_reader1_on_reader2_films"]["mean"])
    new = summary["at_new_definition_on_last_masks"]
    assert set(new) == {"today's QC", "new QC"} and new["new QC"]["parts"]["clean + hard"]["n"] == 11
    assert summary["folds"] == 2 and summary["release"] is None


def test_only_the_shipped_recipe_shares_its_networks_with_the_other_benchmarks(bench, tmp_path):
    args = bench.parse_args(["--data", str(tmp_path)])
    fold = tmp_path / "fold0-abcd1234"
    assert bench.model_dir(args, fold, "strong", "unet") == fold / "unet"  # config/config.yaml's preset
    assert bench.model_dir(args, fold, "hard", "unet") == fold / "models" / "hard" / "unet"

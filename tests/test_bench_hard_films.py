"""The hard-film benchmark's account of where bad masks come from (its data, ../shared/data/v7-real, is never needed)."""

import pandas as pd
import pytest


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

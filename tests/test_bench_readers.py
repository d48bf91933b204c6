"""The human-band benchmark on a v7-like folder (the real films are in ../shared, never needed here)."""

import json

import numpy as np
import pytest
from cxlseg.io import read_mask
from cxlseg.metrics import dice
from helpers.bench import write_v7_like


@pytest.fixture(scope="module")
def v7_like(tmp_path_factory):
    return write_v7_like(tmp_path_factory.mktemp("v7") / "v7-real")


def test_the_band_is_reader_1_against_reader_2_where_both_outlined(load_bench, v7_like, tmp_path, capsys):
    bench = load_bench("bench_readers")
    result = bench.main(["--data", str(v7_like), "--size", "64", "--json", str(tmp_path / "band.json")])
    films = {f["image"]: f for f in result["films"]}
    assert sorted(films) == [f"images/img{i}.jpg" for i in range(6)]  # img6's outline is unreadable: dropped
    assert "second reader dropped for second-reader/img6.png" in capsys.readouterr().err
    for i in range(6):
        one, two = read_mask(v7_like / f"masks/img{i}.png") > 0, read_mask(v7_like / f"second-reader/img{i}.png") > 0
        assert films[f"images/img{i}.jpg"]["dice_native"] == pytest.approx(dice(one, two))
    cut = [films[f"images/img{i}.jpg"] for i in range(5)]  # reader 2 stops a third above reader 1's base
    assert all(f["reader2_lower_by"] < 0 and f["disagreement_at_base"] > 0.9 for f in cut)
    assert all(abs(f["dice_64"] - f["dice_native"]) < 0.05 for f in cut)
    band = result["summary"]["all"]
    assert band["dice_native"]["n"] == 6 and band["dice_native"]["min"] == 0.0  # img5: reader 2 drew nothing
    assert band["reader2_lower_share"] == 0.0 and set(result["summary"]) == {"all", "release 1"}
    stored = json.loads((tmp_path / "band.json").read_text())
    assert stored["command"].startswith("python tests/bench/bench_readers.py") and len(stored["films"]) == 6


def test_base_share_counts_only_the_lowest_quarter(load_bench):
    bench = load_bench("bench_readers")
    one = np.zeros((40, 10), bool)
    one[0:40] = True
    two = one.copy()
    two[35:] = False  # differ only at the base
    assert bench.base_share(one, two) == 1.0
    two = one.copy()
    two[:5] = False  # differ only at the apex
    assert bench.base_share(one, two) == 0.0
    assert np.isnan(bench.base_share(one, one))

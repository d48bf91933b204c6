"""The real-image benchmark's protocol on a tiny phantom stand-in for ../shared/data/v7-real (never needed here)."""

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg.config import default_config
from cxlseg.io import UnsafePathError, read_mask
from cxlseg.metrics import dice
from cxlseg.preprocess import resize_mask
from helpers.bench import reader2, write_v7_like


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("bench_real_v7")


@pytest.fixture(scope="module")
def v7_like(tmp_path_factory):
    return write_v7_like(tmp_path_factory.mktemp("v7-real"))


def test_load_v7_reads_the_second_reader_and_releases(bench, v7_like, capsys):
    images, masks, index, second = bench.load_v7(v7_like, 48)
    assert len(index) == 11 and len(second) == 11  # img11 unreadable
    assert "img6.png" in capsys.readouterr().err  # its unreadable outline is named and dropped
    assert [o is not None for o in second] == [True] * 6 + [False] * 5
    assert not np.array_equal(second[0], masks[0]) and second[0].sum() < masks[0].sum()  # reader 2's own outline
    one = bench.load_v7(v7_like, 48, release=1)[2]
    assert list(one["image_id"]) == [f"img{i}" for i in range(8)]
    with pytest.raises(ValueError, match="release 3"):
        bench.load_v7(v7_like, 48, release=3)


def test_a_second_reader_path_leaving_the_data_folder_is_refused(bench, v7_like, tmp_path):
    root = tmp_path / "v7"
    shutil.copytree(v7_like, root)
    index = pd.read_csv(root / "index.csv")
    index.loc[0, "second_mask"] = "../outside.png"
    index.to_csv(root / "index.csv", index=False)
    cv2.imwrite(str(tmp_path / "outside.png"), np.full((96, 88), 255, np.uint8))
    with pytest.raises(UnsafePathError, match="outside.png"):
        bench.load_v7(root, 48)


def test_patient_folds_are_balanced_and_order_independent(bench):
    patients = pd.Series(["a", "a", "a", "b", "c", "c", "d", "e", "e", "f"])
    folds = bench.patient_folds(patients, 3, seed=1)
    assert all(len(set(folds[patients == p])) == 1 for p in patients.unique())  # a patient sits in one fold
    assert sorted(np.bincount(folds)) in ([3, 3, 4], [2, 4, 4])
    shuffled = patients.sample(frac=1, random_state=0)
    again = pd.Series(bench.patient_folds(shuffled, 3, seed=1), index=shuffled.index).sort_index().to_numpy()
    assert (again == folds).all()  # the fold of a patient does not depend on row order


def test_tiny_run_scores_unseen_patients_and_reuses_folds(bench, v7_like, tmp_path, capsys):
    args = [
        "--data",
        str(v7_like),
        "--folds",
        "2",
        "--epochs",
        "2",
        "--size",
        "32",
        "--store-size",
        "48",
        "--base-channels",
        "4",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path),
        "--json",
        str(tmp_path / "stored" / "v7.json"),
    ]
    summary = bench.main(args)
    err = capsys.readouterr().err
    assert "img11.jpg" in err  # the unreadable image is named and skipped, not fatal
    assert summary["folds_run"] == [0, 1] and set(summary["variants"]) == {"raw", "tta", "post", "tta+post"}
    tta_post = summary["variants"]["tta+post"]
    assert tta_post["dice"]["n"] == 11 and 0 <= tta_post["dice"]["mean"] <= 1
    by_release = tta_post["by_group"]["release"]  # index.csv's releases, the unreadable img11 left out
    assert {k: v["n"] for k, v in by_release.items()} == {"1": 8, "2": 3}
    assert tta_post["by_group"]["view"]["PA"]["n"] == 11
    written = json.loads((tmp_path / "bench_real_v7" / "summary.json").read_text())  # apart from the other benches'
    assert written["variants"]["raw"]["dice"]["n"] == 11
    stored = json.loads((tmp_path / "stored" / "v7.json").read_text())  # what docs/bench keeps: the command too
    assert stored == written
    assert (
        stored["command"].startswith("python tests/bench/bench_real_v7.py --data ") and "--folds 2" in stored["command"]
    )
    assert stored["machine"]["nproc"] >= 1 and stored["machine"]["date"]
    assert summary["postprocess"] == default_config()["infer"]["postprocess"]  # the pipeline's clean-up
    assert summary["recipe"]["size"] == 32 and summary["recipe"]["architecture"] == "attention_unet"

    # reader 1 vs reader 2: the Dice of the two outlines at the store size, on the films reader 2 outlined
    band = [
        dice(
            resize_mask(read_mask(v7_like / f"masks/img{i}.png"), 48),
            resize_mask(reader2(read_mask(v7_like / f"masks/img{i}.png"), i), 48),
        )
        for i in range(6)
    ]
    pooled = tta_post["readers"]["pooled"]
    assert pooled["reader1_vs_reader2"]["n"] == 6 and pooled["model_vs_reader1"]["n"] == 11
    assert pooled["reader1_vs_reader2"]["mean"] == pytest.approx(np.mean(band))
    assert pooled["reader1_vs_reader2"]["min"] == pytest.approx(min(band))
    # the model against reader 2 is scored on reader 2's outline, not reader 1's on the same films
    assert pooled["model_vs_reader2"]["n"] == 6
    assert pooled["model_vs_reader2"]["mean"] != pytest.approx(pooled["model_vs_reader1_on_reader2_films"]["mean"])
    per_fold = tta_post["readers"]["per_fold"]
    assert set(per_fold) == {0, 1} and sum(f["reader1_vs_reader2"]["n"] for f in per_fold.values()) == 6

    fold_dirs = sorted(p for p in tmp_path.iterdir() if p.name.startswith("fold"))
    assert len(fold_dirs) == 2
    for fold_dir in fold_dirs:
        test = pd.read_parquet(fold_dir / "store" / "test_index.parquet")
        seen = pd.concat(pd.read_parquet(fold_dir / "store" / f"{s}_index.parquet") for s in ("train", "validate"))
        assert not set(test.patient_id) & set(seen.patient_id)

    stamp = {d: (d / "attention_unet" / "checkpoint_best.pt").stat().st_mtime_ns for d in fold_dirs}
    assert bench.main(args)["variants"]["raw"]["dice"] == summary["variants"]["raw"]["dice"]
    assert {d: (d / "attention_unet" / "checkpoint_best.pt").stat().st_mtime_ns for d in fold_dirs} == stamp  # reused

    bench.main([*args, "--seed", "5"])  # other folds: new fold folders, never the models trained on them
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("fold")]) > 2

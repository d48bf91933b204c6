"""The real-image benchmark's protocol on a tiny phantom stand-in for ../shared/data/v7-real (never needed here)."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg.config import default_config
from cxlseg.phantoms.render import render_phantom


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("bench_real_v7")


@pytest.fixture(scope="module")
def v7_like(tmp_path_factory):
    """index.csv + images/ + masks/ in the v7-real layout: 12 images of 7 patients, one unreadable pair."""
    root = tmp_path_factory.mktemp("v7-real")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(3)
    rows = []
    for i in range(12):
        ph = render_phantom(rng, 96, 88)
        cv2.imwrite(str(root / "images" / f"img{i}.jpg"), ph.image)
        cv2.imwrite(str(root / "masks" / f"img{i}.png"), ph.mask * 255)
        rows.append(
            {
                "image": f"images/img{i}.jpg",
                "mask": f"masks/img{i}.png",
                "patient_id": i % 7,
                "view": "PA",
                "finding": "COVID-19",
            }
        )
    (root / "images" / "img11.jpg").write_bytes(b"not an image")
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return root


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
    assert json.loads((tmp_path / "summary.json").read_text())["variants"]["raw"]["dice"]["n"] == 11
    stored = json.loads((tmp_path / "stored" / "v7.json").read_text())  # what docs/bench keeps: the command too
    assert stored == json.loads((tmp_path / "summary.json").read_text())
    assert (
        stored["command"].startswith("python tests/bench/bench_real_v7.py --data ") and "--folds 2" in stored["command"]
    )
    assert stored["machine"]["nproc"] >= 1 and stored["machine"]["date"]
    assert summary["postprocess"] == default_config()["infer"]["postprocess"]  # the pipeline's clean-up
    assert summary["recipe"]["size"] == 32 and summary["recipe"]["architecture"] == "attention_unet"

    fold_dirs = sorted(p for p in tmp_path.iterdir() if p.name.startswith("fold"))
    assert len(fold_dirs) == 2
    for fold_dir in fold_dirs:
        test = pd.read_parquet(fold_dir / "store" / "test_index.parquet")
        seen = pd.concat(pd.read_parquet(fold_dir / "store" / f"{s}_index.parquet") for s in ("train", "validate"))
        assert not set(test.patient_id) & set(seen.patient_id)

    stamp = {d: (d / "model" / "checkpoint_best.pt").stat().st_mtime_ns for d in fold_dirs}
    assert bench.main(args)["variants"]["raw"]["dice"] == summary["variants"]["raw"]["dice"]
    assert {d: (d / "model" / "checkpoint_best.pt").stat().st_mtime_ns for d in fold_dirs} == stamp  # reused

    bench.main([*args, "--seed", "5"])  # other folds: new fold folders, never the models trained on them
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("fold")]) > 2

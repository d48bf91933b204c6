"""The view-check benchmark's real side views: read from a copy of the public collection, never trained on."""

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg.io import UnsafePathError


def _collection(root, rows):
    (root / "images").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["filename", "view"]).to_csv(root / "metadata.csv", index=False)
    return root


def test_side_films_groups_lateral_and_ct_images_and_skips_broken_files(load_bench, tmp_path, capsys):
    bench = load_bench("bench_view_check")
    root = _collection(
        tmp_path / "collection",
        [
            ("pa.jpg", "PA"),
            ("lat1.jpg", "L"),
            ("lat2.png", "L"),
            ("ax.jpg", "Axial"),
            ("cor.jpg", "Coronal"),
            ("cut.jpg", "Axial"),
            ("missing.jpg", "L"),
        ],
    )
    rng = np.random.default_rng(0)
    for name in ("pa.jpg", "lat1.jpg", "lat2.png", "ax.jpg", "cor.jpg"):
        cv2.imwrite(str(root / "images" / name), rng.integers(0, 255, (40, 32), dtype=np.uint8))
    whole = (root / "images" / "ax.jpg").read_bytes()
    (root / "images" / "cut.jpg").write_bytes(whole[: len(whole) // 2])

    groups = bench.side_films(root)
    assert {k: len(v) for k, v in groups.items()} == {"lateral": 2, "ct_axial": 1, "ct_coronal": 1}
    assert all(im.shape == (40, 32) and im.dtype == np.uint8 for ims in groups.values() for im in ims)
    printed = capsys.readouterr().out
    assert "skipped cut.jpg" in printed and "skipped missing.jpg" in printed
    assert bench.side_films(None) == {}


def test_side_films_refuses_a_path_that_leaves_the_collection(load_bench, tmp_path):
    bench = load_bench("bench_view_check")
    root = _collection(tmp_path / "collection", [("../elsewhere.jpg", "L")])
    with pytest.raises(UnsafePathError):
        bench.side_films(root)

"""The interpolation benchmark's protocol on a tiny setting (2 small JPEGs, a synthetic 'published sample'); no
timing is asserted."""

import cv2
import numpy as np


def test_tiny_interpolation_bench_reports_cost_and_sample_errors(load_bench, tmp_path, toys, capsys):
    bench = load_bench("bench_interpolation")
    film = toys.radiograph_like(1200, 1000, seed=2)
    film = np.clip(film + np.random.default_rng(0).normal(0, 8, film.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((224, 224), np.uint8)
    cv2.ellipse(mask, (70, 110), (35, 70), 0, 0, 360, 255, -1)
    cv2.imwrite(str(tmp_path / "x-original.jpg"), film, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(tmp_path / "x-mask.jpg"), mask)
    original = cv2.imread(str(tmp_path / "x-original.jpg"), cv2.IMREAD_GRAYSCALE)
    published = np.where(mask > 0, cv2.resize(original, (224, 224)), 0)  # as the authors made theirs
    cv2.imwrite(str(tmp_path / "x.jpg"), cv2.merge([published] * 3), [cv2.IMWRITE_JPEG_QUALITY, 95])
    args = ["--n", "2", "--height", "900", "--width", "760", "--repeat", "1", "--sample", str(tmp_path)]
    result = bench.main(args)
    out = capsys.readouterr().out
    assert "linear / area" in out and "published sample" in out
    assert set(result["decode"]) == {"area", "linear"} and result["linear_over_area_cpu"] > 0
    sample = result["sample"]
    assert sample["linear"]["max_resize_difference"] == 0 and sample["area"]["max_resize_difference"] > 10
    assert sample["linear"]["vs_published"] < 1.0 < sample["area"]["vs_published"]

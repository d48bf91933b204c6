"""The throughput benchmark's protocol on a tiny setting (4 small JPEGs); no timing is asserted."""

import json

import pytest


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("bench_throughput")


def test_tiny_throughput_run_reports_every_number_and_caches_its_inputs(bench, tmp_path, capsys):
    args = ["--images", "4", "--size", "small", "--device", "cpu", "--batch-size", "2", "--workers", "0"]
    result = bench.main([*args, "--work", str(tmp_path), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    for line in ("images/s", "sum of parts", "authors' path", "243,324 images"):
        assert line in out
    assert result["end_to_end"]["ok"] == 4 and result["end_to_end"]["failed"] == 0
    assert set(result["stage_ms_per_image"]["cpu"]) == {"decode", "forward", "cleanup_qc", "writes"}
    assert result["settings"]["tta_flip"] and result["model"].startswith("attention_unet")
    assert result["cpu_cores"] >= 1 and result["end_to_end"]["gpu_util_mean"] is None
    assert json.loads((tmp_path / "r.json").read_text())["images"] == 4
    images = sorted((tmp_path / "mimic-small" / "files").rglob("*.jpg"))
    stamps = [p.stat().st_mtime_ns for p in images]
    again = bench.main([*args, "--work", str(tmp_path), "--repeat", "2"])
    assert [p.stat().st_mtime_ns for p in images] == stamps  # the archive is reused
    assert (again["images"], again["distinct_files"], again["end_to_end"]["ok"]) == (8, 4, 8)


def test_tiny_rss_check(bench, tmp_path, capsys):
    common = ["--rss-check", "--rss-images", "40", "--device", "cpu", "--workers", "0", "--work", str(tmp_path)]
    for extra, network in (([], "attention_unet"), (["--rss-stand-in"], "stand-in")):
        result = bench.main([*common, *extra])
        assert "RSS over 40 images" in capsys.readouterr().out
        assert result["images"] == 40 and result["rss_mb_end"] > 0 and result["network"].startswith(network)

"""The 243k rehearsal bench (tests/bench/bench_rehearsal.py) at N=200 through the Slurm of .ci/slurm-up, so the
bench cannot rot: its archive, its run and the figures it records (docs/scale.md) are all still produced."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
import bench_rehearsal as bench  # noqa: E402

SLURM_UP = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
NODES = (
    subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split() if SLURM_UP else []
)
pytestmark = pytest.mark.skipif(not SLURM_UP, reason="no running Slurm here (.ci/slurm-up starts one)")

if os.environ.get("CXLSEG_REQUIRE_SLURM") == "1" and len(NODES) < 3:
    pytest.fail(
        f"CXLSEG_REQUIRE_SLURM=1 but sinfo lists {len(NODES)} Slurm nodes (.ci/slurm-up starts 3)", pytrace=False
    )


def test_archive_spreads_films_over_the_prefixes(tmp_path):
    info = bench.make_archive(tmp_path / "archive", 40, pool_size=2)
    assert info["films"] == 40 and sorted(info["per_prefix"]) == bench.PREFIXES
    files = sorted((tmp_path / "archive" / "files").rglob("*.jpg"))
    assert len(files) == 40 and len({f.stat().st_ino for f in files}) == 2  # hard links into the pool
    assert 1.0 < info["mean_jpeg_mb"] < 1.8


def test_rehearsal_200_records_every_figure(tmp_path):
    out = tmp_path / "rehearsal-200.json"
    bench.main(["--n", "200", "--work", str(tmp_path / "work"), "--pool", "2", "--json", str(out)])
    r = json.loads(out.read_text())
    assert r["command"].startswith("python tests/bench/bench_rehearsal.py") and r["n"] == 200
    assert r["jobs_submitted"] >= len(bench.STAGES) - 1 + len(bench.PREFIXES)
    assert r["jobs_per_rule"]["infer_shard"] == len(bench.PREFIXES)
    for stage in bench.STAGES:
        assert r["stages"][stage]["wall_s"] > 0 and r["stages"][stage]["peak_rss_mb"] > 0, stage
    assert 0 < r["controller"]["idle_s"] < r["total_s"] and r["controller"]["peak_rss_mb"] > 0
    files = r["files"]
    assert files["written"] >= 2 * 200 and 0 < files["most_in_one_folder"] <= files["written"]
    assert files["bytes_per_image"] > 0
    assert r["report"]["report_html_bytes"] > 0 and r["report"]["review_data_bytes"] > 0
    assert r["report"]["check_run_ok"] and r["stand_in"]["forward_s_per_image"] > 0

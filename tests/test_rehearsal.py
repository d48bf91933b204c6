"""The 243k rehearsal bench (tests/bench/bench_rehearsal.py) at N=200 through the Slurm of .ci/slurm-up, so the
bench cannot rot: its archive, its run and the figures it records (docs/scale.md) are all still produced."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
import bench_rehearsal as bench  # noqa: E402
from cxlseg.config import section_defaults  # noqa: E402
from helpers import slurm  # noqa: E402

NODES = slurm.cluster_nodes()
needs_slurm = pytest.mark.skipif(NODES is None, reason="no running Slurm here (.ci/slurm-up starts one)")
slurm.require_cluster(NODES)


def test_archive_spreads_films_over_the_prefixes(tmp_path):
    info = bench.make_archive(tmp_path / "archive", 60, pool_size=2)  # 10 subjects
    assert info["films"] == 60 and sorted(info["per_prefix"]) == bench.PREFIXES
    files = sorted((tmp_path / "archive" / "files").rglob("*.jpg"))
    assert len(files) == 60 and len({f.stat().st_ino for f in files}) == 2  # hard links into the pool
    assert 1.0 < info["mean_jpeg_mb"] < 1.8
    meta = pd.read_csv(tmp_path / "archive" / section_defaults("mimic")["metadata"])
    assert len(meta) == 60 and set(meta.ViewPosition) == {"PA", "AP"}
    assert len(list((tmp_path / "archive" / "files").rglob("s*.txt"))) == info["studies"] == 30  # a report a study


def check_record(r: dict, n: int) -> None:
    """Every figure docs/scale.md shows is present and sane in a rehearsal JSON."""
    assert r["command"].startswith("python tests/bench/bench_rehearsal.py") and r["n"] == n
    assert r["jobs_submitted"] >= len(bench.STAGES) - 1 + len(bench.PREFIXES)
    assert r["jobs_per_rule"]["infer_shard"] == len(bench.PREFIXES)
    for stage in bench.STAGES:  # every stage timed by Slurm and by its benchmark file, quality_table's too
        s = r["stages"][stage]
        assert all((s[k] or 0) > 0 for k in ("wall_s", "job_s_max", "peak_rss_mb")), (stage, s)
    assert 0 < r["controller"]["idle_s"] < r["total_s"] and r["controller"]["peak_rss_mb"] > 0
    files = r["files"]
    assert files["written"] >= 2 * n and 0 < files["most_in_one_folder"] <= files["written"]
    assert files["bytes_per_image"] > 0
    assert r["report"]["report_html_bytes"] > 0 and r["report"]["review_data_bytes"] > 0
    assert r["report"]["check_run_ok"] and r["stand_in"]["forward_s_per_image"] > 0


@needs_slurm
def test_rehearsal_200_records_every_figure(tmp_path):
    out = tmp_path / "rehearsal-200.json"
    bench.main(["--n", "200", "--work", str(tmp_path / "work"), "--pool", "2", "--json", str(out)])
    check_record(json.loads(out.read_text()), 200)


STORED = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "docs" / "bench").glob("rehearsal-*.json"))


@pytest.mark.skipif(len(STORED) < 2, reason="fewer than two stored rehearsals to fit")
def test_projection_of_the_stored_rehearsals_fills_every_table():
    """The README's and docs/scale.md's tables come from the stored JSONs: each figure fitted, each stage timed
    at 243k, more nodes never slower."""
    proj = bench.project(STORED)
    assert all(v["slope"] is not None and v["at_243k"] > 0 for v in proj["figures"].values())
    hours = [proj["nodes"][k]["total_h"] for k in ("1", "4", "10")]
    assert hours == sorted(hours, reverse=True) and hours[-1] > 0
    table = bench.markdown(proj)
    assert table.count("\n") == 4 and "infer_shard" in table
    assert bench.measured_table(STORED).count("| N = ") == len(STORED)

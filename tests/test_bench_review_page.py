"""The review-page benchmark on a small table: its JSON holds the figures docs/review.md quotes, and the command."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("bench_review_page")


def test_flags_are_one_to_three_of_the_seven(bench):
    qc, split = bench.qc_tables(400, 0.5, seed=1)
    flagged = qc.loc[qc["qc_flags"] != "", "qc_flags"].str.split(";")
    assert flagged.map(len).between(1, 3).all() and set(flagged.explode()) <= set(bench.FLAGS)
    assert (qc["status"] == "flagged").sum() == len(flagged) and len(split) == 400
    assert set(qc["shard"]) == set(bench.SHARDS)


def test_small_run_stores_the_page_figures_with_its_command(bench, tmp_path):
    out = tmp_path / "review.json"
    result = bench.main(["--masks", "600", "--flagged", "0.5", "--json", str(out)])
    stored = json.loads(out.read_text())
    assert stored["command"] == f"python tests/bench/bench_review_page.py --masks 600 --flagged 0.5 --json {out}"
    assert {k: stored[k] for k in result} == result
    # all + 10 shards, each with all + flagged + up to 7 flags: every shard holds every flag at this rate
    assert result["filters"] == 11 * 9 and result["page_files"] > result["filters"]
    assert result["masks"] == 600 and 0 < result["data_mb"] and result["index_html_kb"] > 1

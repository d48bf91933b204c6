"""Benchmark: the review page at MIMIC scale (not a test).

Writes a synthetic CXLSeg-qc and -split table of 243,324 masks in 10 shards (p10..p19), 5 % of them flagged with
1-3 of the 7 QC flags, then times `build_review_page` on it, against a baseline measured in the same run: a plain
read of the same two tables (the floor any build pays). Prints the filters, page files, data size and the size of
index.html, the numbers docs/review.md quotes. No thumbnails are written: the page only lists which exist.

    python tests/bench/bench_review_page.py [--masks 243324] [--json docs/bench/review-page-243k.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import record  # noqa: E402
from cxlseg import io  # noqa: E402
from cxlseg.reporting.review_page import ReviewFiles, build_review_page  # noqa: E402

FLAGS = [
    "not_frontal",
    "empty_mask",
    "small_lung_area",
    "large_lung_area",
    "fragmented",
    "left_right_imbalance",
    "low_predicted_dice",
]
SHARDS = [f"p{k}" for k in range(10, 20)]


def qc_tables(masks: int, flagged: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CXLSeg-qc and -split tables of a run of `masks` images, `flagged` of them with 1-3 flags."""
    rng = np.random.default_rng(seed)
    is_flagged = rng.random(masks) < flagged
    flags = np.full(masks, "", dtype=object)
    for i in np.flatnonzero(is_flagged):
        flags[i] = ";".join(sorted(rng.choice(FLAGS, size=rng.integers(1, 4), replace=False)))
    qc = pd.DataFrame(
        {
            "dicom_id": [f"{i:08x}-{j:08x}" for i, j in zip(rng.integers(0, 2**32, masks), range(masks))],
            "subject_id": 10_000_000 + rng.integers(0, 9_999_999, masks),
            "study_id": 50_000_000 + rng.integers(0, 9_999_999, masks),
            "shard": rng.choice(SHARDS, masks),
            "status": np.where(is_flagged, "flagged", "ok"),
            "qc_predicted_dice": np.round(rng.uniform(0.80, 0.99, masks), 4),
            "p_not_frontal": np.round(rng.uniform(0, 0.2, masks), 3),
            "qc_flags": flags,
            "models": "unet+attention_unet",
            "model_id": "unet-0+attention_unet-0",
            "review": "",
            "review_note": "",
            "in_tables": True,
        }
    )
    split = qc[["dicom_id", "subject_id", "study_id"]].assign(split=rng.choice(["train", "validate", "test"], masks))
    return qc, split


def _plain_read(qc_csv: Path, split_csv: Path) -> None:
    pd.read_csv(qc_csv, dtype={"dicom_id": str}, keep_default_na=False)
    pd.read_csv(split_csv, dtype={"dicom_id": str})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--masks", type=int, default=243_324)
    ap.add_argument("--flagged", type=float, default=0.05, help="share of masks flagged (default 0.05)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the numbers, the command and the machine here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_review_") as tmp:
        tmp = Path(tmp)
        qc, split = qc_tables(args.masks, args.flagged, args.seed)
        qc_csv, split_csv = tmp / "CXLSeg-qc.csv.gz", tmp / "CXLSeg-split.csv.gz"
        io.write_csv(qc, qc_csv)
        io.write_csv(split, split_csv)
        start = time.perf_counter()
        _plain_read(qc_csv, split_csv)
        base_s = time.perf_counter() - start
        review = tmp / "review"
        files = ReviewFiles(review / "index.html", review / "data", review / "thumbs")
        start = time.perf_counter()
        summary = build_review_page(qc_csv, split_csv, files, min_predicted_dice=0.9)
        build_s = time.perf_counter() - start
    result = {
        "masks": args.masks,
        "shards": len(SHARDS),
        "flagged_share": args.flagged,
        "flagged": int((qc["qc_flags"] != "").sum()),
        "filters": summary["filters"],
        "page_files": summary["page_files"],
        "data_mb": round(summary["data_bytes"] / 1e6, 1),
        "index_html_kb": round(summary["page_bytes"] / 1e3, 1),
        "baseline_plain_read_s": round(base_s, 2),
        "build_s": round(build_s, 2),
        "ratio_build_over_baseline": round(build_s / base_s, 2),
    }
    print(
        f"{result['masks']:,} masks in {result['shards']} shards, {result['flagged']:,} flagged: "
        f"{result['filters']} filters, {result['page_files']:,} page files, {result['data_mb']} MB of data, "
        f"index.html {result['index_html_kb']} KB"
    )
    print(f"baseline (plain read of the two tables): {base_s:6.1f} s")
    print(f"build_review_page:                       {build_s:6.1f} s  ({build_s / base_s:.1f}x baseline)")
    if args.json:
        record.write(args.json, result, __file__, argv)
    return result


if __name__ == "__main__":
    main()

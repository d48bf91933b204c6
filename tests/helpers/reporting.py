"""The run report's inputs in a results folder, named as the run_report rule names them."""

from __future__ import annotations

from pathlib import Path

RESULT_FILES = {
    "tables_summary": "CXLSeg/summary.json",
    **{name: f"CXLSeg/CXLSeg-{name}.csv.gz" for name in ("metadata", "segmented", "split", "mask", "failed")},
    "selection_summary": "infer/selection_summary.json",
    "selected": "models/selected.json",
    "used": "models/inference/test_summary.json",
    "qc_model": "models/qc_calibration.json",
    "qc_summary": "qc/qc_summary.json",
    "comparison": "models/comparison.csv",
    "counts": "training/counts.csv",
    "store_images": "training/store/test_images.npy",
    "table3": "classify/table3.csv",
    "table3_all_labels": "classify/table3_all_labels.csv",
}


def report_files(results: Path, **override):
    """ReportFiles for a results folder: each file the rule would declare, None where the folder lacks it."""
    from cxlseg.reporting.inputs import ReportFiles

    results = Path(results)
    found = {name: results / rel for name, rel in RESULT_FILES.items() if (results / rel).is_file()}
    found["manifests"] = sorted((results / "infer" / "manifests").glob("*.parquet"))
    found["benchmarks"] = sorted((results / "benchmarks").rglob("*.tsv"))
    found["images_root"] = results / "CXLSeg"
    return ReportFiles(**{**found, **override})

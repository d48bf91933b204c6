"""The quality-control report of an inference run: what was selected, what failed, what QC flagged,
and (where ground truth exists, as on the demo) how well the QC score tracks true Dice."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import io  # noqa: E402
from .infer import qc_tracking, qc_vs_truth, write_flagged_overlays  # noqa: E402


def read_manifests(paths) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dicom_id", "status", "qc_flags"])


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(_fmt(v) for v in row) + " |\n" for row in df.itertuples(index=False))


def _short_flags(flags, shown: int = 2) -> str:
    names = [f for f in str(flags or "").split(";") if f]
    return ", ".join(names[:shown]) + (f" +{len(names) - shown}" if len(names) > shown else "")


def overlay_sheet(overlays: pd.DataFrame, path, columns: int = 6) -> None:
    """One figure of the flagged overlays, lowest QC score first, so a person can eyeball them."""
    n = len(overlays)
    rows = max(1, math.ceil(n / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, rec in zip(axes.flat, overlays.itertuples(index=False)):
        ax.imshow(cv2.cvtColor(cv2.imread(rec.overlay), cv2.COLOR_BGR2RGB))
        ax.set_title(f"{rec.dicom_id[:8]}  qc {rec.qc_score:.2f}\n{_short_flags(rec.qc_flags)}", fontsize=6)
    if n == 0:
        axes.flat[0].text(0.5, 0.5, "No image was flagged by QC", ha="center", va="center")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_qc_report(manifest_paths, selection_summary, *, out_root, mimic_root, markdown_path, overlays_path,
                    truth_dir=None, size: int = 224) -> dict:
    manifest = read_manifests(manifest_paths)
    selection = io.read_json(selection_summary)
    status = manifest.groupby("status").size().rename("images").reset_index() if len(manifest) else pd.DataFrame()
    failed = manifest[manifest["status"] != "ok"][["dicom_id", "error"]] if len(manifest) else pd.DataFrame()
    with tempfile.TemporaryDirectory() as scratch:
        overlays = write_flagged_overlays(manifest, mimic_root, out_root, scratch, size=size) if len(manifest) else pd.DataFrame()
        overlay_sheet(overlays, overlays_path)
    lines = ["# Inference quality control\n", "## Selection\n", _table(pd.DataFrame([selection]).T.reset_index().set_axis(["step", "value"], axis=1)),
             "\n## Status\n", _table(status), "\n## Failed images\n", _table(failed)]
    flagged = manifest[manifest["qc_flags"].fillna("") != ""] if len(manifest) else manifest
    lines += [f"\n## QC-flagged images ({len(flagged)})\n", _table(flagged[["dicom_id", "qc_score", "qc_flags"]] if len(flagged) else flagged)]
    tracking = {}
    if truth_dir and Path(truth_dir).is_dir() and len(manifest):
        validation = qc_vs_truth(manifest, truth_dir, out_root, size=size)
        tracking = qc_tracking(validation)
        lines += ["\n## QC score vs true Dice (ground truth available)\n", _table(pd.DataFrame([tracking]))]
    io.write_text(markdown_path, "".join(lines))
    return {"images": int(len(manifest)), "flagged": int(len(flagged)), "tracking": tracking}

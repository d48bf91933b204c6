"""The quality-control report of an inference run: what was selected and dropped (and why), what failed,
what QC flagged, and, where ground truth exists (the demo), how well the QC score tracks true Dice."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import pandas as pd
from matplotlib.figure import Figure

from . import io
from .manifest import read_manifests
from .qc import flagged_overlays, qc_tracking, qc_vs_truth


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe table of a frame, floats to 3 decimals (the one markdown-table helper of the package)."""
    if df.empty:
        return "_none_\n"
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(_fmt(v) for v in row) + " |\n" for row in df.itertuples(index=False))


def _short_flags(flags, shown: int = 2) -> str:
    names = [f for f in str(flags or "").split(";") if f]
    return ", ".join(names[:shown]) + (f" +{len(names) - shown}" if len(names) > shown else "")


def overlay_sheet(overlays: list[tuple[dict, object]], path, columns: int = 6) -> None:
    """One figure of the flagged overlays, lowest QC score first, so a person can eyeball them."""
    rows = max(1, math.ceil(len(overlays) / columns))
    fig = Figure(figsize=(2.2 * columns, 2.4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (rec, image) in zip(axes.flat, overlays):
        ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        ax.set_title(f"{rec['dicom_id'][:8]}  qc {rec['qc_score']:.2f}\n{_short_flags(rec['qc_flags'])}", fontsize=6)
    if not overlays:
        axes.flat[0].text(0.5, 0.5, "No image was flagged by QC", ha="center", va="center")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg", dpi=110, pil_kwargs={"quality": 80})


def _selection_rows(selection: dict) -> pd.DataFrame:
    """The selection funnel as (step, value) rows; lists (excluded ids, dropped studies) are counted, not dumped."""
    rows = [(k, len(v) if isinstance(v, list) else v) for k, v in selection.items() if not isinstance(v, dict)]
    return pd.DataFrame(rows, columns=["step", "value"])


def write_qc_report(
    manifest_paths, selection_summary, *, out_root, mimic_root, markdown_path, overlays_path, truth_dir=None, size: int
) -> dict:
    manifest = read_manifests(manifest_paths)
    selection = io.read_json(selection_summary)
    status = manifest.groupby("status").size().rename("images").reset_index()
    failed = manifest[manifest["status"] != "ok"][["dicom_id", "error"]]
    overlay_sheet(flagged_overlays(manifest, mimic_root, out_root, size=size), overlays_path)
    flagged = manifest[manifest["qc_flags"].fillna("") != ""]
    lines = [
        "# Inference quality control\n",
        "## Selection\n",
        markdown_table(_selection_rows(selection)),
        "\n## Status\n",
        markdown_table(status),
        "\n## Failed images\n",
        markdown_table(failed),
        f"\n## QC-flagged images ({len(flagged)})\n",
        markdown_table(flagged[["dicom_id", "qc_score", "qc_flags"]]),
    ]
    tracking = {}
    if truth_dir and Path(truth_dir).is_dir() and len(manifest):
        tracking = qc_tracking(qc_vs_truth(manifest, truth_dir, out_root, size=size))
        lines += ["\n## QC score vs true Dice (ground truth available)\n", markdown_table(pd.DataFrame([tracking]))]
    io.write_text(markdown_path, "".join(lines))
    return {"images": int(len(manifest)), "flagged": int(len(flagged)), "tracking": tracking}

"""The quality-control report of an inference run: what was selected and dropped (and why), what failed,
what QC flagged, what the predicted-Dice model reads, and, where ground truth exists (the demo), how well the
predicted Dice tracks the true Dice."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import pandas as pd
from matplotlib.figure import Figure

from cxlseg import io
from cxlseg.inference.manifest import read_manifests
from cxlseg.qc.assess import flagged_overlays, qc_tracking, qc_vs_truth
from cxlseg.qc.calibration import calibration_curve
from cxlseg.qc.model import QCModel, describe


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
    """One figure of the flagged overlays, lowest predicted Dice first, so a person can eyeball them."""
    rows = max(1, math.ceil(len(overlays) / columns))
    fig = Figure(figsize=(2.2 * columns, 2.4 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (rec, image) in zip(axes.flat, overlays):
        ax.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        ax.set_title(
            f"{rec['dicom_id'][:8]}  pred. Dice {rec['qc_predicted_dice']:.2f}\n{_short_flags(rec['qc_flags'])}",
            fontsize=6,
        )
    if not overlays:
        axes.flat[0].text(0.5, 0.5, "No image was flagged by QC", ha="center", va="center")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg", dpi=110, pil_kwargs={"quality": 80})


def _selection_rows(selection: dict) -> pd.DataFrame:
    """The selection funnel as (step, value) rows; lists (excluded ids, dropped studies) are counted, not dumped."""
    rows = [(k, len(v) if isinstance(v, list) else v) for k, v in selection.items() if not isinstance(v, dict)]
    return pd.DataFrame(rows, columns=["step", "value"])


def _model_section(model: QCModel) -> list[str]:
    """What the predicted Dice reads (strongest weights first) and how it did, cross-validated, on calibration."""
    cv = model.info.get("cross_validated", {})
    rows = pd.DataFrame([{"masks": name, **cv[name]} for name in ("clean", "all") if name in cv])
    weights = pd.DataFrame(describe(model), columns=["feature", "weight (standardised)"])
    return [
        f"\n## Predicted Dice model ({model.info.get('n_masks', '?')} calibration masks, model "
        f"{model.info.get('model_id', '?')})\n",
        "Fitted on the training store's validate and test images, clean and degraded; cross-validated by image:\n\n",
        markdown_table(rows),
        "\n",
        markdown_table(weights),
    ]


def plot_predicted_vs_true(validation: pd.DataFrame | None, calibration: pd.DataFrame, flag_below: float, path):
    """Left: predicted vs true Dice of this run's masks where truth exists; right: the calibration curve."""
    fig = Figure(figsize=(9, 4.2))
    ax, curve = fig.subplots(1, 2)
    if validation is not None and len(validation):
        flagged = validation["qc_flags"].fillna("") != ""
        ax.scatter(validation["qc_predicted_dice"][~flagged], validation["dice"][~flagged], s=10, label="kept")
        ax.scatter(
            validation["qc_predicted_dice"][flagged], validation["dice"][flagged], s=10, c="red", label="flagged"
        )
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no ground truth in this run", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(flag_below, color="red", lw=0.8, ls="--")
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8)
    ax.set(xlabel="predicted Dice", ylabel="true Dice", title="this run (truth: demo)", xlim=(0, 1.02), ylim=(0, 1.02))
    calibration_curve(curve, calibration["predicted_cv"].to_numpy(), calibration["dice"].to_numpy())
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_qc_report(
    manifest_paths,
    selection_summary,
    *,
    out_root,
    mimic_root,
    markdown_path,
    overlays_path,
    qc_model_path,
    calibration_table,
    dice_plot_path,
    min_predicted_dice: float,
    truth_dir=None,
    size: int,
    interpolation: str = "area",
) -> dict:
    manifest = read_manifests(manifest_paths)
    selection = io.read_json(selection_summary)
    status = manifest.groupby("status").size().rename("images").reset_index()
    failed = manifest[manifest["status"] != "ok"][["dicom_id", "error"]]
    overlay_sheet(
        flagged_overlays(manifest, mimic_root, out_root, size=size, interpolation=interpolation), overlays_path
    )
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
        markdown_table(flagged[["dicom_id", "qc_predicted_dice", "qc_flags"]]),
    ]
    model = QCModel.load(qc_model_path)
    lines += _model_section(model)
    tracking, validation = {}, None
    if truth_dir and Path(truth_dir).is_dir() and len(manifest):
        validation = qc_vs_truth(manifest, truth_dir, out_root, size=size, interpolation=interpolation)
        tracking = qc_tracking(validation, good_dice=model.good_dice)
        lines += ["\n## Predicted vs true Dice (ground truth available)\n", markdown_table(pd.DataFrame([tracking]))]
    calibration = pd.read_csv(calibration_table)
    plot_predicted_vs_true(validation, calibration, min_predicted_dice, dice_plot_path)
    io.write_text(markdown_path, "".join(lines))
    return {"images": int(len(manifest)), "flagged": int(len(flagged)), "tracking": tracking}

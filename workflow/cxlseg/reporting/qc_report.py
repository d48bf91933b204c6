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
from cxlseg.inference.manifest import read_manifests, split_flags
from cxlseg.inference.mask_qc import flagged_overlays, qc_tracking, qc_vs_truth
from cxlseg.inference.qc_model import QCModel, bar_text, describe
from cxlseg.qc.calibration import calibration_curve


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
    names = split_flags(flags)
    return ", ".join(names[:shown]) + (f" +{len(names) - shown}" if len(names) > shown else "")


OVERLAYS_SHOWN = 12  # 3 rows of 4: the sheet fits a 1366x768 screen at full size for any run


def overlay_sheet(overlays: list[tuple[dict, object]], path, columns: int = 4) -> None:
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
            fontsize=9,
        )
    if not overlays:
        axes.flat[0].text(0.5, 0.5, "No image was flagged by QC", ha="center", va="center")
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg", dpi=90, bbox_inches="tight", pad_inches=0.15, pil_kwargs={"quality": 70})


def _selection_rows(selection: dict) -> pd.DataFrame:
    """The selection funnel as (step, value) rows; lists (excluded ids, dropped studies) are counted, not dumped."""
    rows = [(k, len(v) if isinstance(v, list) else v) for k, v in selection.items() if not isinstance(v, dict)]
    return pd.DataFrame(rows, columns=["step", "value"])


def model_sections(model: QCModel) -> list[tuple[str, str, pd.DataFrame | None]]:
    """What the predicted Dice reads (strongest weights first) and how it did, cross-validated, on calibration."""
    cv = model.info.get("cross_validated", {})
    rows = pd.DataFrame([{"masks": name, **cv[name]} for name in ("clean", "all") if name in cv])
    weights = pd.DataFrame(describe(model), columns=["feature", "weight (standardised)"])
    title = (
        f"Predicted Dice model ({model.info.get('n_masks', '?')} calibration masks, model "
        f"{model.info.get('model_id', '?')})"
    )
    text = (
        "Fitted on every film the training split holds out (validate and test), clean and degraded; "
        f"cross-validated by patient. Flag bar: {bar_text(model.min_predicted_dice, model.good_flag_rate, model.good_dice)}."
    )
    return [(title, text, _readable(rows, model.good_dice)), ("Features of the predicted Dice", "", weights)]


# Raw tracking keys -> column headers a reader understands (rates as fractions, with their n beside them).
TRACKING_HEADERS = {
    "n": "n (masks)",
    "pearson": "Pearson r",
    "spearman": "Spearman ρ",
    "mae": "mean abs. error",
    "mean_dice": "mean true Dice",
    "n_good": "n good (Dice ≥ {good})",
    "n_bad": "n bad (Dice < {good})",
    "good_flagged": "good flagged (fraction)",
    "bad_caught": "bad caught (fraction)",
    "mean_dice_flagged": "mean Dice, flagged",
    "mean_dice_unflagged": "mean Dice, not flagged",
}


def _readable(df: pd.DataFrame, good: float) -> pd.DataFrame:
    order = [c for c in ("masks", *TRACKING_HEADERS) if c in df]
    names = {k: v.format(good=good) for k, v in TRACKING_HEADERS.items()}
    return df[order + [c for c in df if c not in order]].rename(columns=names)


def render_markdown(sections) -> str:
    lines = ["# Inference quality control\n"]
    for title, text, df in sections:
        lines.append(f"\n## {title}\n")
        if text:
            lines.append(text + "\n\n")
        if df is not None:
            lines.append(markdown_table(df))
    return "".join(lines)


def render_html(sections, *, demo: bool = False, title: str = "Inference quality control") -> str:
    """The same sections as a page the report shows inline (the Markdown file downloads instead)."""
    from cxlseg.reporting.html import esc, page, table

    body = []
    for title, text, df in sections:
        body.append(f"<h2>{esc(title)}</h2>")
        if text:
            body.append(f"<p class='note'>{esc(text)}</p>")
        if df is not None:
            if "step" in df:  # selection keys read as words on the page
                df = df.assign(step=df["step"].astype(str).str.replace("_", " "))
            if "flags" in df:  # flags wrap in a narrow column
                df = df.assign(flags=df["flags"].fillna("").astype(str).str.replace(";", ", "))
            floats = {c: (lambda v: "–" if pd.isna(v) else f"{v:.3f}") for c in df if df[c].dtype.kind == "f"}
            body.append(table(df, floats, headers={c: c for c in df.columns}))
    return page(title, "".join(body), demo=demo)


def plot_predicted_vs_true(validation: pd.DataFrame | None, calibration: pd.DataFrame, flag_below: float, path):
    """Left: predicted vs true Dice of this run's masks where truth exists; right: the calibration curve."""
    fig = Figure(figsize=(9, 4.2))
    ax, curve = fig.subplots(1, 2)
    if validation is not None and len(validation):
        flagged = validation["qc_flags"].fillna("") != ""
        for keep, color, name in ((~flagged, "tab:blue", "not flagged"), (flagged, "red", "flagged")):
            if keep.any():  # a legend entry only for points that are drawn
                x, y = validation["qc_predicted_dice"][keep], validation["dice"][keep]
                ax.scatter(x, y, s=10, c=color, label=f"{name} (n = {int(keep.sum())})")
        ax.legend(fontsize=7, title=f"flagged: {int(flagged.sum())} of {len(flagged)}", title_fontsize=7)
    else:
        ax.text(0.5, 0.5, "no ground truth in this run", ha="center", va="center", transform=ax.transAxes)
    ax.axvline(flag_below, color="red", lw=0.8, ls="--")
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8)
    ax.set(xlabel="predicted Dice", ylabel="true Dice", title="this run (truth: demo)", xlim=(0, 1.02), ylim=(0, 1.02))
    calibration_curve(curve, calibration["predicted_cv"].to_numpy(), calibration["dice"].to_numpy())
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


LISTED = 100  # rows of the failed and flagged lists in the report: a 243k run keeps a page of a few hundred KB


def _listed(frame: pd.DataFrame) -> str:
    if len(frame) <= LISTED:
        return ""
    return f"The first {LISTED} of {len(frame):,} are listed; all are in CXLSeg-failed.csv.gz."


FILM_COLUMNS = ["dicom_id", "film_inverted", "film_cropped", "film_fraction", "polarity_score"]


def film_section(manifest: pd.DataFrame) -> tuple[str, str, pd.DataFrame]:
    """Films segmented after undoing an inversion or a light-box border, then the least chest-like films."""
    ok = manifest[manifest["status"] == "ok"].reindex(columns=FILM_COLUMNS)
    undone = ok[ok["film_inverted"].fillna(False).astype(bool) | ok["film_cropped"].fillna(False).astype(bool)]
    unlike = ok.drop(undone.index).nsmallest(5, "polarity_score")
    text = (
        f"{len(undone)} of {len(ok)} films were segmented after the film check (`infer.film`) turned them upright "
        "or cropped a light-box border; their masks are mapped back onto the whole image. Below them, the films "
        "least like a chest film either way up (lowest polarity score: correlation with the training films)."
    )
    return (f"Film check ({len(undone)})", text, pd.concat([undone, unlike]).head(LISTED))


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
    truth_dir=None,
    size: int,
    interpolation: str = "area",
    html_path=None,
    summary_path=None,
    demo: bool = False,
) -> dict:
    """The QC report as Markdown (and as an HTML page), the flagged overlays, the Dice plot, and a JSON summary
    of how QC did against ground truth (the run summary quotes it); the flag bar is the QC model's."""
    manifest = read_manifests(manifest_paths)
    selection = io.read_json(selection_summary)
    status = manifest.groupby("status").size().rename("images").reset_index()
    failed = manifest[manifest["status"] != "ok"][["dicom_id", "error"]]
    overlays = flagged_overlays(
        manifest, mimic_root, out_root, size=size, interpolation=interpolation, max_images=OVERLAYS_SHOWN
    )
    overlay_sheet(overlays, overlays_path)
    flagged = manifest[manifest["qc_flags"].fillna("") != ""]
    shown = flagged[["dicom_id", "qc_predicted_dice", "qc_flags"]].sort_values(["qc_predicted_dice", "dicom_id"])
    shown = shown.rename(columns={"qc_predicted_dice": "predicted Dice", "qc_flags": "flags"})
    sections = [
        ("Selection", "", _selection_rows(selection)),
        ("Status", "", status),
        (f"Failed images ({len(failed)})", _listed(failed), failed.head(LISTED)),
        (f"QC-flagged images ({len(flagged)})", "Lowest predicted Dice first. " + _listed(shown), shown.head(LISTED)),
    ]
    sections.append(film_section(manifest))
    model = QCModel.load(qc_model_path)
    sections += model_sections(model)
    tracking, validation = {}, None
    if truth_dir and Path(truth_dir).is_dir() and len(manifest):
        validation = qc_vs_truth(manifest, truth_dir, out_root, size=size, interpolation=interpolation)
        tracking = qc_tracking(validation, good_dice=model.good_dice)
        sections.append(
            (
                "Predicted vs true Dice (ground truth available)",
                "",
                _readable(pd.DataFrame([tracking]), model.good_dice),
            )
        )
    calibration = pd.read_csv(calibration_table)
    plot_predicted_vs_true(validation, calibration, model.min_predicted_dice, dice_plot_path)
    io.write_text(markdown_path, render_markdown(sections))
    if html_path:
        io.write_text(html_path, render_html(sections, demo=demo))
    bar = {"min_predicted_dice": model.min_predicted_dice, "good_flag_rate": model.good_flag_rate}
    result = {"images": int(len(manifest)), "flagged": int(len(flagged)), "tracking": tracking, "flag_bar": bar}
    if summary_path:
        summary = {"images": result["images"], "flagged": result["flagged"], "flag_bar": bar, "truth": tracking}
        io.write_json(summary_path, _finite(summary))
    return result


def _finite(value):
    """NaN -> None so the JSON stays standard."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value

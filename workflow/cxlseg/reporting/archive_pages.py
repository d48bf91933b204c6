"""Another archive's run report page and QC report (archive.kind, #34): the pages MIMIC's run gets, from the
archive's own files.

Why: a researcher running CheXpert or a hospital's folder asks what MIMIC's researcher asks (how many images were
listed, segmented, failed, skipped and why, per shard; by which segmenter; flagged at which bar; how long it
took) and wants the flagged masks in front of them. The sections are MIMIC's (`run_report`, `qc_report`); only
the counts come from the archive's run summary (`archive_summary`) and table, and the overlays from the review
thumbnails inference wrote (a DICOM or 16-bit film needs no second decode).
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cxlseg import io
from cxlseg.inference.manifest import shard_of
from cxlseg.inference.outputs import thumbnail_dir, thumbnail_path
from cxlseg.inference.qc_model import QCModel
from cxlseg.reporting.html import count, hms, kpi, note, page, section, table, toc
from cxlseg.reporting.inputs import ReportFiles
from cxlseg.reporting.qc_report import LISTED, OVERLAYS_SHOWN, film_section, model_sections, overlay_sheet, render_html
from cxlseg.reporting.run_report import bar_kpi, qc_model_fields, segmenter_section, time_section
from cxlseg.reporting.run_stats import wall_clock

NUMBERS = ("qc_predicted_dice", "p_not_frontal")
FLAGS = ("film_inverted", "film_cropped", "excluded")


def read_archive_table(table_csv) -> pd.DataFrame:
    """An archive's table (`tables.archive`) with its image id under MIMIC's name, numbers and flags typed."""
    frame = pd.read_csv(table_csv, dtype=str, keep_default_na=False)
    missing = sorted({"image_id", "shard", "status", "error", "qc_flags", *NUMBERS} - set(frame.columns))
    if missing:
        raise ValueError(f"{table_csv}: not an archive table, no column {', '.join(missing)}")
    frame = frame.rename(columns={"image_id": "dicom_id"})
    for column in NUMBERS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in FLAGS:
        frame[column] = frame[column] == "True" if column in frame else False
    return frame


def _reasons(counts: dict, what: str) -> pd.DataFrame:
    return pd.DataFrame(sorted(counts.items(), key=lambda kv: -kv[1]), columns=[what, "images"])


def _per_shard(summary: dict) -> pd.DataFrame:
    rows = [{"shard": shard, **counts} for shard, counts in summary["per_shard"].items()]
    return pd.DataFrame(rows, columns=["shard", "listed", "segmented", "failed", "flagged"])


def images_section(summary: dict) -> list[str]:
    """Listed, segmented, failed, skipped and flagged, each with its reasons, and per shard."""
    review = summary.get("review", {})
    return [
        section("images", "Images"),
        kpi("listed", count(summary["listed"]), "frontal images the adapter kept"),
        kpi("segmented", count(summary["segmented"])),
        kpi("failed", count(summary["failed"]), "no mask written"),
        kpi("skipped", count(summary["skipped"]), "files the adapter could not list"),
        kpi("QC-flagged", count(summary["flagged"]), "mask written, quality doubtful"),
        kpi("excluded", count(summary.get("excluded")), "failed, rejected, or flagged and not accepted"),
        kpi("reviewed", count(review.get("accepted", 0) + review.get("rejected", 0)), _review_text(review)),
        "<h3>Skipped, by reason</h3>",
        table(_reasons(summary["skip_reasons"], "reason"), {"images": count}),
        "<h3>Not frontal, by the archive's view</h3>",
        table(_reasons(summary["not_frontal"], "view"), {"images": count}),
        "<h3>Failed, by reason</h3>",
        table(_reasons(summary["failure_reasons"], "reason"), {"images": count}),
        "<h3>QC-flagged, by reason (a mask may have several)</h3>",
        table(_reasons(summary["flag_counts"], "flag"), {"images": count}),
        "<h3>Per shard</h3>",
        table(_per_shard(summary), {c: count for c in ("listed", "segmented", "failed", "flagged")}),
    ]


def _review_text(review: dict) -> str:
    if not review.get("file"):
        return "no review file (archive.review_file)"
    return f"accepted {review.get('accepted', 0)}, rejected {review.get('rejected', 0)}"


def run_page(summary_json, files: ReportFiles, *, demo: bool = False) -> str:
    """The run report page of another archive: at a glance, images, segmenter, QC bar, time."""
    summary = io.read_json(summary_json)
    manifests = {shard_of(p): pd.read_parquet(p, columns=["dicom_id"]) for p in sorted(files.manifests)}
    info, good, bar = qc_model_fields(files)
    glance = [
        section("glance", "At a glance"),
        kpi("listed", count(summary["listed"]), f"{summary['kind']} frontal images"),
        kpi("segmented", count(summary["segmented"]), f"failed {summary['failed']}, flagged {summary['flagged']}"),
        bar_kpi(bar, good),
        kpi("wall clock", hms(wall_clock(files.benchmarks)["busy_seconds"]), "jobs running (pauses excluded)"),
    ]
    qc = [section("qc", "Quality control"), bar_kpi(bar, good)]
    qc.append(note(f"QC model: {count(info.get('n_masks'))} calibration masks, segmenter {info.get('model_id', '–')}."))
    body = [
        *glance,
        toc([("images", "Images"), ("segmenter", "Segmenter"), ("qc", "Quality control"), ("time", "Time")]),
        *images_section(summary),
        *segmenter_section(files, demo=demo),
        *qc,
        *time_section(files, manifests),
    ]
    return page(f"{summary['kind']}: run summary", "".join(body), demo=demo)


def dice_histogram(dice: pd.Series, bar: float, path) -> None:
    """The predicted Dice of every mask, the flag bar marked: where the archive's masks sit against it."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    values = dice.dropna().to_numpy()
    ax.hist(values, bins=np.linspace(0, 1, 41), color="tab:blue")
    ax.axvline(bar, color="red", lw=1, ls="--", label=f"flag bar {bar:.3f}")
    ax.set(xlabel="predicted Dice", ylabel="masks", title=f"predicted Dice of {len(values)} masks", xlim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def thumbnail_overlays(masked: pd.DataFrame, thumbs_root, n: int = OVERLAYS_SHOWN) -> list[tuple[dict, np.ndarray]]:
    """(row, image) of the lowest-scoring flagged masks: the review thumbnail, mask outlined (a missing one blank)."""
    flagged = masked[masked["qc_flags"] != ""].sort_values(["qc_predicted_dice", "dicom_id"]).head(n)
    out = []
    for rec in flagged.to_dict("records"):
        path = thumbnail_path(thumbnail_dir(thumbs_root, rec["shard"]), rec["dicom_id"])
        image = io.read_image(path, cv2.IMREAD_COLOR) if path.is_file() else np.zeros((64, 64, 3), np.uint8)
        out.append((rec, image))
    return out


def qc_sections(frame: pd.DataFrame, model: QCModel) -> list[tuple[str, str, pd.DataFrame]]:
    """MIMIC's QC report sections on the archive's table: status, failed, flagged, film check, the model."""
    masked = frame[frame["status"] == "ok"]
    failed = frame.loc[frame["status"] != "ok", ["dicom_id", "path", "error"]]
    flagged = masked.loc[masked["qc_flags"] != "", ["dicom_id", "qc_predicted_dice", "qc_flags", "review"]]
    flagged = flagged.sort_values(["qc_predicted_dice", "dicom_id"])
    flagged = flagged.rename(columns={"qc_predicted_dice": "predicted Dice", "qc_flags": "flags"})
    status = frame.groupby("status").size().rename("images").reset_index()
    more = f"The first {LISTED} are listed; all are in the archive's table."
    return [
        ("Status", "", status),
        (f"Failed images ({len(failed)})", more if len(failed) > LISTED else "", failed.head(LISTED)),
        (
            f"QC-flagged images ({len(flagged)})",
            "Lowest predicted Dice first. " + (more if len(flagged) > LISTED else ""),
            flagged.head(LISTED),
        ),
        film_section(frame),
        *model_sections(model),
    ]


def write_archive_qc_report(
    table_csv, thumbs_root, qc_model_path, *, html_path, overlays_path, histogram_path, summary_path, demo=False
) -> dict:
    """The archive's QC report page, flagged overlays, predicted-Dice histogram and counts (JSON, returned)."""
    frame = read_archive_table(table_csv)
    model = QCModel.load(qc_model_path)
    masked = frame[frame["status"] == "ok"]
    overlay_sheet(thumbnail_overlays(masked, thumbs_root), overlays_path)
    dice_histogram(masked["qc_predicted_dice"], model.min_predicted_dice, histogram_path)
    io.write_text(html_path, render_html(qc_sections(frame, model), demo=demo, title="Quality control of the masks"))
    summary = {
        "images": int(len(frame)),
        "masks": int(len(masked)),
        "failed": int(len(frame) - len(masked)),
        "flagged": int((masked["qc_flags"] != "").sum()),
        "flag_bar": {"min_predicted_dice": model.min_predicted_dice, "good_flag_rate": model.good_flag_rate},
    }
    io.write_json(summary_path, summary)
    return summary

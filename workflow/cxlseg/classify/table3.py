"""Table III from the classifier runs: the paper's four labels (and their mean), every trained label, ROC curves.

table3.csv/md is the paper's table: per report label accuracy, sensitivity, specificity and AUC, and
their mean over the report labels. table3_all_labels.csv/md has one row per trained label (the
authors trained and evaluated all 14), one column per (run, metric).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cxlseg.classify.cohort import INPUT_KINDS
from cxlseg.classify.engine import SKIPPED_COLUMNS
from cxlseg.classify.roc import METRICS, auc, mean_metrics, roc_curve
from cxlseg.classify.run import RunFiles
from cxlseg.classify.settings import check_report_labels
from cxlseg.io import atomic_path, read_json, write_bytes, write_csv, write_text

Run = tuple[RunFiles, dict]  # (a run's files, its metrics)


@dataclass(frozen=True)
class Table3Files:
    """What the summary writes (the classify_summary rule's outputs): Table III and the all-labels table (CSV and
    markdown each), the ROC figure, every run's skipped images in one CSV, and a copy of each run's predictions
    (`predictions`, in the order of the runs)."""

    table: Path
    markdown: Path
    all_labels: Path
    all_labels_markdown: Path
    roc: Path
    skipped: Path
    predictions: tuple[Path, ...]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, tuple(map(Path, value)) if f.name == "predictions" else Path(value))


def summarise(runs: Sequence[RunFiles], out: Table3Files, report_labels: Sequence[str]) -> pd.DataFrame:
    """Write Table III, the all-labels table, the ROC figure, the skipped images and the predictions' copies."""
    if len(out.predictions) != len(runs):
        raise ValueError(f"{len(runs)} runs but {len(out.predictions)} prediction copies to write")
    runs = read_runs(runs)
    report_labels = tuple(report_labels)
    check_report_labels(runs[0][1]["labels"], report_labels)
    metrics = [m for _, m in runs]
    table = table3(metrics, report_labels)
    write_csv(table, out.table)
    write_text(out.markdown, table3_markdown(table, metrics, report_labels))
    every = all_labels_table(metrics)
    write_csv(every, out.all_labels)
    write_text(out.all_labels_markdown, all_labels_markdown(every, metrics))
    write_csv(_merged_skipped([files for files, _ in runs]), out.skipped)
    plot_roc(_copy_predictions(runs, out.predictions), report_labels, out.roc)
    return table


def read_runs(runs: Iterable[RunFiles]) -> list[Run]:
    """(run files, metrics) pairs; every run must have learned the same labels."""
    read = []
    for files in runs:
        if not files.metrics.is_file():
            raise FileNotFoundError(f"{files.metrics}: run metrics not found")
        read.append((files, read_json(files.metrics)))
    if not read:
        raise ValueError("summarise needs at least one run")
    first, labels = read[0][0].metrics, read[0][1]["labels"]
    for files, metrics in read[1:]:
        if metrics["labels"] != labels:
            raise ValueError(f"{files.metrics}: labels {metrics['labels']} differ from {first}'s {labels}")
    return read


def _copy_predictions(runs: Sequence[Run], copies: Sequence[Path]) -> dict[tuple[str, str], pd.DataFrame]:
    """Each run's predictions next to the table (one place to look) and read back for the ROC figure."""
    predictions = {}
    for (files, metrics), copy in zip(runs, copies):
        write_bytes(copy, files.predictions.read_bytes())
        predictions[(metrics["model"], metrics["input"])] = pd.read_csv(files.predictions, dtype={"dicom_id": str})
    return predictions


def _merged_skipped(runs: Sequence[RunFiles]) -> pd.DataFrame:
    frames = [pd.read_csv(r.skipped, dtype=str) for r in runs if r.skipped.is_file()]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=SKIPPED_COLUMNS)
    return pd.concat(frames, ignore_index=True).drop_duplicates().reset_index(drop=True)


def table3(runs: Iterable[dict], report_labels: Sequence[str]) -> pd.DataFrame:
    """One row per (model, input): each report label's metrics, then their mean over the report labels."""
    rows = []
    for metrics in runs:
        row = {"model": metrics["model"], "input": metrics["input"], "n_test": metrics["counts"]["test"]}
        for name in report_labels:
            row.update({f"{name} {m}": _float(metrics["per_label"][name][m]) for m in METRICS})
        row.update({f"mean {m}": v for m, v in mean_metrics(metrics["per_label"], report_labels).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def all_labels_table(runs: Sequence[dict]) -> pd.DataFrame:
    """One row per trained label; columns '<model> <input> <metric>' for every run."""
    labels = runs[0]["labels"]
    table = pd.DataFrame({"label": labels})
    for metrics in runs:
        run = f"{metrics['model']} {metrics['input']}"
        for metric in METRICS:
            table[f"{run} {metric}"] = [_float(metrics["per_label"][name][metric]) for name in labels]
    return table


def _preamble(title: str, runs: Sequence[dict], labels: Sequence[str]) -> list[str]:
    """Title, the settings the runs share, and what makes a cell of `labels` n/a."""
    settings = runs[0]["settings"]
    fallbacks = [c for c in labels if any(r["per_label"][c]["threshold_rule"] != "youden" for r in runs)]
    stops = ", ".join(f"{r['model']}/{r['input']} {r['best_epoch']}/{r['epochs_run']}" for r in runs)
    lines = [
        f"# {title}",
        "",
        f"Test split; thresholds by Youden's J on the validate split. {len(runs[0]['labels'])} sigmoid outputs, "
        f"input {settings['input_size']} px ({settings['resize']}), {settings['channels']} channel(s), "
        f"up to {settings['epochs']} epoch(s) with early stopping (patience {settings['patience']}) on the "
        f"validation loss, batch {settings['batch_size']}, Adam lr {settings['lr']}, "
        f"{'ImageNet-pretrained' if settings['pretrained'] else 'from scratch'}, "
        f"augmentation {'on' if settings['augment'] else 'off'}, uncertain labels -> {settings['uncertain']}.",
        "",
        f"Epoch kept / epochs run: {stops}.",
        "",
        "n/a: not computable (no positives or no negatives in the split). Means average the labels where the "
        "metric exists.",
        "",
    ]
    if fallbacks:
        lines += [
            f"Threshold 0.5 instead of Youden's J (validate split lacks positives or negatives): "
            f"{', '.join(fallbacks)}.",
            "",
        ]
    return lines


def table3_markdown(table: pd.DataFrame, runs: Sequence[dict], report_labels: Sequence[str]) -> str:
    """Table III as one markdown table per report label plus one for their mean."""
    first = runs[0]["per_label"]
    support = ", ".join(f"{c} {first[c]['n_test_positive']}/{first[c]['n_test']}" for c in report_labels)
    lines = _preamble("Table III: classifiers on original vs segmented images", runs, report_labels)
    lines += [f"Test positives / labelled images: {support}.", ""]
    for title, prefix in [(c, f"{c} ") for c in report_labels] + [("Mean over " + ", ".join(report_labels), "mean ")]:
        lines += [
            f"## {title}",
            "",
            "| model | input | " + " | ".join(METRICS) + " |",
            "|---|---|" + "---:|" * len(METRICS),
        ]
        for _, row in table.iterrows():
            lines.append(
                f"| {row['model']} | {row['input']} | " + " | ".join(_fmt(row[prefix + m]) for m in METRICS) + " |"
            )
        lines.append("")
    return "\n".join(lines)


def all_labels_markdown(table: pd.DataFrame, runs: Sequence[dict]) -> str:
    """Every trained label: one markdown table per metric, labels down, runs across, their mean last."""
    names = [f"{r['model']} {r['input']}" for r in runs]
    lines = _preamble("Table III, every trained label", runs, runs[0]["labels"])
    for metric in METRICS:
        columns = [f"{n} {metric}" for n in names]
        lines += [f"## {metric}", "", "| label | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for _, row in table.iterrows():
            lines.append(f"| {row['label']} | " + " | ".join(_fmt(row[c]) for c in columns) + " |")
        means = [_fmt(_nanmean(table[c])) for c in columns]
        lines += ["| *mean* | " + " | ".join(means) + " |", ""]
    return "\n".join(lines)


def plot_roc(predictions: dict[tuple[str, str], pd.DataFrame], labels: Sequence[str], path: os.PathLike | str) -> None:
    """ROC curves on the test split: one panel per label, colour = classifier, solid = segmented, dashed = original.

    One row of panels whatever the number of classifiers, so the figure fits a 1366x768 screen."""
    models = list(dict.fromkeys(m for m, _ in predictions))
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    fig = Figure(figsize=(3.3 * len(labels), 3.9))
    axes = fig.subplots(1, len(labels), squeeze=False)[0]
    for ax, name in zip(axes, labels):
        ax.plot([0, 1], [0, 1], color="0.8", lw=0.8, ls="--")
        for model in models:
            for input_kind in INPUT_KINDS:
                if (model, input_kind) in predictions:
                    _plot_one_roc(ax, predictions[(model, input_kind)], name, model, input_kind, colors[model])
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=name, xlabel="1 - specificity")  # curves on the frame show
        ax.title.set_fontsize(9)
        ax.legend(fontsize=5.5, loc="lower right")
    axes[0].set_ylabel("sensitivity")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def _plot_one_roc(ax, frame: pd.DataFrame, name: str, model: str, input_kind: str, color: str) -> None:
    test = frame[frame["split"] == "test"]
    keep = test[f"{name}_label"].notna() & test[f"{name}_score"].notna()
    y, score = test.loc[keep, f"{name}_label"].to_numpy(), test.loc[keep, f"{name}_score"].to_numpy()
    style = "-" if input_kind == "segmented" else "--"
    short = "seg." if input_kind == "segmented" else "orig."
    if y.size == 0 or y.min() == y.max():
        ax.plot([], [], color=color, ls=style, label=f"{model} {short}: n/a (one class, n = {y.size})")
        return
    fpr, tpr, _ = roc_curve(y, score)
    ax.plot(fpr, tpr, color=color, ls=style, lw=1.1, label=f"{model} {short}: AUC {auc(y, score):.2f} (n = {y.size})")


def _nanmean(values: pd.Series) -> float:
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    return float(finite.mean()) if len(finite) else float("nan")


def _float(value) -> float:
    return float("nan") if value is None else float(value)


def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"

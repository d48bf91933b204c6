"""Table IV (every architecture on the test split), learning curves, and the model that segments the archive.

The choice is made on the validation metric recorded during training (the best epoch's value in
history.csv), never on the test split, so the test numbers stay an unbiased estimate for the chosen
model; `models.inference_model` forces an architecture instead (the paper segments MIMIC with SA-UNet).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cxlseg.evaluation.paper_metrics import PAPER_COLUMNS
from cxlseg.io import atomic_path, read_json, write_csv, write_json, write_text

log = logging.getLogger(__name__)

# Metrics where smaller is better; everything else is maximised.
LOWER_IS_BETTER = frozenset({"loss", "hd95"})


def best_epoch(history: pd.DataFrame, metric: str = "dice") -> pd.Series:
    """The history row with the best val_{metric}; ties go to the earlier epoch."""
    column = f"val_{metric}"
    if column not in history.columns:
        raise ValueError(f"history has no {column!r} column (columns: {', '.join(history.columns)})")
    values = history[column].to_numpy(dtype=float)
    position = int(np.nanargmin(values) if metric in LOWER_IS_BETTER else np.nanargmax(values))
    return history.iloc[position]


@dataclass(frozen=True)
class ComparisonFiles:
    """What the model comparison writes (the select_model rule's outputs): Table IV as CSV and markdown, the
    learning curves (PNG) and the selected model (JSON)."""

    table: Path | str
    markdown: Path | str
    curves: Path | str
    selected: Path | str


def compare_models(
    summaries: dict[str, Path | str],
    histories: dict[str, Path | str],
    out: ComparisonFiles,
    *,
    select_metric: str,
    inference_model: str | None = None,
) -> dict:
    """Table IV, the learning curves and the selected model (`out`) for every evaluated architecture."""
    if not summaries:
        raise ValueError("compare_models needs at least one model summary")
    unmatched = sorted(set(summaries) ^ set(histories))
    if unmatched:
        raise ValueError(f"summaries and histories must name the same architectures; unmatched: {unmatched}")
    loaded = {arch: (read_json(summaries[arch]), _read_history(histories[arch])) for arch in sorted(summaries)}
    table = pd.DataFrame(
        [_comparison_row(arch, summary, history, select_metric) for arch, (summary, history) in loaded.items()]
    )
    selected = select_model(table, select_metric, inference_model)
    write_csv(table, out.table)
    write_text(out.markdown, comparison_markdown(table, selected["architecture"]))
    plot_learning_curves(
        {arch: history for arch, (_, history) in loaded.items()},
        out.curves,
        best_epochs=dict(zip(table["model"], table["best_epoch"])),
    )
    write_json(out.selected, selected)
    return selected


def _read_history(path: Path | str) -> pd.DataFrame:
    history = pd.read_csv(path)
    if history.empty:
        raise ValueError(f"{path}: history has no epochs")
    return history


def _comparison_row(arch: str, summary: dict, history: pd.DataFrame, select_metric: str) -> dict:
    metrics = summary["metrics"]
    best = best_epoch(history, select_metric)
    return {
        "model": arch,
        "loss": metrics["loss"]["mean"],
        "dice": metrics["dice"]["mean"],
        "dice_std": metrics["dice"]["std"],
        "dice_p5": metrics["dice"]["p5"],
        "iou": metrics["iou"]["mean"],
        "precision": metrics["precision"]["mean"],
        "recall": metrics["recall"]["mean"],
        "hd95": metrics["hd95"]["mean"],
        # the authors' scoring of the same predictions (NaN for summaries written before it existed)
        **{name: float(summary.get("paper_metrics", {}).get(name, np.nan)) for name in PAPER_COLUMNS},
        "params": int(summary.get("params", 0)),
        "best_epoch": int(best["epoch"]),
        f"val_{select_metric}": float(best[f"val_{select_metric}"]),
        "n_test": int(summary.get("n_images", 0)),
        "checkpoint": summary.get("checkpoint", ""),
    }


def select_model(table: pd.DataFrame, metric: str, forced: str | None = None) -> dict:
    """The architecture that segments the archive: `forced`, else the best validation metric.

    `ranking` lists every architecture best first, so an ensemble can take the top k.
    """
    values = table[f"val_{metric}"].astype(float)
    sign = -1 if metric in LOWER_IS_BETTER else 1
    order = sorted(range(len(table)), key=lambda i: (-sign * float(values.iloc[i]), table["model"].iloc[i]))
    ranking = [str(table["model"].iloc[i]) for i in order]
    if forced is not None and forced not in ranking:
        raise ValueError(f"models.inference_model {forced!r} was not trained; trained: {', '.join(ranking)}")
    chosen = forced or ranking[0]
    row = table[table["model"] == chosen].iloc[0]
    return {
        "architecture": chosen,
        "checkpoint": str(row["checkpoint"]),
        "metric": metric,
        "value": float(row[f"val_{metric}"]),
        "split": "validate",
        "forced": forced is not None,
        "ranking": ranking,
        "checkpoints": {str(m): str(c) for m, c in zip(table["model"], table["checkpoint"])},
    }


def comparison_markdown(table: pd.DataFrame, selected: str | None = None) -> str:
    """The paper's Table IV layout (Loss, Dice, IoU, recall, precision) plus HD95, size and best epoch, scored
    per image on cleaned masks; then the same models scored as the authors scored them (`paper_` columns)."""
    header = "| Model | Loss | Dice | IoU | Recall | Precision | HD95 (px) | Params | Best epoch |"
    lines = [header, "|" + "---|" * 9]
    for _, r in table.iterrows():
        name = f"**{r['model']}** (selected)" if r["model"] == selected else r["model"]
        lines.append(
            f"| {name} | {r['loss']:.4f} | {r['dice']:.4f} ± {r['dice_std']:.4f} | {r['iou']:.4f} "
            f"| {r['recall']:.4f} | {r['precision']:.4f} | {r['hd95']:.2f} | {int(r['params']):,} "
            f"| {int(r['best_epoch'])} |"
        )
    if all(c in table.columns for c in PAPER_COLUMNS) and table[list(PAPER_COLUMNS)].notna().any(axis=None):
        lines += [
            "",
            "The same models as the CXLSeg authors scored Table IV (soft Dice/IoU per batch of 5, pixel "
            "recall/precision over the split, no clean-up, loss BCE + Dice in percent); the table above is per "
            "image on cleaned masks:",
            "",
            "| Model | paper_loss_pct | paper_soft_dice | paper_soft_iou | paper_recall | paper_precision |",
            "|" + "---|" * 6,
        ]
        for _, r in table.iterrows():
            lines.append(
                f"| {r['model']} | {r['paper_loss_pct']:.2f} | {r['paper_soft_dice']:.4f} | "
                f"{r['paper_soft_iou']:.4f} | {r['paper_recall']:.4f} | {r['paper_precision']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def plot_learning_curves(
    histories: dict[str, pd.DataFrame], path: Path | str, best_epochs: dict[str, int] | None = None
) -> None:
    """Like the paper's Fig. 3: per model, loss (top) and Dice (bottom) per epoch, train vs validation."""
    n = len(histories)
    fig = Figure(figsize=(3.2 * n, 5.5))
    axes = fig.subplots(2, n, squeeze=False, sharex="col")
    for col, (arch, h) in enumerate(histories.items()):
        loss_ax, dice_ax = axes[0, col], axes[1, col]
        loss_ax.plot(h["epoch"], h["train_loss"], "o-", ms=3, label="train")
        loss_ax.plot(h["epoch"], h["val_loss"], "o-", ms=3, label="validate")
        if "train_dice" in h.columns:
            dice_ax.plot(h["epoch"], h["train_dice"], "o-", ms=3, label="train")
        dice_ax.plot(h["epoch"], h["val_dice"], "o-", ms=3, label="validate")
        loss_ax.set_title(arch)
        dice_ax.set_xlabel("epoch")
        dice_ax.set_ylim(0, 1.02)
        for ax in (loss_ax, dice_ax):
            if best_epochs and arch in best_epochs:
                ax.axvline(best_epochs[arch], color="grey", ls="--", lw=1, label="selected epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("BCE + Dice loss")
    axes[1, 0].set_ylabel("Dice")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format=path.suffix.lstrip(".") or "png", metadata={"Software": None})

"""Test-split evaluation of each trained model, the Table-IV-style comparison, and the model choice.

The choice is made on the validation metric recorded during training (the
best epoch's value in history.csv), never on the test split, so the test
numbers in the comparison stay an unbiased estimate for the chosen model.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from .io import atomic_path, read_json, write_csv, write_json, write_text  # noqa: E402
from .metrics import METRIC_NAMES, image_metrics, summarise  # noqa: E402
from .train import load_model, load_split, predict_probs  # noqa: E402

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("image_id", "dataset", "label")
# Metrics where smaller is better; everything else is maximised.
LOWER_IS_BETTER = frozenset({"loss", "hd95"})


def evaluate_model(checkpoint: Path | str, store_dir: Path | str, out_dir: Path | str, *, split: str = "test",
                   threshold: float = 0.5, postprocess: Callable[[np.ndarray], np.ndarray] | None = None,
                   tta_flip: bool = False, batch_size: int = 16, device: str = "auto") -> dict:
    """Per-image metrics of one checkpoint on a store split -> {split}_per_image.csv + {split}_summary.json."""
    model, meta = load_model(checkpoint, device)
    images, masks, index = load_split(store_dir, split)
    if len(images) == 0:
        raise ValueError(f"{store_dir}: split {split!r} holds no images to evaluate")
    probs = predict_probs(model, images, meta["preprocess"], batch_size=batch_size, tta_flip=tta_flip, progress=True)
    per_image = score_predictions(probs, masks, index, threshold=threshold, postprocess=postprocess)
    summary = {
        "architecture": meta["architecture"],
        "checkpoint": str(checkpoint),
        "best_epoch": int(meta["epoch"]),
        "val_metrics": meta["metrics"],
        "params": int(meta.get("params", 0)),
        "split": split,
        "n_images": len(per_image),
        "threshold": threshold,
        "tta_flip": tta_flip,
        "postprocess": describe_callable(postprocess),
        "metrics": {name: summarise(per_image[name].to_numpy()) for name in METRIC_NAMES},
        "by_dataset": {str(ds): {name: summarise(group[name].to_numpy()) for name in ("dice", "hd95")}
                       for ds, group in per_image.groupby("dataset", sort=True)},
    }
    out_dir = Path(out_dir)
    write_csv(per_image, out_dir / f"{split}_per_image.csv")
    write_json(out_dir / f"{split}_summary.json", summary)
    return summary


def describe_callable(fn: Callable | None) -> str | None:
    """A stable name for the summary (a partial's repr holds a memory address, which would change the bytes)."""
    if fn is None:
        return None
    if isinstance(fn, functools.partial):
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in sorted(fn.keywords.items())]
        return f"{describe_callable(fn.func)}({', '.join(args)})"
    return getattr(fn, "__name__", type(fn).__name__)


def score_predictions(probs: np.ndarray, masks: np.ndarray, index: pd.DataFrame, *, threshold: float = 0.5,
                      postprocess: Callable[[np.ndarray], np.ndarray] | None = None) -> pd.DataFrame:
    """Threshold (and post-process) each probability map, then score it against its mask."""
    rows = []
    for i in tqdm(range(len(probs)), desc="score", leave=False):
        pred = (probs[i] >= threshold).astype(np.uint8)
        if postprocess is not None:
            pred = np.asarray(postprocess(pred)).astype(np.uint8)
        rows.append({col: _index_value(index, i, col) for col in INDEX_COLUMNS} | image_metrics(pred, masks[i]))
    return pd.DataFrame(rows, columns=[*INDEX_COLUMNS, *METRIC_NAMES])


def _index_value(index: pd.DataFrame, i: int, column: str) -> str:
    if column in index.columns:
        return str(index[column].iloc[i])
    return str(i) if column == "image_id" else ""


# --------------------------------------------------------------------------- comparison and selection

def best_epoch(history: pd.DataFrame, metric: str = "dice") -> pd.Series:
    """The history row with the best val_{metric}; ties go to the earlier epoch."""
    column = f"val_{metric}"
    if column not in history.columns:
        raise ValueError(f"history has no {column!r} column (columns: {', '.join(history.columns)})")
    values = history[column].to_numpy(dtype=float)
    position = int(np.nanargmin(values) if metric in LOWER_IS_BETTER else np.nanargmax(values))
    return history.iloc[position]


def compare_models(summaries: dict[str, Path | str], histories: dict[str, Path | str], out_dir: Path | str, *,
                   select_metric: str = "dice", select_split: str = "val") -> dict:
    """Table-IV comparison, learning curves and selected.json for every evaluated architecture."""
    if not summaries:
        raise ValueError("compare_models needs at least one model summary")
    missing = sorted(set(summaries) ^ set(histories))
    if missing:
        raise ValueError(f"summaries and histories must name the same architectures; unmatched: {missing}")
    if select_split not in ("val", "test"):
        raise ValueError(f"select_split must be 'val' or 'test', got {select_split!r}")
    out_dir = Path(out_dir)
    loaded = {arch: (read_json(summaries[arch]), _read_history(histories[arch])) for arch in sorted(summaries)}
    table = pd.DataFrame([_comparison_row(arch, summary, history, select_metric)
                          for arch, (summary, history) in loaded.items()])
    write_csv(table, out_dir / "comparison.csv")
    write_text(out_dir / "comparison.md", comparison_markdown(table))
    plot_learning_curves({arch: history for arch, (_, history) in loaded.items()}, out_dir / "learning_curves.png",
                         best_epochs=dict(zip(table["model"], table["best_epoch"])))
    selected = select_model(table, loaded, select_metric, select_split)
    write_json(out_dir / "selected.json", selected)
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
        "dice": metrics["dice"]["mean"], "dice_std": metrics["dice"]["std"], "dice_p5": metrics["dice"]["p5"],
        "iou": metrics["iou"]["mean"], "precision": metrics["precision"]["mean"], "recall": metrics["recall"]["mean"],
        "hd95": metrics["hd95"]["mean"], "params": int(summary.get("params", 0)), "best_epoch": int(best["epoch"]),
        f"val_{select_metric}": float(best[f"val_{select_metric}"]), "n_test": int(summary.get("n_images", 0)),
        "checkpoint": summary.get("checkpoint", ""),
    }


def select_model(table: pd.DataFrame, loaded: dict, metric: str, split: str) -> dict:
    """Best architecture by the configured metric on the configured split (validation by default)."""
    if split == "val":
        values = table[f"val_{metric}"]
    else:
        if metric not in METRIC_NAMES:
            raise ValueError(f"test selection needs one of {METRIC_NAMES}, got {metric!r}")
        values = table[metric]
    sign = -1 if metric in LOWER_IS_BETTER else 1
    order = sorted(range(len(table)), key=lambda i: (-sign * float(values.iloc[i]), table["model"].iloc[i]))
    row = table.iloc[order[0]]
    return {"architecture": str(row["model"]), "checkpoint": str(row["checkpoint"]), "metric": metric,
            "value": float(values.iloc[order[0]]), "split": split}


def comparison_markdown(table: pd.DataFrame) -> str:
    """The paper's Table IV layout: one row per model, test metrics, size and best epoch."""
    header = "| Model | Dice | IoU | Precision | Recall | HD95 (px) | Params | Best epoch |"
    lines = [header, "|" + "---|" * 8]
    for _, r in table.iterrows():
        lines.append(f"| {r['model']} | {r['dice']:.4f} ± {r['dice_std']:.4f} | {r['iou']:.4f} | {r['precision']:.4f} "
                     f"| {r['recall']:.4f} | {r['hd95']:.2f} | {int(r['params']):,} | {int(r['best_epoch'])} |")
    return "\n".join(lines) + "\n"


def plot_learning_curves(histories: dict[str, pd.DataFrame], path: Path | str,
                         best_epochs: dict[str, int] | None = None) -> None:
    """Like the paper's Fig. 3: per model, loss (top) and Dice (bottom) per epoch, train vs validation."""
    n = len(histories)
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 5.5), squeeze=False, sharex="col")
    for col, (arch, h) in enumerate(histories.items()):
        loss_ax, dice_ax = axes[0, col], axes[1, col]
        loss_ax.plot(h["epoch"], h["train_loss"], "o-", ms=3, label="train")
        loss_ax.plot(h["epoch"], h["val_loss"], "o-", ms=3, label="val")
        if "train_dice" in h.columns:
            dice_ax.plot(h["epoch"], h["train_dice"], "o-", ms=3, label="train")
        dice_ax.plot(h["epoch"], h["val_dice"], "o-", ms=3, label="val")
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
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png", metadata={"Software": None})
    plt.close(fig)

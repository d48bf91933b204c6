"""The report's table pages: Table IV, Table III (report labels and all labels), training counts, dataset previews.

Why: the report viewer downloads CSV, JSON and Markdown instead of showing them, so every table a researcher
reads is registered as one of these pages: readable headers with units, the n each metric is measured on,
numbers rounded for reading, and no link that would leave the page.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cxlseg.reporting.html import count, esc, fixed, note, page, table
from cxlseg.reporting.inputs import ReportFiles

SPLIT_NAMES = {"val": "validate", "valid": "validate", "validation": "validate"}  # one vocabulary on the pages
CHEXPERT_LEGEND = (
    "Label values (CheXpert labeller, per study): 1 = positive, 0 = negative, −1 = uncertain, – (blank) = not "
    "mentioned in the report."
)


def read_json(path) -> dict:
    """A JSON input, or {} when the run has none (None: not an input of this run)."""
    return json.loads(Path(path).read_text()) if path is not None and Path(path).is_file() else {}


def read_csv(path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path is not None and Path(path).is_file() else None


def split_name(name) -> str:
    return SPLIT_NAMES.get(str(name), str(name))


def store_size(files: ReportFiles) -> int | None:
    """Side of the training store's images in pixels: the grid HD95 is measured on."""
    path = files.store_images
    if path is None or not path.is_file():
        return None
    return int(np.load(path, mmap_mode="r").shape[-1])


def segmenter(files: ReportFiles) -> dict:
    """The segmenter that wrote the masks: its members and its test metrics (models/inference), the selected
    architecture and its validation Dice (selected.json)."""
    selected = read_json(files.selected)
    used = read_json(files.used)
    metrics = used.get("metrics", {})
    return {
        "selected": selected.get("architecture"),
        "val_metric": selected.get("metric", "dice"),
        "val_value": selected.get("value"),
        "members": used.get("members") or ([selected["architecture"]] if selected.get("architecture") else []),
        "model_id": used.get("model_id"),
        "test": {k: v.get("mean") for k, v in metrics.items()},
        "test_p5": metrics.get("dice", {}).get("p5"),
        "test_std": metrics.get("dice", {}).get("std"),
        "n_test": used.get("n_images"),
        "by_dataset": used.get("by_dataset", {}),
        "evaluated": bool(used),
    }


def comparison_page(files: ReportFiles, *, demo: bool = False) -> str:
    """Table IV: every network alone on the test split, then the segmenter actually used (the ensemble)."""
    df = read_csv(files.comparison)
    if df is None:
        return page("Table IV: segmentation models", note("models/comparison.csv not found."), demo=demo)
    used = segmenter(files)
    px = store_size(files)
    df = df.drop(columns=[c for c in ("checkpoint",) if c in df])
    df.insert(1, "selected", np.where(df["model"] == used["selected"], "selected", ""))
    if used["evaluated"]:
        row = {c: used["test"].get(c, np.nan) for c in ("loss", "dice", "iou", "precision", "recall", "hd95")}
        row.update(model="+".join(used["members"]), selected="made the masks", n_test=used["n_test"])
        row.update(dice_p5=used["test_p5"], dice_std=used["test_std"])
        df = pd.concat([df, pd.DataFrame([row])], ignore_index=True)
    order = ["model", "selected", "n_test", "dice", "dice_std", "dice_p5", "iou", "precision", "recall", "hd95"]
    order += ["val_dice", "loss", "best_epoch", "params"]
    df = df[[c for c in order if c in df] + [c for c in df if c not in order]]
    fmt = {c: fixed(4) for c in ("dice", "dice_std", "dice_p5", "iou", "precision", "recall", "val_dice")}
    fmt.update(loss=fixed(3), hd95=fixed(2), params=count, n_test=count, best_epoch=count)
    fmt.update({c: fixed(4) for c in df if c.startswith("paper_")})  # the authors' scoring (evaluation/paper_metrics)
    fmt.update({c: fixed(2) for c in ("paper_loss_pct",) if c in df})
    headers = {
        "hd95": f"HD95 (px, {px}²)" if px else "HD95 (px)",
        "selected": "Role",
        "n_test": "n",
        "dice_p5": "Dice p5",
        "val_dice": "Val. Dice",
        "loss": "Loss",
    }
    body = [
        table(df, fmt, headers=headers)
        .replace("<td>selected</td>", "<td class='sel'>selected</td>")
        .replace("<td>made the masks</td>", "<td class='sel'>made the masks</td>"),
        note(
            f"Test split of the training store (n = {count(df['n_test'].max()) if 'n_test' in df else '–'} images), "
            "through the production predictor with inference's threshold, flips and clean-up. The model is chosen "
            "on validation Dice, never on test. The last row is the segmenter that wrote the dataset "
            f"(infer.ensemble: {len(used['members'])} member(s), probabilities averaged), measured the same way. "
            "n: test images; Dice p5: 5th percentile over images; Val. Dice: validation Dice of the best epoch "
            "(the selection metric); Loss: BCE + Dice of the probabilities; HD95: 95th-percentile Hausdorff "
            "distance in pixels of the store images."
        ),
    ]
    return page("Table IV: segmentation models on the test split", "".join(body), demo=demo)


def counts_page(files: ReportFiles, *, demo: bool = False) -> str:
    df = read_csv(files.counts)
    if df is None:
        return page("Training images per split and class", note("training/counts.csv not found."), demo=demo)
    if "split" in df:
        df["split"] = df["split"].map(split_name)
    fmt = {c: count for c in ("originals", "augmented", "total")}
    body = table(df, fmt, headers={"label": "Class"}) + note(
        "Originals from the training sets, plus augmented copies that balance the classes of the train split "
        "(targets from augment.targets); validate and test hold originals only."
    )
    return page("Training images per split and class", body, demo=demo)


def _row_count(path: Path) -> int:
    """Rows without holding a 243k-row table (with report text) in memory."""
    return sum(len(chunk) for chunk in pd.read_csv(path, usecols=[0], chunksize=200_000))


def _readable_dates(df: pd.DataFrame) -> pd.DataFrame:
    """MIMIC's StudyDate 21220309 -> 2122-03-09 and StudyTime 122523.418 -> 12:25:23 (dates are shifted)."""
    df = df.copy()
    if "StudyDate" in df:
        d = df["StudyDate"].map(lambda v: "" if pd.isna(v) else str(int(v)))
        df["StudyDate"] = d.map(lambda s: f"{s[:4]}-{s[4:6]}-{s[6:8]}" if len(s) == 8 else s)
    if "StudyTime" in df:
        t = df["StudyTime"].map(lambda v: "" if pd.isna(v) else f"{int(float(v)):06d}")
        df["StudyTime"] = t.map(lambda s: f"{s[:2]}:{s[2:4]}:{s[4:6]}" if len(s) == 6 else s)
    return df


def datasets_page(files: ReportFiles, *, rows: int = 5, width: int = 60, demo: bool = False) -> str:
    """Each CXLSeg table: where it is, row count, columns, first rows (long text cut, dates readable)."""
    body = [
        note(
            "The tables are files next to this report (paths relative to the run's working directory); the report "
            "shows their first rows only, so a 243k-image run keeps this page small."
        )
    ]
    for name, path in files.tables().items():
        body.append(f"<h2 id='{name}'>CXLSeg-{name}.csv.gz</h2>")
        if path is None or not path.is_file():
            body.append(note("not written by this run."))
            continue
        head = _readable_dates(pd.read_csv(path, nrows=rows))
        head = head.map(lambda v: v[:width] + "…" if isinstance(v, str) and len(v) > width else v)
        head = head.map(lambda v: v.replace(";", "; ") if isinstance(v, str) else v)  # flag lists wrap
        body += [
            f"<p>{count(_row_count(path))} rows · {len(head.columns)} columns · file <code>{esc(path)}</code></p>",
            table(head, headers={c: c for c in head.columns}),
        ]
        if name == "segmented":
            body.append(note(CHEXPERT_LEGEND))
        if name == "metadata":
            body.append(note("StudyDate as YYYY-MM-DD and StudyTime as hh:mm:ss (MIMIC shifts dates into the future)."))
    return page("CXLSeg dataset tables (first rows)", "".join(body), demo=demo)


METRIC_ORDER = ("AUC", "accuracy", "sensitivity", "specificity")


def _by_metric(wide: pd.DataFrame) -> list[str]:
    """One table per metric (AUC first), (label) columns: narrow enough for a laptop screen."""
    out = []
    metrics = list(dict.fromkeys(m for _, m in wide.columns))
    for metric in sorted(metrics, key=lambda m: METRIC_ORDER.index(m) if m in METRIC_ORDER else len(METRIC_ORDER)):
        part = wide.xs(metric, axis=1, level=1)
        out.append(f"<h2 id='{esc(metric)}'>{esc(metric)}</h2>")
        out.append(f"<div class='scroll'>{part.to_html(border=0, na_rep='–', float_format=lambda v: f'{v:.3f}')}</div>")
    return out


def _split_columns(columns) -> pd.MultiIndex:
    """'<label> <metric>' -> (label, metric); labels may hold spaces, metrics do not."""
    return pd.MultiIndex.from_tuples([tuple(str(c).rsplit(" ", 1)) for c in columns])


def table3_page(files: ReportFiles, *, demo: bool = False) -> str:
    """Table III for the paper's report labels: per metric, every classifier and input by label, and the mean."""
    df = read_csv(files.table3)
    title = "Table III: classifiers on original vs segmented images"
    if df is None:
        return page(title, note("Classification disabled in this run (no classify/table3.csv)."), demo=demo)
    keys = [c for c in ("model", "input", "n_test") if c in df]
    wide = df.set_index(keys)
    wide.columns = _split_columns(wide.columns)
    wide.index = wide.index.set_names([{"n_test": "n", "input": "input", "model": "classifier"}[k] for k in keys])
    body = [
        note(
            "Test split; n = test images of each classifier; threshold per label by Youden's J on validation. "
            "Accuracy, sensitivity and specificity as fractions, AUC of the ROC curve; 'mean' averages the labels. "
            "Every trained label: Table III, every trained label (same menu)."
        ),
        *_by_metric(wide),
    ]
    return page(title, "".join(body), demo=demo)


def table3_all_labels_page(files: ReportFiles, *, demo: bool = False) -> str:
    """Every trained label: one table per metric, labels as rows, classifier x input as columns."""
    df = read_csv(files.table3_all_labels)
    title = "Table III, all labels: classifiers on original vs segmented images"
    if df is None:
        return page(title, note("Classification disabled in this run."), demo=demo)
    n = read_csv(files.table3)
    n_test = count(n["n_test"].max()) if n is not None and "n_test" in n else "–"
    wide = df.set_index("label")
    wide.columns = _split_columns(wide.columns)  # ('<classifier> <input>', metric)
    body = [
        note(
            f"{len(wide)} labels; test split (n = {n_test} images per classifier, of which only those with the label "
            "positive or negative count for it); threshold by Youden's J on validation. – : the test split holds "
            "one class only for that label."
        ),
        *_by_metric(wide),
    ]
    return page(title, "".join(body), demo=demo)

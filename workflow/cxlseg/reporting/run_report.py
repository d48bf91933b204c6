"""The HTML pages a researcher opens after a run: summary, tables inline, dataset previews, a sample grid.

Why: `snakemake --report` only offers the CSV tables as downloads and has no overview. These pure functions read
a finished results folder (every input optional, so an old or partial run still renders) and return small
self-contained HTML (inline CSS, no JS) with numbers rounded for reading.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxlseg import io
from cxlseg.inference.select_images import DROP_CAUSES
from cxlseg.reporting.run_identity import identity_section

SPLIT_ORDER = ("train", "validate", "test")
_SPLIT_NAMES = {"val": "validate", "valid": "validate", "validation": "validate"}  # one vocabulary on the pages
DATASET_TABLES = ("metadata", "segmented", "split", "mask", "failed")

CSS = """<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;max-width:1150px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f2f4f7}
td:first-child,th:first-child{text-align:left}tr.sel td,td.sel{background:#e5f5e0;font-weight:600}
.banner{background:#fff4ce;border:2px solid #e0a800;padding:.7em 1em;margin:1em 0;font-weight:600}
.kpi{display:inline-block;border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:.2em;min-width:8em}
.kpi b{display:block;font-size:1.4em}.note{color:#666;font-size:.85em}.scroll{overflow-x:auto}
</style>"""


def page(title: str, body: str) -> str:
    """A whole HTML document, so each page also opens on its own from the results folder."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{CSS}</head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def count(n) -> str:
    """Thousands separators: counts of 243,324 images read better than 243324."""
    return "–" if n is None or pd.isna(n) else f"{int(n):,}"


def table(df: pd.DataFrame, formats: dict | None = None, index: bool = False) -> str:
    """A DataFrame as an HTML table; `formats` maps a column to a formatter (rounding, separators)."""
    if df is None or df.empty:
        return "<p class='note'>(none)</p>"
    return (
        "<div class='scroll'>"
        + df.to_html(index=index, border=0, na_rep="", formatters=formats or {}, escape=True)
        + "</div>"
    )


def _json(path) -> dict:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def _csv(path) -> pd.DataFrame | None:
    return pd.read_csv(path) if Path(path).is_file() else None


def _kpi(label: str, value: str) -> str:
    return f"<span class='kpi'>{html.escape(label)}<b>{html.escape(value)}</b></span>"


def split_name(name) -> str:
    return _SPLIT_NAMES.get(str(name), str(name))


def read_manifests(results) -> dict[str, pd.DataFrame]:
    """Shard id -> manifest, for the shards a run wrote (the DAG guarantees they are complete)."""
    folder = Path(results) / "infer" / "manifests"
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def _flags(manifest: pd.DataFrame) -> pd.Series:
    flags = manifest.get("qc_flags", pd.Series(dtype=object)).fillna("").astype(str)
    return flags.str.split(";").explode().str.strip().loc[lambda s: s != ""]


def benchmark_times(results) -> pd.DataFrame:
    """Wall time and peak memory per stage: the `benchmark:` TSVs summed per rule (folder or file)."""
    root = Path(results) / "benchmarks"
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        stage = rel.parts[0] if len(rel.parts) > 1 else tsv.stem
        df = pd.read_csv(tsv, sep="\t")
        rows.append(
            (
                stage,
                float(df["s"].sum()),
                float(pd.to_numeric(df.get("max_rss"), errors="coerce").max()) if "max_rss" in df else np.nan,
            )
        )
    if not rows:
        return pd.DataFrame(columns=["stage", "jobs", "seconds", "peak_rss_mb"])
    df = pd.DataFrame(rows, columns=["stage", "seconds", "rss"])
    return (
        df.groupby("stage", sort=False)
        .agg(jobs=("seconds", "size"), seconds=("seconds", "sum"), peak_rss_mb=("rss", "max"))
        .reset_index()
        .sort_values("seconds", ascending=False, ignore_index=True)
    )


def shard_throughput(results, manifests: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Images per second of each infer shard: manifest rows over that shard job's benchmark seconds."""
    rows = []
    for shard, manifest in manifests.items():
        tsv = Path(results) / "benchmarks" / "infer" / f"{shard}.tsv"
        seconds = float(pd.read_csv(tsv, sep="\t")["s"].sum()) if tsv.is_file() else np.nan
        rate = len(manifest) / seconds if seconds and seconds > 0 else np.nan
        rows.append((shard, len(manifest), seconds, rate))
    return pd.DataFrame(rows, columns=["shard", "images", "seconds", "images_per_s"])


def _hms(seconds) -> str:
    if seconds is None or pd.isna(seconds):
        return "–"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _split_counts(results) -> dict:
    split = Path(results) / "CXLSeg" / "CXLSeg-split.csv.gz"
    if split.is_file():
        counts = pd.read_csv(split, usecols=["split"])["split"].map(split_name).value_counts()
    else:
        counts = pd.Series(_json(Path(results) / "CXLSeg" / "summary.json").get("split", {}).get("images", {}))
        counts.index = [split_name(i) for i in counts.index]
    return {s: int(counts.get(s, 0)) for s in SPLIT_ORDER}


def selected_model(results) -> dict:
    """The chosen architecture with its validation Dice (selected.json) and test Dice (comparison.csv)."""
    selected = _json(Path(results) / "models" / "selected.json")
    comparison = _csv(Path(results) / "models" / "comparison.csv")
    arch = selected.get("architecture")
    test = None
    if arch and comparison is not None and "dice" in comparison:
        match = comparison.loc[comparison["model"] == arch, "dice"]
        test = float(match.iloc[0]) if len(match) else None
    return {"architecture": arch, "val_dice": selected.get("value"), "test_dice": test}


def qc_model_summary(results) -> list[str]:
    """The predicted-Dice QC model: what segments (ensemble), how many masks calibrated it, how well it tracked."""
    info = _json(Path(results) / "models" / "qc_calibration.json").get("info", {})
    if not info:
        return []
    cv = info.get("cross_validated", {})
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    return [
        "<h2>Quality control: predicted Dice</h2>",
        _kpi("segmenting model(s)", str(info.get("model_id", "–"))),
        _kpi("calibration masks (validate + test, clean + degraded)", count(info.get("n_masks", 0))),
        *(_kpi(f"Pearson, {k} masks (cross-validated)", fmt(cv.get(k, {}).get("pearson"))) for k in ("clean", "all")),
        _kpi("MAE, clean masks", fmt(cv.get("clean", {}).get("mae"))),
        "<p class='note'>Each mask's QC predicts its Dice from agreement between the ensemble members and the "
        "mirrored pass, confidence and shape; see models/qc_calibration.png and qc/qc_report.md.</p>",
    ]


def demo_banner() -> str:
    return (
        "<div class='banner'>Synthetic demo run: every number on these pages describes generated phantoms on a "
        "few images, not MIMIC-CXR. The segmentation Dice only shows the pipeline runs end to end; the Table III "
        "AUCs are near chance by construction.</div>"
    )


def summary_page(results, *, demo: bool = False) -> str:
    """Landing page: the image funnel, dropped studies, splits, the chosen model, and where the time went."""
    results = Path(results)
    selection = _json(results / "infer" / "selection_summary.json")
    tables = _json(results / "CXLSeg" / "summary.json")
    manifests = read_manifests(results)
    manifest = (
        pd.concat(manifests.values(), ignore_index=True)
        if manifests
        else pd.DataFrame(columns=["status", "error", "qc_flags"])
    )
    ok = manifest["status"] == "ok"
    selected_n = selection.get("images_in_shards", len(manifest))
    failed = (
        manifest.loc[~ok, "error"].fillna("unknown").value_counts().rename_axis("reason").reset_index(name="images")
    )
    flagged = int((manifest["qc_flags"].fillna("") != "").sum())
    body = [
        demo_banner() if demo else "",
        identity_section(results),
        "<h2>Images</h2>",
        _kpi("selected (frontal, with report)", count(selected_n)),
        _kpi("segmented", count(int(ok.sum()))),
        _kpi("failed", count(int((~ok).sum()))),
        _kpi("QC-flagged", count(flagged)),
        _kpi("in the tables", count(tables.get("rows", {}).get("segmented"))),
    ]
    body += ["<h3>Failed, by reason</h3>", table(failed, {"images": count})]
    drops = [(why, f"studies_{cause}", f"images_{cause}") for cause, why in DROP_CAUSES.items()]
    rows = [(why, selection.get(s), selection.get(i)) for why, s, i in drops if s in selection or i in selection]
    body.append("<h3>Studies dropped at selection</h3>")
    body.append(
        table(pd.DataFrame(rows, columns=["dropped because", "studies", "images"]), {"studies": count, "images": count})
        if rows
        else "<p class='note'>This run's selection summary does not split dropped studies by cause "
        "(written by an older version).</p>"
    )
    splits = _split_counts(results)
    body += ["<h2>Splits (images)</h2>"] + [_kpi(s, count(n)) for s, n in splits.items()]
    model = selected_model(results)
    body.append("<h2>Segmentation model</h2>")
    if model["architecture"]:
        val = "–" if model["val_dice"] is None else f"{model['val_dice']:.4f}"
        test = "–" if model["test_dice"] is None else f"{model['test_dice']:.4f}"
        body += [_kpi("selected", model["architecture"]), _kpi("validate Dice", val), _kpi("test Dice", test)]
    else:
        body.append("<p class='note'>No model selected yet.</p>")
    body += qc_model_summary(results)
    times = benchmark_times(results)
    body += [
        "<h2>Time per stage</h2>",
        f"<p class='note'>Sum of Snakemake benchmark seconds per rule (total {_hms(times['seconds'].sum())}; "
        "jobs run in parallel, so this is compute time, not elapsed time).</p>",
        table(times, {"jobs": count, "seconds": _hms, "peak_rss_mb": lambda v: count(v) if pd.notna(v) else "–"}),
    ]
    shards = shard_throughput(results, manifests)
    body += [
        "<h2>Inference throughput per shard</h2>",
        table(
            shards,
            {
                "images": count,
                "seconds": lambda v: "–" if pd.isna(v) else f"{v:,.1f}",
                "images_per_s": lambda v: "–" if pd.isna(v) else f"{v:,.2f}",
            },
        ),
    ]
    body.append(
        "<p class='note'>More: <a href='tables.html'>tables</a> · <a href='datasets.html'>dataset "
        "previews</a> · <a href='samples.jpg'>sample grid</a></p>"
    )
    return page("CXLSeg run summary", "".join(body))


def _round(digits: int):
    return lambda v: "" if pd.isna(v) else f"{v:.{digits}f}"


def comparison_table(results) -> str:
    """Table IV with the selected model's row highlighted and marked."""
    df = _csv(Path(results) / "models" / "comparison.csv")
    if df is None:
        return "<p class='note'>models/comparison.csv not found.</p>"
    arch = selected_model(results)["architecture"]
    df = df.drop(columns=[c for c in ("checkpoint",) if c in df])
    df.insert(1, "selected", np.where(df["model"] == arch, "✔ selected", ""))
    fmt = {c: _round(4) for c in df if c.startswith(("dice", "iou", "precision", "recall", "val_dice"))}
    fmt.update({c: _round(4) for c in df if c.startswith("paper_")})  # the authors' scoring (select_model)
    fmt.update({c: _round(2) for c in ("hd95", "paper_loss_pct") if c in df})
    fmt.update({c: count for c in ("params", "n_test", "best_epoch") if c in df})
    out = table(df, fmt)
    return out.replace("<td>✔ selected</td>", "<td class='sel'>✔ selected</td>")


def table3(results) -> str:
    df = _csv(Path(results) / "classify" / "table3.csv")
    if df is None:
        return "<p class='note'>Classification disabled in this run (no classify/table3.csv).</p>"
    fmt = {c: _round(3) for c in df if df[c].dtype.kind == "f"}
    fmt.update({c: count for c in ("n_test",) if c in df})
    return table(df, fmt)


def qc_summary(results) -> pd.DataFrame:
    """How many images carry each QC flag, and the status counts, from the shard manifests."""
    manifests = read_manifests(results)
    if not manifests:
        return pd.DataFrame(columns=["item", "images"])
    manifest = pd.concat(manifests.values(), ignore_index=True)
    status = manifest["status"].fillna("unknown").value_counts()
    flags = _flags(manifest).value_counts()
    rows = [(f"status: {k}", v) for k, v in status.items()] + [(f"flag: {k}", v) for k, v in flags.items()]
    rows.append(("flagged (any flag)", int((manifest["qc_flags"].fillna("") != "").sum())))
    return pd.DataFrame(rows, columns=["item", "images"])


def tables_page(results, *, demo: bool = False) -> str:
    """Table IV, Table III, the QC summary and the training counts, inline instead of behind download links."""
    counts = _csv(Path(results) / "training" / "counts.csv")
    if counts is not None and "split" in counts:
        counts["split"] = counts["split"].map(split_name)
    body = [
        demo_banner() if demo else "",
        "<h2>Table IV: segmentation models (test set)</h2>",
        comparison_table(results),
        "<h2>Table III: classifiers, original vs segmented images</h2>",
        table3(results),
        "<h2>Quality control</h2>",
        table(qc_summary(results), {"images": count}),
        "<h2>Training images per split and label</h2>",
        table(counts, {c: count for c in ("originals", "augmented", "total")} if counts is not None else None)
        if counts is not None
        else "<p class='note'>training/counts.csv not found.</p>",
    ]
    return page("CXLSeg tables", "".join(body))


def _row_count(path: Path) -> int:
    """Rows without holding a 243k-row table (with report text) in memory."""
    return sum(len(chunk) for chunk in pd.read_csv(path, usecols=[0], chunksize=200_000))


def datasets_page(results, out_dir, *, rows: int = 5, width: int = 60) -> str:
    """Each CXLSeg table: row count, columns, first rows (long text cut), and a link relative to the page."""
    body = []
    for name in DATASET_TABLES:
        path = Path(results) / "CXLSeg" / f"CXLSeg-{name}.csv.gz"
        body.append(f"<h2>CXLSeg-{name}.csv.gz</h2>")
        if not path.is_file():
            body.append("<p class='note'>not written by this run.</p>")
            continue
        head = pd.read_csv(path, nrows=rows)
        head = head.map(lambda v: v[:width] + "…" if isinstance(v, str) and len(v) > width else v)
        link = Path(os.path.relpath(path, out_dir)).as_posix()
        body += [
            f"<p>{count(_row_count(path))} rows · {len(head.columns)} columns · "
            f"<a href='{html.escape(link)}'>{html.escape(link)}</a></p>",
            f"<p class='note'>Columns: {html.escape(', '.join(map(str, head.columns)))}</p>",
            table(head),
        ]
    return page("CXLSeg dataset previews", "".join(body))


def _gray(path: Path, size: int) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return np.zeros((size, size), np.uint8)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def sample_grid(results, path, *, n: int = 12, seed: int = 0, cols: int = 4, size: int = 192, quality: int = 80) -> int:
    """A seeded random sample of segmented images next to their masks, as a small JPEG; returns the count."""
    from matplotlib.figure import Figure

    manifests = read_manifests(results)
    manifest = pd.concat(manifests.values(), ignore_index=True) if manifests else pd.DataFrame(columns=["status"])
    ok = manifest[manifest["status"] == "ok"].sort_values("dicom_id", ignore_index=True) if len(manifest) else manifest
    picks = ok.iloc[np.random.default_rng(seed).permutation(len(ok))[:n]] if len(ok) else ok
    root = Path(results) / "CXLSeg"
    rows = max(1, -(-len(picks) // cols))
    fig = Figure(figsize=(2 * cols * 1.3, rows * 1.45), dpi=100)
    axes = fig.subplots(rows, 2 * cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, rec in enumerate(picks.itertuples()):
        left, right = axes[k // cols][2 * (k % cols)], axes[k // cols][2 * (k % cols) + 1]
        left.imshow(_gray(root / rec.image_path, size), cmap="gray", vmin=0, vmax=255)
        right.imshow(_gray(root / rec.mask_path, size), cmap="gray", vmin=0, vmax=255)
        left.set_title(str(rec.dicom_id)[:8], fontsize=6)
        right.set_title("mask", fontsize=6)
    if not len(picks):
        axes.flat[0].text(0.5, 0.5, "No segmented image", ha="center", va="center")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.01, wspace=0.04, hspace=0.2)
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg", pil_kwargs={"quality": quality, "optimize": True})
    return len(picks)


def write_pages(results, out_dir, *, demo: bool = False, n_samples: int = 12, seed: int = 0) -> dict:
    """All four files of the report folder; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f"{k}.html" for k in ("summary", "tables", "datasets")}
    paths["samples"] = out_dir / "samples.jpg"
    io.write_text(paths["summary"], summary_page(results, demo=demo))
    io.write_text(paths["tables"], tables_page(results, demo=demo))
    io.write_text(paths["datasets"], datasets_page(results, out_dir))
    sample_grid(results, paths["samples"], n=n_samples, seed=seed)
    return paths

"""The HTML building blocks of the report pages: one stylesheet, readable headers, number formats, the demo banner.

Why: `snakemake --report` shows HTML inline but offers CSV, JSON and Markdown only as downloads, and shows each
page in a sandboxed iframe (a data: URI), so pages must be self-contained: inline CSS, no scripts, and links only
to anchors inside the same page. Every table here says what its numbers are (unit, n) in its header.
"""

from __future__ import annotations

import hashlib
import html
import math

import pandas as pd

CSS = """<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1em 1.5em;color:#222;max-width:1100px}
h1{font-size:1.45em;margin:.2em 0 .4em}h2{font-size:1.15em;margin-top:1.4em;border-bottom:1px solid #ddd}
h3{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;font-size:.82em;margin:.4em 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f2f4f7;font-weight:600}
td{white-space:nowrap}
td:first-child,th:first-child{text-align:left}tr.sel td,td.sel{background:#e5f5e0;font-weight:600}
.banner{background:#fff4ce;border:2px solid #e0a800;padding:.6em 1em;margin:.6em 0 1em;font-weight:600}
.kpi{display:inline-block;vertical-align:top;border:1px solid #ccc;border-radius:6px;padding:.3em .8em;
margin:.2em;min-width:7em}.kpi b{display:block;font-size:1.3em}.kpi small{display:block;color:#666;font-size:.8em}
.note{color:#555;font-size:.85em}.scroll{overflow-x:auto}nav.toc{font-size:.9em;margin:.3em 0}
nav.toc a{margin-right:.9em}code{font-size:.9em;background:#f4f4f4;padding:0 .2em}
img.fig{max-width:100%;height:auto;border:1px solid #ddd}
</style>"""

# Raw column names of the pipeline's CSVs -> what a reader sees (unit and n where they apply).
HEADERS = {
    "model": "Model",
    "selected": "Segments the dataset",
    "loss": "Loss (BCE + Dice)",
    "dice": "Dice",
    "dice_std": "Dice SD",
    "dice_p5": "Dice (5th percentile)",
    "iou": "IoU",
    "precision": "Precision",
    "recall": "Recall",
    "hd95": "HD95 (px)",
    "params": "Params",
    "best_epoch": "Best epoch",
    "val_dice": "Validation Dice (best epoch)",
    "n_test": "n (test images)",
    "stage": "Stage (rule)",
    "jobs": "Jobs",
    "seconds": "Time (s)",
    "hms": "Time (h:mm:ss)",
    "peak_rss_mb": "Peak memory (MB)",
    "shard": "Shard",
    "images": "Images",
    "images_per_s": "Images per second",
    "split": "Split",
    "label": "Label",
    "originals": "Original images",
    "augmented": "Augmented copies",
    "total": "Total",
    "input": "Input images",
    "item": "Item",
    "reason": "Reason",
}


def esc(value) -> str:
    return html.escape(str(value))


def page(title: str, body: str, *, demo: bool = False) -> str:
    """A whole HTML document (opens on its own from the results folder too), with the demo banner on a demo run."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>{CSS}</head>"
        f"<body><h1>{esc(title)}</h1>{demo_banner() if demo else ''}{body}</body></html>"
    )


def demo_banner() -> str:
    return (
        "<div class='banner'>Synthetic demo run: generated phantoms on a few images, not MIMIC-CXR (the MIMIC-style "
        "ids and report texts are made up). The numbers only show that the pipeline runs end to end; Table III "
        "AUCs are near chance by construction.</div>"
    )


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def count(n) -> str:
    """Thousands separators: counts of 243,324 images read better than 243324."""
    return "–" if missing(n) else f"{int(n):,}"


def fixed(digits: int):
    """A formatter to `digits` decimals (– for missing)."""
    return lambda v: "–" if missing(v) else f"{float(v):,.{digits}f}"


def percent(value, digits: int = 0) -> str:
    return "–" if missing(value) else f"{100 * float(value):.{digits}f} %"


def hms(seconds) -> str:
    if missing(seconds):
        return "–"
    s = int(round(float(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def kpi(label: str, value: str, detail: str = "") -> str:
    """A headline number; `detail` says what it is measured on (n, split) in small print under it."""
    small = f"<small>{esc(detail)}</small>" if detail else ""
    return f"<span class='kpi'>{esc(label)}<b>{esc(value)}</b>{small}</span>"


def table(
    df: pd.DataFrame | None, formats: dict | None = None, *, headers: dict | None = None, index: bool = False
) -> str:
    """A DataFrame as an HTML table: `formats` maps a raw column to a formatter; headers are made readable."""
    if df is None or df.empty:
        return "<p class='note'>(none)</p>"
    names = {**HEADERS, **(headers or {})}
    shown = df.rename(columns=lambda c: names.get(c, c) if isinstance(c, str) else c)
    formats = {names.get(k, k): f for k, f in (formats or {}).items()}
    offset = df.index.nlevels if index else 0
    text = {
        offset + i + 1: df[c].astype(str).str.len().max() > 30  # long text: wrap, but not to a sliver
        for i, c in enumerate(df.columns)
        if df[c].dtype == object and c not in (formats or {})
    }
    key = "t" + hashlib.sha1(",".join(map(str, df.columns)).encode()).hexdigest()[:8]
    style = "".join(
        f".{key} td:nth-child({k}){{text-align:left{';white-space:normal;min-width:12em' if long else ''}}}"
        f".{key} th:nth-child({k}){{text-align:left}}"
        for k, long in text.items()
        if k > 1
    )
    return (
        f"<div class='scroll {key}'>"
        + (f"<style>{style}</style>" if style else "")
        + shown.to_html(index=index, border=0, na_rep="–", formatters=formats, escape=True)
        + "</div>"
    )


def note(text: str) -> str:
    return f"<p class='note'>{esc(text)}</p>"


def toc(entries: list[tuple[str, str]]) -> str:
    """Links to anchors of the same page: the only links that work inside the report's sandboxed frames."""
    return "<nav class='toc'>" + "".join(f"<a href='#{esc(a)}'>{esc(t)}</a>" for a, t in entries) + "</nav>"


def section(anchor: str, title: str) -> str:
    return f"<h2 id='{esc(anchor)}'>{esc(title)}</h2>"

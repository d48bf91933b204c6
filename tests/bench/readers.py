"""Two readers, and QC judged where they agree (#33): the one implementation of each measure that
bench_real_v7, bench_qc_v7 and bench_hard_films report.

Reader 1 outlined every film of v7-real (index.csv `mask`); reader 2 outlined some of them independently
(`second_mask`). Their Dice on the same films is the human band: a model as close to reader 2 as reader 1 is
cannot be told from one more radiologist. Against one reader, "Dice < 0.9" mixes real failures with that
reader's habits (where a hazy lung base ends), so a failed mask is one below every pair of human outlines
measured here (`FAILED`), and QC is judged by how many failed masks it catches at a small share of good masks
flagged.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from cxlseg.io import ImageReadError, read_mask, safe_join
from cxlseg.metrics import dice

FAILED = 0.85  # Dice against reader 1 below this: a failed mask (every pair of human outlines here agrees better)
GOOD = 0.9  # at or above: a good mask (infer.qc.good_dice's default)
RATES = (0.01, 0.03, 0.05)  # shares of good masks flagged at which the catch of failed masks is reported


# --------------------------------------------------------------------------- data


def read_index(data_dir: Path, release: int | None = None) -> pd.DataFrame:
    """index.csv, restricted to one `release` (1: the 99 films of the figures published before #33) or all."""
    path = Path(data_dir) / "index.csv"
    index = pd.read_csv(path)
    if release is None:
        return index
    if "release" not in index:
        raise ValueError(f"{path}: no 'release' column to select release {release} from")
    chosen = index[index["release"] == release].reset_index(drop=True)
    if chosen.empty:
        raise ValueError(f"{path}: no film of release {release} (releases: {sorted(index['release'].unique())})")
    return chosen


def read_second(data_dir: Path, rel, shape: tuple[int, ...]) -> np.ndarray | None:
    """Reader 2's outline of a film (index.csv `second_mask`, relative to data_dir), or None where there is none.

    A path leaving data_dir is an error (UnsafePathError names it); an unreadable outline, or one that does not
    match its film's shape, is reported and dropped: the film keeps reader 1, and the reader-2 counts show it."""
    if rel is None or (isinstance(rel, float) and math.isnan(rel)) or str(rel).strip() == "":
        return None
    path = safe_join(data_dir, str(rel))
    try:
        outline = read_mask(path)
    except (ImageReadError, ValueError) as exc:
        print(f"second reader dropped for {rel}: {exc}", file=sys.stderr)
        return None
    if outline.shape != tuple(shape):
        print(f"second reader dropped for {rel}: outline {outline.shape} does not match film {shape}", file=sys.stderr)
        return None
    return outline


# --------------------------------------------------------------------------- masks against each reader


def dice_stats(values) -> dict:
    """mean, 5th percentile, min and n: the tail and the worst film are what a mean hides."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"mean": math.nan, "p5": math.nan, "min": math.nan, "n": 0}
    return {"mean": float(v.mean()), "p5": float(np.percentile(v, 5)), "min": float(v.min()), "n": int(v.size)}


def add_second_reader(table: pd.DataFrame, reader1, reader2: list, score) -> pd.DataFrame:
    """`table` (one row per film, in the order of reader1 and reader2, its `dice` against reader 1) with
    `dice_reader2` = score(positions, reader-2 outlines) and `human` = Dice of reader 1 against reader 2, both
    NaN where reader 2 did not outline the film (None in reader2). `score` segments and scores exactly as the
    bench scores against reader 1, so the two columns differ only by the outline."""
    out = table.reset_index(drop=True).assign(dice_reader2=np.nan, human=np.nan)
    rows = [i for i, outline in enumerate(reader2) if outline is not None]
    if rows:
        outlines = np.stack([reader2[i] for i in rows])
        out.loc[rows, "dice_reader2"] = np.asarray(score(rows, outlines), np.float64)
        out.loc[rows, "human"] = [dice(np.asarray(reader1[i]) > 0, outlines[j] > 0) for j, i in enumerate(rows)]
    return out


def reader_block(table: pd.DataFrame) -> dict:
    """The model against reader 1 (every film; and on reader 2's films), against reader 2, and the human band."""
    two = table[table["dice_reader2"].notna()] if "dice_reader2" in table else table.iloc[:0]
    return {
        "model_vs_reader1": dice_stats(table["dice"]),
        "model_vs_reader1_on_reader2_films": dice_stats(two["dice"]),
        "model_vs_reader2": dice_stats(two["dice_reader2"] if len(two) else []),
        "reader1_vs_reader2": dice_stats(two["human"] if len(two) else []),
    }


def reader_summary(table: pd.DataFrame) -> dict:
    """reader_block pooled over the folds and per fold (`fold` column)."""
    return {
        "pooled": reader_block(table),
        "per_fold": {int(f): reader_block(g) for f, g in table.groupby("fold")},
    }


def reader_lines(summary: dict) -> list[str]:
    """The pooled reader figures as printed lines."""
    names = {
        "model_vs_reader1": "model vs reader 1 (all films)",
        "model_vs_reader1_on_reader2_films": "model vs reader 1 (reader 2's films)",
        "model_vs_reader2": "model vs reader 2",
        "reader1_vs_reader2": "reader 1 vs reader 2 (human band)",
    }
    lines = []
    for key, label in names.items():
        s = summary["pooled"][key]
        lines.append(f"  {label:<40} mean {s['mean']:.4f}  p5 {s['p5']:.4f}  min {s['min']:.4f}  n {s['n']}")
    return lines


# --------------------------------------------------------------------------- QC where humans agree


def auroc(predicted, true_dice, below: float) -> float:
    """AUROC of predicted Dice for telling masks of true Dice < `below` from the rest (1: every one of them
    predicted lower than every other mask); a NaN prediction ranks lowest, as QC flags it. NaN with one class."""
    from sklearn.metrics import roc_auc_score

    low = np.asarray(true_dice, np.float64) < below
    if low.all() or not low.any():
        return math.nan
    score = np.nan_to_num(np.asarray(predicted, np.float64), nan=-1.0)  # below any Dice
    return float(roc_auc_score(low, -score))


def _suspicion(predicted, always) -> np.ndarray:
    """Predicted Dice, -inf where QC flags whatever the bar (an anatomy rule, or no prediction)."""
    p = np.asarray(predicted, np.float64)
    return np.where(np.asarray(always, bool) | np.isnan(p), -np.inf, p)


def bars_at_rates(predicted, true_dice, always, *, rates=RATES, good_dice: float = GOOD) -> dict[float, float]:
    """Per rate: the highest flag bar that flags at most that share of good masks (true Dice >= good_dice),
    counting those the anatomy rules flag (`always`) whatever the bar: the predicted Dice of the good mask at
    that rank. -inf: the anatomy rules alone flag more; NaN: no good mask."""
    good = np.sort(_suspicion(predicted, always)[np.asarray(true_dice, np.float64) >= good_dice])
    if not len(good):
        return {r: math.nan for r in rates}
    return {r: float(good[min(int(math.floor(r * len(good) + 1e-9)), len(good) - 1)]) for r in rates}


def flagged_at(bar: float, predicted, always) -> np.ndarray:
    """What QC flags at this bar: the anatomy rules' masks and every mask predicted below it (NaN included)."""
    p = np.asarray(predicted, np.float64)
    return np.asarray(always, bool) | ~(p >= bar)


def _share(flags: np.ndarray) -> float:
    return float(flags.mean()) if flags.size else math.nan


def qc_at_definition(predicted, true_dice, always, parts: dict[str, np.ndarray], *, rates=RATES) -> dict:
    """QC at the definition where humans agree: failed = Dice < FAILED against reader 1, good = Dice >= GOOD.

    One bar per rate, picked on every mask (as the pipeline has one bar); then per part (`parts`: name -> rows;
    the kinds held out of calibration among them): AUROC of predicted Dice for Dice < FAILED and < GOOD, and at
    each rate the share of failed masks caught and of good masks flagged (NaN without a good mask to pick the bar
    on). A bar picked on the masks it is judged
    on is an operating point of the ranking, not a calibrated bar: the calibrated one is reported apart."""
    predicted, true_dice = np.asarray(predicted, np.float64), np.asarray(true_dice, np.float64)
    always = np.asarray(always, bool)
    bars = bars_at_rates(predicted, true_dice, always, rates=rates)
    out = {"failed_below": FAILED, "good_dice": GOOD, "bars": {str(r): b for r, b in bars.items()}, "parts": {}}
    for name, rows in parts.items():
        rows = np.asarray(rows, bool)
        p, d, a = predicted[rows], true_dice[rows], always[rows]
        failed, good = d < FAILED, d >= GOOD
        part = {
            "n": int(rows.sum()),
            "n_failed": int(failed.sum()),
            "n_good": int(good.sum()),
            f"auroc_dice_below_{FAILED}": auroc(p, d, FAILED),
            f"auroc_dice_below_{GOOD}": auroc(p, d, GOOD),
            "at_rate": {},
        }
        for r, bar in bars.items():
            flags = flagged_at(bar, p, a)
            shares = (_share(flags[failed]), _share(flags[good])) if not math.isnan(bar) else (math.nan, math.nan)
            part["at_rate"][str(r)] = dict(zip(("failed_caught", "good_flagged"), shares))
        out["parts"][name] = part
    return out


def qc_lines(result: dict) -> list[str]:
    """qc_at_definition as printed lines, one per part."""
    rates = list(result["bars"])
    head = "  ".join(f"caught@{100 * float(r):g}%" for r in rates)
    lines = [f"  part                 n  failed  good  AUROC<{FAILED}  AUROC<{GOOD}  {head}"]
    for name, p in result["parts"].items():
        caught = "  ".join(f"{p['at_rate'][r]['failed_caught']:10.3f}" for r in rates)
        lines.append(
            f"  {name:<18} {p['n']:4d}  {p['n_failed']:6d}  {p['n_good']:4d}  "
            f"{p[f'auroc_dice_below_{FAILED}']:10.3f}  {p[f'auroc_dice_below_{GOOD}']:9.3f}  {caught}"
        )
    return lines


def anatomy_flagged(table: pd.DataFrame, qc_settings) -> np.ndarray:
    """Which masks the anatomy rules (`infer.qc`) flag whatever the predicted Dice: empty, too small, ..."""
    from cxlseg.inference.mask_qc import anatomy_flags

    return np.array([bool(anatomy_flags(rec, qc_settings)) for rec in table.to_dict("records")], bool)


def kind_parts(table: pd.DataFrame, holdout, everything: str = "all") -> dict[str, np.ndarray]:
    """The parts QC is judged on: every mask (named `everything`), clean films, the kinds held out of calibration
    together and each apart (`holdout`: kinds of `degradation`)."""
    kind = table["degradation"].to_numpy()
    parts = {everything: np.ones(len(table), bool), "clean": kind == "clean"}
    if holdout:
        parts["held_out_kinds"] = np.isin(kind, list(holdout))
        parts.update({f"held_out: {k}": kind == k for k in holdout})
    return parts

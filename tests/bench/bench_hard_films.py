"""Benchmark (not a CI test): masks and QC on hard films, the trouble real archives hold, on real radiographs.

The V7-labs COVID-19 lung masks (v7-real: 224 films of 127 patients; `--release 1`: the 99 films of 61 patients
of the figures before #33) are split by patient into `--folds` folds; each fold in turn is the test set, never
trained on, and the rest trains the ensemble of config/config.yaml (its recipe: `strong` on-the-fly augmentation;
by default U-Net + Attention U-Net). Every test film is segmented clean and once more per kind of trouble (`cxlseg.qc.degradations`, the truth
mask moved to match), made at twice the pipeline's size and resized as the decode would, through inference's own
path (`InputSpec.prepare_film` -> `Predictor.predict_batch` -> `outputs.mask_and_qc`):

    python tests/bench/bench_hard_films.py --data ../shared/data/v7-real --folds 5 --jobs 2 \
        --json docs/bench/hard-films-224-5fold-cpu.json

Variants, one change at a time, all measured in this run:
  baseline         today's recipe: `strong` augmentation, no film check, QC without the new signals;
  +film            the same networks with the film check (border crop, polarity): config/config.yaml's recipe;
  +film+hard       networks trained with the opt-in `hard` augmentation, film check on.
QC's `perturb_agreement` needs `--perturbation` (infer.qc.perturbation, off by default: without it the feature is
NaN).
Prints mean / p5 Dice on clean films and per kind of trouble, and for QC on clean + degraded masks (predicted
Dice from a model fitted on other patients' masks, patient-grouped folds): Pearson, Spearman, MAE, bad masks
(true Dice < 0.9) flagged, good masks flagged, with the kinds held out of the calibration (`--holdout`) apart;
the clean masks against reader 1 and reader 2 beside the human band; and, on clean + hard films, QC where humans
agree (`readers.qc_at_definition`: failed = Dice < 0.85; AUROC, failed masks caught at 1 / 3 / 5 % of good masks
flagged), today's QC beside the new one. Writes summary.json, masks.csv and a markdown table to --out/bench_hard_films
(`--table`: beside the table).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import readers  # noqa: E402
import record  # noqa: E402
import torch  # noqa: E402
from bench_real_v7 import load_v7, model_files, patient_folds, write_store  # noqa: E402
from cxlseg.config import load_config  # noqa: E402
from cxlseg.inference.predictor import Predictor  # noqa: E402
from cxlseg.inference.qc_model import FEATURES, tracking  # noqa: E402
from cxlseg.inference.settings import InferSettings  # noqa: E402
from cxlseg.preprocess import resize, resize_mask  # noqa: E402
from cxlseg.qc.calibration import flagged_by, held_out_predictions, measure_films  # noqa: E402
from cxlseg.qc.degradations import DEGRADATIONS, degrade  # noqa: E402
from cxlseg.training.settings import TrainConfig  # noqa: E402
from cxlseg.training.trainer import train_model  # noqa: E402

HARD = ("inverted", "border", "lowres_jpeg", "cutoff", "tilt", "exposure", "motion", "noise", "shield")  # the issue's
TODAY_KINDS = ("blur", "noise", "exposure", "occlusion", "pose", "downscale", "whiteout")  # today's calibration
NEW_SIGNALS = ("perturb_agreement", "edge_touch", "film_fraction", "polarity_score")
DEFAULT = "+film"  # the recipe config/config.yaml ships: film check on, strong augmentation
BROKEN = 0.8  # a mask below this Dice is broken, not merely loose: every one of them should be flagged
VARIANTS = {  # name: (augmentation preset, film check, QC signals and calibration kinds of today?)
    "baseline": ("strong", False, True),
    "+film": ("strong", True, False),
    "+film+hard": ("hard", True, False),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="v7-real folder holding index.csv, images/, masks/")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "cxlseg-bench-hard-films")
    p.add_argument("--folds", type=int, default=5, help="patient-wise folds; each is the test set once")
    p.add_argument("--only-folds", type=int, nargs="*", default=None, help="run only these fold numbers (0-based)")
    p.add_argument("--release", type=int, default=None, help="only this release of index.csv (1: the first 99 films)")
    p.add_argument("--archs", nargs="+", default=["unet", "attention_unet"])
    p.add_argument("--epochs", type=int, default=None, help="default: the schema's train.epochs")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--copies", type=int, default=1, help="degraded copies per test film and kind")
    p.add_argument("--holdout", nargs="*", default=["motion", "shield", "cutoff"], help="kinds QC is not fitted on")
    p.add_argument("--qc-folds", type=int, default=5, help="patient-grouped folds of the QC model")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once (one thread each)")
    p.add_argument(
        "--table", type=Path, default=None, help="re-summarise a masks.csv of an earlier run (no segmenting)"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None, help="also copy summary.json here (e.g. docs/bench/...)")
    p.add_argument(
        "--perturbation", action="store_true", help="infer.qc.perturbation on (the perturb_agreement feature)"
    )
    return p.parse_args(argv)


def split(index: pd.DataFrame, folds: np.ndarray, fold: int, seed: int) -> dict[str, np.ndarray]:
    """Test: the patients of one fold; of the rest, 15 % of patients validate (pick the epoch), the rest train."""
    test, pool = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
    patients = np.array(sorted(index["patient_id"].iloc[pool].unique()))
    val = set(np.random.default_rng(seed + fold).choice(patients, max(1, round(0.15 * len(patients))), replace=False))
    in_val = index["patient_id"].iloc[pool].isin(val).to_numpy()
    return {"train": pool[~in_val], "validate": pool[in_val], "test": test}


def pipeline_config(args) -> dict:
    """config/config.yaml (the production recipe a user runs), on this run's device and seed."""
    overrides = {"seed": args.seed, "infer": {"device": args.device, "num_workers": 0}}
    if args.perturbation:
        overrides["infer"]["qc"] = {"perturbation": True}
    return load_config(Path(__file__).resolve().parents[2] / "config" / "config.yaml", overrides=overrides)


def train_config(args, arch: str, preset: str) -> TrainConfig:
    config = pipeline_config(args)
    overrides = dict(device=args.device, num_workers=0, augment_preset=preset)
    if args.epochs:
        overrides["epochs"] = args.epochs
    return TrainConfig.from_config(config, arch, **overrides)


def _train(store: Path, out: Path, cfg: TrainConfig) -> str:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    train_model(store, model_files(out), cfg)
    return f"{out}: {time.perf_counter() - t0:.0f}s"


def model_dir(args, where: Path, preset: str, arch: str) -> Path:
    """Where a fold's network lives. The shipped recipe's are named by architecture alone, as bench_real_v7 and
    bench_qc_v7 name theirs (same recipe, same splits, same fold folder): with the same --out, all three
    benchmarks score the very same trained networks; another preset's live apart."""
    if preset == pipeline_config(args)["train"]["augment_preset"]:
        return where / arch
    return where / "models" / preset / arch


def train_all(args, where: Path, store: Path, presets: set[str]) -> dict[str, list[Path]]:
    """Checkpoints per preset (one per architecture); a finished training is reused (train_model skips it)."""
    jobs = {(p, a): model_dir(args, where, p, a) for p in sorted(presets) for a in args.archs}
    work = [(store, out, train_config(args, a, p)) for (p, a), out in jobs.items()]
    if args.jobs <= 1:
        for w in work:
            print(_train(*w), flush=True)
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for line in pool.map(_train, *zip(*work)):
                print(line, flush=True)
    return {p: [jobs[(p, a)] / "checkpoint_best.pt" for a in args.archs] for p in presets}


def test_films(images, masks, index, test_rows, args):
    """(meta, film at 224, true mask at 224): each test film clean and once per kind and copy, degraded at 448."""
    rng = np.random.default_rng(args.seed + 1)
    for row in test_rows:
        image, mask = images[row], masks[row]
        meta = {"image_id": index["image_id"].iloc[row], "patient_id": index["patient_id"].iloc[row]}
        yield {**meta, "degradation": "clean", "severity": 0.0}, resize(image, 224), resize_mask(mask, 224)
        for kind in DEGRADATIONS:
            for _ in range(args.copies):
                severity, seed = float(rng.uniform()), int(rng.integers(2**31))
                film, truth = degrade(image, mask, kind, severity, seed)
                yield (
                    {**meta, "degradation": kind, "severity": round(severity, 3)},
                    resize(film, 224),
                    resize_mask(truth, 224),
                )


def measure_variant(name, checkpoints, films, args, outlines=None) -> pd.DataFrame:
    """The variant's masks of `films`; with `outlines` ((reader 1, reader 2 or None) at 224 per test film, in the
    order of the clean films), the clean masks also against reader 2 and the human band (`readers`)."""
    _, film_check, _ = VARIANTS[name]
    base = InferSettings.from_config(pipeline_config(args))
    film = dataclasses.replace(base.film, crop_border=film_check, polarity=film_check)
    settings = dataclasses.replace(base, film=film)
    predictor = Predictor.from_checkpoints(
        checkpoints, device=args.device, tta_flip=settings.tta_flip, perturb=settings.qc.perturbation
    )
    t0 = time.perf_counter()
    table = measure_films(iter(films), predictor, settings)
    print(f"{name}: {len(table)} masks in {time.perf_counter() - t0:.0f}s", flush=True)
    if outlines is not None:
        table = with_readers(table, films, outlines, predictor, settings)
    return table.assign(variant=name)


def with_readers(table: pd.DataFrame, films: list, outlines: list, predictor, settings) -> pd.DataFrame:
    """`dice_reader2` and `human` on the clean films reader 2 outlined (NaN elsewhere), through the same
    `measure_films` as against reader 1."""
    clean = [i for i, (meta, _, _) in enumerate(films) if meta["degradation"] == "clean"]

    def against(rows, second):
        return measure_films(((films[clean[r]][0], films[clean[r]][1], o) for r, o in zip(rows, second)),
                             predictor, settings)["dice"].to_numpy()  # fmt: skip

    scored = readers.add_second_reader(
        table.iloc[clean][["dice"]], [o[0] for o in outlines], [o[1] for o in outlines], against
    )
    scored.index = table.index[clean]
    return table.join(scored[["dice_reader2", "human"]])


def qc_predictions(table: pd.DataFrame, today: bool, args, settings) -> np.ndarray:
    """Predicted Dice of every mask from a QC model fitted on other patients' masks of the calibration kinds;
    `today`: the QC of e8459b4 (its calibration kinds and features, no new signals)."""
    from sklearn.model_selection import GroupKFold

    kinds = set(TODAY_KINDS if today else DEGRADATIONS) - set(args.holdout)
    features = [f for f in FEATURES if not (today and f in NEW_SIGNALS)]
    design = table[features + ["image_id", "dice"]]
    predicted = np.full(len(table), np.nan)
    groups = table["patient_id"].astype(str).to_numpy()
    for fit_rows, held_rows in GroupKFold(args.qc_folds).split(table, groups=groups):
        fit_rows = fit_rows[table["degradation"].iloc[fit_rows].isin(kinds | {"clean"}).to_numpy()]
        part, _ = held_out_predictions(design, [(fit_rows, held_rows)], good_dice=settings.qc.good_dice)
        predicted[held_rows] = part[held_rows]
    return predicted


def qc_summary(table: pd.DataFrame, predicted: np.ndarray, args, settings) -> dict:
    flagged = flagged_by(table, predicted, settings)
    parts = {
        "all": np.ones(len(table), bool),
        "clean": (table["degradation"] == "clean").to_numpy(),
        "hard": table["degradation"].isin(HARD).to_numpy(),
        "held_out_kinds": table["degradation"].isin(args.holdout).to_numpy(),
    }
    good, dice = settings.qc.good_dice, table["dice"].to_numpy()
    out = {k: tracking(predicted[m], dice[m], flagged[m], good_dice=good) for k, m in parts.items()}
    for k, m in parts.items():
        broken = m & (dice < BROKEN)
        out[k].update(
            broken_caught=float(flagged[broken].mean()) if broken.any() else float("nan"), n_broken=int(broken.sum())
        )
    return out


def dice_summary(table: pd.DataFrame) -> dict:
    out = {}
    for kind, group in table.groupby("degradation"):
        d = group["dice"].to_numpy()
        out[kind] = {"mean": float(d.mean()), "p5": float(np.percentile(d, 5)), "n": int(len(d))}
    hard = table[table["degradation"].isin(HARD)]["dice"].to_numpy()
    if hard.size:  # none with --copies 0
        out["hard (mean of the issue's kinds)"] = {"mean": float(hard.mean()), "p5": float(np.percentile(hard, 5))}
    return out


def bad_by_patient(table: pd.DataFrame, share: float = 0.75) -> dict:
    """Where the bad masks (Dice < 0.9) come from: the fewest patients holding `share` of them, with the Dice of
    each one's clean film. Bad masks of every kind on one patient whose clean film is bad too are the annotator and
    the network disagreeing on that film (say, where a hazy lung base ends), not trouble QC could see."""
    bad = table[table["dice"] < 0.9]
    counts = bad["patient_id"].value_counts()
    top = counts[counts.cumsum().shift(fill_value=0) < share * len(bad)]
    clean = table[table["degradation"] == "clean"].groupby("patient_id")["dice"].mean()
    return {
        "n_bad": int(len(bad)),
        "n_patients": int(table["patient_id"].nunique()),
        "top": {str(p): {"bad": int(n), "clean_dice": float(clean.get(p, float("nan")))} for p, n in top.items()},
    }


def markdown(summary: dict, args) -> str:
    names = list(summary["variants"])
    kinds = ["clean", *HARD, *[k for k in DEGRADATIONS if k not in HARD], "hard (mean of the issue's kinds)"]
    lines = ["| Dice (mean / p5) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for kind in kinds:
        cells = [summary["variants"][n]["dice"].get(kind) for n in names]
        lines.append(f"| {kind} | " + " | ".join(f"{c['mean']:.3f} / {c['p5']:.3f}" if c else "" for c in cells) + " |")
    lines += ["", "| QC (clean + degraded) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for part in ("all", "held_out_kinds", "clean"):
        for key, label in (("pearson", "Pearson"), ("spearman", "Spearman"), ("mae", "MAE")):
            cells = [summary["variants"][n]["qc"][part].get(key, float("nan")) for n in names]
            lines.append(f"| {part}: {label} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
        for key, label in (
            ("bad_caught", "bad masks (Dice < 0.9) flagged"),
            ("broken_caught", f"broken masks (Dice < {BROKEN}) flagged"),
            ("good_flagged", "good masks flagged"),
        ):
            cells = [summary["variants"][n]["qc"][part] for n in names]
            lines.append(
                f"| {part}: {label} | "
                + " | ".join(
                    f"{c.get(key, float('nan')):.1%} (n={c.get('n_' + key.split('_')[0], '?')})" for c in cells
                )
                + " |"
            )
    compare = summary.get("qc_on_last_masks", {})
    if compare:
        lines += [
            "",
            f"| QC on the {summary['qc_compared_on']} masks | " + " | ".join(compare) + " |",
            "|---|" + "---|" * len(compare),
        ]
        for part in ("all", "held_out_kinds"):
            for key in ("pearson", "mae", "bad_caught", "broken_caught", "good_flagged"):
                cells = [c[part].get(key, float("nan")) for c in compare.values()]
                fmt = "{:.1%}" if key.endswith(("caught", "flagged")) else "{:.3f}"
                lines.append(f"| {part}: {key} | " + " | ".join(fmt.format(c) for c in cells) + " |")
    where = summary.get("bad_by_patient")
    if where:
        held = sum(v["bad"] for v in where["top"].values())
        films = ", ".join(f"{p}: {v['bad']} ({v['clean_dice']:.3f})" for p, v in where["top"].items())
        lines += [
            "",
            f"Bad masks of the {summary['qc_compared_on']} masks by patient: {held} of {where['n_bad']} come from "
            f"{len(where['top'])} of {where['n_patients']} patients (bad masks, and the Dice of the clean film): {films}.",
        ]
    lines.append("")
    lines.append(f"Held out of the QC calibration: {', '.join(args.holdout)}.")
    for name, v in summary["variants"].items():
        lines += ["", f"{name}: clean masks against each reader (Dice at 224 px)", "", "```"]
        lines += [*readers.reader_lines(v["readers"]), "```"]
    for name, result in summary.get("at_new_definition_on_last_masks", {}).items():
        lines += ["", f"{name} on the {summary['qc_compared_on']} masks, where humans agree "
                  f"(failed: Dice < {readers.FAILED}, good: >= {readers.GOOD})", "", "```"]  # fmt: skip
        lines += [*readers.qc_lines(result), "```"]
    return "\n".join(lines) + "\n"


def summarise(tables: list[pd.DataFrame], args, settings) -> dict:
    """Dice per kind and QC per variant; on the last variant's masks, today's QC beside the new one too."""
    summary = {"variants": {}, "holdout": args.holdout}
    for table in tables:
        name = table["variant"].iloc[0]
        table["qc_predicted"] = qc_predictions(table, VARIANTS[name][2], args, settings)
        qc = qc_summary(table, table["qc_predicted"].to_numpy(), args, settings)
        summary["variants"][name] = {
            "dice": dice_summary(table),
            "qc": qc,
            "readers": readers.reader_summary(table[table["degradation"] == "clean"]),
            "at_new_definition": at_new_definition(table, table["qc_predicted"].to_numpy(), args, settings),
        }
    by_name = {t["variant"].iloc[0]: t for t in tables}
    last = by_name.get(DEFAULT, tables[-1])
    today = qc_predictions(last, True, args, settings)
    summary["qc_compared_on"] = last["variant"].iloc[0]
    summary["bad_by_patient"] = bad_by_patient(last)
    summary["qc_on_last_masks"] = {
        "today's QC": qc_summary(last, today, args, settings),
        "new QC": summary["variants"][last["variant"].iloc[0]]["qc"],
    }
    summary["at_new_definition_on_last_masks"] = {
        "today's QC": at_new_definition(last, today, args, settings),
        "new QC": summary["variants"][last["variant"].iloc[0]]["at_new_definition"],
    }
    return summary


def at_new_definition(table: pd.DataFrame, predicted: np.ndarray, args, settings) -> dict:
    """QC where humans agree on clean + hard films (the issue's kinds), the held-out kinds apart."""
    rows = table["degradation"].isin(["clean", *HARD]).to_numpy()
    part = table[rows].reset_index(drop=True)
    parts = readers.kind_parts(part, args.holdout, everything="clean + hard")
    parts["hard"] = part["degradation"].isin(HARD).to_numpy()
    return {
        "holdout": list(args.holdout),
        **readers.qc_at_definition(predicted[rows], part["dice"], readers.anatomy_flagged(part, settings.qc), parts),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    settings = InferSettings.from_config(pipeline_config(args))
    if args.table is not None:
        masks = pd.read_csv(args.table)
        tables = [masks[masks["variant"] == name].reset_index(drop=True) for name in masks["variant"].unique()]
        results = args.table.parent
    else:
        tables = segment(args)
        results = record.results_dir(args.out, __file__)
    summary = {**summarise(tables, args, settings), "archs": args.archs, "seconds": 0.0}
    summary.update(folds=args.folds, release=args.release)
    summary.update(command=record.command(__file__, argv), machine=record.machine())
    summary["seconds"] = round(time.perf_counter() - started, 1)
    pd.concat(tables).to_csv(results / "masks.csv", index=False)
    (results / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    if args.json:
        record.copy(results / "summary.json", args.json)
    (results / "table.md").write_text(markdown(summary, args))
    print(markdown(summary, args))
    print(f"wrote {results} in {summary['seconds'] / 60:.1f} min")
    return summary


def segment(args) -> list[pd.DataFrame]:
    """Per fold: train (or reuse) the networks of every variant on the other folds' patients and segment the
    fold's films, clean and degraded; one table per variant over the folds run."""
    images, masks, index, second = load_v7(args.data, 448, args.release)
    folds = patient_folds(index["patient_id"], args.folds, args.seed)
    chosen = list(range(args.folds)) if args.only_folds is None else args.only_folds
    print(f"{len(index)} films, {index['patient_id'].nunique()} patients, {args.folds} folds; running {chosen}")
    truth = np.stack([resize_mask(m, 224) for m in masks])  # reader 1 as the clean films are scored (448 -> 224)
    store = load_v7(args.data, 224, args.release)  # resized from the originals, as ingest and bench_real_v7 do
    tables = {name: [] for name in args.variants}
    for fold in chosen:
        rows = split(index, folds, fold, args.seed)
        membership = json.dumps({k: sorted(index["image_id"].iloc[v]) for k, v in rows.items()}, sort_keys=True)
        where = args.out / f"fold{fold}-{hashlib.sha256(membership.encode()).hexdigest()[:8]}"
        write_store(where / "store", *store[:2], index, rows)
        print(
            f"fold {fold}: train {len(rows['train'])}, validate {len(rows['validate'])}, test {len(rows['test'])} "
            f"films ({index['patient_id'].iloc[rows['test']].nunique()} unseen patients)",
            flush=True,
        )
        checkpoints = train_all(args, where, where / "store", {VARIANTS[v][0] for v in args.variants})
        films = list(test_films(images, masks, index, rows["test"], args))
        outlines = [(truth[r], None if second[r] is None else resize_mask(second[r], 224)) for r in rows["test"]]
        for name in args.variants:
            table = measure_variant(name, checkpoints[VARIANTS[name][0]], films, args, outlines)
            tables[name].append(table.assign(fold=fold))
    return [pd.concat(t, ignore_index=True) for t in tables.values()]


if __name__ == "__main__":
    main()

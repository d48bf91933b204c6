"""Benchmark (not a CI test): does QC's predicted Dice track the true Dice on real radiographs, and does an
ensemble of the trained architectures pay?

Patient-wise k-fold on the V7-labs COVID-19 lung masks (v7-real: 224 films of 127 patients; `--release 1`: the
99 films of 61 patients of the figures before #33). Per fold, every
architecture is trained with the pipeline's recipe (bench_real_v7's training, reused when already trained);
the fold's unseen test images are then segmented by the k best architectures (k = 1..all, ranked by
validation Dice, as `select_model` ranks them), clean and with the calibration's seeded degradations, through
the pipeline's own `calibrate.measure` (Predictor, clean-up, QC features, true Dice). The predicted-Dice model
of each fold is fitted on the other folds' masks only, so every printed number is on patients and images
that neither the segmenter nor the QC model saw:

    python tests/bench/bench_qc_v7.py --data ../shared/data/v7-real --folds 5 --epochs 60 --jobs 2 \
        --json docs/bench/qc-224-5fold-cpu.json

Prints, per ensemble size: mean / p5 Dice of the clean masks, Pearson and Spearman of predicted vs true Dice
and the mean absolute error (clean masks, and clean + degraded), the share of good masks (true Dice >= 0.90)
flagged and of bad masks caught, and the forward cost per image (today's QC); the clean masks against reader 1
and reader 2 beside the human band; and QC where humans agree (`readers.qc_at_definition`: failed = Dice < 0.85,
AUROC, failed masks caught at 1 / 3 / 5 % of good masks flagged), with a QC model fitted without the kinds of
trouble of `--holdout`, which are listed apart. Writes summary.json and masks.csv to --out/bench_qc_v7.
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
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import readers  # noqa: E402
import record  # noqa: E402
import torch  # noqa: E402
from bench_real_v7 import (  # noqa: E402
    fold_splits,
    load_v7,
    model_files,
    patient_folds,
    pipeline_config,
    recipe_config,
    write_store,
)
from cxlseg.inference.predictor import Predictor  # noqa: E402
from cxlseg.inference.settings import InferSettings  # noqa: E402
from cxlseg.qc.calibration import held_out_predictions, measure, measure_films  # noqa: E402
from cxlseg.qc.calibration import summarise as tracking_summary  # noqa: E402
from cxlseg.training.store import load_split  # noqa: E402
from cxlseg.training.trainer import train_model  # noqa: E402

ARCHS = ("attention_unet", "sa_unet", "unet")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="v7-real folder holding index.csv, images/, masks/")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--release", type=int, default=None, help="only this release of index.csv (1: the first 99 films)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--archs", nargs="+", default=list(ARCHS))
    p.add_argument("--degraded", type=int, default=2, help="degraded copies per test image (bad masks to catch)")
    p.add_argument("--min-predicted-dice", type=float, default=None, help="flag bar (default: the schema's)")
    p.add_argument(
        "--holdout",
        nargs="*",
        default=["motion", "shield", "cutoff"],
        help="kinds of trouble the QC model at the new definition is not fitted on (listed apart)",
    )
    p.add_argument("--only-folds", type=int, nargs="*", default=None, help="train and measure only these folds")
    p.add_argument("--table", type=Path, default=None, help="re-summarise a masks.csv of an earlier run (no training)")
    p.add_argument("--jobs", type=int, default=1, help="(fold, architecture) trainings at once")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "cxlseg-bench-qc-v7")
    p.add_argument("--json", type=Path, default=None, help="also copy summary.json here (e.g. docs/bench/...)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def _recipe_args(args) -> argparse.Namespace:
    """bench_real_v7's options for the same data, folds, epochs and device (its recipe otherwise)."""
    from bench_real_v7 import parse_args as recipe_args

    return recipe_args(
        ["--data", str(args.data), "--folds", str(args.folds), "--epochs", str(args.epochs), "--seed", str(args.seed)]
        + ["--device", args.device, "--out", str(args.out)]
    )


def fold_dir(args, index: pd.DataFrame, folds: np.ndarray, fold: int) -> tuple[Path, dict]:
    rargs = _recipe_args(args)
    splits = fold_splits(index, folds, fold, rargs.val_fraction, args.seed)
    membership = json.dumps({k: sorted(index["image_id"].iloc[v]) for k, v in splits.items()}, sort_keys=True)
    return args.out / f"fold{fold}-{hashlib.sha256(membership.encode()).hexdigest()[:8]}", splits


def train_one(args, fold: int, arch: str) -> tuple[int, str, float]:
    """Train one architecture on one fold (skipped when trained with the same recipe)."""
    torch.set_num_threads(1)
    rargs = _recipe_args(args)
    images, masks, index, _ = load_v7(args.data, rargs.store_size, args.release)
    folds = patient_folds(index["patient_id"], args.folds, args.seed)
    where, splits = fold_dir(args, index, folds, fold)
    write_store(where / "store", images, masks, index, splits)
    started = time.perf_counter()
    train_model(
        where / "store", model_files(where / arch), dataclasses.replace(recipe_config(rargs), architecture=arch)
    )
    return fold, arch, time.perf_counter() - started


def chosen_folds(args) -> list[int]:
    return list(range(args.folds)) if args.only_folds is None else args.only_folds


def train_all(args) -> None:
    work = [(fold, arch) for arch in args.archs for fold in chosen_folds(args)]
    if args.jobs <= 1:
        for fold, arch in work:
            print("trained", train_one(args, fold, arch), flush=True)
        return
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result in [pool.submit(train_one, args, fold, arch) for fold, arch in work]:
            print("trained", result.result(), flush=True)


def ranked(where: Path, archs) -> list[str]:
    """Architectures best first by validation Dice at their best epoch, as select_model ranks them."""
    best = {a: pd.read_csv(where / a / "history.csv")["val_dice"].max() for a in archs}
    return sorted(archs, key=lambda a: -best[a])


def measure_fold(args, settings: InferSettings, index, folds, fold: int, second) -> list[pd.DataFrame]:
    where, splits = fold_dir(args, index, folds, fold)
    images, masks, test_index = load_split(where / "store", "test")
    test_second = [second[i] for i in splits["test"]]
    ids = [f"{fold}/{i}" for i in test_index["image_id"]]
    order = ranked(where, args.archs)
    tables = []
    for k in range(1, len(order) + 1):
        predictor = Predictor.from_checkpoints(
            [where / a / "checkpoint_best.pt" for a in order[:k]], device=args.device, tta_flip=settings.tta_flip
        )
        started = time.perf_counter()
        table = measure(np.asarray(images), np.asarray(masks), ids, predictor, settings, degraded=args.degraded,
                        seed=args.seed + fold, progress=False)  # fmt: skip
        seconds = time.perf_counter() - started
        table = with_readers(table, images, masks, ids, test_second, predictor, settings)
        tables.append(table.assign(fold=fold, k=k, members="+".join(order[:k]), seconds_per_mask=seconds / len(table)))
        print(f"fold {fold} k={k} ({'+'.join(order[:k])}): clean Dice {table.dice[table.degradation == 'clean'].mean():.4f}"
              f"  {1000 * seconds / len(table):.0f} ms/mask", flush=True)  # fmt: skip
    return tables


def with_readers(table: pd.DataFrame, images, masks, ids, second, predictor, settings) -> pd.DataFrame:
    """The measured masks with, on each clean film reader 2 outlined, the Dice of the same mask against reader 2
    (`dice_reader2`, through the same `measure_films`) and of reader 1 against reader 2 (`human`)."""
    clean = table.index[table["degradation"] == "clean"]
    by_id = dict(zip(table.loc[clean, "image_id"], clean))
    order = [by_id[i] for i in ids]  # one clean row per test film, in the films' order

    def against(rows, outlines):
        films = ((table.loc[order[i], ["image_id"]].to_dict(), images[i], o) for i, o in zip(rows, outlines))
        return measure_films(films, predictor, settings)["dice"].to_numpy()

    scored = readers.add_second_reader(table.loc[order, ["dice"]], masks, second, against)
    scored.index = order
    return table.join(scored[["dice_reader2", "human"]])


def cross_fold_predictions(table: pd.DataFrame, good_dice: float, holdout=()) -> np.ndarray:
    """Each fold's predicted Dice from a QC model fitted on the other folds' masks (none of a `holdout` kind)."""
    folds = sorted(table.fold.unique())
    fit = ~table["degradation"].isin(list(holdout)).to_numpy()
    splits = (
        [np.flatnonzero((table.fold != f).to_numpy() & fit) for f in folds],
        [np.flatnonzero(table.fold == f) for f in folds],
    )
    predicted, models = held_out_predictions(table, zip(*splits), good_dice=good_dice)
    for fold, model in zip(folds, models):
        print(f"  k={table.k.iloc[0]} fold {fold}: ridge target {model.info['target']} {model.info.get('cv_mae_good')}")
    return predicted


def summarise(table: pd.DataFrame, settings: InferSettings, holdout=()) -> dict:
    """Per ensemble size: Dice, today's QC (fitted on every kind), the clean masks against each reader, and QC
    where humans agree with a model fitted without the `holdout` kinds."""
    out = {}
    for k, rows in table.groupby("k"):
        rows = rows.reset_index(drop=True)
        clean = (rows.degradation == "clean").to_numpy()
        today = cross_fold_predictions(rows, settings.qc.good_dice)
        new = cross_fold_predictions(rows, settings.qc.good_dice, holdout) if holdout else today
        out[int(k)] = {
            "members": rows.members.iloc[0],
            "dice_mean": float(rows.dice[clean].mean()),
            "dice_p5": float(np.percentile(rows.dice[clean], 5)),
            "ms_per_mask": float(1000 * rows.seconds_per_mask.mean()),
            **tracking_summary(rows, today, settings),
        }
        out[int(k)]["readers"] = readers.reader_summary(rows[clean])
        out[int(k)]["at_new_definition"] = {
            "holdout": list(holdout),
            **readers.qc_at_definition(
                new,
                rows["dice"].to_numpy(),
                readers.anatomy_flagged(rows, settings.qc),
                readers.kind_parts(rows, holdout),
            ),
        }
    return out


def print_summary(summary: dict, bar: float | str) -> None:
    shown = bar if isinstance(bar, str) else f"{bar:.2f}"  # "calibrated": picked per k on its cross-fold predictions
    print(f"\nflag bar: predicted Dice < {shown} (plus anatomy rules); good = true Dice >= 0.90")
    print("k  members                         Dice   p5     | clean: r     rho    MAE    good-flag | "
          "all: r     rho    MAE    good-flag bad-caught | ms/mask")  # fmt: skip
    for k, s in summary.items():
        c, a = s["clean"], s["all"]
        print(f"{k}  {s['members']:<31} {s['dice_mean']:.4f} {s['dice_p5']:.4f} | {c['pearson']:6.3f} {c['spearman']:6.3f} "
              f"{c['mae']:.4f} {c['good_flagged']:8.3f}  | {a['pearson']:6.3f} {a['spearman']:6.3f} {a['mae']:.4f} "
              f"{a['good_flagged']:8.3f}  {a['bad_caught']:8.3f}   | {s['ms_per_mask']:.0f}")  # fmt: skip
    for k, s in summary.items():
        new = s["at_new_definition"]
        print(f"\nk={k}: clean masks against each reader")
        print("\n".join(readers.reader_lines(s["readers"])))
        print(f"k={k}: QC where humans agree (failed: Dice < {readers.FAILED}, good: >= {readers.GOOD}; QC fitted "
              f"without {', '.join(new['holdout']) or 'no kind'})")  # fmt: skip
        print("\n".join(readers.qc_lines(new)))


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.jobs))
    started = time.perf_counter()
    if args.table is None:
        train_all(args)
    config = pipeline_config(_recipe_args(args))
    settings = InferSettings.from_config(config, tta_flip=True, batch_size=16)
    if args.min_predicted_dice is not None:
        settings = dataclasses.replace(
            settings, qc=dataclasses.replace(settings.qc, min_predicted_dice=args.min_predicted_dice)
        )
    if args.table is not None:
        table = pd.read_csv(args.table, dtype={"image_id": str})
    else:
        _, _, index, second = load_v7(args.data, _recipe_args(args).store_size, args.release)
        folds = patient_folds(index["patient_id"], args.folds, args.seed)
        table = pd.concat(
            [t for f in chosen_folds(args) for t in measure_fold(args, settings, index, folds, f, second)],
            ignore_index=True,
        )
    summary = summarise(table, settings, args.holdout)
    print_summary(summary, settings.qc.min_predicted_dice)
    results = record.results_dir(args.out, __file__)
    if args.table is None:
        table.to_csv(results / "masks.csv", index=False)
    result = {"folds": args.folds, "release": args.release, "epochs": args.epochs, "degraded": args.degraded, "by_ensemble": summary,
              "seconds": round(time.perf_counter() - started, 1), "command": record.command(__file__, argv),
              "machine": record.machine()}  # fmt: skip
    (results / "summary.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.json:
        record.copy(results / "summary.json", args.json)
    return result


if __name__ == "__main__":
    main()

"""Benchmark (not a CI test): lung segmentation quality on real radiographs, patient-wise k-fold.

Trains the recipe on the V7-labs COVID-19 lung masks (v7-real: 224 films of 127 patients; `--release 1`: the 99
films of 61 patients of the figures published before #33) with cxlseg's own training loop, and scores the images
of patients it never saw, exactly as the pipeline would (224 px store -> model -> probabilities back at 224 px ->
threshold -> optional clean-up):

    python tests/bench/bench_real_v7.py --data ../shared/data/v7-real --folds 5 --jobs 2 \
        --json docs/bench/segmentation-224-5fold-cpu.json
    python tests/bench/bench_real_v7.py --data ../shared/data/v7-real --folds 5 --release 1
    python tests/bench/bench_real_v7.py --data ../shared/data/v7-real --folds 5 --only-folds 0 --epochs 20

Prints per-fold and pooled mean and 5th-percentile Dice for raw masks, test-time flips and
the pipeline's clean-up (infer.postprocess), scored by cxlseg.evaluation.evaluate.score_predictions with the pipeline's
Predictor, against reader 1 (every film) and reader 2 (index.csv `second_mask`, the films a second reader
outlined), beside reader 1 against reader 2 on the same films (the human band: `readers`), and writes
summary.json under --out/bench_real_v7.
Re-running with the same recipe reuses the trained folds (train_model resumes or skips); so does bench_qc_v7 with
the same --out (its attention_unet folds are these).
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
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # per-epoch lines below are enough in a benchmark log
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import readers  # noqa: E402
import record  # noqa: E402
import torch  # noqa: E402
from cxlseg.config import deep_update, default_config, validate_config  # noqa: E402
from cxlseg.evaluation.evaluate import score_predictions  # noqa: E402
from cxlseg.inference.predictor import Predictor  # noqa: E402
from cxlseg.inference.settings import InferSettings  # noqa: E402
from cxlseg.io import ImageReadError, read_gray, read_mask, safe_join  # noqa: E402
from cxlseg.metrics import summarise  # noqa: E402
from cxlseg.preprocess import resize, resize_mask  # noqa: E402
from cxlseg.training.checkpoint import ModelFiles  # noqa: E402
from cxlseg.training.settings import TrainConfig  # noqa: E402
from cxlseg.training.store import load_split  # noqa: E402
from cxlseg.training.trainer import train_model  # noqa: E402

# The recipe the pipeline defaults should copy (see the numbers in the report / docs).
BEST_RECIPE = dict(
    architecture="attention_unet",
    base_channels=16,
    size=160,
    epochs=100,
    batch_size=8,
    lr=1e-3,
    scheduler="cosine",
    augment="strong",
    bce_weight=1.0,
    dice_weight=1.0,
    weight_decay=0.0,
)
# "post" is the pipeline's clean-up (infer.postprocess at its schema defaults); "raw" switches every step off.
NO_POSTPROCESS = dict(closing=0, opening=0, keep_components=0, fill_holes=False, min_component_fraction=0.0)
VARIANTS = {"raw": (False, False), "tta": (True, False), "post": (False, True), "tta+post": (True, True)}


def model_files(folder: Path) -> ModelFiles:
    """The train rule's files for one model, in `folder`."""
    names = ("checkpoint_best.pt", "history.csv", "model.json", "checkpoint_last.pt")
    return ModelFiles(*(Path(folder) / name for name in names))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="v7-real folder holding index.csv, images/, masks/")
    p.add_argument("--folds", type=int, default=5, help="patient-wise folds")
    p.add_argument("--release", type=int, default=None, help="only this release of index.csv (1: the first 99 films)")
    p.add_argument("--only-folds", type=int, nargs="*", default=None, help="run only these fold numbers (0-based)")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "cxlseg-bench-v7")
    p.add_argument("--json", type=Path, default=None, help="also copy summary.json here (e.g. docs/bench/...)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per fold (the CPU is shared: keep it low)")
    p.add_argument("--jobs", type=int, default=1, help="folds trained at once, each in its own process")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (a GPU only speeds up recipe sweeps)")
    p.add_argument("--store-size", type=int, default=224, help="pipeline image size; Dice is measured here")
    p.add_argument("--val-fraction", type=float, default=0.15, help="training patients held out to pick the epoch")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--architecture", default=BEST_RECIPE["architecture"])
    p.add_argument("--encoder", default="resnet34", help="smp encoder (unet, unetplusplus)")
    p.add_argument("--base-channels", type=int, default=BEST_RECIPE["base_channels"])
    p.add_argument("--size", type=int, default=BEST_RECIPE["size"], help="training/inference resolution")
    p.add_argument("--epochs", type=int, default=BEST_RECIPE["epochs"])
    p.add_argument("--batch-size", type=int, default=BEST_RECIPE["batch_size"])
    p.add_argument("--lr", type=float, default=BEST_RECIPE["lr"])
    p.add_argument("--weight-decay", type=float, default=BEST_RECIPE["weight_decay"])
    p.add_argument("--scheduler", default=BEST_RECIPE["scheduler"], choices=["none", "cosine", "plateau"])
    p.add_argument("--augment", default=BEST_RECIPE["augment"], choices=["none", "light", "strong"])
    p.add_argument("--bce-weight", type=float, default=BEST_RECIPE["bce_weight"])
    p.add_argument("--dice-weight", type=float, default=BEST_RECIPE["dice_weight"])
    p.add_argument("--in-channels", type=int, default=1, choices=[1, 3])
    p.add_argument("--headline", default="tta+post", choices=list(VARIANTS), help="variant printed as the result")
    return p.parse_args(argv)


def pipeline_config(args: argparse.Namespace) -> dict:
    """The validated config a pipeline run with these options would see (everything else: schema defaults)."""
    config = default_config()
    deep_update(
        config,
        {
            "seed": args.seed,
            "preprocess": {"size": args.store_size, "channels": args.in_channels},
            "models": {"encoder_name": args.encoder},
            "infer": {"device": args.device, "num_workers": 0},
        },
    )
    return validate_config(config)


def recipe_config(args: argparse.Namespace) -> TrainConfig:
    """The training run, built as the train rule builds it, with the benchmark's recipe options on top."""
    return TrainConfig.from_config(
        pipeline_config(args),
        args.architecture,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        scheduler=args.scheduler,
        size=args.size,
        base_channels=args.base_channels,
        device=args.device,
        bce_weight=args.bce_weight,
        dice_weight=args.dice_weight,
        num_workers=0,
        augment_online=args.augment != "none",
        augment_preset=args.augment if args.augment != "none" else "light",
    )


def variant_settings(args: argparse.Namespace, tta: bool, post: bool) -> InferSettings:
    """The infer settings the pipeline evaluates and segments with; 'raw' turns the clean-up off."""
    settings = InferSettings.from_config(pipeline_config(args), tta_flip=tta)
    if not post:
        settings = dataclasses.replace(
            settings, postprocess=dataclasses.replace(settings.postprocess, **NO_POSTPROCESS)
        )
    return settings


# --------------------------------------------------------------------------- data


def load_v7(
    data_dir: Path, size: int, release: int | None = None
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, list[np.ndarray | None]]:
    """Images, reader-1 masks, their index and reader 2's outlines (None where there is none), all at the
    pipeline's store size, by index.csv (`release`: only that release); unreadable pairs are reported and skipped."""
    index = readers.read_index(data_dir, release)
    images, masks, rows, second = [], [], [], []
    for row in index.to_dict("records"):
        try:
            image = read_gray(safe_join(data_dir, row["image"]))
            mask = read_mask(safe_join(data_dir, row["mask"]))
            if mask.shape != image.shape:
                raise ImageReadError(row["mask"], f"mask {mask.shape} does not match image {image.shape}")
        except (ImageReadError, ValueError) as exc:
            print(f"skipped {row['image']}: {exc}", file=sys.stderr)
            continue
        outline = readers.read_second(data_dir, row.get("second_mask"), image.shape)
        images.append(resize(image, size))
        masks.append(resize_mask(mask, size))
        second.append(None if outline is None else resize_mask(outline, size))
        rows.append(
            {
                "dataset": "v7-real",
                "image_id": Path(row["image"]).stem,
                "patient_id": str(row["patient_id"]),
                "label": str(row["finding"]),
                "view": str(row["view"]),
            }
        )
    return np.stack(images), np.stack(masks), pd.DataFrame(rows), second


def patient_folds(patients: pd.Series, k: int, seed: int) -> np.ndarray:
    """Fold per image: patients shuffled (seeded), then dealt largest-first to the fold with fewest images."""
    counts = patients.value_counts().sort_index()  # by id first: value_counts orders ties by pandas version
    rng = np.random.default_rng(seed)
    order = counts.index[rng.permutation(len(counts))]
    order = sorted(order, key=lambda pid: -counts[pid])  # stable: equal sizes keep the shuffled order
    load, fold_of = np.zeros(k, int), {}
    for pid in order:
        fold = int(np.argmin(load))
        fold_of[pid] = fold
        load[fold] += counts[pid]
    return patients.map(fold_of).to_numpy()


def write_store(
    store_dir: Path, images: np.ndarray, masks: np.ndarray, index: pd.DataFrame, splits: dict[str, np.ndarray]
) -> None:
    """The same files the augment stage writes, so the pipeline's own train/evaluate code runs unchanged. A store
    already there is left as it is: its fold folder's name pins its films, and another benchmark may be training
    on it (memory-mapped) right now."""
    if (store_dir / "test_index.parquet").is_file():
        return
    store_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        np.save(store_dir / f"{split}_images.npy", images[rows])
        np.save(store_dir / f"{split}_masks.npy", masks[rows])
        index.iloc[rows].reset_index(drop=True).to_parquet(store_dir / f"{split}_index.parquet")


def fold_splits(
    index: pd.DataFrame, folds: np.ndarray, fold: int, val_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    test = np.flatnonzero(folds == fold)
    pool = np.flatnonzero(folds != fold)
    pool_patients = np.array(sorted(index["patient_id"].iloc[pool].unique()))
    n_val = max(1, round(val_fraction * len(pool_patients)))
    val_patients = set(np.random.default_rng(seed + fold).choice(pool_patients, n_val, replace=False))
    in_val = index["patient_id"].iloc[pool].isin(val_patients).to_numpy()
    splits = {"train": pool[~in_val], "validate": pool[in_val], "test": test}
    seen = [set(index["patient_id"].iloc[rows]) for rows in splits.values()]
    if seen[0] & seen[2] or seen[1] & seen[2] or seen[0] & seen[1]:
        raise AssertionError(f"fold {fold}: a patient is in two splits")
    return splits


# --------------------------------------------------------------------------- run


def print_epoch(trainer, row: dict) -> None:
    print(
        f"    {trainer.files.checkpoint.parent.parent.name} epoch {row['epoch']:3d}  train_loss {row['train_loss']:.4f}  "
        f"val_loss {row['val_loss']:.4f}  val_dice {row['val_dice']:.4f}  lr {row['lr']:.2e}  {row['seconds']:.1f}s",
        flush=True,
    )


def run_fold(fold: int, args, cfg: TrainConfig, images, masks, index, folds, second) -> dict[str, pd.DataFrame]:
    """Train (or reuse) the fold's model; per variant, its test films scored against reader 1 and, where reader 2
    outlined them, against reader 2 with the very same probabilities and clean-up."""
    splits = fold_splits(index, folds, fold, args.val_fraction, args.seed)
    # Trained folds are reused on a rerun only for the very same split: a changed split must never be scored
    # by a model that trained on its test images.
    membership = json.dumps({k: sorted(index["image_id"].iloc[v]) for k, v in splits.items()}, sort_keys=True)
    fold_dir = args.out / f"fold{fold}-{hashlib.sha256(membership.encode()).hexdigest()[:8]}"
    write_store(fold_dir / "store", images, masks, index, splits)
    print(
        f"fold {fold}: train {len(splits['train'])}, validate {len(splits['validate'])}, test {len(splits['test'])} images "
        f"({index['patient_id'].iloc[splits['test']].nunique()} unseen patients)",
        flush=True,
    )
    # named by architecture, as bench_qc_v7 names its models: with the same --out it reuses these folds
    train_model(fold_dir / "store", model_files(fold_dir / cfg.architecture), cfg, callbacks=[print_epoch])
    # The pipeline's predictor and scoring (evaluate_model's), once per TTA setting; clean-up variants share it.
    test_images, test_masks, test_index = load_split(fold_dir / "store", "test")
    test_second = [second[i] for i in splits["test"]]
    probs = {}
    results = {}
    for name, (tta, post) in VARIANTS.items():
        settings = variant_settings(args, tta, post)
        if tta not in probs:
            predictor = Predictor.from_checkpoints(
                fold_dir / cfg.architecture / "checkpoint_best.pt", device=args.device, tta_flip=tta
            )
            probs[tta] = predictor.predict(test_images, out_size=test_images.shape[-1], batch_size=settings.batch_size)
        table = score_predictions(probs[tta], test_masks, test_index, settings)

        def against(rows, outlines, prob=probs[tta], settings=settings):
            return score_predictions(prob[rows], outlines, test_index.iloc[rows], settings)["dice"].to_numpy()

        results[name] = readers.add_second_reader(table, test_masks, test_second, against).assign(fold=fold)
    return results


def timed_fold(fold: int, args, cfg: TrainConfig, images, masks, index, folds, second) -> tuple[dict, float]:
    torch.set_num_threads(args.threads)  # worker processes start with torch's default (all cores)
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    tables = run_fold(fold, args, cfg, images, masks, index, folds, second)
    return tables, round(time.perf_counter() - t0, 1)


def run_folds(chosen: list[int], args, cfg: TrainConfig, images, masks, index, folds, second):
    """(fold, (tables, seconds)) in fold order; --jobs > 1 trains folds side by side in spawned processes."""
    work = (args, cfg, images, masks, index, folds, second)
    if args.jobs <= 1:
        for fold in chosen:
            yield fold, timed_fold(fold, *work)
        return
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {fold: pool.submit(timed_fold, fold, *work) for fold in chosen}
        for fold in chosen:
            yield fold, futures[fold].result()  # a dead worker raises here: no silent partial summary


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    started = time.perf_counter()
    cfg = recipe_config(args)
    images, masks, index, second = load_v7(args.data, args.store_size, args.release)
    folds = patient_folds(index["patient_id"], args.folds, args.seed)
    chosen = args.only_folds if args.only_folds is not None else list(range(args.folds))
    print(
        f"{len(index)} images ({sum(o is not None for o in second)} outlined by reader 2), "
        f"{index['patient_id'].nunique()} patients, {args.folds} folds; running {chosen}"
    )
    print(f"recipe: {json.dumps(asdict(cfg))}", flush=True)
    per_variant: dict[str, list[pd.DataFrame]] = {name: [] for name in VARIANTS}
    fold_seconds = {}
    for fold, (tables, seconds) in run_folds(chosen, args, cfg, images, masks, index, folds, second):
        for name, table in tables.items():
            per_variant[name].append(table)
        fold_seconds[fold] = seconds
        line = "  ".join(f"{name} {tables[name]['dice'].mean():.4f}" for name in VARIANTS)
        print(f"fold {fold} mean Dice: {line}  ({seconds:.0f}s)", flush=True)
    summary = summarise_runs(per_variant, cfg, args, fold_seconds, time.perf_counter() - started)
    summary.update(command=record.command(__file__, argv), machine=record.machine())
    print_summary(summary, args.headline)
    results = record.results_dir(args.out, __file__)
    (results / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if args.json:
        record.copy(results / "summary.json", args.json)
    return summary


def by_group(pooled: pd.DataFrame, args) -> dict:
    """Dice per release and per view of index.csv: which films a researcher should trust less (AP supine ICU
    films in MIMIC are many), and whether the newer release scores like the figures published before it."""
    index = readers.read_index(args.data, args.release)
    index = index.assign(image_id=[Path(str(p)).stem for p in index["image"]])
    groups = {}
    for column in ("release", "view"):
        if column in index:
            joined = pooled.merge(index[["image_id", column]], on="image_id", how="left")
            groups[column] = {str(k): summarise(g["dice"].to_numpy()) for k, g in joined.groupby(column)}
    return groups


def summarise_runs(per_variant: dict, cfg: TrainConfig, args, fold_seconds: dict, seconds: float) -> dict:
    variants = {}
    for name, tables in per_variant.items():
        pooled = pd.concat(tables, ignore_index=True)
        variants[name] = {
            "dice": summarise(pooled["dice"].to_numpy()),
            "hd95": summarise(pooled["hd95"].to_numpy()),
            "per_fold_dice": {int(f): float(g["dice"].mean()) for f, g in pooled.groupby("fold")},
            "worst": pooled.nsmallest(3, "dice")[["image_id", "dice"]].to_dict("records"),
            "readers": readers.reader_summary(pooled),
            "by_group": by_group(pooled, args),
        }
    return {
        "recipe": asdict(cfg),
        "folds": args.folds,
        "release": args.release,
        "folds_run": sorted(fold_seconds),
        "postprocess": dataclasses.asdict(variant_settings(args, True, True).postprocess),
        "fold_seconds": fold_seconds,
        "seconds": round(seconds, 1),
        "threads": args.threads,
        "store_size": args.store_size,
        "jobs": args.jobs,
        "variants": variants,
    }


def print_summary(summary: dict, headline: str) -> None:
    print("\nvariant     mean Dice  p5 Dice   mean HD95  per-fold Dice")
    for name, v in summary["variants"].items():
        folds = " ".join(f"{d:.4f}" for d in v["per_fold_dice"].values())
        print(f"{name:<10}  {v['dice']['mean']:.4f}     {v['dice']['p5']:.4f}    {v['hd95']['mean']:7.2f}    {folds}")
    h = summary["variants"][headline]
    print(f"\n{headline} against each reader (pooled over the folds run; Dice at {summary['store_size']} px):")
    print("\n".join(readers.reader_lines(h["readers"])))
    for column, groups in h["by_group"].items():
        print(f"{headline} by {column}: " + ", ".join(
            f"{k} {g['mean']:.4f} / p5 {g['p5']:.4f} (n {g['n']})" for k, g in groups.items()))  # fmt: skip
    print(
        f"\nRESULT ({headline}, {h['dice']['n']} unseen images): mean Dice {h['dice']['mean']:.4f}, "
        f"p5 Dice {h['dice']['p5']:.4f}; {summary['seconds'] / 60:.1f} min on {summary['jobs']} job(s) x "
        f"{summary['threads']} thread(s)"
    )


if __name__ == "__main__":
    main()

"""One (model, input) run: train on the train split, threshold on validate, evaluate on test.

Each run writes its own files (metrics, predictions, skipped images; `RunFiles`, named by the rule) so
Snakemake can run the pairs in parallel. The same seed gives both inputs the same initial weights, batch order and jitter,
so the only difference between "original" and "segmented" is the image.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxlseg.classify.cohort import INPUT_KINDS, Labels, load_cohort
from cxlseg.classify.engine import SkipLog, fit, make_loader, predict, recalibrate_batchnorm
from cxlseg.classify.images import Augment, ImageDataset, ImageSource
from cxlseg.classify.networks import check_name, create_classifier
from cxlseg.classify.roc import evaluate_labels
from cxlseg.classify.settings import ClassifySettings, check_report_labels
from cxlseg.device import resolve_device, seed_everything
from cxlseg.io import write_csv, write_json
from cxlseg.mimic import SPLITS

log = logging.getLogger(__name__)


def run_name(model: str, input_kind: str) -> str:
    """A run's name in logs and progress bars."""
    return f"{model}_{input_kind}"


@dataclass(frozen=True)
class RunFiles:
    """One run's files (the classify rule's outputs): metrics (JSON, written last: the marker), predictions and the
    images skipped (CSV)."""

    metrics: Path
    predictions: Path
    skipped: Path

    def __post_init__(self) -> None:
        for name in ("metrics", "predictions", "skipped"):
            object.__setattr__(self, name, Path(getattr(self, name)))


def check_run(settings: ClassifySettings, model: str, input_kind: str) -> None:
    """What the schema cannot say: the run's model and input exist, report labels are trained labels."""
    check_name(model)
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"unknown input {input_kind!r}; valid: {', '.join(INPUT_KINDS)}")
    check_report_labels(settings.labels, settings.report_labels)
    if settings.batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (BatchNorm needs two samples), got {settings.batch_size}")
    low, high = settings.contrast
    if not 0 <= low <= high:
        raise ValueError(f"contrast must be [low, high] with 0 <= low <= high, got {list(settings.contrast)}")


def train_and_evaluate(
    settings: ClassifySettings,
    model: str,
    input_kind: str,
    *,
    segmented: os.PathLike | str,
    split: os.PathLike | str,
    images_root: os.PathLike | str,
    mimic_root: os.PathLike | str,
    out: RunFiles,
    seed: int,
) -> dict:
    """Train `model` on `input_kind` images (labels from the `segmented` table, split from the `split` table,
    segmented images under `images_root`) and write `out`.

    The predictions hold the validate and test rows: per label its 0/1 target (NaN when ignored)
    and score (NaN when the image could not be read).
    """
    check_run(settings, model, input_kind)
    cohort = load_cohort(segmented, split, settings.labels, settings.uncertain)
    device = resolve_device(settings.device)
    use_amp = settings.amp and device.type == "cuda"
    parts = _datasets(
        cohort,
        settings,
        ImageSource(input_kind, str(images_root), str(mimic_root), settings.input_size, settings.resize),
    )
    if len(parts["train"]) < 2:
        raise ValueError(f"{split}: the train split has {len(parts['train'])} image(s); need at least 2")
    log.info(
        "%s on %s images: %s; device %s%s",
        model,
        input_kind,
        ", ".join(f"{s} {len(parts[s])}" for s in SPLITS),
        device,
        " (AMP)" if use_amp else "",
    )

    seed_everything(seed)
    net = create_classifier(
        model,
        len(cohort.labels),
        in_channels=settings.channels,
        pretrained=settings.pretrained,
        hidden=settings.head_hidden,
        normalise=settings.normalise,
    ).to(device)
    skips = SkipLog(input_kind)
    loaders = {
        s: make_loader(parts[s], settings.batch_size, s == "train", seed, settings.num_workers, device) for s in SPLITS
    }
    history, stopper = fit(
        net,
        loaders["train"],
        loaders["validate"],
        device,
        use_amp,
        skips,
        epochs=settings.epochs,
        patience=settings.patience,
        lr=settings.lr,
        max_train_batches=settings.max_train_batches,
        desc=run_name(model, input_kind),
        monitor=settings.early_stopping,
    )
    if settings.recalibrate_bn:
        plain_train = make_loader(
            parts["train"].unjittered(), settings.batch_size, True, seed, settings.num_workers, device
        )
        recalibrate_batchnorm(net, plain_train, device, use_amp, skips, settings.max_train_batches)
    scores = {s: predict(net, loaders[s], device, use_amp, skips, s) for s in ("validate", "test")}
    per_label = evaluate_labels(cohort.labels, _part(cohort, "validate", scores), _part(cohort, "test", scores))
    metrics = {
        "model": model,
        "input": input_kind,
        "labels": list(cohort.labels),
        "device": device.type,
        "amp": use_amp,
        "settings": settings.outcome() | {"seed": seed},
        "counts": {s: len(parts[s]) for s in SPLITS} | {"skipped": len(skips.rows)},
        "history": history,
        "best_epoch": (stopper.best_epoch if settings.early_stopping == "validate" else 0) or len(history),
        "epochs_run": len(history),
        "per_label": per_label,
    }
    _write_run(out, metrics, _predictions(cohort, scores), skips.frame())
    return metrics


def _datasets(cohort: Labels, settings: ClassifySettings, source: ImageSource) -> dict[str, ImageDataset]:
    """One dataset per split; only the train split is jittered."""
    augment = Augment(settings.brightness, tuple(settings.contrast)) if settings.augment else None
    out = {}
    for split in SPLITS:
        rows = cohort.rows(split)
        out[split] = ImageDataset(
            cohort.frame[rows],
            cohort.targets[rows],
            cohort.mask[rows],
            source,
            settings.channels,
            augment if split == "train" else None,
        )
    return out


def _part(cohort: Labels, split: str, scores: dict[str, np.ndarray]):
    rows = cohort.rows(split)
    return cohort.targets[rows], cohort.mask[rows], scores[split]


def _predictions(cohort: Labels, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    parts = []
    for split, split_scores in scores.items():
        rows = cohort.rows(split)
        part = cohort.frame.loc[rows, ["dicom_id", "subject_id", "study_id", "split"]].reset_index(drop=True)
        targets = np.where(cohort.mask[rows] > 0, cohort.targets[rows], np.nan)
        for c, name in enumerate(cohort.labels):
            part[f"{name}_label"] = targets[:, c]
            part[f"{name}_score"] = split_scores[:, c]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _write_run(out: RunFiles, metrics: dict, predictions: pd.DataFrame, skipped: pd.DataFrame) -> None:
    """The metrics last: the rule's marker output, present only when the rest is."""
    write_csv(predictions, out.predictions)
    write_csv(skipped, out.skipped)
    write_json(out.metrics, nan_to_none(metrics))


def nan_to_none(obj):
    """Strict JSON has no NaN; missing metrics become null."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

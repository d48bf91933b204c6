"""Test-split evaluation of one trained model with the production predictor and clean-up (Table IV's rows).

The predictor is built exactly as inference builds it (`Predictor.from_checkpoints`, the infer section's
flips, threshold and clean-up), so the reported Dice is the Dice of the method that writes the dataset.
Beside those per-image scores, `paper_metrics` scores the same probabilities as the CXLSeg authors did
(`evaluation.paper_metrics`), so the pipeline's Table IV can be put next to the published one.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxlseg.evaluation.paper_metrics import paper_scores
from cxlseg.inference.predictor import Predictor, ensemble_checkpoints
from cxlseg.inference.settings import InferSettings
from cxlseg.inference.shard import inference_predictor
from cxlseg.io import write_csv, write_json
from cxlseg.metrics import METRIC_NAMES, bce_dice_loss, image_metrics, summarise
from cxlseg.training.checkpoint import read_checkpoint
from cxlseg.training.store import load_split

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("image_id", "dataset", "label")
SCORE_NAMES = ("loss", *METRIC_NAMES)


@dataclasses.dataclass(frozen=True)
class EvaluationFiles:
    """What an evaluation writes (the rule's outputs): the per-image scores (CSV) and the summary (JSON)."""

    per_image: Path | str
    summary: Path | str


def evaluate_model(
    checkpoint: Path | str, store, out: EvaluationFiles, settings: InferSettings, *, split: str = "test"
) -> dict:
    """Per-image metrics of one checkpoint on a store split (a `TrainingStore` or its folder) -> `out`."""
    predictor = Predictor.from_checkpoints(checkpoint, device=settings.device, tta_flip=settings.tta_flip)
    meta = read_checkpoint(checkpoint)
    about = {
        "architecture": meta["architecture"],
        "checkpoint": str(checkpoint),
        "best_epoch": int(meta["epoch"]),
        "val_metrics": meta["metrics"],
        "params": int(meta.get("params", 0)),
    }
    return evaluate_predictor(predictor, store, out, settings, split=split, about=about)


def evaluate_inference(
    selected: dict, store, out: EvaluationFiles, settings: InferSettings, *, split: str = "test"
) -> dict:
    """The segmenter that writes the dataset (the selected model joined by `infer.ensemble` members, built by
    inference's own `inference_predictor`) on the test split: the Dice the report quotes for the masks."""
    predictor = inference_predictor(selected, settings)
    checkpoints = ensemble_checkpoints(selected, settings.ensemble)
    by_checkpoint = {path: arch for arch, path in selected.get("checkpoints", {}).items()}
    members = [by_checkpoint.get(path, selected["architecture"]) for path in checkpoints]
    about = {"architecture": "+".join(members), "members": members, "checkpoints": checkpoints}
    return evaluate_predictor(predictor, store, out, settings, split=split, about=about)


def evaluate_predictor(
    predictor: Predictor,
    store,
    out: EvaluationFiles,
    settings: InferSettings,
    *,
    split: str = "test",
    about: dict | None = None,
) -> dict:
    """Score a built predictor on a store split with inference's threshold and clean-up; `about` names it."""
    images, masks, index = load_split(store, split)
    if len(images) == 0:
        raise ValueError(f"{store}: split {split!r} holds no images to evaluate")
    probs = predictor.predict(
        images, out_size=images.shape[-1], batch_size=settings.batch_size, progress=True, film=settings.film
    )
    per_image = score_predictions(probs, masks, index, settings)
    summary = {
        **(about or {}),
        "model_id": predictor.model_id,
        "split": split,
        "n_images": len(per_image),
        "threshold": settings.threshold,
        "tta_flip": settings.tta_flip,
        "postprocess": dict(vars(settings.postprocess)),
        "metrics": {name: summarise(per_image[name].to_numpy()) for name in SCORE_NAMES},
        # the authors' Keras definitions on the same probabilities (batch soft Dice/IoU, pixel recall/precision,
        # no clean-up, loss in percent): columns of their own, never mixed with the per-image ones above
        "paper_metrics": paper_scores(probs, masks),
        "by_dataset": {
            str(ds): {name: summarise(group[name].to_numpy()) for name in ("dice", "hd95")}
            for ds, group in per_image.groupby("dataset", sort=True)
        },
        "device": str(predictor.device),
    }
    write_csv(per_image, out.per_image)
    write_json(out.summary, summary)
    return summary


def score_predictions(
    probs: np.ndarray, masks: np.ndarray, index: pd.DataFrame, settings: InferSettings
) -> pd.DataFrame:
    """Per image: the BCE + Dice loss of the probabilities, then the metrics of the cleaned mask."""
    rows = []
    for i in tqdm(range(len(probs)), desc="score", leave=False):
        truth = np.asarray(masks[i]) > 0
        pred = settings.postprocess.clean(probs[i], settings.threshold)
        rows.append(
            {col: _index_value(index, i, col) for col in INDEX_COLUMNS}
            | {"loss": bce_dice_loss(probs[i], truth)}
            | image_metrics(pred, truth)
        )
    return pd.DataFrame(rows, columns=[*INDEX_COLUMNS, *SCORE_NAMES])


def _index_value(index: pd.DataFrame, i: int, column: str) -> str:
    if column in index.columns:
        return str(index[column].iloc[i])
    return str(i) if column == "image_id" else ""

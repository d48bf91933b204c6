"""Calibration of QC where the truth is known: segment the training store's validate and test images exactly as
inference does, clean and deliberately degraded (so that bad masks exist to learn from), and fit the
predicted-Dice model (`qc_model.QCModel`) on their QC features and true Dice.

Degradations (`qc.degradations`) mimic what goes wrong on real films: detector blur, motion and noise, exposure far
off, scans of prints, white-out of a lung, shields and objects over the chest, tilt and pose, cut-off lungs, films on
a light box, inverted films.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxlseg.inference import mask_qc as qc
from cxlseg.inference.outputs import mask_and_qc
from cxlseg.inference.qc_model import QCModel, tracking
from cxlseg.io import atomic_path, write_csv
from cxlseg.metrics import dice
from cxlseg.qc.degradations import DEGRADATIONS, degrade

log = logging.getLogger(__name__)

SPLITS = ("validate", "test")
KINDS = tuple(DEGRADATIONS)  # every kind of trouble: a bad mask QC has never seen is one it cannot predict


def _variants(n_images: int, degraded: int, seed: int, kinds=KINDS) -> list[tuple[int, str, float, int]]:
    """(image, degradation or 'clean', severity, seed) for every calibration mask; seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        out.append((i, "clean", 0.0, 0))
        for _ in range(degraded):
            out.append((i, str(rng.choice(kinds)), float(rng.uniform(0.0, 1.0)), int(rng.integers(2**31))))
    return out


def measure(
    images, masks, ids, predictor, settings, *, degraded: int, seed: int, kinds=KINDS, progress: bool = True
) -> pd.DataFrame:
    """One row per calibration mask: id, degradation, severity, QC features and the true Dice.

    `settings` is the InferSettings of inference (film check, threshold, clean-up); the predictor is inference's.
    """

    def films():
        for i, name, severity, variant_seed in _variants(len(images), degraded, seed, kinds):
            image, truth = np.asarray(images[i]), (np.asarray(masks[i]) > 0).astype(np.uint8)
            if name != "clean":
                image, truth = degrade(image, truth, name, severity, variant_seed)
            yield {"image_id": ids[i], "degradation": name, "severity": round(severity, 3)}, image, truth

    total = len(images) * (1 + degraded)
    bar = tqdm(films(), total=total, desc="calibrate QC", unit="mask", disable=not progress)
    return measure_films(bar, predictor, settings)


def measure_films(films, predictor, settings) -> pd.DataFrame:
    """(meta, film, true mask) -> one row per film: meta, QC features and the true Dice of the mask inference
    would write (`outputs.mask_and_qc`, after the film check of `InputSpec.prepare_film`)."""
    rows, batch = [], []

    def flush():
        x, checks = predictor.spec.film_batch([image for _, image, _ in batch], settings.film)
        pred = predictor.predict_batch(x, batch[0][1].shape[-1], settings.threshold)
        for j, ((meta, _, truth), check) in enumerate(zip(batch, checks)):
            mask, metrics, _ = mask_and_qc(pred.prob[j], check, pred.agreement(j), settings)
            rows.append({**meta, **metrics, "dice": dice(mask, truth)})
        batch.clear()

    for meta, image, truth in films:
        batch.append((meta, image, truth))
        if len(batch) == settings.batch_size:
            flush()
    if batch:
        flush()
    return pd.DataFrame(rows)


def cross_validated(table: pd.DataFrame, *, good_dice: float, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Predicted Dice of every row by a model fitted without its image (any variant of it): honest numbers."""
    from sklearn.model_selection import GroupKFold

    groups = table["image_id"].astype(str).to_numpy()
    k = min(folds, len(set(groups)))
    if k < 2:
        return np.full(len(table), np.nan)
    splits = GroupKFold(k, shuffle=True, random_state=seed).split(table, groups=groups)
    return held_out_predictions(table, splits, good_dice=good_dice)[0]


def held_out_predictions(table: pd.DataFrame, splits, *, good_dice: float) -> tuple[np.ndarray, list[QCModel]]:
    """Each held-out part's predicted Dice from a model fitted on its (fit_rows, held_rows) complement, and the
    models in split order; every fit groups its own cross-validation by source image."""
    predicted, models = np.full(len(table), np.nan), []
    for fit_rows, held_rows in splits:
        fit = table.iloc[fit_rows]
        models.append(QCModel.fit(fit, fit["dice"], good_dice=good_dice, groups=fit["image_id"].astype(str)))
        predicted[held_rows] = models[-1].predict(table.iloc[held_rows])
    return predicted, models


def flagged_by(table: pd.DataFrame, predicted: np.ndarray, settings) -> np.ndarray:
    """Which rows inference would flag, given their predicted Dice (anatomy rules included)."""
    out = []
    for rec, p in zip(table.to_dict("records"), predicted):
        out.append(bool(qc.anatomy_flags(rec, settings.qc)) or p < settings.qc.min_predicted_dice)
    return np.array(out, bool)


def summarise(table: pd.DataFrame, predicted: np.ndarray, settings) -> dict:
    """Cross-validated tracking on clean masks (what inference mostly sees) and on all masks."""
    flagged = flagged_by(table, predicted, settings)
    good_dice = settings.qc.good_dice
    clean = (table["degradation"] == "clean").to_numpy()
    return {
        "clean": tracking(predicted[clean], table["dice"][clean], flagged[clean], good_dice=good_dice),
        "all": tracking(predicted, table["dice"], flagged, good_dice=good_dice),
    }


def calibrate(store_dir, predictor, settings, out_json, out_csv, out_plot, *, seed: int) -> QCModel:
    """Fit the predicted-Dice model on the store's validate + test splits; write model, table and plot."""
    from cxlseg.training.store import load_split

    images, masks, ids = [], [], []
    for split in SPLITS:
        split_images, split_masks, index = load_split(store_dir, split)
        names = index["image_id"].astype(str) if "image_id" in index else pd.Series(range(len(split_images)))
        images.append(np.asarray(split_images))
        masks.append(np.asarray(split_masks))
        ids += [f"{split}/{n}" for n in names]
    images, masks = np.concatenate(images), np.concatenate(masks)
    keep = np.sort(np.random.default_rng(seed).permutation(len(images))[: settings.qc.calibration_max_images])
    table = measure(
        images[keep], masks[keep], [ids[i] for i in keep], predictor, settings,
        degraded=settings.qc.calibration_degraded, seed=seed,
    )  # fmt: skip
    table["predicted_cv"] = cross_validated(table, good_dice=settings.qc.good_dice, seed=seed)
    info = {
        "model_id": predictor.model_id,
        "tta_flip": predictor.tta_flip,
        "n_images": int(len(keep)),
        "degraded_per_image": settings.qc.calibration_degraded,
        "cross_validated": summarise(table, table["predicted_cv"].to_numpy(), settings),
    }
    model = QCModel.fit(
        table, table["dice"], good_dice=settings.qc.good_dice, groups=table["image_id"].astype(str), info=info
    )
    model.save(out_json)
    write_csv(table, out_csv)
    plot_calibration(table, settings.qc.min_predicted_dice, out_plot)
    clean = info["cross_validated"]["clean"]
    log.info("predicted Dice (cross-validated, clean masks): Pearson %.3f, MAE %.4f", clean["pearson"], clean["mae"])
    return model


def plot_calibration(table: pd.DataFrame, min_predicted_dice: float, out_plot) -> None:
    """Predicted (cross-validated) vs true Dice per mask, and the calibration curve by decile of prediction."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.2))
    ax, curve = fig.subplots(1, 2)
    predicted = table["predicted_cv"].to_numpy()
    for name, group in table.groupby(table["degradation"] == "clean"):
        ax.scatter(predicted[group.index], group["dice"], s=8, alpha=0.6, label="clean" if name else "degraded")
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8)
    ax.axvline(min_predicted_dice, color="red", lw=0.8, ls="--", label=f"flag below {min_predicted_dice:.2f}")
    ax.set(xlabel="predicted Dice (cross-validated)", ylabel="true Dice", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(fontsize=7)
    calibration_curve(curve, predicted, table["dice"].to_numpy())
    fig.tight_layout()
    with atomic_path(out_plot) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def calibration_curve(ax, predicted: np.ndarray, true: np.ndarray) -> None:
    """Mean true Dice per decile of predicted Dice against the diagonal (on it = calibrated)."""
    ok = np.isfinite(predicted)
    if ok.sum() >= 2:
        bins = pd.qcut(predicted[ok], q=min(10, int(ok.sum())), duplicates="drop")
        binned = pd.DataFrame({"p": predicted[ok], "d": true[ok]}).groupby(bins, observed=True)
        ax.plot(binned["p"].mean(), binned["d"].mean(), marker="o")
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8)
    ax.set(xlabel="mean predicted Dice (decile)", ylabel="mean true Dice", title="calibration", xlim=(0, 1.02))

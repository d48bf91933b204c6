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
from cxlseg.inference.qc_model import QCModel, bar_text, tracking
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
    images,
    masks,
    ids,
    predictor,
    settings,
    *,
    degraded: int,
    seed: int,
    kinds=KINDS,
    progress: bool = True,
    patients=None,
) -> pd.DataFrame:
    """One row per calibration mask: id, patient, degradation, severity, QC features and the true Dice.

    `settings` is the InferSettings of inference (film check, threshold, clean-up); the predictor is inference's.
    `patients` (one per image; default: the image id) groups the cross-validation, so no patient's film is
    predicted by a model fitted on another film of that patient.
    """
    patients = list(ids) if patients is None else list(patients)

    def films():
        for i, name, severity, variant_seed in _variants(len(images), degraded, seed, kinds):
            image, truth = np.asarray(images[i]), (np.asarray(masks[i]) > 0).astype(np.uint8)
            if name != "clean":
                image, truth = degrade(image, truth, name, severity, variant_seed)
            meta = {"image_id": ids[i], "patient": patients[i], "degradation": name, "severity": round(severity, 3)}
            yield meta, image, truth

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


def _groups(table: pd.DataFrame) -> pd.Series:
    """What a cross-validation holds out together: the patient where known, else the source image."""
    return table["patient" if "patient" in table else "image_id"].astype(str)


def cross_validated(table: pd.DataFrame, *, good_dice: float, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Predicted Dice of every row by a model fitted without its patient (any film or variant of it): honest
    numbers."""
    from sklearn.model_selection import GroupKFold

    groups = _groups(table).to_numpy()
    k = min(folds, len(set(groups)))
    if k < 2:
        return np.full(len(table), np.nan)
    splits = GroupKFold(k, shuffle=True, random_state=seed).split(table, groups=groups)
    return held_out_predictions(table, splits, good_dice=good_dice)[0]


def held_out_predictions(table: pd.DataFrame, splits, *, good_dice: float) -> tuple[np.ndarray, list[QCModel]]:
    """Each held-out part's predicted Dice from a model fitted on its (fit_rows, held_rows) complement, and the
    models in split order; every fit groups its own cross-validation by patient (or source image)."""
    predicted, models = np.full(len(table), np.nan), []
    for fit_rows, held_rows in splits:
        fit = table.iloc[fit_rows]
        models.append(QCModel.fit(fit, fit["dice"], good_dice=good_dice, groups=_groups(fit)))
        predicted[held_rows] = models[-1].predict(table.iloc[held_rows])
    return predicted, models


def pick_bar(dice, predicted, *, good_dice: float, rate: float) -> float:
    """The flag bar under which `rate` of the good masks' (true Dice >= good_dice) predicted Dice lie, at most:
    the predicted Dice of the good mask at that rank. Picked on cross-validated predictions, so that the share
    holds for masks the model has not seen. Without any good mask (a barely trained segmenter) QC can vouch for
    no mask: the bar is 1, every mask is flagged, and the log says why."""
    dice, predicted = np.asarray(dice, np.float64), np.asarray(predicted, np.float64)
    good = np.sort(predicted[(dice >= good_dice) & np.isfinite(predicted)])
    if not len(good):
        log.warning("no good calibration mask (Dice >= %g): flag bar 1, every mask is flagged", good_dice)
        return 1.0
    return float(good[min(int(np.floor(rate * len(good))), len(good) - 1)])


def flag_bar(table: pd.DataFrame, predicted: np.ndarray, qc_settings) -> tuple[float, float | None]:
    """(bar, the good-flag rate it was picked for): the configured fixed bar (rate None), or the bar picked on
    the calibration masks' cross-validated predictions (`infer.qc.min_predicted_dice: calibrated`)."""
    if qc_settings.min_predicted_dice != "calibrated":
        return float(qc_settings.min_predicted_dice), None
    rate = qc_settings.good_flag_rate
    return pick_bar(table["dice"], predicted, good_dice=qc_settings.good_dice, rate=rate), float(rate)


def flagged_by(table: pd.DataFrame, predicted: np.ndarray, settings, bar: float | None = None) -> np.ndarray:
    """Which rows inference would flag, given their predicted Dice (anatomy rules included) and the flag bar
    (default: `flag_bar` of the settings on these rows)."""
    bar = flag_bar(table, predicted, settings.qc)[0] if bar is None else bar
    out = []
    for rec, p in zip(table.to_dict("records"), predicted):
        out.append(bool(qc.anatomy_flags(rec, settings.qc)) or not p >= bar)
    return np.array(out, bool)


def summarise(table: pd.DataFrame, predicted: np.ndarray, settings, bar: float | None = None) -> dict:
    """Cross-validated tracking on clean masks (what inference mostly sees) and on all masks."""
    flagged = flagged_by(table, predicted, settings, bar)
    good_dice = settings.qc.good_dice
    clean = (table["degradation"] == "clean").to_numpy()
    return {
        "clean": tracking(predicted[clean], table["dice"][clean], flagged[clean], good_dice=good_dice),
        "all": tracking(predicted, table["dice"], flagged, good_dice=good_dice),
    }


def held_out_films(store) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Every film the training split holds out (the store's validate and test splits): images, masks, ids
    ("<split>/<image_id>") and patients ("<dataset>/<patient_id>" where the index has them)."""
    from cxlseg.training.store import load_split

    images, masks, ids, patients = [], [], [], []
    for split in SPLITS:
        split_images, split_masks, index = load_split(store, split)
        names = index["image_id"].astype(str) if "image_id" in index else pd.Series(range(len(split_images)))
        names = [f"{split}/{n}" for n in names]
        if "patient_id" in index:
            dataset = index["dataset"].astype(str) if "dataset" in index else pd.Series([""] * len(index))
            patients += [f"{d}/{p}" for d, p in zip(dataset, index["patient_id"].astype(str))]
        else:
            patients += names
        images.append(np.asarray(split_images))
        masks.append(np.asarray(split_masks))
        ids += names
    return np.concatenate(images), np.concatenate(masks), ids, patients


def calibrate(store_dir, predictor, settings, out_json, out_csv, out_plot, *, seed: int) -> QCModel:
    """Fit the predicted-Dice model on every held-out film of the store, clean and degraded, and store in it the
    flag bar (`flag_bar`); write model, table and plot."""
    images, masks, ids, patients = held_out_films(store_dir)
    table = measure(
        images, masks, ids, predictor, settings,
        degraded=settings.qc.calibration_degraded, seed=seed, patients=patients,
    )  # fmt: skip
    table["predicted_cv"] = cross_validated(table, good_dice=settings.qc.good_dice, seed=seed)
    bar, rate = flag_bar(table, table["predicted_cv"].to_numpy(), settings.qc)
    info = {
        "model_id": predictor.model_id,
        "tta_flip": predictor.tta_flip,
        "n_images": int(len(images)),
        "n_patients": int(len(set(patients))),
        "degraded_per_image": settings.qc.calibration_degraded,
        "cross_validated": summarise(table, table["predicted_cv"].to_numpy(), settings, bar),
    }
    model = QCModel.fit(
        table, table["dice"], good_dice=settings.qc.good_dice, groups=_groups(table), info=info
    ).with_bar(bar, rate)
    model.save(out_json)
    write_csv(table, out_csv)
    plot_calibration(table, bar, out_plot)
    clean = info["cross_validated"]["clean"]
    log.info("predicted Dice (cross-validated, clean masks): Pearson %.3f, MAE %.4f", clean["pearson"], clean["mae"])
    log.info("flag bar: %s", bar_text(bar, rate, settings.qc.good_dice))
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

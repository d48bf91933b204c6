"""The predicted-Dice model: QC features of a mask -> the Dice it most likely has against a human outline.

Fitted where the truth is known (the training store's validate and test splits, clean and degraded: see
`calibrate`), with scikit-learn: standardised features -> ridge regression on -log(1 - Dice) -> isotonic
regression onto Dice.
The fitted numbers are saved as plain JSON (no pickle: the artefact is data, not code) and applied with
numpy, so a shard of 24,000 images pays microseconds per image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from cxlseg.io import read_json, write_json

# The features QC computes per mask (qc.qc_metrics); a model uses those present in its calibration set.
FEATURES = (
    "member_agreement",
    "member_agreement_min",
    "flip_agreement",
    "perturb_agreement",
    "mean_fg_prob",
    "soft_dice",
    "cleanup_agreement",
    "boundary_entropy",
    "mean_entropy",
    "lung_area_fraction",
    "lr_log_ratio",
    "solidity",
    "centroid_x",
    "centroid_y",
    "height_fraction",
    "n_components",
    "edge_touch",
    "film_fraction",
    "polarity_score",
)
# Features that crowd just below 1 on good masks: -log(1 - x) spreads that end, where the decisions are.
NEAR_ONE = frozenset(
    {
        "member_agreement",
        "member_agreement_min",
        "flip_agreement",
        "perturb_agreement",
        "mean_fg_prob",
        "soft_dice",
        "cleanup_agreement",
    }
)
FORMAT = "cxlseg-qc-model/2"  # /2: the flag bar and the rate it was picked for


def _transform(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if name in NEAR_ONE:
        return -np.log(np.clip(1.0 - values, 1e-3, None))
    return values


@dataclass(frozen=True)
class QCModel:
    """Predicted Dice = isotonic(ridge(standardised features)), the ridge fitted to -log(1 - Dice) and the
    isotonic map taking its score back to Dice; `good_lo/hi` bound each feature on good masks.

    The flag bar lives here, not in the config, so that inference and the reports read the one bar calibration
    chose: `min_predicted_dice` (NaN until `with_bar`; a saved model always has one) and `good_flag_rate`, the share
    of good calibration masks it was picked to flag (None: a fixed bar from the config)."""

    features: tuple[str, ...]
    fill: tuple[float, ...]  # median of each feature: stands in for a NaN
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    iso_x: tuple[float, ...]
    iso_y: tuple[float, ...]
    good_lo: tuple[float, ...]  # 1st percentile of the feature over masks with Dice >= good_dice
    good_hi: tuple[float, ...]  # 99th percentile
    good_dice: float
    min_predicted_dice: float
    good_flag_rate: float | None
    info: dict = field(default_factory=dict)

    # --- fit ---------------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls, table: pd.DataFrame, dice, *, good_dice: float, groups=None, target: str | None = None, info=None
    ) -> "QCModel":
        """Fit on one row of features per mask and its true Dice; uninformative features are left out.

        The ridge's target is Dice itself ("dice") or -log(1 - Dice) ("log": a Dice of 0.90 vs 0.95 weighs as
        much as 0.5 vs 0.75, so accuracy goes where the flag is decided). Unless `target` is given, the one with
        the smaller error on good masks wins a cross-validation grouped by `groups` (the source image, so a
        degraded copy never validates its own original); without groups, "dice".
        """
        dice = np.asarray(dice, np.float64)
        if len(dice) < 5:
            raise ValueError(f"a predicted-Dice model needs at least 5 masks with known Dice, got {len(dice)}")
        names = [f for f in FEATURES if f in table and table[f].notna().any() and table[f].nunique() > 1]
        if not names:
            raise ValueError("no QC feature varies over the calibration masks")
        raw = table[names].to_numpy(np.float64)
        choice = {"target": target or "dice"}
        if target is None and groups is not None and len(set(groups)) >= 3:
            choice = _choose_target(raw, dice, np.asarray(groups), names, good_dice)
        fill, scaler, ridge, (iso_x, iso_y) = _fit_parts(raw, dice, names, choice["target"])
        good = dice >= good_dice
        ref = np.where(np.isnan(raw), fill, raw)
        ref = ref[good] if good.sum() >= 5 else ref
        return cls(
            features=tuple(names),
            fill=_floats(fill),
            mean=_floats(scaler.mean_),
            scale=_floats(scaler.scale_),
            coef=_floats(ridge.coef_),
            intercept=float(ridge.intercept_),
            iso_x=_floats(iso_x),
            iso_y=_floats(iso_y),
            good_lo=_floats(np.percentile(ref, 1, axis=0)),
            good_hi=_floats(np.percentile(ref, 99, axis=0)),
            good_dice=float(good_dice),
            min_predicted_dice=math.nan,
            good_flag_rate=None,
            info={"n_masks": int(len(dice)), "alpha": float(ridge.alpha_), **choice, **(info or {})},
        )

    def with_bar(self, min_predicted_dice: float, good_flag_rate: float | None = None) -> "QCModel":
        """The model with its flag bar: picked to flag `good_flag_rate` of good masks, or fixed (rate None)."""
        return replace(
            self,
            min_predicted_dice=float(min_predicted_dice),
            good_flag_rate=None if good_flag_rate is None else float(good_flag_rate),
        )

    # --- apply -------------------------------------------------------------------------------------

    def _z(self, raw: np.ndarray) -> np.ndarray:
        """Standardised design rows of raw feature values (N, features); NaN stands in as the median."""
        return (_design(self.features, raw, np.array(self.fill)) - np.array(self.mean)) / np.array(self.scale)

    def _score_to_dice(self, z: np.ndarray, area) -> np.ndarray:
        predicted = np.interp(z @ np.array(self.coef) + self.intercept, self.iso_x, self.iso_y)
        return predicted if area is None else np.where(np.asarray(area) > 0, predicted, 0.0)

    def _row(self, metrics: dict) -> np.ndarray:
        """One mask's features as a (1, features) row, straight from its metrics (no DataFrame: per-image path)."""
        missing = [f for f in self.features if f not in metrics]
        if missing:
            raise ValueError(f"QC features missing for the predicted-Dice model: {missing}")
        return np.array([[np.nan if metrics[f] is None else metrics[f] for f in self.features]], np.float64)

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Predicted Dice in [0, 1] per row; an empty mask (area 0) is 0."""
        missing = [f for f in self.features if f not in table]
        if missing:
            raise ValueError(f"QC features missing for the predicted-Dice model: {missing}")
        z = self._z(table[list(self.features)].to_numpy(np.float64))
        return self._score_to_dice(z, table["lung_area_fraction"] if "lung_area_fraction" in table else None)

    def predict_one(self, metrics: dict) -> float:
        """`predict` for one mask's metrics dict (what inference calls per image)."""
        return float(self._score_to_dice(self._z(self._row(metrics)), metrics.get("lung_area_fraction"))[0])

    def reasons(self, metrics: dict) -> list[str]:
        """Why a mask scores low: features beyond their range on good masks, on the side that lowers the
        prediction (`low_<feature>` / `high_<feature>`); failing that, the feature that lowers it most."""
        z = self._z(self._row(metrics))[0]
        contribution = z * np.array(self.coef)  # < 0: this feature pulls the prediction down
        out = []
        for i, name in enumerate(self.features):
            value = metrics.get(name)
            if value is None or not np.isfinite(value) or contribution[i] >= 0:
                continue
            if value < self.good_lo[i]:
                out.append(f"low_{name}")
            elif value > self.good_hi[i]:
                out.append(f"high_{name}")
        if not out and (contribution < 0).any():
            i = int(np.argmin(contribution))
            out.append(f"{'low' if z[i] < 0 else 'high'}_{self.features[i]}")
        return out

    # --- files -------------------------------------------------------------------------------------

    def save(self, path: Path | str) -> None:
        """Plain JSON (NaN written as null, so any JSON reader takes it); a model without its flag bar is refused."""
        if not _is_bar(self.min_predicted_dice):
            raise ValueError(f"{path}: the predicted-Dice model has no flag bar (QCModel.with_bar)")
        write_json(path, _json_safe({"format": FORMAT, **asdict(self)}))

    @classmethod
    def load(cls, path: Path | str) -> "QCModel":
        """Read a saved model; a file that is not one, or is inconsistent, raises naming the file."""
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a cxlseg predicted-Dice model ({FORMAT})")
        data.pop("format")
        try:
            model = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except TypeError as exc:
            raise ValueError(f"{path}: {exc}") from None
        n = len(model.features)
        lengths = {len(getattr(model, k)) for k in ("fill", "mean", "scale", "coef", "good_lo", "good_hi")}
        unknown = set(model.features) - set(FEATURES)
        if lengths != {n} or len(model.iso_x) != len(model.iso_y) or not model.iso_x or unknown:
            raise ValueError(f"{path}: inconsistent predicted-Dice model (features {model.features})")
        if not _is_bar(model.min_predicted_dice) or not _is_rate(model.good_flag_rate):
            raise ValueError(
                f"{path}: flag bar {model.min_predicted_dice!r} (rate {model.good_flag_rate!r}) is not a Dice in [0, 1]"
            )
        return model


TARGETS = {"dice": lambda d: d, "log": lambda d: -np.log(np.clip(1.0 - d, 1e-3, None))}


def centred_knots(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Centred isotonic regression (Oron & Flournoy 2017): each plateau of an isotonic fit's knots becomes one
    knot at its centre, so the map interpolated through them rises strictly between plateaus. A plain isotonic
    map ties every mask of a plateau, masks the ridge tells apart included; a tie that straddles the flag bar
    flags all of them or none."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    starts = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])
    ends = np.r_[starts[1:] - 1, len(y) - 1]
    return (x[starts] + x[ends]) / 2, y[starts]


def _fit_parts(raw: np.ndarray, dice: np.ndarray, names, target: str):
    """Median fill, scaler, ridge (on the target) and the knots of the centred isotonic map from its score to
    Dice."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    fill = np.nanmedian(raw, axis=0)
    x = _design(names, raw, fill)
    scaler = StandardScaler().fit(x)
    ridge = RidgeCV(alphas=np.logspace(-2, 3, 11)).fit(scaler.transform(x), TARGETS[target](dice))
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(ridge.predict(scaler.transform(x)), dice)
    return fill, scaler, ridge, centred_knots(iso.X_thresholds_, iso.y_thresholds_)


def _choose_target(raw: np.ndarray, dice: np.ndarray, groups: np.ndarray, names, good_dice: float) -> dict:
    """The ridge target with the smaller grouped-cross-validated error on good masks (where flags are decided)."""
    from sklearn.model_selection import GroupKFold

    folds = list(GroupKFold(min(5, len(set(groups)))).split(raw, dice, groups))
    errors = {}
    for target in TARGETS:
        predicted = np.empty(len(dice))
        for fit_rows, held in folds:
            fill, scaler, ridge, knots = _fit_parts(raw[fit_rows], dice[fit_rows], names, target)
            predicted[held] = np.interp(ridge.predict(scaler.transform(_design(names, raw[held], fill))), *knots)
        good = dice >= good_dice if (dice >= good_dice).any() else np.ones(len(dice), bool)
        errors[target] = float(np.mean(np.abs(predicted - dice)[good]))
    return {"target": min(errors, key=errors.get), "cv_mae_good": errors}


def _design(names, raw: np.ndarray, fill: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(raw), fill, raw)
    return np.column_stack([_transform(n, filled[:, i]) for i, n in enumerate(names)])


def _is_bar(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def _is_rate(value) -> bool:
    return value is None or (_is_bar(value) and value < 1.0)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values).ravel())


def bar_text(bar, rate, good_dice) -> str:
    """The flag bar and where it came from, in words (the log and both reports quote it)."""
    if bar is None:
        return "none (no QC model)"
    if rate is None:
        return f"predicted Dice < {bar:.3f}, a fixed bar (infer.qc.min_predicted_dice)"
    return (
        f"predicted Dice < {bar:.3f}, picked to flag {100 * rate:g} % of good calibration masks "
        f"(Dice ≥ {good_dice:g}, cross-validated predictions)"
    )


def describe(model: QCModel) -> list[tuple[str, float]]:
    """(feature, weight) strongest first: what the report shows of the model (weights on standardised features)."""
    return sorted(zip(model.features, model.coef), key=lambda t: -abs(t[1]))


def tracking(predicted, true, flagged=None, *, good_dice: float) -> dict:
    """How well predicted Dice tracks true Dice: Pearson, Spearman, mean absolute error, and (given flags)
    the share of good masks (true Dice >= good_dice) flagged and of bad masks caught."""
    from scipy.stats import pearsonr, spearmanr

    predicted, true = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    n = len(true)
    out = {"n": int(n), "pearson": math.nan, "spearman": math.nan, "mae": math.nan, "mean_dice": math.nan}
    if n:
        out.update(mae=float(np.mean(np.abs(predicted - true))), mean_dice=float(true.mean()))
    if n >= 3 and np.ptp(predicted) > 0 and np.ptp(true) > 0:
        out.update(pearson=float(pearsonr(predicted, true)[0]), spearman=float(spearmanr(predicted, true)[0]))
    if flagged is not None:
        flagged, good = np.asarray(flagged, bool), true >= good_dice
        out.update(
            n_good=int(good.sum()),
            n_bad=int((~good).sum()),
            good_flagged=float(flagged[good].mean()) if good.any() else math.nan,
            bad_caught=float(flagged[~good].mean()) if (~good).any() else math.nan,
        )
    return out

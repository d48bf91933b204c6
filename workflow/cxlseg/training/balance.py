"""How many augmented copies the train split gets, and of which originals: the plan `augment` executes.

Two ways to say it (config `augment`):

- per-class ``targets``: each class grows to a fixed count, whichever dataset its images come from;
- per-dataset-and-class ``multipliers``: each (dataset, class) group grows to round(originals x multiplier).
  This is the paper's Table II, whose nine counts are per dataset and class (Shenzhen TB 336 -> 3,360 and
  normal 326 -> 326; Montgomery TB 58 -> 580 and normal 80 -> 320; V7 COVID-19 517 -> 3,619, pneumonia
  3,987 -> 3,987, normal 1,602 -> 3,204): x10, x1, x10, x4, x7, x1, x2. Multipliers scale with the split,
  so the same setting reproduces the table on the full sets and keeps its proportions on a train split.

A plan is a list of (label, position of the original in the split, k): k numbers a class's copies, so a copy's
seed (`augment.sample_seed`) and id are unique within the class across datasets too.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cxlseg.ingest.labels import LABELS

log = logging.getLogger(__name__)

Plan = list[tuple[str, int, int]]


def _label_index(label: str) -> int:
    return LABELS.index(label) if label in LABELS else 99


def check_targets(train: pd.DataFrame, targets: dict[str, int] | None) -> dict[str, int]:
    """A positive target for a class with no training images is a configuration error, not a silent zero."""
    targets = {k: int(v) for k, v in (targets or {}).items()}
    present = set(train["label"])
    for label, target in targets.items():
        if target < 0:
            raise ValueError(f"augment target for class {label!r} is negative ({target})")
        if target > 0 and label not in present:
            raise ValueError(
                f"augment target for class {label!r} is {target} but the train split has no "
                f"{label!r} images; set its target to 0 or add a dataset with that class"
            )
    return targets


def _draw(rows: np.ndarray, need: int, rng: np.random.Generator) -> np.ndarray:
    """`need` originals out of `rows`: seeded shuffles, each original used evenly."""
    return np.concatenate([rng.permutation(rows) for _ in range(-(-need // len(rows)))])[:need]


def plan_augmentation(train: pd.DataFrame, targets: dict[str, int], seed: int) -> Plan:
    """Per-class targets: which original each augmented copy comes from."""
    plan = []
    for label in sorted(targets):
        rows = train.index[train["label"] == label].to_numpy()
        need = targets[label] - len(rows)
        if need <= 0:
            if targets[label] and need < 0:
                log.warning(
                    "class %s has %d training originals, above its target %d: kept all, none added",
                    label,
                    len(rows),
                    targets[label],
                )
            continue
        order = _draw(rows, need, np.random.default_rng([seed, _label_index(label)]))
        plan += [(label, int(pos), k) for k, pos in enumerate(order)]
    return plan


def dataset_targets(train: pd.DataFrame, multipliers: dict[str, dict[str, float]]) -> dict[tuple[str, str], int]:
    """(dataset, class) -> total after augmentation: round(originals x multiplier); groups not listed keep their
    originals (x1). A multiplier below 1 would drop originals, which augmentation never does."""
    counts = train.groupby(["dataset", "label"]).size()
    totals = {}
    for (dataset, label), n in counts.items():
        factor = float(multipliers.get(dataset, {}).get(label, 1.0))
        if factor < 1:
            raise ValueError(f"augment multiplier for {dataset}/{label} is {factor}: it must be >= 1")
        totals[(dataset, label)] = int(round(n * factor))
    for dataset, by_label in multipliers.items():
        for label in by_label:
            if (dataset, label) not in totals:
                log.warning("augment multiplier for %s/%s: the train split has no such images", dataset, label)
    return totals


def plan_by_dataset(train: pd.DataFrame, multipliers: dict[str, dict[str, float]], seed: int) -> Plan:
    """Per-dataset-and-class multipliers: which original each augmented copy comes from (originals of the same
    dataset and class only)."""
    totals = dataset_targets(train, multipliers)
    plan: Plan = []
    next_k: dict[str, int] = {}
    for (dataset, label), total in sorted(totals.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rows = train.index[(train["dataset"] == dataset) & (train["label"] == label)].to_numpy()
        need = total - len(rows)
        log.info("%s %s: %d originals -> %d", dataset, label, len(rows), total)
        if need <= 0:
            continue
        datasets = sorted(train["dataset"].unique())
        order = _draw(rows, need, np.random.default_rng([seed, _label_index(label), 1 + datasets.index(dataset)]))
        start = next_k.get(label, 0)
        plan += [(label, int(pos), start + k) for k, pos in enumerate(order)]
        next_k[label] = start + need
    return plan


def plan_balance(
    train: pd.DataFrame, targets: dict[str, int] | None, multipliers: dict[str, dict[str, float]] | None, seed: int
) -> Plan:
    """The plan of the train split: multipliers when given, else per-class targets, else nothing."""
    if multipliers:
        return plan_by_dataset(train, multipliers, seed)
    return plan_augmentation(train, check_targets(train, targets), seed) if targets else []

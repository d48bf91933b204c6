"""The ``classify:`` config section as one frozen dataclass.

Fields carry no defaults: the schema holds them, and ``build_settings(ClassifySettings,
config["classify"])`` fills every field from the validated section.
"""

from __future__ import annotations

from dataclasses import dataclass

from cxlseg.classify.cohort import check_labels
from cxlseg.config import RuleSettings, build_settings


@dataclass(frozen=True)
class ClassifySettings(RuleSettings):
    """One field per key of the ``classify:`` schema section (descriptions live there). Its outcome, also recorded
    in metrics.json, leaves out the speed-only keys, the run list and the report labels (only the summary reads
    them)."""

    SECTIONS = ("classify",)
    NOT_OUTCOME = frozenset({"enabled", "models", "report_labels"})

    enabled: bool
    models: tuple[str, ...]
    labels: tuple[str, ...]
    report_labels: tuple[str, ...]
    uncertain: str
    input_size: int
    resize: str
    channels: int
    head_hidden: int
    augment: bool
    brightness: float
    contrast: tuple[float, float]
    epochs: int
    patience: int
    early_stopping: str
    normalise: str
    batch_size: int
    lr: float
    pretrained: bool
    recalibrate_bn: bool
    num_workers: int
    device: str
    amp: bool
    max_train_batches: int | None


@dataclass(frozen=True)
class ClassifyRunSettings(RuleSettings):
    """Rule classify: the `classify` section and the run's seed."""

    classify: ClassifySettings
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> "ClassifyRunSettings":
        return cls(build_settings(ClassifySettings, config["classify"]), config["seed"])


@dataclass(frozen=True)
class ClassifySummarySettings(RuleSettings):
    """Rule classify_summary: the labels Table III reports."""

    report_labels: tuple[str, ...]

    @classmethod
    def from_config(cls, config: dict) -> "ClassifySummarySettings":
        return cls(tuple(config["classify"]["report_labels"]))


def check_report_labels(labels, report_labels) -> None:
    """Table III can only report labels the classifiers learned."""
    check_labels(labels)
    missing = [c for c in check_labels(report_labels) if c not in labels]
    if missing:
        raise ValueError(f"classify.report_labels {missing} are not among classify.labels")

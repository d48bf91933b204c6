"""The ``classify:`` config section as one frozen dataclass.

Fields carry no defaults: the schema holds them, and ``build_settings(ClassifySettings,
config["classify"])`` fills every field from the validated section.
"""

from __future__ import annotations

from dataclasses import dataclass

from cxlseg.classify.cohort import INPUT_KINDS, check_labels
from cxlseg.classify.networks import check_name
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


def check_report_labels(labels, report_labels) -> None:
    """Table III can only report labels the classifiers learned."""
    check_labels(labels)
    missing = [c for c in check_labels(report_labels) if c not in labels]
    if missing:
        raise ValueError(f"classify.report_labels {missing} are not among classify.labels")

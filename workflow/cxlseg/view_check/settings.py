"""The settings of rule train_view_check, kept apart from the work: the DAG build reads them, and should not load
torch to do so."""

from __future__ import annotations

from dataclasses import dataclass

from cxlseg.config import RuleSettings, build_settings


@dataclass(frozen=True)
class ViewCheckSettings(RuleSettings):
    """Rule train_view_check: the config's ``view_check`` section and the run's seed (defaults: the schema)."""

    NOT_OUTCOME = frozenset({"enabled", "archive_samples"})  # whether it runs; view_samples' key

    enabled: bool
    size: int
    samples_per_view: int
    validate_per_view: int
    archive_samples: int
    abdomen_negatives: bool
    epochs: int
    batch_size: int
    lr: float
    threshold: float | str  # a fixed bar, or "calibrated" (view_check.training.pick_view_bar)
    frontal_flag_rate: float
    seed: int

    @classmethod
    def from_config(cls, config: dict, **overrides) -> "ViewCheckSettings":
        return build_settings(cls, config["view_check"], **{"seed": config["seed"], **overrides})

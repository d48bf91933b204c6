"""The tables rules' settings: the `tables` section (rule quality_table) and the merge's view of it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cxlseg.config import RuleSettings, build_settings


@dataclass(frozen=True)
class TablesSettings(RuleSettings):
    """The `tables` config section plus the run's seed (defaults live in the schema)."""

    split_source: str
    split_unit: str
    cxlseg_split: str | None
    cxlseg_split_missing: str
    train: float
    validate: float
    test: float
    include_flagged: bool
    review_file: str | None
    drop_rejected: bool
    seed: int
    report_text: str

    @classmethod
    def from_config(cls, config: dict) -> "TablesSettings":
        return build_settings(cls, config["tables"], seed=config["seed"], report_text=config["mimic"]["report_text"])

    @property
    def ratios(self) -> tuple[float, float, float]:
        return (self.train, self.validate, self.test)

    @property
    def review_changes_tables(self) -> bool:
        """A review changes the four tables only when rejected images leave them or accepted flagged ones come back."""
        return self.drop_rejected or not self.include_flagged


@dataclass(frozen=True)
class MergeTablesSettings(TablesSettings):
    """Rule merge_tables: the tables section, without review_file when the review cannot change the four tables,
    so a new review file reruns the quality table (rule quality_table, `TablesSettings`) but not the merge."""

    @classmethod
    def from_config(cls, config: dict) -> "MergeTablesSettings":
        settings = super().from_config(config)
        return settings if settings.review_changes_tables else dataclasses.replace(settings, review_file=None)

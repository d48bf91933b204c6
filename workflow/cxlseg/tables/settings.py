"""The tables rules' settings: the `tables` section (rule quality_table) and the merge's view of it; and the
files the merge writes, as its rule names them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class TableFiles:
    """What merge_tables writes (the rule's outputs): the four CXLSeg tables, the failed table (CSV.gz) and the
    summary (JSON), each named by the rule."""

    metadata: Path
    segmented: Path
    split: Path
    mask: Path
    failed: Path
    summary: Path

    TABLES = ("metadata", "segmented", "split", "mask")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, Path(getattr(self, f.name)))

    @classmethod
    def from_rule(cls, named_output) -> "TableFiles":
        """From the rule's named outputs (a Snakemake Namedlist or anything with these attributes)."""
        return cls(**{f.name: getattr(named_output, f.name) for f in dataclasses.fields(cls)})

    def tables(self) -> dict[str, Path]:
        """The four CXLSeg tables by name."""
        return {name: getattr(self, name) for name in self.TABLES}

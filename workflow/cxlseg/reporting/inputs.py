"""Every file the run report's pages read, as the rules declared them.

Why: the report used to rebuild ~15 result paths from a results folder, so a stage's output could change name or
go missing without Snakemake knowing the report depended on it. Here each file is a named input of the rule
(tests/test_rule_files.py checks that the names match), an absent optional one is None, and the pages read
nothing else (a test audits every file they open).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

# The dataset tables the report previews, in page order (their field names below)
DATASET_TABLES = ("metadata", "segmented", "split", "mask", "failed")


def _one(value) -> Path | None:
    """A named input: one path, or None for an input function that returned [] (a stage switched off)."""
    if value is None or isinstance(value, (str, os.PathLike)):
        return Path(value) if value else None
    values = list(value)
    if len(values) > 1:
        raise ValueError(f"one file expected, got {values}")
    return Path(values[0]) if values else None


@dataclass(frozen=True)
class ReportFiles:
    """The run report's inputs (None where the run did not write one) and the folder the shard manifests' mask
    paths are relative to (infer_shard's output root; the masks themselves are listed by the manifests)."""

    tables_summary: Path | None = None  # CXLSeg/summary.json
    metadata: Path | None = None
    segmented: Path | None = None
    split: Path | None = None
    mask: Path | None = None
    failed: Path | None = None
    selection_summary: Path | None = None
    selected: Path | None = None
    used: Path | None = None  # the segmenter inference uses, scored on the test split
    qc_model: Path | None = None
    qc_summary: Path | None = None
    comparison: Path | None = None
    counts: Path | None = None
    store_images: Path | None = None  # the store's test images: their side is the grid HD95 is measured on
    table3: Path | None = None
    table3_all_labels: Path | None = None
    manifests: tuple[Path, ...] = ()
    benchmarks: tuple[Path, ...] = ()
    images_root: Path | None = None

    LISTS = ("manifests", "benchmarks")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.LISTS:
                value = [value] if isinstance(value, (str, os.PathLike)) else value  # one file named alone
                object.__setattr__(self, f.name, tuple(Path(p) for p in value))
            else:
                object.__setattr__(self, f.name, _one(value))

    @classmethod
    def from_rule(cls, named_input, **params) -> ReportFiles:
        """From a rule's named inputs (a Snakemake Namedlist or a dict); every field the rule does not name stays
        empty, and `params` adds the rest (images_root)."""
        names = {f.name for f in dataclasses.fields(cls)}
        keys = named_input.keys() if hasattr(named_input, "keys") else []
        given = {k: (named_input[k] if isinstance(named_input, dict) else getattr(named_input, k)) for k in keys}
        unknown = sorted(set(given) - names)
        if unknown:
            raise ValueError(f"not a run report input: {', '.join(unknown)}")
        return cls(**given, **params)

    def tables(self) -> dict[str, Path | None]:
        """The dataset tables by name, in page order."""
        return {name: getattr(self, name) for name in DATASET_TABLES}

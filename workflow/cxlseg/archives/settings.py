"""Rule list_archive's settings (`ArchiveSettings`): which archive, how many shards; defaults in the schema."""

from __future__ import annotations

from dataclasses import dataclass

from cxlseg.config import RuleSettings, build_settings

MIMIC = "mimic"  # listed by the MIMIC selection (inference/select_images), not by an adapter


@dataclass(frozen=True)
class ArchiveSettings(RuleSettings):
    """The `archive` config section but its root and metadata CSV, which reach the rule as params and inputs."""

    SECTIONS = ("archive",)

    kind: str
    shards: int

    @classmethod
    def from_config(cls, config: dict, **overrides) -> "ArchiveSettings":
        return build_settings(cls, config["archive"], **overrides)

    @property
    def other(self) -> bool:
        """True for every archive but MIMIC-CXR-JPG (which keeps its own selection and tables)."""
        return self.kind != MIMIC

    def shard_ids(self) -> list[str]:
        """p00..p{N-1}: the shards `records.shard_of` hashes patients into."""
        return [f"p{i:02d}" for i in range(self.shards)]

"""The settings of rule calibrate_qc, kept apart from the work: the DAG build reads them, and should not load torch
to do so."""

from __future__ import annotations

from dataclasses import dataclass

from cxlseg.config import RuleSettings
from cxlseg.inference.settings import InferSettings


@dataclass(frozen=True)
class CalibrateSettings(RuleSettings):
    """Rule calibrate_qc: inference exactly as the shards run it, and the seed of the degradations."""

    infer: InferSettings
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> "CalibrateSettings":
        return cls(InferSettings.from_config(config), config["seed"])

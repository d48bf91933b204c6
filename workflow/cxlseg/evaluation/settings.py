"""The settings of rules evaluate and select_model, kept apart from the work: the DAG build reads them, and should
not load torch or matplotlib to do so."""

from __future__ import annotations

import dataclasses

from cxlseg.config import RuleSettings
from cxlseg.inference.settings import InferSettings


@dataclasses.dataclass(frozen=True)
class EvaluateSettings(InferSettings):
    """Rule evaluate: the `infer` section, of which only the flips, threshold and clean-up shape a test score, so
    only they rerun evaluation (QC, ensemble and output keys do not)."""

    NOT_OUTCOME = frozenset(f.name for f in dataclasses.fields(InferSettings)) - {
        "threshold",
        "tta_flip",
        "film",
        "postprocess",
    }


@dataclasses.dataclass(frozen=True)
class SelectModelSettings(RuleSettings):
    """Rule select_model: the architectures compared, the validation metric, and a forced choice if any."""

    architectures: tuple[str, ...]
    select_metric: str
    inference_model: str | None

    @classmethod
    def from_config(cls, config: dict) -> "SelectModelSettings":
        models = config["models"]
        return cls(tuple(models["architectures"]), config["train"]["select_metric"], models["inference_model"])

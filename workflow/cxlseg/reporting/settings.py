"""The settings of the reporting rules (qc_report, run_report), each one frozen object built from the config."""

from __future__ import annotations

from dataclasses import dataclass

from cxlseg.config import RuleSettings


@dataclass(frozen=True)
class QCReportSettings(RuleSettings):
    """Rule qc_report: the masks' size and resize (`preprocess.size`, `.interpolation`) and the predicted-Dice
    bar a mask is flagged under; whether the run is the synthetic demo (its pages say so)."""

    size: int
    interpolation: str
    min_predicted_dice: float
    demo: bool

    @classmethod
    def from_config(cls, config: dict) -> "QCReportSettings":
        prep, demo = config["preprocess"], config["demo"]["enabled"]
        return cls(prep["size"], prep["interpolation"], config["infer"]["qc"]["min_predicted_dice"], demo)


@dataclass(frozen=True)
class RunReportSettings(RuleSettings):
    """Rule run_report: whether the run is the synthetic demo (every page says so), and the sample grid's seed."""

    demo: bool
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> "RunReportSettings":
        return cls(config["demo"]["enabled"], config["seed"])


@dataclass(frozen=True)
class ReviewPageSettings(RuleSettings):
    """Rule review_page: the predicted-Dice bar the gallery marks, and whether the run is the synthetic demo."""

    min_predicted_dice: float
    demo: bool

    @classmethod
    def from_config(cls, config: dict) -> "ReviewPageSettings":
        return cls(config["infer"]["qc"]["min_predicted_dice"], config["demo"]["enabled"])

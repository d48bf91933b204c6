"""The settings of the reporting rules (qc_report, run_report), each one frozen object built from the config."""

from __future__ import annotations

from dataclasses import dataclass

from cxlseg.config import RuleSettings


@dataclass(frozen=True)
class QCReportSettings(RuleSettings):
    """Rule qc_report: the masks' size and resize (`preprocess.size`, `.interpolation`); whether the run is the
    synthetic demo (its pages say so). The flag bar is the QC model's (calibrate_qc stores it)."""

    size: int
    interpolation: str
    demo: bool

    @classmethod
    def from_config(cls, config: dict) -> "QCReportSettings":
        prep, demo = config["preprocess"], config["demo"]["enabled"]
        return cls(prep["size"], prep["interpolation"], demo)


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
    """Rule review_page: whether the run is the synthetic demo; the bar the gallery marks is the QC model's."""

    demo: bool

    @classmethod
    def from_config(cls, config: dict) -> "ReviewPageSettings":
        return cls(config["demo"]["enabled"])

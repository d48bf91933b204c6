"""What the demo archive holds (`DemoSpec`, one field per `demo.*` config key) and its random streams, and what the
view check's phantom films are (`ViewPhantomSettings`): the phantom rules' settings, light enough for the DAG build."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cxlseg.config import RuleSettings, build_settings, default_config


@dataclass(frozen=True)
class DemoSpec(RuleSettings):
    """What the demo archive holds: one field per `demo.*` config key, defaults in the config schema only."""

    SECTIONS = ("demo",)

    seed: int
    n_shenzhen: int
    n_montgomery: int
    n_v7: int
    n_mimic_subjects: int
    shenzhen_side: tuple[int, int]  # square-ish films, side range in px
    montgomery_long_side: tuple[int, int]  # 4892:4020 films, portrait or landscape
    v7_side: tuple[int, int]
    mimic_long_side: tuple[int, int]
    tb_fraction: float  # Shenzhen/Montgomery share of tuberculosis films
    finding_rate: float  # MIMIC: chance per study that each drawn CheXpert class is present
    uncertain_rate: float  # ... and that a present finding is reported as uncertain (-1.0)
    max_studies_per_subject: int
    jpeg_quality: int

    @classmethod
    def from_config(cls, config: Mapping, **overrides) -> "DemoSpec":
        """From a validated config's `demo:` section (its keys `enabled` and `out` are not the archive's)."""
        spec = build_settings(cls, dict(config["demo"]), **overrides)
        spec.validate()
        return spec

    @classmethod
    def default(cls, **overrides) -> "DemoSpec":
        """The schema's defaults, with some fields replaced (tests, the CLI)."""
        return cls.from_config(default_config(), **overrides)

    def validate(self) -> None:
        """What the schema cannot say: ranges ordered, minimums the special cases need."""
        if self.n_shenzhen < 3:
            raise ValueError(f"demo n_shenzhen must be >= 3 (normal, TB, one without mask), got {self.n_shenzhen}")
        if self.n_montgomery < 2:
            raise ValueError(f"demo n_montgomery must be >= 2 (8-bit and 16-bit), got {self.n_montgomery}")
        if self.n_v7 < 6:
            raise ValueError(f"demo n_v7 must be >= 6 (variants, two laterals, one CT), got {self.n_v7}")
        if self.n_mimic_subjects < 4:
            raise ValueError(
                f"demo n_mimic_subjects must be >= 4 (three prefixes and the special cases), "
                f"got {self.n_mimic_subjects}"
            )
        for name in ("shenzhen_side", "montgomery_long_side", "v7_side", "mimic_long_side"):
            lo, hi = getattr(self, name)
            if not 64 <= lo <= hi:
                raise ValueError(f"demo {name} must be a range 64 <= lo <= hi, got {(lo, hi)}")
        if self.max_studies_per_subject < 1:
            raise ValueError(f"demo max_studies_per_subject must be >= 1, got {self.max_studies_per_subject}")
        if not 50 <= self.jpeg_quality <= 100:
            raise ValueError(f"demo jpeg_quality must be within [50, 100], got {self.jpeg_quality}")
        for name in ("tb_fraction", "finding_rate", "uncertain_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"demo {name} must be within [0, 1], got {getattr(self, name)}")


def stream(spec: DemoSpec, *keys: int) -> np.random.Generator:
    """One independent stream per (dataset, item): adding a dataset or an image never reshuffles the others."""
    return np.random.default_rng([spec.seed, *keys])


def film_size(rng: np.random.Generator, long_range: tuple[int, int], aspect: float) -> tuple[int, int]:
    """(height, width) with the given height/width ratio and a long side drawn from the range."""
    long_side = int(rng.integers(long_range[0], long_range[1] + 1))
    if aspect >= 1:
        return long_side, max(64, int(round(long_side / aspect)))
    return max(64, int(round(long_side * aspect))), long_side


@dataclass(frozen=True)
class ViewPhantomSettings(RuleSettings):
    """Rule view_phantoms: films per group for training and validation, their size, abdomen crops or not."""

    size: int
    samples_per_view: int
    validate_per_view: int
    abdomen_negatives: bool
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> "ViewPhantomSettings":
        view = config["view_check"]
        keys = ("size", "samples_per_view", "validate_per_view", "abdomen_negatives")
        return cls(**{k: view[k] for k in keys}, seed=config["seed"])


@dataclass(frozen=True)
class DemoArchiveSpec(RuleSettings):
    """Rule demo_archive: the synthetic archive of `archive.kind` (another archive than MIMIC) the demo segments."""

    SECTIONS = ("demo",)

    kind: str
    seed: int
    archive_patients: int
    archive_side: tuple[int, int]

    @classmethod
    def from_config(cls, config: Mapping, **overrides) -> "DemoArchiveSpec":
        return build_settings(cls, dict(config["demo"]), **{"kind": config["archive"]["kind"], **overrides})

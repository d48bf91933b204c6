"""The settings of rules augment and train, kept apart from the work: the DAG build reads them, and should not load
torch or albumentations to do so. Names are checked against the schema's enums (tests check that the model
registry and the augmentation presets match them)."""

from __future__ import annotations

import dataclasses

from cxlseg.config import RuleSettings, build_settings, schema_enum

ARCHITECTURES = schema_enum("models", "architectures")  # training.models.MODELS, by name
AUGMENT_PRESETS = schema_enum("train", "augment_preset")  # training.dataset.AUGMENT_RANGES, by name
SCHEDULERS = schema_enum("train", "scheduler")
SELECT_METRICS = schema_enum("train", "select_metric")


@dataclasses.dataclass(frozen=True)
class AugmentSettings:
    """The config's ``augment`` section, built by ``config.build_settings(AugmentSettings, config["augment"])``.

    No defaults here: they live in the schema only (``config.default_config()["augment"]`` for tests).
    """

    enabled: bool
    targets: dict[str, int]
    hflip_p: float
    vflip_p: float
    rotate_p: float
    rotate_limit: float
    scale_p: float
    scale_limit: float
    crop_p: float
    crop_scale: tuple[float, float]
    noise_p: float
    noise_std: tuple[float, float]
    montage_samples: int
    multipliers: dict[str, dict[str, float]] | None

    @property
    def active_targets(self) -> dict[str, int] | None:
        """Per-class targets, or None when augmentation is disabled (or multipliers replace them): the store then
        holds the originals only."""
        return dict(self.targets) if self.enabled and self.multipliers is None else None

    @property
    def active_multipliers(self) -> dict[str, dict[str, float]] | None:
        """Per-dataset-and-class multipliers (paper Table II), or None: per-class targets or no augmentation."""
        return {d: dict(m) for d, m in self.multipliers.items()} if self.enabled and self.multipliers else None


@dataclasses.dataclass(frozen=True)
class AugmentRunSettings(RuleSettings):
    """Rule augment: the `augment` section, the store's image size and resize (`preprocess.size`,
    `preprocess.interpolation`) and the run's seed."""

    augment: AugmentSettings
    size: int
    interpolation: str
    seed: int

    @classmethod
    def from_config(cls, config: dict) -> "AugmentRunSettings":
        augment, prep = build_settings(AugmentSettings, config["augment"]), config["preprocess"]
        return cls(augment=augment, size=prep["size"], interpolation=prep["interpolation"], seed=config["seed"])


@dataclasses.dataclass(frozen=True)
class TrainConfig(RuleSettings):
    """Rule train: one architecture's training run; stored inside every checkpoint (defaults live in the schema)."""

    SECTIONS = ("train",)

    architecture: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    scheduler: str
    plateau_factor: float
    plateau_patience: int
    min_lr: float
    size: int
    in_channels: int
    clahe_clip: float
    clahe_tiles: int
    clahe_space: str
    interpolation: str
    encoder_name: str
    encoder_weights: str | None
    base_channels: int | None
    seed: int
    num_workers: int
    device: str
    amp: bool
    bce_weight: float
    dice_weight: float
    augment_online: bool
    augment_preset: str
    max_train_batches: int | None
    patience: int | None
    select_metric: str
    threshold: float

    def __post_init__(self) -> None:
        problems = []
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture {self.architecture!r} not in {sorted(ARCHITECTURES)}")
        if self.scheduler not in SCHEDULERS:
            problems.append(f"scheduler {self.scheduler!r} not in {SCHEDULERS}")
        if self.select_metric not in SELECT_METRICS:
            problems.append(f"select_metric {self.select_metric!r} not in {SELECT_METRICS}")
        if self.augment_preset not in AUGMENT_PRESETS:
            problems.append(f"augment_preset {self.augment_preset!r} not in {AUGMENT_PRESETS}")
        if self.in_channels not in (1, 3):
            problems.append(f"in_channels must be 1 or 3, got {self.in_channels}")
        for name in ("epochs", "batch_size", "size", "clahe_tiles"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    @classmethod
    def from_config(cls, config: dict, architecture: str, **overrides) -> "TrainConfig":
        """The run of one architecture from the validated config (train, models, preprocess sections)."""
        train, models, prep = config["train"], config["models"], config["preprocess"]
        own = {"sa_unet": models["sa_unet_base_channels"], "plain_unet": None, "plain_unetplusplus": None}
        width = own.get(architecture, models["base_channels"])  # None: the architecture's own paper widths
        values = {
            **train,
            "architecture": architecture,
            "size": train["input_size"] or prep["size"],
            "in_channels": prep["channels"],
            "clahe_clip": prep["clahe_clip"],
            "clahe_tiles": prep["clahe_tiles"],
            "clahe_space": prep["clahe_space"],
            "interpolation": prep["interpolation"],
            "encoder_name": models["encoder_name"],
            "encoder_weights": models["encoder_weights"],
            "base_channels": width,
            "seed": config["seed"],
            "threshold": config["infer"]["threshold"],
        }
        return build_settings(cls, values, **overrides)

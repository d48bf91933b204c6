"""Configs and settings for tests, built from the schema as the rules build them; every setting not named is the
schema's default, as in a run with an empty config file."""

from __future__ import annotations

import copy

from cxlseg.config import deep_update, default_config, validate_config
from cxlseg.inference.settings import InferSettings
from cxlseg.training.settings import TrainConfig


def build_config(**sections) -> dict:
    """default_config() deep-updated with `sections` (nested dicts merge), validated like a real config."""
    config = default_config()
    deep_update(config, copy.deepcopy(sections))
    return validate_config(config)


# Tiny and fast: a few epochs of a narrow network on 32 px images, on the CPU, without worker processes.
TINY_TRAIN = dict(epochs=3, batch_size=4, lr=3e-3, size=32, base_channels=4, num_workers=0, device="cpu")


def build_train_config(architecture: str = "sa_unet", **overrides) -> TrainConfig:
    values = {**TINY_TRAIN, **overrides}
    if architecture in ("unet", "unetplusplus"):
        values.setdefault("encoder_name", "resnet18")
    return TrainConfig.from_config(build_config(), architecture, **values)


# Inference in tests: small batches, no decode processes, CPU, lossless masks (exact comparisons).
TEST_INFER = dict(batch_size=3, num_workers=0, device="cpu", mask_format="png")


def build_infer_settings(*, output_size: int | None = None, **infer) -> InferSettings:
    """The infer section at its schema defaults, then TEST_INFER, then `infer` (nested sections merge)."""
    config = build_config(infer=deep_update(copy.deepcopy(TEST_INFER), copy.deepcopy(infer)))
    return InferSettings.from_config(config, **({"output_size": output_size} if output_size else {}))

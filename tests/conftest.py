"""Fixtures only (helpers live in tests/helpers): configs and settings built from the schema, tiny training stores
and models, a tiny MIMIC shard with good and bad images, and the training sets' native layouts (bad cases
included).

Factories are fixtures returning functions, so a test asks for what it needs and changes only what matters
to it; every setting not named comes from the schema's defaults, as in a run with an empty config file.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest
import torch
from cxlseg.training.settings import TrainConfig
from cxlseg.training.trainer import train_model
from helpers import layouts as layout_builders
from helpers import shards as shard_helpers
from helpers.bench import load_bench as _load_bench
from helpers.settings import build_config, build_infer_settings, build_train_config
from helpers.shards import confident_prob, fit_toy_qc_model, run_infer, two_lung_mask, write_shard
from helpers.training import model_files, write_store

torch.set_num_threads(1)
cv2.setNumThreads(1)


@dataclass(frozen=True)
class Trained:
    """A trained toy model: its store, folder, best checkpoint, config and what train_model described."""

    store: Path
    folder: Path
    checkpoint: Path
    config: TrainConfig
    described: dict


# =========================================================================== configs and settings


@pytest.fixture(scope="session")
def make_config():
    """make_config(**sections) -> a validated config: the schema defaults with `sections` deep-merged."""
    return build_config


@pytest.fixture(scope="session")
def train_config():
    """train_config(architecture="sa_unet", **overrides) -> a tiny TrainConfig built as the train rule builds it."""
    return build_train_config


@pytest.fixture(scope="session")
def infer_settings():
    """infer_settings(output_size=None, **infer_keys) -> InferSettings built as the infer rule builds them."""
    return build_infer_settings


# =========================================================================== training store and model


@pytest.fixture(scope="session")
def make_store():
    """make_store(root, counts=((split, n), ...), size=32, seed=0) -> root holding {split}_images/masks/index."""
    return write_store


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """One shared store (train 16, validate 6, test 6 images of 32 px); tests must not write into it."""
    return write_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, store):
    """A tiny sa_unet trained for 2 epochs on `store` (shared, read-only)."""
    folder = tmp_path_factory.mktemp("trained") / "sa_unet"
    cfg = build_train_config("sa_unet", epochs=2)
    described = train_model(store, model_files(folder), cfg)
    return Trained(
        store=store, folder=folder, checkpoint=folder / "checkpoint_best.pt", config=cfg, described=described
    )


# =========================================================================== a tiny MIMIC shard


@pytest.fixture
def shard(tmp_path):
    """A shard list of 9 images (5 decodable; corrupt, truncated, missing and an unsafe id) in a MIMIC layout."""
    return write_shard(tmp_path)


@pytest.fixture(scope="session")
def load_bench():
    """load_bench(name) -> the module of tests/bench/<name>.py."""
    return _load_bench


@pytest.fixture(scope="session")
def qc_model():
    """A predicted-Dice model fitted on synthetic features (true Dice follows soft_dice and flip agreement)."""
    return fit_toy_qc_model()[0]


@pytest.fixture(scope="session")
def toys():
    """Toy models and images for inference tests (DarkIsLung, DarkerThanMean, Mirrored, RecordsDtype,
    radiograph_like, spec(net_size, in_channels), SUBJECT, SHARD_CASES)."""
    names = ("DarkIsLung", "DarkerThanMean", "Mirrored", "RecordsDtype", "radiograph_like", "SUBJECT", "SHARD_CASES")
    return types.SimpleNamespace(spec=shard_helpers.toy_spec, **{n: getattr(shard_helpers, n) for n in names})


@pytest.fixture(scope="session")
def infer_run():
    """infer_run(shard, out="out", *, model=None, spec=None, predictor=None, on_flush=None, **infer_keys)."""
    return run_infer


# =========================================================================== native training-set layouts


@pytest.fixture(scope="session")
def layouts():
    """The layout builders and their constants (tests/helpers/layouts.py)."""
    return layout_builders


@pytest.fixture(scope="session")
def lung_fields():
    """A 224 px two-lung mask (`mask(size, hole)`) and a confident probability map of a mask (`prob`), for the
    clean-up and QC tests."""
    return types.SimpleNamespace(mask=two_lung_mask, prob=confident_prob)


# =========================================================================== the tiny demo, run once


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The whole workflow on the tiny demo (helpers.workflow.TINY), run once per session: its working directory."""
    import yaml
    from helpers.workflow import ROOT, TINY, snakemake

    workdir = tmp_path_factory.mktemp("demo-run")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    snakemake(workdir, "--cores", "2", "--profile", str(ROOT / "profiles" / "local"))
    return workdir

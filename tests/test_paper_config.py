"""config/paper.yaml reproduces the CXLSeg paper, and the authors' code where the paper is silent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cxlseg.config import load_config

CONFIG = Path(__file__).resolve().parents[1] / "config"
PAPER = CONFIG / "paper.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    """What a run with --configfile config/config.yaml config/paper.yaml sees (validated, defaults filled)."""
    return load_config(CONFIG / "config.yaml", PAPER)


def test_training_recipe(config):
    train = config["train"]
    assert train["epochs"] == 15  # paper (the authors' code trains 20)
    assert train["lr"] == pytest.approx(1e-5) and train["batch_size"] == 5
    assert train["scheduler"] == "plateau"
    assert train["plateau_factor"] == pytest.approx(0.1) and train["plateau_patience"] == 5
    assert train["min_lr"] == pytest.approx(1e-7)
    assert train["select_metric"] == "loss"
    assert train["input_size"] is None and train["augment_online"] is False and train["patience"] is None
    assert train["bce_weight"] == train["dice_weight"] == 1.0 and train["weight_decay"] == 0.0


def test_preprocessing(config):
    pre = config["preprocess"]
    assert pre["size"] == 224 and pre["channels"] == 3
    assert pre["clahe_space"] == "lab" and pre["clahe_clip"] == 2.0 and pre["clahe_tiles"] == 8
    assert pre["interpolation"] == "linear"  # authors' cv2.resize default; tests/test_paper_pixels.py checks pixels


def test_segmented_images_are_written_as_published(config):
    assert config["infer"]["segmented_channels"] == 3 and config["infer"]["jpeg_quality"] == 95
    assert config["infer"]["segmented_source"] == "original"


def test_the_authors_are_credited():
    text = PAPER.read_text(encoding="utf-8")
    assert "Nimalsiri et al., 2023" in text and "Indeewara" not in text


def test_models_and_inference(config):
    models = config["models"]
    assert models["inference_model"] == "sa_unet"
    # Table IV's four: Vanilla U-Net (the authors' plain U-Net), U-Net++ (Zhou et al.), Attention U-Net, SA-UNet
    assert models["architectures"] == ["plain_unet", "plain_unetplusplus", "attention_unet", "sa_unet"]
    assert models["base_channels"] == 64 and models["sa_unet_base_channels"] == 16
    assert (
        config["infer"]["tta_flip"] is False
        and config["infer"]["ensemble"] == 1
        and config["infer"]["threshold"] == 0.5
    )


def test_split_reproduces_the_published_counts(config):
    assert config["tables"]["split_unit"] == "image" and config["tables"]["split_source"] == "random"


def test_every_setting_names_its_source():
    """Each value line says where it comes from, so nobody mistakes a local choice for the paper's."""
    sources = re.compile(r"#.*\b(paper|authors' code|neither source)\b")
    for number, line in enumerate(PAPER.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#") or line.rstrip().endswith(":"):
            continue
        assert sources.search(line), f"paper.yaml line {number} names no source: {line!r}"


def test_paper_wins_over_the_authors_code_on_epochs():
    line = next(x for x in PAPER.read_text(encoding="utf-8").splitlines() if x.strip().startswith("epochs:"))
    assert "paper" in line and "20" in line
    assert yaml.safe_load(PAPER.read_text(encoding="utf-8"))["train"]["epochs"] == 15

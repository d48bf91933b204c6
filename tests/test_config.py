import pytest
import yaml

from cxlseg.config import ConfigError, load_config, load_schema, shard_ids, validate_config

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_defaults_reproduce_the_paper():
    cfg = validate_config({})
    assert cfg["preprocess"] == {"size": 224, "channels": 1, "clahe_clip": 2.0, "clahe_tiles": 8}
    assert cfg["train"]["epochs"] == 15
    assert cfg["augment"]["targets"] == {"tuberculosis": 3940, "covid19": 3619, "pneumonia": 3987, "normal": 3850}
    assert sum(cfg["augment"]["targets"].values()) == 15396
    assert cfg["mimic"]["views"] == ["AP", "PA"]
    assert cfg["mimic"]["shards"] == [f"p{i}" for i in range(10, 20)]
    assert cfg["models"]["encoder_weights"] is None


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"trian": {}}, "trian"),
        ({"train": {"epochs": "many"}}, "train.epochs"),
        ({"infer": {"postprocess": {"closin": 3}}}, "infer.postprocess.closin"),
        ({"mimic": {"shards": ["p20"]}}, "mimic.shards.0"),
        ({"models": {"architectures": ["segformer"]}}, "models.architectures.0"),
    ],
)
def test_bad_keys_are_named(bad, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(bad)


def test_split_ratios_must_sum_to_one():
    with pytest.raises(ConfigError, match="training_split"):
        validate_config({"training_split": {"train": 0.9, "val": 0.2, "test": 0.1}})


def test_shipped_configs_validate():
    production = load_config(ROOT / "config" / "config.yaml")
    demo = load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "demo.yaml")
    assert production["demo"]["enabled"] is False and demo["demo"]["enabled"] is True
    # the recipe tuned on real radiographs (docs/segmentation-quality.md) is the production default
    assert production["train"] | {"input_size": 160, "epochs": 100, "scheduler": "cosine", "augment_online": True,
                                  "augment_preset": "strong"} == production["train"]
    assert production["infer"]["tta_flip"] is True and production["preprocess"]["size"] == 224


def test_paper_overlay_restores_the_schema_defaults(tmp_path):
    """config/paper.yaml puts back the paper's recipe, which is what the schema's defaults describe."""
    (tmp_path / "empty.yaml").write_text("{}\n")
    defaults = load_config(tmp_path / "empty.yaml")
    production = load_config(ROOT / "config" / "config.yaml")
    paper = load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml")
    overlay = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    for block, keys in overlay.items():
        assert {k: paper[block][k] for k in keys} == {k: defaults[block][k] for k in keys}, block
    tuned = {(b, k) for b in ("models", "train", "infer") for k in production[b] if production[b][k] != defaults[b][k]}
    assert tuned <= {(b, k) for b, keys in overlay.items() for k in keys}  # the overlay undoes every tuned key


def test_every_schema_key_is_described():
    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            if "$ref" not in sub and "allOf" not in sub:
                assert "description" in sub, f"{path}{name} has no description"
            walk(sub, f"{path}{name}.")

    walk(load_schema(), "")


def test_shard_ids():
    assert shard_ids(["p10", "p11"]) == ["p10", "p11"]
    assert shard_ids(["p10"], 3) == ["p10-c0", "p10-c1", "p10-c2"]


def test_config_yaml_is_plain_yaml():
    assert isinstance(yaml.safe_load((ROOT / "config" / "demo.yaml").read_text()), dict)

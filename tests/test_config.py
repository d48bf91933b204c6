import dataclasses
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import cxlseg
import pytest
import yaml
from cxlseg.archives.registry import kinds as archive_kinds
from cxlseg.archives.settings import ArchiveSettings
from cxlseg.classify.settings import ClassifyRunSettings, ClassifySummarySettings
from cxlseg.config import (
    ConfigError,
    build_settings,
    default_config,
    load_config,
    load_schema,
    section_defaults,
    shard_ids,
    speed_only_keys,
    validate_config,
)
from cxlseg.evaluation.settings import EvaluateSettings, SelectModelSettings
from cxlseg.inference.mask_qc import QCSettings
from cxlseg.inference.postprocess import CleanupSettings
from cxlseg.inference.predictor import InputSpec
from cxlseg.inference.select_images import SelectionSettings
from cxlseg.inference.settings import InferSettings
from cxlseg.ingest.readers import IngestSettings
from cxlseg.phantoms.spec import DemoArchiveSpec, DemoSpec, ViewPhantomSettings
from cxlseg.qc.settings import CalibrateSettings
from cxlseg.reporting.settings import QCReportSettings, ReviewPageSettings, RunReportSettings
from cxlseg.tables.settings import MergeTablesSettings, TablesSettings
from cxlseg.training.dataset import AUGMENT_RANGES
from cxlseg.training.models import MODELS
from cxlseg.training.settings import AUGMENT_PRESETS, SELECT_METRICS, AugmentRunSettings, AugmentSettings, TrainConfig
from cxlseg.training.splits import TrainingSplitSettings
from cxlseg.training.trainer import HISTORY_COLUMNS
from cxlseg.view_check.samples import ViewSamplesSettings
from cxlseg.view_check.settings import ViewCheckSettings

RULE_SETTINGS = (
    DemoSpec,
    TrainingSplitSettings,
    AugmentRunSettings,
    EvaluateSettings,
    SelectModelSettings,
    CalibrateSettings,
    ViewSamplesSettings,
    QCReportSettings,
    RunReportSettings,
    ClassifyRunSettings,
    ClassifySummarySettings,
    ViewPhantomSettings,
    MergeTablesSettings,
    ReviewPageSettings,
    ArchiveSettings,
    DemoArchiveSpec,
)

ROOT = Path(__file__).resolve().parents[1]


def test_schema_defaults():
    """What a run with an empty config file gets (config/paper.yaml is test_paper_config.py's)."""
    cfg = validate_config({})
    assert cfg == default_config()
    assert cfg["preprocess"] == {
        "size": 224,
        "channels": 1,
        "clahe_clip": 2.0,
        "clahe_tiles": 8,
        "clahe_space": "gray",
        "interpolation": "area",
    }
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
    with pytest.raises(ConfigError, match=r"training_split\.val "):
        validate_config({"training_split": {"val": 0.1}})  # the old split name is an unknown key
    with pytest.raises(ConfigError, match="tables: train\\+validate\\+test must sum to 1"):
        validate_config({"tables": {"train": 0.5}})
    with pytest.raises(ConfigError, match="training_split"):
        validate_config({"training_split": {"train": 0.9, "validate": 0.2, "test": 0.1}})


def test_shipped_configs_validate():
    production = load_config(ROOT / "config" / "config.yaml")
    demo = load_config(ROOT / "config" / "config.yaml", ROOT / "config" / "demo.yaml")
    assert production["demo"]["enabled"] is False and demo["demo"]["enabled"] is True
    # the recipe tuned on real radiographs (docs/segmentation-quality.md) is the production default
    assert (
        production["train"]
        | {"input_size": 160, "epochs": 100, "scheduler": "cosine", "augment_online": True, "augment_preset": "strong"}
        == production["train"]
    )
    assert production["infer"]["tta_flip"] is True and production["preprocess"]["size"] == 224


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
    with pytest.raises(ValueError, match="shard ids"):
        shard_ids(["../p10"], 1)
    with pytest.raises(ValueError, match="chunks_per_shard"):
        shard_ids(["p10"], 0)


def test_config_yaml_is_plain_yaml():
    assert isinstance(yaml.safe_load((ROOT / "config" / "demo.yaml").read_text()), dict)


# --------------------------------------------------------------------------- settings from the schema


def _settings_from_defaults() -> dict:
    """Every settings dataclass built from default_config(), as the rules build them."""
    cfg = default_config()
    infer = InferSettings.from_config(cfg)
    return {
        TrainConfig: TrainConfig.from_config(cfg, "sa_unet"),
        InferSettings: infer,
        CleanupSettings: build_settings(CleanupSettings, cfg["infer"]["postprocess"]),
        QCSettings: build_settings(QCSettings, cfg["infer"]["qc"]),
        SelectionSettings: SelectionSettings.from_config(cfg),
        TablesSettings: TablesSettings.from_config(cfg),
        AugmentSettings: build_settings(AugmentSettings, cfg["augment"]),
        ViewCheckSettings: ViewCheckSettings.from_config(cfg),
        InputSpec: InputSpec.from_train_config(dataclasses.asdict(TrainConfig.from_config(cfg, "sa_unet"))),
        **{cls: cls.from_config(cfg) for cls in RULE_SETTINGS},
        IngestSettings: IngestSettings.from_config(cfg, "v7"),
    }


def test_every_rule_settings_class_is_built_from_the_config_and_covered_here():
    """common.smk builds these (one per rule); a new one must be added to RULE_SETTINGS so the check above sees it."""
    common = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "common.smk").read_text()
    used = set(re.findall(r"\*\*settings\((\w+)", "\n".join(p.read_text() for p in common_rules())))
    known = {c.__name__ for c in (*RULE_SETTINGS, IngestSettings, TrainConfig, InferSettings, SelectionSettings)}
    known |= {TablesSettings.__name__, ViewCheckSettings.__name__}
    assert used and used <= known, used - known
    assert all(name in common for name in used)


def common_rules():
    return sorted((Path(__file__).resolve().parents[1] / "workflow" / "rules").glob("*.smk"))


def test_schema_enums_match_the_code():
    """The schema's enums (which the settings check names against) are the model registry, the augmentation
    presets, the validation columns the trainer writes and the archive adapters."""
    assert tuple(load_schema()["properties"]["archive"]["properties"]["kind"]["enum"]) == archive_kinds()
    models = load_schema()["properties"]["models"]["properties"]
    assert set(models["architectures"]["items"]["enum"]) == set(MODELS)
    assert set(models["inference_model"]["enum"]) - {None} == set(MODELS)
    assert set(AUGMENT_PRESETS) == set(AUGMENT_RANGES)
    assert {f"val_{metric}" for metric in SELECT_METRICS} <= set(HISTORY_COLUMNS)


@pytest.mark.parametrize("cls", list(_settings_from_defaults()), ids=lambda c: c.__name__)
def test_no_default_in_code_differs_from_the_schema(cls):
    built = _settings_from_defaults()[cls]
    assert isinstance(built, cls)
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            assert field.default == getattr(built, field.name), f"{cls.__name__}.{field.name}"
        assert field.default_factory is dataclasses.MISSING, f"{cls.__name__}.{field.name}"


# Schema sections whose values travel as settings objects into package functions: a function parameter named like
# one of their leaves takes the value from its caller, never from a default of its own.
TRAVELLING = ("infer.threshold", "infer.postprocess.", "infer.qc.", "tables.", "seed")


def _schema_leaves(node: dict, prefix: str = "") -> dict:
    """Every schema default by dotted key."""
    leaves = {}
    for key, value in node.items():
        leaves |= _schema_leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value}
    return leaves


def _package_functions():
    """(qualified name, function) for every function and method defined in the package (a settings dataclass's
    generated __init__ is the check above's)."""
    for info in pkgutil.walk_packages(cxlseg.__path__, "cxlseg."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{module.__name__}.{name}", obj
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    fn = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                    if inspect.isfunction(fn) and not (attr == "__init__" and dataclasses.is_dataclass(obj)):
                        yield f"{module.__name__}.{name}.{attr}", fn


def restated_defaults(functions, config: dict) -> list[str]:
    """Parameters named like a travelling schema leaf whose default restates that leaf's default."""
    travelling = {k: v for k, v in _schema_leaves(config).items() if k.startswith(TRAVELLING)}
    found = []
    for qualname, fn in functions:
        for param in inspect.signature(fn).parameters.values():
            if param.default is param.empty:
                continue
            keys = [k for k, v in travelling.items() if k.rsplit(".", 1)[-1] == param.name and v == param.default]
            found += [f"{qualname}({param.name}={param.default!r}) restates {key}" for key in keys]
    return found


def test_no_function_default_restates_a_schema_default():
    """Settings travel whole: `infer.threshold` reaches the clean-up, the agreement and the QC features from the
    rule's settings, not from an `= 0.5` in each signature (which would silently win when a caller forgets it)."""
    assert restated_defaults(_package_functions(), default_config()) == []


def test_the_restated_default_check_finds_one():
    def clean(prob, *, threshold=0.5, closing=5, seed=7, good_dice=None):
        return prob

    found = restated_defaults([("clean", clean)], default_config())
    assert found == [
        "clean(threshold=0.5) restates infer.threshold",
        "clean(closing=5) restates infer.postprocess.closing",
    ]


def test_build_settings_needs_every_field_and_converts_values():
    section = default_config()["infer"]["postprocess"]
    with pytest.raises(ConfigError, match="CleanupSettings: config has no key 'closing'"):
        build_settings(CleanupSettings, {k: v for k, v in section.items() if k != "closing"})
    assert build_settings(CleanupSettings, {**section, "unrelated": 1}, closing=9).closing == 9
    infer = InferSettings.from_config(default_config())
    assert isinstance(infer.postprocess, CleanupSettings) and isinstance(infer.qc, QCSettings)
    mimic = SelectionSettings.from_config(default_config())
    assert isinstance(mimic.views, tuple) and isinstance(mimic.shards, tuple)  # lists become tuples (hashable)
    with pytest.raises(dataclasses.FrozenInstanceError):
        infer.threshold = 0.1


def test_default_config_is_a_fresh_copy():
    first = default_config()
    first["infer"]["postprocess"]["closing"] = 99
    assert default_config()["infer"]["postprocess"]["closing"] == 5
    assert section_defaults("infer")["postprocess"]["closing"] == 5


# The infer keys that only change speed; a new one is a decision, so it must show up here.
INFER_SPEED_ONLY = {
    "batch_size",
    "num_workers",
    "device",
    "flush_every",
    "write_threads",
    "amp_dtype",
    "compile",
    "decode_device",
}


def test_speed_only_keys_are_what_the_rerun_triggers_leave_out():
    cfg = default_config()
    assert speed_only_keys("infer") == INFER_SPEED_ONLY
    assert speed_only_keys("train") == {"num_workers", "device", "amp"}
    assert speed_only_keys("classify") == {"num_workers", "device", "amp"}
    infer = InferSettings.from_config(cfg).outcome()
    assert set(infer) == set(cfg["infer"]) - speed_only_keys("infer") | {"output_size"}
    assert {"threshold", "tta_flip", "postprocess", "qc", "segmented_source", "mask_format"} <= set(infer)
    train = TrainConfig.from_config(cfg, "unet").outcome()
    assert "batch_size" in train and "epochs" in train and not {"num_workers", "device", "amp"} & set(train)
    evaluate = EvaluateSettings.from_config(cfg).outcome()
    assert set(evaluate) == {"threshold", "tta_flip", "film", "postprocess"}
    assert set(ClassifyRunSettings.from_config(cfg).outcome()["classify"]) & {"num_workers", "device", "amp"} == set()


def rule_blocks() -> dict[str, str]:
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    text = "\n".join(p.read_text() for p in sorted(rules.glob("*.smk")))
    return dict(re.findall(r"^rule (\w+):\n((?:    .*\n|\n)+)", text, re.M))


def test_every_rule_passes_one_settings_object_and_scripts_read_no_config():
    """A config value reaches a script in one step: the rule's params carry one settings object (and its outcome,
    the rerun trigger); no rule hands a raw config section over, no script reads snakemake.config."""
    blocks = {name: body for name, body in rule_blocks().items() if "script:" in body}
    assert len(blocks) >= 15
    for name, body in blocks.items():
        params = re.search(r"    params:\n((?:        .*\n)+)", body)
        assert params and "**settings(" in params.group(1), name
        assert "config[" not in params.group(1), name
    scripts = Path(__file__).resolve().parents[1] / "workflow" / "scripts"
    for script in scripts.glob("*.py"):
        assert "snakemake.config" not in script.read_text(), script.name


def test_threads_follow_the_stage_cpus_and_resources_come_from_the_schema():
    for name, body in rule_blocks().items():
        if "resources:" not in body:
            continue
        stage = re.search(r'    resources:\n        \*\*stage_resources\("(\w+)"\),\n    params:', body)
        assert stage, f"{name}: resources not read from config.resources (stage_resources), or more than those"
        assert f'threads: resource("{stage.group(1)}", "cpus")' in body, name


def test_every_speed_only_key_is_marked_only_where_it_cannot_change_outputs():
    """speed_only marks exist only on the keys above; a new mark is a decision, so it must show up here."""
    marked = {}

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            if sub.get("speed_only"):
                marked.setdefault(path, set()).add(name)
            walk(sub, f"{path}.{name}" if path else name)

    walk(load_schema(), "")
    assert marked == {
        "train": {"num_workers", "device", "amp"},
        "classify": {"num_workers", "device", "amp"},
        "infer": INFER_SPEED_ONLY,
    }


def _changed(production: dict, defaults: dict, prefix: str = "") -> dict:
    """Dotted key -> (schema default, production value) for every value `production` sets away from the default."""
    out = {}
    for key, value in production.items():
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if isinstance(value, dict) and isinstance(default, dict):
            out.update(_changed(value, default, f"{prefix}{key}."))
        elif value != default:
            out[f"{prefix}{key}"] = (default, value)
    return out


def test_the_readme_lists_what_the_production_config_changes_from_the_schema():
    """README's "Defaults and the production config" table names every value config/config.yaml sets away from
    the schema's default (site paths aside), with both values, so no doc has to call a production value "the
    default"."""
    root = Path(__file__).resolve().parents[1]
    changed = _changed(load_config(root / "config" / "config.yaml"), default_config())
    changed = {k: v for k, v in changed.items() if not k.endswith("root")}  # where the data lives, per site
    readme = (root / "README.md").read_text()
    section = readme.split("**Defaults and the production config.**", 1)[1].split("\n\n", 2)[1]
    listed = {}
    for row in section.splitlines()[2:]:
        keys, defaults, production = (cell.strip() for cell in row.strip("|").split("|"))
        for i, key in enumerate(keys.replace("`", "").split(", ")):
            listed[key] = (defaults.split(", ")[i].split(" (")[0], production.split(", ")[i].split(" (")[0])

    def shown(value) -> str:
        return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    assert set(listed) == set(changed), "README's table and config/config.yaml disagree on which keys differ"
    for key, values in changed.items():
        assert listed[key] == tuple(map(shown, values)), key


def test_the_flag_bar_is_calibrated_or_a_fixed_dice():
    qc = default_config()["infer"]["qc"]
    assert qc["min_predicted_dice"] == "calibrated" and qc["good_flag_rate"] == 0.03  # the schema's defaults
    assert validate_config({"infer": {"qc": {"min_predicted_dice": 0.85}}})["infer"]["qc"]["min_predicted_dice"] == 0.85
    for bad in ({"min_predicted_dice": "auto"}, {"min_predicted_dice": 1.5}, {"good_flag_rate": 1.0}):
        with pytest.raises(ConfigError, match=r"infer\.qc"):
            validate_config({"infer": {"qc": bad}})
    with pytest.raises(ConfigError, match=r"infer\.qc\.calibration_max_images"):  # every held-out film is used
        validate_config({"infer": {"qc": {"calibration_max_images": 20}}})

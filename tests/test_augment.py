"""Class balancing by augmentation and the training store."""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
from cxlseg import io, preprocess
from cxlseg.config import build_settings, default_config
from cxlseg.ingest.readers import ingest_dataset
from cxlseg.training.augment import augment_pair, build_pipeline, build_training_store, sample_seed
from cxlseg.training.settings import AugmentRunSettings, AugmentSettings
from cxlseg.training.store import store_files
from helpers.training import ingest_files

SIZE = 32
VALIDATE = {"CHNCXR_0003_0", "bacterial"}
TEST = {"CHNCXR_0005_0", "healthy"}
# train originals: normal 1, tuberculosis 2, covid19 2, pneumonia 2
TARGETS = {"tuberculosis": 5, "normal": 4, "covid19": 7, "pneumonia": 1}
SCRIPT = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "augment.py"


def settings(**changes) -> AugmentSettings:
    """The schema's augment section (its defaults) with `changes`, built as the rule builds it."""
    return build_settings(AugmentSettings, {**default_config()["augment"], **changes})


@pytest.fixture(scope="module")
def store_inputs(tmp_path_factory, layouts):
    """Ingested Shenzhen + V7 fixtures with a fixed split and one train row whose image vanished."""
    base = tmp_path_factory.mktemp("store_inputs")
    roots = {"shenzhen": base / "shenzhen", "v7": base / "v7"}
    ingest_dirs = {"shenzhen": base / "ingest" / "shenzhen", "v7": base / "ingest" / "v7"}
    layouts.make_shenzhen(roots["shenzhen"])
    layouts.make_v7_json(roots["v7"])
    frames = [ingest_dataset(name, roots[name], ingest_files(ingest_dirs[name])).manifest for name in roots]
    df = pd.concat(frames, ignore_index=True)
    df["split"] = ["validate" if i in VALIDATE else "test" if i in TEST else "train" for i in df["image_id"]]
    ghost = df[df["image_id"] == "CHNCXR_0001_0"].assign(
        image_id="CHNCXR_0077_1", patient_id="CHNCXR_0077", label="tuberculosis", image_path="CXR_png/gone.png"
    )
    df = pd.concat([df, ghost], ignore_index=True)
    df.to_parquet(base / "dataset.parquet", index=False)
    return base / "dataset.parquet", roots, ingest_dirs


def _build(store_inputs, out, seed=5, paths=None, **changes):
    parquet, roots, ingest_dirs = store_inputs
    changes.setdefault("targets", TARGETS)
    return build_training_store(
        parquet, roots, ingest_dirs, out, settings(**changes), size=SIZE, seed=seed, **(paths or {})
    )


def test_store_meets_targets_exactly_and_keeps_validate_test_original(store_inputs, tmp_path):
    counts = _build(store_inputs, tmp_path / "store")
    store = tmp_path / "store"
    table = pd.read_csv(store / "counts.csv")
    train = table[table["split"] == "train"].set_index("label")
    assert train.loc["tuberculosis", "total"] == 5 and train.loc["tuberculosis", "originals"] == 2
    assert train.loc["normal", "total"] == 4 and train.loc["covid19", "total"] == 7
    # a class already above its target keeps its originals and gains nothing
    assert train.loc["pneumonia", "originals"] == 2 and train.loc["pneumonia", "augmented"] == 0
    assert (table[table["split"] != "train"]["augmented"] == 0).all()
    assert counts["train"]["covid19"] == {"originals": 2, "augmented": 5, "total": 7}
    for split in ("train", "validate", "test"):
        index = pd.read_parquet(store / f"{split}_index.parquet")
        images = np.load(store / f"{split}_images.npy", mmap_mode="r")
        masks = np.load(store / f"{split}_masks.npy", mmap_mode="r")
        assert images.shape == masks.shape == (len(index), SIZE, SIZE)
        assert images.dtype == masks.dtype == np.uint8
        assert set(np.unique(masks)) == {0, 1}
        assert (index["row"] == np.arange(len(index))).all()
        assert index["augmented"].any() == (split == "train")
    skipped = pd.read_csv(store / "skipped.csv")
    assert list(skipped["image_id"]) == ["CHNCXR_0077_1"] and "file not found" in skipped["reason"][0]
    montage = io.read_image(store / "augment_montage.jpg")
    assert montage.ndim == 3 and SIZE <= montage.shape[0] <= 560  # fits a 1366x768 screen


def test_no_patient_on_two_sides_and_copies_keep_their_source(store_inputs, tmp_path):
    _build(store_inputs, tmp_path / "store")
    idx = {s: pd.read_parquet(tmp_path / "store" / f"{s}_index.parquet") for s in ("train", "validate", "test")}
    keys = {s: set(zip(i["dataset"], i["patient_id"])) for s, i in idx.items()}
    assert (
        not keys["train"] & keys["validate"]
        and not keys["train"] & keys["test"]
        and not keys["validate"] & keys["test"]
    )
    train = idx["train"]
    originals = train[~train["augmented"]].set_index("image_id")
    copies = train[train["augmented"]]
    assert copies["source_image_id"].isin(originals.index).all()
    assert (originals.loc[copies["source_image_id"], "patient_id"].values == copies["patient_id"].values).all()
    assert (originals.loc[copies["source_image_id"], "label"].values == copies["label"].values).all()
    assert copies["op"].str.len().gt(0).all() and copies["image_id"].is_unique


def test_same_inputs_give_byte_identical_store(store_inputs, tmp_path):
    _build(store_inputs, tmp_path / "a")
    _build(store_inputs, tmp_path / "b")
    for name in (
        "train_images.npy",
        "train_masks.npy",
        "train_index.parquet",
        "validate_images.npy",
        "test_index.parquet",
        "counts.csv",
        "skipped.csv",
    ):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    _build(store_inputs, tmp_path / "c", seed=6)
    assert (tmp_path / "a" / "train_images.npy").read_bytes() != (tmp_path / "c" / "train_images.npy").read_bytes()


def test_positive_target_without_training_images_names_the_class(store_inputs, tmp_path):
    parquet, roots, ingest_dirs = store_inputs
    df = pd.read_parquet(parquet)
    df[df["label"] != "tuberculosis"].to_parquet(tmp_path / "no_tb.parquet", index=False)
    with pytest.raises(ValueError, match="'tuberculosis'"):
        _build((tmp_path / "no_tb.parquet", roots, ingest_dirs), tmp_path / "s")
    # a zero target for the absent class is fine
    counts = _build(
        (tmp_path / "no_tb.parquet", roots, ingest_dirs), tmp_path / "s", targets={**TARGETS, "tuberculosis": 0}
    )
    assert "tuberculosis" not in counts["train"]


def test_disabled_keeps_originals_only_and_outputs_go_where_asked(store_inputs, tmp_path):
    counts = _build(
        store_inputs,
        tmp_path / "s",
        enabled=False,
        paths=dict(counts_path=tmp_path / "counts.csv", montage_path=tmp_path / "montage.png"),
    )
    assert all(c["augmented"] == 0 for split in counts.values() for c in split.values())
    assert pd.read_csv(tmp_path / "counts.csv")["total"].sum() == sum(
        c["total"] for split in counts.values() for c in split.values()
    )
    assert (tmp_path / "montage.png").is_file() and not (tmp_path / "s" / "counts.csv").exists()
    # the same originals, in the same order, as the augmented store's non-augmented rows
    _build(store_inputs, tmp_path / "aug")
    for split in ("train", "validate", "test"):
        plain = pd.read_parquet(tmp_path / "s" / f"{split}_index.parquet")
        augmented = pd.read_parquet(tmp_path / "aug" / f"{split}_index.parquet")
        assert not plain["augmented"].any()
        pd.testing.assert_frame_equal(plain, augmented[~augmented["augmented"]].reset_index(drop=True))
        assert np.array_equal(
            np.load(tmp_path / "s" / f"{split}_images.npy"),
            np.load(tmp_path / "aug" / f"{split}_images.npy")[: len(plain)],
        )


def test_disabled_ignores_targets_without_training_images(store_inputs, tmp_path):
    """enabled: false must not fail on targets that would be impossible if augmenting."""
    counts = _build(store_inputs, tmp_path / "s", enabled=False, targets={**TARGETS, "covid19": 10**6})
    assert counts["train"]["covid19"]["augmented"] == 0


@pytest.mark.parametrize("enabled, interpolation", [(False, "area"), (True, "linear")])
def test_rule_script_runs_with_the_config_section(store_inputs, tmp_path, enabled, interpolation):
    """The rule script gets its settings object from the rule's params and hands the store's files to the package
    (regression: enabled false crashed with 'build_training_store() got multiple values for keyword argument
    targets'), preprocess.interpolation included."""
    parquet, roots, ingest_dirs = store_inputs
    config = default_config()
    config["augment"].update(enabled=enabled, targets=TARGETS)
    config["preprocess"].update(size=SIZE, interpolation=interpolation)
    config["seed"] = 5
    store = tmp_path / "store"
    smk = SimpleNamespace(
        input=SimpleNamespace(
            dataset=str(parquet), manifests=[str(Path(ingest_dirs[d]) / "manifest.parquet") for d in roots]
        ),
        output=SimpleNamespace(
            store=store_files(store),
            counts=str(tmp_path / "counts.csv"),
            montage=str(tmp_path / "montage.png"),
            skipped=str(tmp_path / "skipped.csv"),
        ),
        params=SimpleNamespace(roots=roots, settings=AugmentRunSettings.from_config(config)),
        log=[str(tmp_path / "augment.log")],
    )
    runpy.run_path(str(SCRIPT), init_globals={"snakemake": smk})
    counts = pd.read_csv(tmp_path / "counts.csv")
    assert (counts["augmented"].sum() > 0) == enabled
    assert (store / "validate_index.parquet").is_file() and (tmp_path / "montage.png").is_file()
    assert (tmp_path / "skipped.csv").is_file() and not (store / "skipped.csv").exists()
    index = pd.read_parquet(store / "validate_index.parquet")
    row = pd.read_parquet(parquet).set_index("image_id").loc[index.image_id[0]]
    original = io.read_gray(Path(roots[row.dataset]) / row.image_path)
    stored = np.load(store / "validate_images.npy")[0]
    assert np.array_equal(stored, preprocess.resize(original, SIZE, interpolation))  # the store resizes as configured


def test_settings_come_from_the_schema_in_one_step():
    built = build_settings(AugmentSettings, default_config()["augment"])
    assert built.enabled is True and built.crop_scale == (0.75, 1.0) and built.noise_std == (0.01, 0.04)
    assert built.targets == {"tuberculosis": 3940, "covid19": 3619, "pneumonia": 3987, "normal": 3850}
    assert built.active_targets == built.targets
    assert dataclasses.replace(built, enabled=False).active_targets is None
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(AugmentSettings))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.enabled = False


# --------------------------------------------------------------------------- alignment, one op at a time

OFF = dict(hflip_p=0.0, vflip_p=0.0, rotate_p=0.0, scale_p=0.0, crop_p=0.0, noise_p=0.0)
ONE_OP = {
    "hflip": dict(hflip_p=1.0),
    "vflip": dict(vflip_p=1.0),
    "rotate": dict(rotate_p=1.0, rotate_limit=30.0),
    "zoom": dict(scale_p=1.0, scale_limit=0.3),
    "crop": dict(crop_p=1.0, crop_scale=(0.4, 0.7)),
    "noise": dict(noise_p=1.0, noise_std=(0.03, 0.06)),
}


def _pattern(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric mask and an image drawn from it (mask * 200 + noise)."""
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, (20, 26), (9, 18), 15, 0, 360, 1, -1)
    cv2.rectangle(mask, (38, 8), (55, 30), 1, -1)
    cv2.circle(mask, (46, 50), 7, 1, -1)
    noise = np.random.default_rng(0).normal(20, 5, mask.shape)
    return np.clip(mask * 200.0 + noise, 0, 255).astype(np.uint8), mask


@pytest.mark.parametrize("op", sorted(ONE_OP))
def test_every_op_keeps_image_and_mask_aligned(op):
    image, mask = _pattern()
    pipeline = build_pipeline(64, settings(**{**OFF, **ONE_OP[op]}))
    for seed in range(3):
        out_image, out_mask, applied = augment_pair(pipeline, image, mask, seed)
        assert applied == op
        assert out_image.shape == out_mask.shape == (64, 64) and set(np.unique(out_mask)) <= {0, 1}
        if op != "noise":
            assert (out_mask != mask).any(), "geometry op left the mask unchanged"
        else:
            assert (out_image != image).any() and (out_mask == mask).all()
        seen = (out_image > 100).astype(np.uint8)
        edge = cv2.morphologyEx(out_mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
        off = (seen != out_mask) & ~edge
        assert not off.any(), f"{op}: {int(off.sum())} pixels misaligned away from the mask border"
        assert (seen != out_mask).mean() < 0.05


def test_augment_pair_always_changes_something():
    image, mask = _pattern(32)
    pipeline = build_pipeline(32, settings(**{**OFF, "hflip_p": 0.05, "noise_p": 0.05}))
    for seed in range(10):
        _, _, applied = augment_pair(pipeline, image, mask, seed)
        assert applied in {"hflip", "noise", "hflip+noise"}


def test_ops_fire_independently_with_their_own_probability():
    """Guards against every transform sharing one seed (then equal-p ops would always fire together)."""
    image, mask = _pattern(16)
    probs = dict(hflip_p=0.5, vflip_p=0.1, rotate_p=0.5, scale_p=0.5, crop_p=0.3, noise_p=0.3)
    pipeline = build_pipeline(16, settings(**probs))
    n = 400
    ops = [augment_pair(pipeline, image, mask, sample_seed(1, "normal", k))[2].split("+") for k in range(n)]
    p_any = 1 - np.prod([1 - p for p in probs.values()])
    for name, p in zip(("hflip", "vflip", "rotate", "zoom", "crop", "noise"), probs.values()):
        rate = sum(name in o for o in ops) / n
        assert abs(rate - p / p_any) < 0.08, (name, rate)
    together = sum(("hflip" in o) == ("rotate" in o) for o in ops) / n
    assert together < 0.7


# --------------------------------------------------------------------------- per dataset and class (Table II)

TABLE_II = {  # (dataset, class): (originals, after augmentation), the paper's nine counts
    ("shenzhen", "tuberculosis"): (336, 3360),
    ("shenzhen", "normal"): (326, 326),
    ("montgomery", "tuberculosis"): (58, 580),
    ("montgomery", "normal"): (80, 320),
    ("v7", "covid19"): (517, 3619),
    ("v7", "pneumonia"): (3987, 3987),
    ("v7", "normal"): (1602, 3204),
}


def test_paper_multipliers_reproduce_table_ii_on_the_full_sets():
    """config/paper.yaml's multipliers, given the full public sets' originals, give Table II's counts."""
    from cxlseg.config import load_config
    from cxlseg.training.balance import plan_balance

    config_dir = Path(__file__).resolve().parents[1] / "config"
    paper = build_settings(
        AugmentSettings, load_config(config_dir / "config.yaml", config_dir / "paper.yaml")["augment"]
    )
    assert paper.active_targets is None  # the multipliers replace the per-class targets
    train = pd.DataFrame([{"dataset": d, "label": c} for (d, c), (n, _) in TABLE_II.items() for _ in range(n)]).sample(
        frac=1.0, random_state=0
    )  # order must not matter
    train = train.reset_index(drop=True)
    plan = plan_balance(train, paper.active_targets, paper.active_multipliers, seed=42)
    added = pd.Series([train["dataset"][pos] + "/" + label for label, pos, _ in plan]).value_counts()
    for (dataset, label), (originals, total) in TABLE_II.items():
        assert originals + added.get(f"{dataset}/{label}", 0) == total, (dataset, label)
    assert all(train["label"][pos] == label for label, pos, _ in plan)  # copies of their own class
    per_class = pd.Series([label for label, _, _ in plan]).value_counts()
    assert per_class["normal"] == 240 + 1602 and "pneumonia" not in per_class
    ks = pd.DataFrame(plan, columns=["label", "pos", "k"])
    assert not ks.duplicated(["label", "k"]).any()  # unique seeds and ids within a class across datasets


def test_store_grows_each_dataset_and_class_by_its_multiplier(store_inputs, tmp_path):
    """Multipliers through the whole store: counts per (dataset, class) and copies drawn from their own group."""
    parquet = pd.read_parquet(store_inputs[0])
    _build(store_inputs, tmp_path / "m", multipliers={"shenzhen": {"tuberculosis": 3}, "v7": {"covid19": 2.5}})
    index = pd.read_parquet(tmp_path / "m" / "train_index.parquet")
    originals = index[~index.augmented].groupby(["dataset", "label"]).size()
    totals = index.groupby(["dataset", "label"]).size()
    assert totals["shenzhen", "tuberculosis"] == 3 * originals["shenzhen", "tuberculosis"]
    assert totals["v7", "covid19"] == round(2.5 * originals["v7", "covid19"])
    for group in set(totals.index) - {("shenzhen", "tuberculosis"), ("v7", "covid19")}:
        assert totals[group] == originals[group], group  # not listed: kept as is
    copies = index[index.augmented]
    sources = parquet.set_index("image_id")
    assert (sources.loc[copies.source_image_id, "dataset"].to_numpy() == copies.dataset.to_numpy()).all()
    assert copies.image_id.is_unique


def test_multipliers_below_one_are_rejected(make_config):
    from cxlseg.config import ConfigError
    from cxlseg.training.balance import dataset_targets

    with pytest.raises(ConfigError, match="multipliers"):
        make_config(augment={"multipliers": {"v7": {"covid19": 0.5}}})
    with pytest.raises(ValueError, match="v7/covid19 is 0.5"):
        dataset_targets(pd.DataFrame({"dataset": ["v7"], "label": ["covid19"]}), {"v7": {"covid19": 0.5}})


def test_the_rule_s_files_are_where_the_store_goes(store_inputs, tmp_path):
    """The augment rule hands over its declared files (the store's, counts, montage, skipped) and nothing is
    written anywhere else: no scratch array outlives the build."""
    from cxlseg.training.store import TrainingStore, store_files

    store = TrainingStore.of(store_files(tmp_path / "results" / "store"))
    paths = {
        k: tmp_path / "results" / f"{k}.{ext}" for k, ext in (("montage", "jpg"), ("counts", "csv"), ("skipped", "csv"))
    }
    _build(store_inputs, store, paths={f"{k}_path": v for k, v in paths.items()})
    written = sorted(p.relative_to(tmp_path / "results").as_posix() for p in (tmp_path / "results").rglob("*.*"))
    assert written == sorted(
        [*(f"store/{Path(f).name}" for f in store.files), "counts.csv", "montage.jpg", "skipped.csv"]
    )
    assert list(pd.read_csv(paths["skipped"]).columns) == ["split", "dataset", "image_id", "file", "reason"]

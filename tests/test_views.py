"""The view check: checkpoint format, scoring API, separation of phantom views, determinism, input errors;
the real archive films it also trains on (picking, splitting, decoding, bad files)."""

import dataclasses
import logging

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg import io
from cxlseg.config import default_config
from cxlseg.inference.view_check import ViewChecker
from cxlseg.io import read_json
from cxlseg.mimic import image_relpath
from cxlseg.phantoms.render import render_view_samples
from cxlseg.phantoms.spec import ViewPhantomSettings
from cxlseg.phantoms.view_films import write_view_films
from cxlseg.training.checkpoint import payload, write_checkpoint
from cxlseg.training.models import create_model
from cxlseg.view_check.samples import VIEW_SAMPLE_COLUMNS, pick_view_samples, write_view_samples
from cxlseg.view_check.settings import ViewCheckSettings
from cxlseg.view_check.training import train_view_check, view_bar

TINY = dict(size=32, samples_per_view=16, validate_per_view=4, epochs=10, batch_size=16)


def _settings(**kw) -> ViewCheckSettings:
    return ViewCheckSettings.from_config(default_config(), **{**TINY, **kw})


def _films(path, settings: ViewCheckSettings, seed: int):
    """The phantom films rule view_phantoms hands the view check, for these settings and seed."""
    keys = ("size", "samples_per_view", "validate_per_view", "abdomen_negatives")
    phantoms = ViewPhantomSettings(**{k: getattr(settings, k) for k in keys}, seed=seed)
    write_view_films(path / f"films-{seed}.npz", phantoms)
    return path / f"films-{seed}.npz"


def _store(path, seed=3):
    """A training store with frontal phantoms only (train and validate splits), as `augment` writes it."""
    images, labels = render_view_samples(6, 48, seed)
    frontal = images[np.asarray(labels) == "frontal"]
    path.mkdir()
    for split in ("train", "validate"):
        np.save(path / f"{split}_images.npy", frontal)
        np.save(path / f"{split}_masks.npy", np.zeros_like(frontal))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("view_check")
    metrics = train_view_check(
        root / "view_check.pt",
        _settings(),
        _films(root, _settings(), 5),
        seed=5,
        store_dir=_store(root / "store"),
        metrics_path=root / "vc.json",
    )
    return root, metrics


def test_settings_come_from_the_schema():
    settings = ViewCheckSettings.from_config(default_config())
    assert settings.enabled and settings.size == 64 and settings.threshold == 0.5
    assert settings.frontal_flag_rate == 0.01
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.size = 32


def test_checkpoint_is_self_describing_and_loads_with_weights_only(trained):
    root, metrics = trained
    raw = torch.load(root / "view_check.pt", map_location="cpu", weights_only=True)
    assert raw["architecture"] == "view_cnn" and raw["config"]["size"] == 32 and raw["config"]["threshold"] == 0.5
    assert raw["config"]["settings"]["samples_per_view"] == 16 and raw["config"]["seed"] == 5
    assert 10_000 < raw["params"] < 100_000
    saved = read_json(root / "vc.json")
    assert saved["flagged_store"] == metrics["flagged_store"] and saved["n_store"] == 6
    assert {"flagged_frontal", "flagged_lateral", "flagged_ct", "flagged_not_frontal"} <= set(saved)


@pytest.mark.parametrize(
    ("p", "rate", "bar", "flagged"),
    [
        (np.r_[np.linspace(0.0, 0.02, 198), 0.2, 0.3], 0.01, None, 2),  # the two unsure films, nothing else
        (
            np.r_[np.linspace(0.0, 0.02, 197), 0.7, 0.8, 0.9],
            0.01,
            0.5,
            3,
        ),  # never above 0.5: all three flagged, as before
        (np.r_[np.zeros(150), np.full(50, 0.4)], 0.01, None, 0),  # ties at the rank: none flagged, not 50
        (np.linspace(0.0, 0.6, 99), 0.01, 0.5, None),  # fewer than 1 / rate films: unmeasurable, bar 0.5
    ],
)
def test_the_calibrated_view_bar_flags_the_rate_of_frontal_films_or_what_05_flags(p, rate, bar, flagged, caplog):
    settings = _settings(threshold="calibrated", frontal_flag_rate=rate)
    with caplog.at_level(logging.WARNING):
        picked, picked_rate = view_bar(p, settings)
    assert picked <= 0.5 and (bar is None or picked == bar)
    if flagged is None:
        assert picked_rate is None and "fewer than 1 / frontal_flag_rate" in caplog.text
    else:
        assert picked_rate == rate and int((p >= picked).sum()) == flagged


def test_a_fixed_view_bar_is_kept():
    assert view_bar(np.linspace(0, 1, 500), _settings(threshold=0.7)) == (0.7, None)


def test_training_stores_the_bar_picked_on_the_held_out_frontal_films(tmp_path):
    """100 held-out store films: the checkpoint's bar is the calibrated one, and it flags at most 1 of them."""
    torch.set_num_threads(1)
    images, labels = render_view_samples(130, 48, 11)
    frontal = images[np.asarray(labels) == "frontal"]
    store = tmp_path / "store"
    store.mkdir()
    for split, films in (("train", frontal[:8]), ("validate", np.concatenate([frontal] * 4)[:100])):
        np.save(store / f"{split}_images.npy", films)
        np.save(store / f"{split}_masks.npy", np.zeros_like(films))
    settings = _settings(samples_per_view=4, epochs=1, validate_per_view=2, threshold="calibrated")
    metrics = train_view_check(tmp_path / "vc.pt", settings, _films(tmp_path, settings, 1), seed=1, store_dir=store)
    checker = ViewChecker.from_checkpoint(tmp_path / "vc.pt")
    p = checker.p_not_frontal(np.load(store / "validate_images.npy"))
    assert checker.threshold == view_bar(p, settings)[0] <= 0.5 and checker.config["threshold_rate"] == 0.01
    assert metrics["threshold_films"] == 100 and int(checker.flag(np.load(store / "validate_images.npy")).sum()) <= 1


def test_p_not_frontal_shapes_and_range(trained):
    checker = ViewChecker.from_checkpoint(trained[0] / "view_check.pt")
    images, _ = render_view_samples(2, 40, 9)
    p = checker.p_not_frontal(images)
    assert p.shape == (6,) and p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()
    mixed = [np.zeros((300, 200), np.uint8), images[0], np.full((17, 900), 200, np.uint8)]
    assert checker.p_not_frontal(mixed).shape == (3,)
    assert np.allclose(checker.p_not_frontal(images, batch_size=4), p, atol=1e-6)  # batching changes nothing
    assert checker.flag(images).dtype == bool


def test_tiny_model_separates_unseen_phantom_views(trained):
    checker = ViewChecker.from_checkpoint(trained[0] / "view_check.pt")
    images, labels = render_view_samples(10, 96, seed=424242)  # seeds and size never trained on
    flagged = checker.flag(images)
    frontal = np.asarray(labels) == "frontal"
    assert flagged[~frontal].mean() >= 0.9, flagged
    assert flagged[frontal].mean() <= 0.1, flagged


def test_same_seed_same_weights(tmp_path):
    torch.set_num_threads(1)
    settings = _settings(samples_per_view=4, epochs=2, validate_per_view=2)
    digests = []
    for name in ("a.pt", "b.pt"):
        train_view_check(tmp_path / name, settings, _films(tmp_path, settings, 11), seed=11)
        digests.append(ViewChecker.from_checkpoint(tmp_path / name).model_id)
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((2, 64, 64), np.float32), "uint8"),
        (np.zeros((2, 64, 64, 3), np.uint8), r"uint8 \(N, H, W\)"),
        (np.zeros((64, 64), np.uint8), r"uint8 \(N, H, W\)"),
        ([], "no images"),
        ([np.zeros((64, 64, 3), np.uint8)], "image 0: expected a uint8 gray"),
        ([np.zeros((64, 64), np.uint8), np.zeros((4, 64), np.uint8)], "image 1: too small"),
    ],
)
def test_bad_images_are_named(trained, images, match):
    checker = ViewChecker.from_checkpoint(trained[0] / "view_check.pt")
    with pytest.raises(ValueError, match=match):
        checker.p_not_frontal(images)


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ViewChecker.from_checkpoint(tmp_path / "missing.pt")
    config = {"architecture": "unet", "in_channels": 1, "encoder_name": "resnet18"}
    write_checkpoint(
        tmp_path / "seg.pt", payload(create_model("unet", in_channels=1, classes=1), config, epoch=1, metrics={})
    )
    with pytest.raises(ValueError, match="not a view-check checkpoint"):
        ViewChecker.from_checkpoint(tmp_path / "seg.pt")


# --------------------------------------------------------------------------- real archive films


def _archive(root, n_subjects=8, laterals=True, seed=21):
    """A tiny MIMIC archive: per subject one study with a PA/AP film and (optionally) a LATERAL or LL film,
    phantom renders as JPEGs in the MIMIC layout; returns the metadata CSV."""
    images, labels = render_view_samples(n_subjects, 96, seed)
    labels = np.asarray(labels)
    rows = []
    for k in range(n_subjects):
        subject, study = f"1{k % 3}0000{k:02d}", f"5000{k:04d}"
        films = [(f"a{k:02x}-01", ("PA", "AP")[k % 2], images[labels == "frontal"][k])]
        if laterals:
            films.append((f"a{k:02x}-02", ("LATERAL", "LL")[k % 2], images[labels == "lateral"][k]))
        for dicom_id, view, image in films:
            path = root / image_relpath(subject, study, dicom_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            rows.append(
                dict(dicom_id=dicom_id, subject_id=subject, study_id=study, ViewPosition=view, Rows=96, Columns=96)
            )
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root / "metadata.csv"


def _metadata(path, rows):
    cols = ("dicom_id", "subject_id", "study_id", "ViewPosition")
    pd.DataFrame([dict(zip(cols, r)) for r in rows]).to_csv(path, index=False)
    return path


def test_view_samples_are_seeded_balanced_and_split_by_subject(tmp_path):
    rows = [(f"b{k:02x}", f"1{k:07d}", f"5{k:07d}", "PA" if k % 3 else "AP") for k in range(30)]
    rows += [(f"c{k:02x}", f"1{k:07d}", f"5{k:07d}", "LATERAL" if k % 2 else "LL") for k in range(12)]
    rows += [("d0", "10000001", "50000001", "SWIMMERS"), ("d1", "10000001", "50000001", "")]
    meta = _metadata(tmp_path / "m.csv", rows)
    table, summary = pick_view_samples(meta, 8, seed=3)
    assert list(table.columns) == list(VIEW_SAMPLE_COLUMNS)
    assert table.view.isin(["LATERAL", "LL"]).sum() == 8 and table.view.isin(["PA", "AP"]).sum() == 8
    assert table.image_path.tolist() == [
        image_relpath(*r) for r in zip(table.subject_id, table.study_id, table.dicom_id)
    ]
    assert pick_view_samples(meta, 8, seed=3)[0].equals(table)  # seeded
    assert not pick_view_samples(meta, 8, seed=4)[0].equals(table)
    shuffled = _metadata(tmp_path / "s.csv", rows[::-1])  # row order of the CSV does not matter
    assert (
        pick_view_samples(shuffled, 8, seed=3)[0]
        .sort_values("dicom_id")
        .reset_index(drop=True)
        .equals(table.sort_values("dicom_id").reset_index(drop=True))
    )
    val, train = (set(table.subject_id[table.split == s]) for s in ("validate", "train"))
    assert val and train and not val & train  # no validation subject is trained on
    big, summary = pick_view_samples(meta, 100, seed=3)  # capped by the 12 side views: still balanced
    assert summary["picked_per_class"] == 12 and len(big) == 24
    empty, summary = pick_view_samples(tmp_path / "absent.csv", 0, seed=3)  # 0 = off: metadata not even read
    assert empty.empty and list(empty.columns) == list(VIEW_SAMPLE_COLUMNS)


def test_view_samples_reject_unsafe_ids_and_second_frontals(tmp_path):
    rows = [
        ("e1", "10000001", "50000001", "PA"),
        ("e2", "10000001", "50000001", "LATERAL"),
        ("../../evil", "10000002", "50000002", "LATERAL"),
        ("e3", "1/../../x", "50000003", "PA"),
        ("e4", "10000004", "50000004", "PA"),
        ("e5", "10000004", "50000004", "PA"),  # a study's second PA film: often a mislabelled lateral
        ("e6", "10000005", "50000005", "LL"),
    ]
    table, summary = pick_view_samples(_metadata(tmp_path / "m.csv", rows), 10, seed=0)
    assert set(table.dicom_id) <= {"e1", "e2", "e6"} and "e1" in set(table.dicom_id)
    assert {e["dicom_id"] for e in summary["excluded"]} == {"../../evil", "e3"}
    assert summary["frontal_available"] == 1 and summary["picked_per_class"] == 1
    assert not any(".." in p for p in table.image_path)


def test_archive_without_side_views_trains_on_phantoms_only(tmp_path, caplog):
    torch.set_num_threads(1)
    meta = _archive(tmp_path / "mimic", n_subjects=4, laterals=False)
    with caplog.at_level(logging.INFO):
        write_view_samples(meta, 50, 0, tmp_path / "vs.parquet")
        metrics = train_view_check(
            tmp_path / "vc.pt",
            _settings(samples_per_view=4, epochs=1, validate_per_view=2),
            _films(tmp_path, _settings(samples_per_view=4, epochs=1, validate_per_view=2), 1),
            seed=1,
            view_samples=tmp_path / "vs.parquet",
            mimic_root=tmp_path / "mimic",
        )
    assert pd.read_parquet(tmp_path / "vs.parquet").empty
    assert "no side view in the archive" in caplog.text and "non-frontal films are phantoms only" in caplog.text
    assert not any(k.endswith("archive_lateral") for k in metrics)


def test_training_with_archive_samples_skips_bad_files(tmp_path, caplog):
    torch.set_num_threads(1)
    meta = _archive(tmp_path / "mimic", n_subjects=10)
    write_view_samples(meta, 10, 2, tmp_path / "vs.parquet")
    samples = pd.read_parquet(tmp_path / "vs.parquet")
    assert len(samples) == 20 and set(samples.split) == {"train", "validate"}
    bad = samples.iloc[[0, 1, 2]].assign(dicom_id=["corrupt", "missing", "unsafe"], split="train")
    bad.loc[bad.index[2], "image_path"] = "../../etc/passwd"
    (tmp_path / "mimic" / bad.image_path.iloc[0]).write_bytes(b"\xff\xd8 not a jpeg")
    bad.loc[bad.index[1], "image_path"] = "files/p10/p10000000/s1/none.jpg"
    io.write_parquet(pd.concat([samples, bad], ignore_index=True), tmp_path / "vs.parquet")
    settings = _settings(samples_per_view=4, epochs=1, validate_per_view=2)
    with caplog.at_level(logging.INFO):
        metrics = train_view_check(
            tmp_path / "vc.pt",
            settings,
            _films(tmp_path, settings, 1),
            seed=1,
            view_samples=tmp_path / "vs.parquet",
            mimic_root=tmp_path / "mimic",
            metrics_path=tmp_path / "vc.json",
        )
    for name in ("corrupt", "missing", "unsafe"):
        assert f"skipped archive image {name}" in caplog.text
    held_out = samples[samples.split == "validate"]
    assert metrics["n_archive_lateral"] == held_out.view.isin(["LATERAL", "LL"]).sum()
    assert metrics["n_archive_frontal"] == held_out.view.isin(["PA", "AP"]).sum()
    assert 0 <= metrics["flagged_archive_lateral"] <= 1 and "flagged_archive_frontal" in read_json(tmp_path / "vc.json")
    with pytest.raises(ValueError, match="mimic_root"):
        train_view_check(
            tmp_path / "x.pt", settings, tmp_path / "films-1.npz", seed=1, view_samples=tmp_path / "vs.parquet"
        )

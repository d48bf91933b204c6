"""The shard loop (cxlseg.inference.shard): statuses and reasons, resume, settings, and one predictor for evaluation and
inference. Selection is test_selection.py's, manifests test_manifest.py's, per-image outputs test_outputs.py's."""

import dataclasses
import logging

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg import io, preprocess
from cxlseg.config import ConfigError, RuleSettings, speed_only_keys
from cxlseg.evaluation.evaluate import evaluate_model
from cxlseg.film import FilmSettings
from cxlseg.inference.manifest import MANIFEST_DTYPES, partial_path
from cxlseg.inference.outputs import output_paths
from cxlseg.inference.predictor import Predictor
from cxlseg.inference.select_images import LIST_COLUMNS
from cxlseg.inference.settings import InferSettings
from cxlseg.inference.shard import ShardDataset, infer_shard
from cxlseg.mimic import image_relpath, study_dir
from helpers.shards import fit_toy_qc_model
from helpers.training import evaluation_files

FILM_ON = FilmSettings(crop_border=True, polarity=True)


def test_infer_shard_outputs_statuses_and_reasons(shard, infer_run, toys):
    run = infer_run(shard, num_workers=1)
    manifest = pd.read_parquet(run.manifest)
    assert list(manifest.dicom_id) == sorted(manifest.dicom_id)
    status = dict(zip(manifest.dicom_id, manifest.status))
    for dicom_id, *_, expected in toys.SHARD_CASES:
        assert status[dicom_id] == expected, dicom_id
    assert status["../../evil"] == "failed"
    errors = dict(zip(manifest.dicom_id, manifest.error))
    assert "not decodable" in errors["0a-05"]
    assert "truncated" in errors["0a-06"]
    assert "not found" in errors["0a-07"]
    assert "unsafe id" in errors["../../evil"]
    notes = dict(zip(manifest.dicom_id, manifest.note))
    assert "uint16" in notes["0a-04"] and "disagrees" in notes["0a-08"]
    assert run.summary == {
        **run.summary,
        "images": 9,
        "ok": 5,
        "failed": 4,
        "computed": 9,
        "resumed": 0,
        "model_id": "test-model",
    }
    assert sum(run.summary["failure_reasons"].values()) == 4

    ok = manifest[manifest.status == "ok"].set_index("dicom_id")
    assert ok.loc["0a-02", "decode_factor"] == 2 and ok.loc["0a-08", "decode_factor"] == 1
    assert (ok.loc["0a-02", "orig_height"], ok.loc["0a-02", "orig_width"]) == (900, 760)
    assert (ok.loc["0a-08", "orig_height"], ok.loc["0a-08", "orig_width"]) == (900, 760)
    assert (ok.model_id == "test-model").all() and ok.settings_id.nunique() == 1
    assert ok.settings_id.iloc[0] == run.settings.settings_id(run.predictor.spec)
    for dicom_id, rec in ok.iterrows():
        assert rec.image_path == image_relpath(toys.SUBJECT, rec.study_id, dicom_id)
        assert rec.mask_path == image_relpath(toys.SUBJECT, rec.study_id, dicom_id, "-mask.png")
        seg = cv2.imread(str(run.out_root / rec.image_path), cv2.IMREAD_UNCHANGED)
        mask = io.read_mask(run.out_root / rec.mask_path)
        assert seg.shape == mask.shape == (224, 224)
        assert 0.1 < mask.mean() < 0.5 and rec.n_components_kept == 2
        original = preprocess.decode_for_inference(shard.mimic / rec.source_path, 224)[0]
        inside = np.abs(seg.astype(int) - original)[mask == 1].mean()
        assert inside < 3 and seg[mask == 0].mean() < 3  # AND of the original and the mask (JPEG-lossy)
    assert not list(run.out_root.rglob("*.tmp*"))


def test_model_size_below_output_size(shard, infer_run, toys):
    """A model trained at 112 px sees 112 px inputs prepared as in training (resize, then CLAHE), and its
    probabilities are resized back so the written image and mask stay 224 px."""
    full = infer_run(shard, out="full")
    small = infer_run(shard, out="small", model=toys.DarkerThanMean(), spec=toys.spec(112))
    assert small.model.input_sizes == {(112, 112)} and small.summary["ok"] == 5
    full_m, small_m = (pd.read_parquet(r.manifest).set_index("dicom_id") for r in (full, small))
    assert full_m.settings_id.iloc[0] != small_m.settings_id.iloc[0]  # a changed model size reruns inference
    for dicom_id, rec in small_m[small_m.status == "ok"].iterrows():
        decoded = preprocess.decode_for_inference(shard.mimic / rec.source_path, 224)[0]
        x = preprocess.to_model_input(preprocess.clahe(preprocess.resize(decoded, 112))[None])
        logits = small.model(torch.from_numpy(x)).detach()
        prob = torch.nn.functional.interpolate(torch.sigmoid(logits), size=(224, 224), mode="bilinear")[0, 0]
        expected = small.settings.postprocess.clean(prob.numpy(), small.settings.threshold)
        seg = cv2.imread(str(small.out_root / rec.image_path), cv2.IMREAD_UNCHANGED)
        mask = io.read_mask(small.out_root / rec.mask_path)
        assert seg.shape == mask.shape == (224, 224)
        assert 0.1 < mask.mean() < 0.5 and (mask != expected).mean() < 0.002, dicom_id
        written_full = cv2.imread(str(full.out_root / full_m.loc[dicom_id, "image_path"]), cv2.IMREAD_UNCHANGED)
        both = (mask > 0) & (io.read_mask(full.out_root / full_m.loc[dicom_id, "mask_path"]) > 0)
        assert np.abs(seg.astype(int) - written_full)[both].mean() < 3  # the written image is the 224 px one


class Killed(RuntimeError):
    """What `kill` raises at a partial-manifest flush: the job dies right after writing its progress."""


def kill(n_rows):
    raise Killed(n_rows)


def test_infer_shard_resumes_and_reruns_identically(shard, infer_run):
    with pytest.raises(Killed):
        infer_run(shard, flush_every=3, on_flush=kill)
    out_root = shard.root / "out"
    partial = partial_path(out_root / "manifests" / "p10.parquet")
    first = pd.read_parquet(partial)
    done = first[first.status == "ok"]
    assert len(first) == 3 and len(done) == 3  # the first batch: 0a-01..03, all decodable
    mtimes = {p: (out_root / p).stat().st_mtime_ns for p in [*done.image_path, *done.mask_path]}

    # the resumed run recomputes only what was not done, even with other speed-only settings
    resumed = infer_run(shard, flush_every=5, batch_size=2, write_threads=1)
    assert resumed.summary["resumed"] == 3 and resumed.summary["computed"] == 6
    assert resumed.model.seen == 5 - 3  # images forwarded: the decodable ones minus the resumed
    assert {p: (out_root / p).stat().st_mtime_ns for p in mtimes} == mtimes
    # the progress is kept whole: a rerun Snakemake forces (it deletes the manifest first) computes nothing
    assert pd.read_parquet(partial).equals(pd.read_parquet(resumed.manifest))
    resumed_bytes = resumed.manifest.read_bytes()
    resumed.manifest.unlink()
    forced = infer_run(shard)
    assert forced.model.seen == 0 and forced.summary["resumed"] == 5
    assert forced.manifest.read_bytes() == resumed_bytes

    # a full rerun recomputes nothing and writes the same bytes; so does a fresh run elsewhere with a write pool
    resumed_bytes = resumed.manifest.read_bytes()
    again = infer_run(shard)
    assert again.model.seen == 0 and again.summary["resumed"] == 5
    assert again.manifest.read_bytes() == resumed_bytes
    fresh = infer_run(shard, out="fresh", write_threads=2)  # pooled writes
    assert fresh.manifest.read_bytes() == resumed_bytes


def test_a_resumed_shard_removes_the_temporary_files_a_killed_write_left(shard, infer_run, caplog):
    """SIGKILL mid-write skips atomic_path's clean-up: the rerun removes this shard's leftovers (beside a pending
    image's outputs and beside its manifests) and leaves a temporary file of any other target alone."""

    with pytest.raises(Killed):
        infer_run(shard, flush_every=3, on_flush=kill)
    out_root = shard.root / "out"
    manifest = out_root / "manifests" / "p10.parquet"
    done = set(pd.read_parquet(partial_path(manifest)).dicom_id)
    pending = next(r for r in pd.read_parquet(shard.list_path).to_dict("records") if r["dicom_id"] not in done)
    image = out_root / output_paths({k: str(v) for k, v in pending.items()}, "png")[0]
    image.parent.mkdir(parents=True, exist_ok=True)
    left = [
        image.parent / f".{image.name}.0123456789ab.tmp.jpg",
        partial_path(manifest).parent / f".{partial_path(manifest).name}.a1b2c3d4e5f6.tmp.parquet",
    ]
    other = image.parent / ".someone-else.jpg.0123456789ab.tmp.jpg"  # another target in the same folder
    for path in [*left, other]:
        path.write_bytes(b"half a file")
    with caplog.at_level(logging.WARNING):
        infer_run(shard)
    assert not any(p.exists() for p in left) and other.exists()
    assert "removed 2 temporary files that a killed run left" in caplog.text


def test_partial_of_other_code_is_recomputed(shard, infer_run):
    """The code fingerprint joins the settings id: a partial manifest written by another version of the code is
    never resumed (a shard is made by one version), one written by the same version is."""

    with pytest.raises(Killed):
        infer_run(shard, flush_every=3, on_flush=kill, code="release-1")
    assert infer_run(shard, code="release-2").summary["resumed"] == 0
    with pytest.raises(Killed):
        infer_run(shard, out="same", flush_every=3, on_flush=kill, code="release-2")
    same = infer_run(shard, out="same", code="release-2")
    assert same.summary["resumed"] == 3 and same.model.seen == 5 - 3
    ids = set(pd.read_parquet(same.manifest).settings_id)
    assert len(ids) == 1 and ids != set(pd.read_parquet(infer_run(shard, out="none").manifest).settings_id)


def test_done_requires_outputs_on_disk_and_same_settings(shard, infer_run):
    run = infer_run(shard)
    manifest = pd.read_parquet(run.manifest)
    victim = manifest[manifest.status == "ok"].iloc[0]
    (run.out_root / victim.mask_path).unlink()
    again = infer_run(shard)
    assert again.model.seen == 1 and (run.out_root / victim.mask_path).is_file()
    assert infer_run(shard, threshold=0.6).model.seen == 5  # other settings: all recomputed
    assert infer_run(shard, threshold=0.6, spec=None, model=None).model.seen == 0

    # another model (same settings) recomputes everything
    other = Predictor([run.model.__class__()], run.predictor.spec, model_id="other-model")
    assert infer_run(shard, threshold=0.6, predictor=other).summary["computed"] == 9

    # the manifest decides, not the files: a row not marked ok, or no row at all, is recomputed
    manifest = pd.read_parquet(run.manifest)
    manifest.loc[manifest.dicom_id == victim.dicom_id, "status"] = "failed"
    io.write_parquet(manifest, partial_path(run.manifest))
    run.manifest.unlink()
    rerun = infer_run(
        shard, predictor=Predictor([run.model.__class__()], run.predictor.spec, model_id="other-model"), threshold=0.6
    )
    assert rerun.summary["resumed"] == 4 and rerun.summary["computed"] == 5
    run.manifest.unlink()
    assert infer_run(shard, threshold=0.6).model.seen == 5


def test_settings_id_ignores_exactly_the_speed_only_keys(infer_settings, toys):
    base = infer_settings()
    spec = toys.spec()
    speed = {
        "batch_size": 7,
        "num_workers": 2,
        "device": "cuda",
        "write_threads": 3,
        "flush_every": 1,
        "amp_dtype": "fp16",
        "compile": True,
        "decode_device": "gpu",
    }
    assert speed_only_keys("infer") == set(speed)
    for key, value in speed.items():
        assert dataclasses.replace(base, **{key: value}).settings_id(spec) == base.settings_id(spec), key
    for changed in (
        dict(threshold=0.4),
        dict(tta_flip=True),
        dict(segmented_source="clahe"),
        dict(segmented_channels=3),
        dict(jpeg_quality=90),
        dict(separate_lungs=True),
        dict(output_size=256),
        dict(postprocess={"closing": 3}),
        dict(qc={"min_predicted_dice": 0.8}),
        dict(qc={"good_flag_rate": 0.05}),
        dict(ensemble=2),
        dict(mask_format="jpg"),
        dict(reduce_min_ratio=2.0),
    ):
        assert infer_settings(**changed).settings_id(spec) != base.settings_id(spec), changed
    assert base.settings_id(toys.spec(112)) != base.settings_id(spec)  # the network input is part of it
    linear = dataclasses.replace(spec, interpolation="linear")  # and how it was resized
    assert base.settings_id(linear) != base.settings_id(spec)
    qc_model = fit_toy_qc_model()[0]  # and so is the predicted-Dice model
    assert base.settings_id(spec, qc_model) != base.settings_id(spec)
    assert base.settings_id(spec, qc_model) != base.settings_id(spec, fit_toy_qc_model(seed=1)[0])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools decode vs numpy 2
def test_infer_shard_options_rle_labels_tta(shard, infer_run):
    from pycocotools import mask as mask_utils

    run = infer_run(shard, save_full_res_rle=True, separate_lungs=True, tta_flip=True)
    manifest = pd.read_parquet(run.manifest)
    rec = manifest[manifest.dicom_id == "0a-02"].iloc[0]
    full = mask_utils.decode({"size": [int(rec.orig_height), int(rec.orig_width)], "counts": rec.mask_rle.encode()})
    assert full.shape == (900, 760)
    small = io.read_mask(run.out_root / rec.mask_path)
    assert abs(full.mean() - small.mean()) < 0.01
    labels = cv2.imread(str(run.out_root / rec.mask_path), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(labels)) == {0, 128, 255}
    assert labels[112, 60] == 128 and labels[112, 160] == 255  # patient's right lung on the image left
    assert run.model.seen == 2 * 5  # flipped pass too
    assert manifest.loc[manifest.status == "ok", "mask_rle"].notna().all()


def test_empty_shard_writes_an_empty_manifest(tmp_path, infer_settings, toys):
    list_path = tmp_path / "p19.parquet"
    io.write_parquet(pd.DataFrame(columns=list(LIST_COLUMNS)), list_path)
    model = toys.DarkIsLung()
    summary = infer_shard(
        list_path,
        tmp_path,
        tmp_path / "out",
        tmp_path / "m.parquet",
        Predictor([model], toys.spec(), model_id="test-model"),
        infer_settings(),
        progress=False,
    )
    manifest = pd.read_parquet(tmp_path / "m.parquet")
    assert len(manifest) == 0 and list(manifest.columns) == list(MANIFEST_DTYPES)
    assert summary["images"] == 0 and model.seen == 0


def test_a_missing_list_column_is_named(tmp_path, infer_settings, toys):
    list_path = tmp_path / "p10.parquet"
    io.write_parquet(pd.DataFrame({"dicom_id": ["a"], "subject_id": ["10"], "study_id": ["1"]}), list_path)
    with pytest.raises(ValueError, match="image_path"):
        infer_shard(
            list_path,
            tmp_path,
            tmp_path / "out",
            tmp_path / "m.parquet",
            Predictor([toys.DarkIsLung()], toys.spec()),
            infer_settings(),
            progress=False,
        )


def test_a_trained_checkpoint_segments_at_the_output_size(shard, infer_run, trained):
    """Predictor.from_checkpoints rebuilds the net and its 32 px input; outputs stay at preprocess.size."""
    predictor = Predictor.from_checkpoints(trained.checkpoint, device="cpu")
    run = infer_run(shard, out="ck", predictor=predictor)
    manifest = pd.read_parquet(run.manifest)
    assert (manifest.model_id == predictor.model_id).all() and predictor.model_id.startswith("sa_unet-")
    ok = manifest[manifest.status == "ok"].iloc[0]
    assert cv2.imread(str(run.out_root / ok.image_path), cv2.IMREAD_UNCHANGED).shape == (224, 224)
    assert io.read_mask(run.out_root / ok.mask_path).shape == (224, 224)


def test_postprocess_block_and_bad_settings(shard, infer_run):
    run = infer_run(shard, postprocess={"keep_components": 1, "closing": 0})
    ok = pd.read_parquet(run.manifest).query("status == 'ok'")
    assert (ok.n_components_kept == 1).all()
    for bad, match in [
        ({"postprocess": {"closng": 3}}, r"infer\.postprocess\.closng"),
        ({"qc": {"min_area": 0.1}}, r"infer\.qc\.min_area"),
        ({"mask_format": "bmp"}, "bmp"),
    ]:
        with pytest.raises(ConfigError, match=match):
            infer_run(shard, out="bad", **bad)
    assert not (shard.root / "bad").exists()  # settings are checked before any work


def test_a_write_failure_fails_that_image_only(shard, infer_run, toys):
    blocker = shard.root / "out" / study_dir(toys.SUBJECT, "50000002")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the study folder should be")
    run = infer_run(shard, write_threads=2)
    manifest = pd.read_parquet(run.manifest).set_index("dicom_id")
    for dicom_id in ("0a-03", "0a-04"):
        assert manifest.loc[dicom_id, "status"] == "failed"
        assert manifest.loc[dicom_id, "error"].startswith("writing outputs failed")
    assert run.summary["ok"] == 3


def test_shard_dataset_turns_failures_into_records(shard, toys):
    items = pd.read_parquet(shard.list_path).to_dict("records")
    for item in items:
        item["rows"] = item["columns"] = None
    ds = ShardDataset(items, shard.mimic, toys.spec(64), 224, 1.0, FILM_ON)
    samples = {item["dicom_id"]: ds[i] for i, item in enumerate(items)}
    assert samples["0a-01"]["ok"] and samples["0a-01"]["image"].shape == (224, 224)
    assert samples["0a-01"]["model_image"].shape == (64, 64)
    assert np.array_equal(samples["0a-01"]["model_image"], toys.spec(64).prepare(samples["0a-01"]["image"]))
    for bad in ("0a-05", "0a-06", "0a-07", "../../evil"):
        assert not samples[bad]["ok"] and samples[bad]["error"], bad
        assert samples[bad]["image"].shape == (224, 224)  # a placeholder the batch can stack


def test_infer_settings_from_the_config(make_config):
    config = make_config(preprocess={"size": 256}, infer={"threshold": 0.4, "postprocess": {"closing": 7}})
    settings = InferSettings.from_config(config)
    assert settings.output_size == 256 and settings.threshold == 0.4 and settings.postprocess.closing == 7
    assert (
        settings.postprocess.opening == 3 and settings.qc.min_predicted_dice == "calibrated"
    )  # the rest: schema defaults
    assert InferSettings.from_config(config, num_workers=1).num_workers == 1
    assert settings.segmented_source == "original" and settings.mask_format == "jpg"


def test_infer_settings_are_one_plain_object():
    """No OutputSettings view of itself (#36): the keys that shape each image are plain fields of InferSettings."""
    assert InferSettings.__mro__[1:] == (RuleSettings, object) and not hasattr(InferSettings, "outputs")
    names = {f.name for f in dataclasses.fields(InferSettings)}
    assert {"threshold", "film", "postprocess", "qc", "separate_lungs"} <= names


# --------------------------------------------------------------------------- one predictor


def _one_image_archive(root, toys, n=2):
    """n radiographs as lossless PNGs under MIMIC .jpg names, their shard list, and a store of the same images."""
    mimic, rows, store_images = root / "mimic", [], []
    for i in range(n):
        image = toys.radiograph_like(300 + 17 * i, 260, seed=i)
        dicom_id, study = f"0b-0{i}", f"5000010{i}"
        path = mimic / image_relpath(toys.SUBJECT, study, dicom_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".png", image)
        path.write_bytes(buf.tobytes())
        rows.append(
            {
                "dicom_id": dicom_id,
                "subject_id": toys.SUBJECT,
                "study_id": study,
                "image_path": image_relpath(toys.SUBJECT, study, dicom_id),
            }
        )
        store_images.append(preprocess.resize(image, 224))
    io.write_parquet(pd.DataFrame(rows), root / "list.parquet")
    store = root / "store"
    store.mkdir()
    images = np.stack(store_images)
    masks = np.zeros_like(images)
    masks[:, 60:170, 40:100] = 1
    masks[:, 60:170, 125:185] = 1
    for split in ("train", "validate", "test"):
        np.save(store / f"{split}_images.npy", images)
        np.save(store / f"{split}_masks.npy", masks)
    pd.DataFrame({"image_id": [r["dicom_id"] for r in rows], "dataset": "mimic", "label": ""}).to_parquet(
        store / "test_index.parquet"
    )
    return mimic, root / "list.parquet", store, rows


@pytest.mark.parametrize("tta_flip", [False, True])
def test_evaluation_and_inference_give_identical_probabilities(tmp_path, trained, infer_settings, toys, tta_flip):
    """The same image through the evaluation path (store -> Predictor.predict) and the inference path (MIMIC file ->
    ShardDataset -> Predictor.forward) gives the same probabilities, bit for bit, and so the same written mask."""
    mimic, list_path, store, rows = _one_image_archive(tmp_path, toys)
    settings = infer_settings(tta_flip=tta_flip, batch_size=len(rows))
    predictor = Predictor.from_checkpoints(trained.checkpoint, device="cpu", tta_flip=tta_flip)
    images = np.load(store / "test_images.npy")
    evaluated = predictor.predict(images, out_size=224, batch_size=settings.batch_size, film=settings.film)

    items = [dict(r, rows=None, columns=None) for r in rows]
    dataset = ShardDataset(items, mimic, predictor.spec, settings.output_size, settings.reduce_min_ratio, settings.film)
    samples = [dataset[i] for i in range(len(items))]
    assert all(s["ok"] for s in samples)
    assert np.array_equal(np.stack([s["image"] for s in samples]), images)  # same decoded, resized original
    x = predictor.spec.to_tensor(np.stack([s["model_image"] for s in samples]))
    inferred = predictor.forward(x, settings.output_size)
    assert inferred.dtype == evaluated.dtype and np.array_equal(inferred, evaluated)

    # and the files each path writes agree: evaluate's model id and scores, infer's masks
    summary = evaluate_model(trained.checkpoint, store, evaluation_files(tmp_path / "eval"), settings)
    run = infer_shard(
        list_path, mimic, tmp_path / "out", tmp_path / "out" / "m.parquet", predictor, settings, progress=False
    )
    assert summary["model_id"] == run["model_id"] == predictor.model_id
    manifest = pd.read_parquet(tmp_path / "out" / "m.parquet").set_index("dicom_id")
    for i, row in enumerate(rows):
        written = cv2.imread(str(tmp_path / "out" / manifest.loc[row["dicom_id"], "mask_path"]), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(written, settings.postprocess.clean(evaluated[i], settings.threshold) * 255)


class _BrightIsLateral:
    """A view-check double: p(not frontal) = mean brightness, so the test decides which images look lateral."""

    threshold, model_id = 0.5, "view-double"

    def __init__(self):
        self.seen = []

    def p_not_frontal(self, images):
        self.seen.append(np.asarray(images).shape)
        return np.asarray(images, np.float32).mean(axis=(1, 2)) / 255.0


def test_view_check_flags_not_frontal_and_is_part_of_the_settings_id(shard, infer_run, qc_model):
    checker = _BrightIsLateral()
    run = infer_run(shard, qc_model=qc_model, view_checker=checker)
    manifest = pd.read_parquet(run.manifest)
    ok = manifest[manifest.status == "ok"]
    assert ok.p_not_frontal.notna().all() and checker.seen and all(s[1:] == (224, 224) for s in checker.seen)
    lateral = ok.p_not_frontal >= 0.5
    assert (ok.qc_flags[lateral].str.startswith("not_frontal")).all()
    assert not ok.qc_flags[~lateral].fillna("").str.contains("not_frontal").any()
    assert manifest.loc[manifest.status == "failed", "p_not_frontal"].isna().all()
    checker.threshold = 0.0  # every image is "not frontal" now
    again = infer_run(shard, "out2", qc_model=qc_model, view_checker=checker)
    assert pd.read_parquet(again.manifest).query("status == 'ok'").qc_flags.str.startswith("not_frontal").all()
    spec = run.predictor.spec
    assert run.settings.settings_id(spec, qc_model, checker) != run.settings.settings_id(spec, qc_model)


def test_review_thumbnails_are_written_per_mask_and_resumed(shard, infer_run):
    """Each ok image gets a small JPEG of its original film (own aspect) with the mask outlined; a killed shard keeps
    the thumbnails it wrote and an image whose thumbnail went missing is segmented again."""

    thumbs = shard.root / "thumbs" / "p10"
    with pytest.raises(Killed):
        infer_run(shard, flush_every=3, on_flush=kill, thumbs_dir=thumbs)
    first = {p.name: p.stat().st_mtime_ns for p in thumbs.glob("*.jpg")}
    assert set(first) == {"0a-01.jpg", "0a-02.jpg", "0a-03.jpg"}

    run = infer_run(shard, thumbs_dir=thumbs)
    assert run.summary["resumed"] == 3 and run.model.seen == 2
    manifest = pd.read_parquet(run.manifest)
    ok = set(manifest.loc[manifest.status == "ok", "dicom_id"])
    assert {p.stem for p in thumbs.glob("*.jpg")} == ok
    assert {n: (thumbs / n).stat().st_mtime_ns for n in first} == first  # resumed, not rewritten
    assert not list(thumbs.glob("*.tmp*"))

    thumb = cv2.imread(str(thumbs / "0a-02.jpg"))
    assert thumb.shape == (128, 108, 3)  # a 900 x 760 film keeps its aspect, long side 128
    green = (thumb[..., 1].astype(int) - thumb[..., [0, 2]].max(axis=2)) > 60
    assert 20 < green.sum() < 0.3 * green.size  # an outline, not a fill

    (thumbs / "0a-04.jpg").unlink()
    again = infer_run(shard, thumbs_dir=thumbs)
    assert again.model.seen == 1 and (thumbs / "0a-04.jpg").is_file()

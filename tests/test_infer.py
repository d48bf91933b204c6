import gzip
import sys
import types

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from cxlseg import infer, io, postprocess, preprocess

torch.set_num_threads(1)
cv2.setNumThreads(1)


# --- fixtures --------------------------------------------------------------------------------

def _radiograph(height, width, seed=0):
    """Bright body with two dark lung fields, smooth shading and noise (not flat)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = 170 + 30 * np.sin(xx / width * 3.1) + 20 * (yy / height)
    lungs = np.zeros((height, width), np.uint8)
    for cx, cy, ax, ay in ((0.3, 0.5, 0.15, 0.3), (0.7, 0.52, 0.13, 0.28)):
        cv2.ellipse(lungs, (int(width * cx), int(height * cy)), (int(width * ax), int(height * ay)), 0, 0, 360, 1, -1)
    img = np.where(lungs > 0, img - 120, img)
    img += cv2.GaussianBlur(rng.normal(0, 10, (height, width)).astype(np.float32), (0, 0), 1.2)
    return np.clip(img, 0, 255).astype(np.uint8)


class DarkIsLung(torch.nn.Module):
    """A 1x1 conv: dark pixels (after CLAHE) are lung. Counts the images it sees."""

    def __init__(self, channels=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(-30.0 / channels)
            self.conv.bias.fill_(12.0)
        self.seen = 0
        self.input_sizes = set()

    def forward(self, x):
        self.seen += x.shape[0]
        self.input_sizes.add(tuple(x.shape[-2:]))
        return self.conv(x)


class DarkerThanMean(DarkIsLung):
    """Lung = darker than the image's mean: indifferent to how CLAHE's result shifts with resolution."""

    def forward(self, x):
        super().forward(x)
        return 30.0 * (x.mean(dim=(-2, -1), keepdim=True) - x)


SUBJECT = "10000032"


def _write_case(root, dicom_id, study, kind, shape=(300, 260)):
    folder = root / infer.study_dir(SUBJECT, study)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dicom_id}.jpg"
    img = _radiograph(*shape, seed=len(dicom_id) + int(study[-2:]))
    if kind == "gray":
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    elif kind == "rgb":
        cv2.imwrite(str(path), cv2.merge([img, np.clip(img * 0.9, 0, 255).astype(np.uint8), img]))
    elif kind == "png16":  # a 16-bit PNG stored under a .jpg name, 12-bit range
        ok, buf = cv2.imencode(".png", img.astype(np.uint16) * 16)
        path.write_bytes(buf.tobytes())
    elif kind == "corrupt":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        ok, buf = cv2.imencode(".jpg", img)
        path.write_bytes(buf.tobytes()[: len(buf) // 2])
    return img.shape


CASES = [  # dicom_id, study, kind, shape, (Rows, Columns) given in the list, expected status
    ("0a-01", "50000001", "gray", (300, 260), None, "ok"),
    ("0a-02", "50000001", "gray", (900, 760), None, "ok"),  # reduced 1/2 decode
    ("0a-03", "50000002", "rgb", (300, 260), None, "ok"),
    ("0a-04", "50000002", "png16", (300, 260), None, "ok"),
    ("0a-05", "50000003", "corrupt", (300, 260), (300, 260), "failed"),
    ("0a-06", "50000003", "truncated", (300, 260), None, "failed"),
    ("0a-07", "50000004", "missing", (300, 260), None, "failed"),
    ("0a-08", "50000004", "gray", (900, 760), (1000, 760), "ok"),  # metadata disagrees -> full decode
]


@pytest.fixture
def shard(tmp_path):
    mimic = tmp_path / "mimic"
    rows = []
    for dicom_id, study, kind, shape, meta_size, _ in CASES:
        _write_case(mimic, dicom_id, study, kind, shape)
        h, w = meta_size or shape
        rows.append({"dicom_id": dicom_id, "subject_id": SUBJECT, "study_id": study, "rows": h, "columns": w,
                     "image_path": f"{infer.study_dir(SUBJECT, study)}/{dicom_id}.jpg"})
    rows.append({"dicom_id": "../../evil", "subject_id": SUBJECT, "study_id": "50000005", "rows": 10,
                 "columns": 10, "image_path": "../../etc/passwd"})
    list_path = tmp_path / "lists" / "p10.parquet"
    io.write_parquet(pd.DataFrame(rows).astype({"rows": "Int64", "columns": "Int64"}), list_path)
    return tmp_path, mimic, list_path


def _run(tmp_path, mimic, list_path, out="out", model=None, **kw):
    model = model or DarkIsLung()
    out_root = tmp_path / out
    manifest = tmp_path / out / "manifests" / "p10.parquet"
    kw = {"mask_format": "png", **kw}
    summary = infer.infer_shard(list_path, mimic, out_root, manifest, model=model, batch_size=3, progress=False, **kw)
    return out_root, manifest, summary, model


# --- reduced decode --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def large_jpeg(tmp_path_factory):
    h, w = 2401, 2001  # not multiples of 8: the reduced image's last block is partial
    img = _radiograph(h, w, seed=3)
    marker = (int(w * 0.85), int(h * 0.8))
    cv2.rectangle(img, (marker[0] - 150, marker[1] - 150), (marker[0] + 150, marker[1] + 150), 0, -1)
    cv2.circle(img, marker, 80, 255, -1)
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path, (h, w), marker


def _centroid(img, marker, shape):
    """Intensity-weighted centroid of the marker (on its black square) in a 224 image."""
    cx, cy = marker[0] / shape[1] * 224, marker[1] / shape[0] * 224
    x0, y0 = int(cx) - 12, int(cy) - 12
    m = cv2.moments(img[y0:y0 + 25, x0:x0 + 25].astype(np.float32))
    return np.array([x0 + m["m10"] / m["m00"], y0 + m["m01"] / m["m00"]])


def test_reduced_decode_matches_full_decode(large_jpeg):
    path, (h, w), _ = large_jpeg
    reference = preprocess.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), 224)
    reduced, true_hw, factor, note = preprocess.decode_for_inference(path, 224, h, w)
    assert factor == 8 and true_hw == (h, w) and note == ""
    assert reduced.shape == (224, 224)
    assert cv2.PSNR(reference, reduced) >= 37.0


def test_reduced_decode_keeps_geometry(large_jpeg):
    path, (h, w), marker = large_jpeg
    reference = preprocess.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), 224)
    reduced, _, factor, _ = preprocess.decode_for_inference(path, 224, h, w)
    expected = _centroid(reference, marker, (h, w))
    assert expected == pytest.approx([(marker[0] + 0.5) / w * 224 - 0.5, (marker[1] + 0.5) / h * 224 - 0.5], abs=0.1)
    assert _centroid(reduced, marker, (h, w)) == pytest.approx(expected, abs=0.05)
    # a plain resize of the same reduced decode is stretched by the partial last block
    stretched = preprocess.resize(cv2.imread(str(path), preprocess._REDUCED_FLAGS[factor]), 224)
    assert np.abs(_centroid(stretched, marker, (h, w)) - expected).min() > 0.3


def test_reduced_factor_choice():
    assert preprocess.reduced_factor(3000, 2500, 224) == 8
    assert preprocess.reduced_factor(1000, 900, 224) == 4
    assert preprocess.reduced_factor(1000, 900, 224, min_ratio=1.5) == 2
    assert preprocess.reduced_factor(300, 260, 224) == 1
    assert preprocess.reduced_factor(None, 2500, 224) == 1
    assert preprocess.reduced_factor(float("nan"), 2500, 224) == 1


# --- selection and shard lists ---------------------------------------------------------------

def _metadata(tmp_path):
    root = tmp_path / "mimic"
    rows = [  # dicom_id, subject, study, view, has report
        ("aa-01", "10000001", "50000001", "PA", True),
        ("aa-02", "10000001", "50000001", "LATERAL", True),
        ("aa-03", "10000001", "50000001", "AP", True),  # same study: one report check
        ("aa-04", "10000002", "50000002", "AP", False),  # no report
        ("aa-05", "11000003", "50000003", "PA", True),
        ("aa-06", "11000003", "50000004", "PA", True),
        ("aa-07", "11000004", "50000005", "AP", True),
        ("../x", "11000004", "50000005", "AP", True),  # unsafe dicom_id
        ("aa-09", "11/../1", "50000006", "PA", True),  # unsafe subject_id
        ("aa-10", "13000001", "50000007", "PA", True),  # prefix not configured
        ("aa-05", "11000003", "50000003", "PA", True),  # duplicate dicom_id
    ]
    for _, subject, study, _, report in rows:
        if report and subject.isdigit():
            path = root / f"{infer.study_dir(subject, study)}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("FINAL REPORT\n")
    meta = pd.DataFrame([{"dicom_id": d, "subject_id": s, "study_id": t, "PerformedProcedureStepDescription": "CHEST",
                          "ViewPosition": v, "Rows": 3000, "Columns": 2500, "StudyDate": "21800101", "StudyTime": "1"}
                         for d, s, t, v, _ in rows])
    csv = tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz"
    with gzip.open(csv, "wt") as fh:
        meta.to_csv(fh, index=False)
    return csv, root


def test_select_images_filters_and_counts(tmp_path):
    csv, root = _metadata(tmp_path)
    table, summary = infer.select_images(csv, root, shards=("p10", "p11", "p12"))
    assert summary["metadata_images"] == 11
    assert summary["frontal_images"] == 10
    assert summary["valid_id_images"] == 7
    assert {e["reason"].split(" ")[0] for e in summary["excluded"]} == {"dicom_id", "subject_id", "duplicate"}
    assert summary["frontal_studies"] == 6 and summary["frontal_studies_with_report"] == 5
    assert summary["images_with_report"] == 6
    assert summary["images_in_shards"] == 5
    assert summary["images_per_shard"] == {"p10": 2, "p11": 3, "p12": 0}
    assert list(table.dicom_id) == ["aa-01", "aa-03", "aa-05", "aa-06", "aa-07"]
    assert table.loc[0, "image_path"] == "files/p10/p10000001/s50000001/aa-01.jpg"
    assert table.loc[0, "report_path"] == "files/p10/p10000001/s50000001.txt"
    assert table.rows.iloc[0] == 3000


def test_chunks_are_balanced_and_deterministic(tmp_path):
    csv, root = _metadata(tmp_path)
    table, summary = infer.select_images(csv, root, shards=("p10", "p11", "p12"), chunks_per_shard=2)
    assert summary["images_per_shard"] == {"p10-c0": 1, "p10-c1": 1, "p11-c0": 2, "p11-c1": 1, "p12-c0": 0, "p12-c1": 0}
    again, _ = infer.select_images(csv, root, shards=("p10", "p11", "p12"), chunks_per_shard=2)
    pd.testing.assert_frame_equal(table, again)


def test_shard_lists_written_for_every_shard(tmp_path):
    csv, root = _metadata(tmp_path)
    ids = infer.shard_ids(("p10", "p11", "p12"), 1)
    table, _ = infer.select_images(csv, root, shards=("p10", "p11", "p12"))
    counts = infer.write_shard_lists(table, tmp_path / "lists", ids)
    assert counts == {"p10": 2, "p11": 3, "p12": 0}
    empty = pd.read_parquet(tmp_path / "lists" / "p12.parquet")
    assert len(empty) == 0 and "dicom_id" in empty.columns


def test_run_selection_writes_its_files(tmp_path):
    csv, root = _metadata(tmp_path)
    summary = infer.run_selection(csv, root, tmp_path / "infer", shards=("p10", "p11"))
    assert (tmp_path / "infer" / "selection.parquet").is_file()
    written = io.read_json(tmp_path / "infer" / "selection_summary.json")
    assert written["images_in_shards"] == summary["images_in_shards"] == 5
    assert sorted(p.name for p in (tmp_path / "infer" / "lists").iterdir()) == ["p10.parquet", "p11.parquet"]


def test_shard_ids_and_unsafe_ids():
    assert infer.shard_ids(("p10", "p11"), 1) == ["p10", "p11"]
    assert infer.shard_ids(("p10",), 3) == ["p10-c0", "p10-c1", "p10-c2"]
    with pytest.raises(ValueError):
        infer.shard_ids(("../p10",), 1)
    assert infer.id_problem("02aa804e-bde0afdd", "10000032", "50414267") == ""
    for bad in [("../x", "10000032", "1"), ("AB-CD", "10000032", "1"), ("ab", "1x", "1"), ("ab", "10", "1/2"),
                ("ab", "１０", "1"), ("", "10", "1")]:
        assert infer.id_problem(*bad), bad


def test_missing_metadata_column_is_named(tmp_path):
    csv = tmp_path / "m.csv"
    pd.DataFrame({"dicom_id": ["a"], "subject_id": ["10"]}).to_csv(csv, index=False)
    with pytest.raises(ValueError, match="study_id"):
        infer.select_images(csv, tmp_path)


# --- infer_shard -----------------------------------------------------------------------------

def test_infer_shard_outputs_statuses_and_reasons(shard):
    tmp_path, mimic, list_path = shard
    out_root, manifest_path, summary, _ = _run(tmp_path, mimic, list_path, num_workers=1)
    manifest = pd.read_parquet(manifest_path)
    assert list(manifest.dicom_id) == sorted(manifest.dicom_id)
    status = dict(zip(manifest.dicom_id, manifest.status))
    for dicom_id, *_, expected in CASES:
        assert status[dicom_id] == expected, dicom_id
    assert status["../../evil"] == "failed"
    errors = dict(zip(manifest.dicom_id, manifest.error))
    assert "not decodable" in errors["0a-05"]
    assert "truncated" in errors["0a-06"]
    assert "not found" in errors["0a-07"]
    assert "unsafe id" in errors["../../evil"]
    notes = dict(zip(manifest.dicom_id, manifest.note))
    assert "uint16" in notes["0a-04"] and "disagrees" in notes["0a-08"]
    assert summary == {**summary, "images": 9, "ok": 5, "failed": 4, "computed": 9, "resumed": 0}

    ok = manifest[manifest.status == "ok"].set_index("dicom_id")
    assert ok.loc["0a-02", "decode_factor"] == 2 and ok.loc["0a-08", "decode_factor"] == 1
    assert (ok.loc["0a-02", "orig_height"], ok.loc["0a-02", "orig_width"]) == (900, 760)
    assert (ok.loc["0a-08", "orig_height"], ok.loc["0a-08", "orig_width"]) == (900, 760)
    assert ok.model_id.nunique() == 1 and ok.model_id.iloc[0].startswith("darkislung-")
    for dicom_id, rec in ok.iterrows():
        assert rec.image_path == f"files/p10/p{SUBJECT}/s{rec.study_id}/{dicom_id}.jpg"
        assert rec.mask_path.endswith(f"/{dicom_id}-mask.png")
        seg = cv2.imread(str(out_root / rec.image_path), cv2.IMREAD_UNCHANGED)
        mask = io.read_mask(out_root / rec.mask_path)
        assert seg.shape == mask.shape == (224, 224)
        assert 0.1 < mask.mean() < 0.5 and rec.n_components_kept == 2
        expected_img = preprocess.clahe(preprocess.decode_for_inference(mimic / rec.source_path, 224)[0])
        inside = np.abs(seg.astype(int) - expected_img)[mask == 1].mean()
        assert inside < 3 and seg[mask == 0].mean() < 3  # AND of image and mask (JPEG-lossy)
    assert not list(out_root.rglob("*.tmp*"))


def test_model_size_below_output_size(shard):
    """A model trained at 112 px sees 112 px inputs prepared as in training (resize, then CLAHE), and its
    probabilities are resized back so the written image and mask stay 224 px."""
    tmp_path, mimic, list_path = shard
    full_root, full_manifest, _, _ = _run(tmp_path, mimic, list_path, out="full")
    small_root, small_manifest, summary, model = _run(tmp_path, mimic, list_path, out="small", size=112,
                                                      output_size=224, model=DarkerThanMean())
    assert model.input_sizes == {(112, 112)} and summary["ok"] == 5
    full, small = (pd.read_parquet(m).set_index("dicom_id") for m in (full_manifest, small_manifest))
    assert full.settings_id.iloc[0] != small.settings_id.iloc[0]  # a changed model size reruns inference
    for dicom_id, rec in small[small.status == "ok"].iterrows():
        decoded = preprocess.decode_for_inference(mimic / rec.source_path, 224)[0]
        x = preprocess.to_model_input(preprocess.clahe(preprocess.resize(decoded, 112))[None])
        logits = model(torch.from_numpy(x)).detach()
        prob = torch.nn.functional.interpolate(torch.sigmoid(logits), size=(224, 224), mode="bilinear")[0, 0]
        expected = postprocess.clean_mask(prob.numpy())
        seg = cv2.imread(str(small_root / rec.image_path), cv2.IMREAD_UNCHANGED)
        mask = io.read_mask(small_root / rec.mask_path)
        assert seg.shape == mask.shape == (224, 224)
        assert 0.1 < mask.mean() < 0.5 and (mask != expected).mean() < 0.002, dicom_id
        written_full = cv2.imread(str(full_root / full.loc[dicom_id, "image_path"]), cv2.IMREAD_UNCHANGED)
        both = (mask > 0) & (io.read_mask(full_root / full.loc[dicom_id, "mask_path"]) > 0)
        assert np.abs(seg.astype(int) - written_full)[both].mean() < 3  # the written image is the 224 px one


def test_infer_shard_resumes_and_reruns_identically(shard):
    tmp_path, mimic, list_path = shard

    class Killed(RuntimeError):
        pass

    def kill(n_rows):
        raise Killed(n_rows)

    with pytest.raises(Killed):
        _run(tmp_path, mimic, list_path, flush_every=3, on_flush=kill)
    out_root = tmp_path / "out"
    partial = infer.partial_path(out_root / "manifests" / "p10.parquet")
    first = pd.read_parquet(partial)
    done = first[first.status == "ok"]
    assert len(first) == 3 and len(done) == 3  # the first batch: 0a-01..03, all decodable
    mtimes = {p: (out_root / p).stat().st_mtime_ns for p in [*done.image_path, *done.mask_path]}

    # the resumed run recomputes only what was not done
    _, manifest_path, summary, model = _run(tmp_path, mimic, list_path, flush_every=3)
    assert summary["resumed"] == 3 and summary["computed"] == 6
    assert model.seen == 5 - 3  # images forwarded: the decodable ones minus the resumed
    assert {p: (out_root / p).stat().st_mtime_ns for p in mtimes} == mtimes
    assert not partial.exists()

    # a full rerun recomputes nothing and writes the same bytes; so does a fresh run elsewhere with a write pool
    resumed_bytes = manifest_path.read_bytes()
    _, _, summary, model = _run(tmp_path, mimic, list_path)
    assert model.seen == 0 and summary["resumed"] == 5
    assert manifest_path.read_bytes() == resumed_bytes
    _, fresh_manifest, _, _ = _run(tmp_path, mimic, list_path, out="fresh", write_threads=2)  # pooled writes
    assert fresh_manifest.read_bytes() == resumed_bytes


def test_done_requires_outputs_on_disk_and_same_settings(shard):
    tmp_path, mimic, list_path = shard
    out_root, manifest_path, _, _ = _run(tmp_path, mimic, list_path)
    manifest = pd.read_parquet(manifest_path)
    victim = manifest[manifest.status == "ok"].iloc[0]
    (out_root / victim.mask_path).unlink()
    _, _, summary, model = _run(tmp_path, mimic, list_path)
    assert model.seen == 1 and (out_root / victim.mask_path).is_file()
    _, _, summary, model = _run(tmp_path, mimic, list_path, threshold=0.6)  # other settings: all recomputed
    assert model.seen == 5

    # the manifest decides, not the files: a row not marked ok, or no row at all, is recomputed
    manifest = pd.read_parquet(manifest_path)
    manifest.loc[manifest.dicom_id == victim.dicom_id, "status"] = "failed"
    io.write_parquet(manifest, infer.partial_path(manifest_path))
    manifest_path.unlink()
    _, _, summary, model = _run(tmp_path, mimic, list_path, threshold=0.6)
    assert model.seen == 1 and summary["resumed"] == 4
    manifest_path.unlink()
    _, _, summary, model = _run(tmp_path, mimic, list_path, threshold=0.6)
    assert model.seen == 5 and summary["resumed"] == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools decode vs numpy 2
def test_infer_shard_options_rle_labels_tta(shard):
    from pycocotools import mask as mask_utils

    tmp_path, mimic, list_path = shard
    out_root, manifest_path, _, model = _run(tmp_path, mimic, list_path, save_full_res_rle=True,
                                             separate_lungs=True, tta_flip=True, num_workers=0)
    manifest = pd.read_parquet(manifest_path)
    rec = manifest[manifest.dicom_id == "0a-02"].iloc[0]
    full = mask_utils.decode({"size": [int(rec.orig_height), int(rec.orig_width)], "counts": rec.mask_rle.encode()})
    assert full.shape == (900, 760)
    small = io.read_mask(out_root / rec.mask_path)
    assert abs(full.mean() - small.mean()) < 0.01
    labels = cv2.imread(str(out_root / rec.mask_path), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(labels)) == {0, 128, 255}
    assert labels[112, 60] == 128 and labels[112, 160] == 255  # patient's right lung on the image left
    assert model.seen == 2 * 5  # flipped pass too


def test_empty_shard_writes_an_empty_manifest(tmp_path):
    list_path = tmp_path / "p19.parquet"
    io.write_parquet(pd.DataFrame(columns=list(infer.LIST_COLUMNS)), list_path)
    summary = infer.infer_shard(list_path, tmp_path, tmp_path / "out", tmp_path / "m.parquet",
                                model=DarkIsLung(), progress=False)
    manifest = pd.read_parquet(tmp_path / "m.parquet")
    assert len(manifest) == 0 and list(manifest.columns) == list(infer.MANIFEST_DTYPES)
    assert summary["images"] == 0


def test_checkpoint_goes_through_train_load_model(shard, monkeypatch):
    tmp_path, mimic, list_path = shard
    calls = []

    def load_model(checkpoint_path, device):
        calls.append(checkpoint_path)
        model = DarkIsLung(channels=3)
        return model, {"config": {"size": 128, "in_channels": 3, "clahe_clip": 2.0, "clahe_tiles": 8,
                                  "architecture": "unet"}}

    monkeypatch.setitem(sys.modules, "cxlseg.train", types.SimpleNamespace(load_model=load_model))
    out_root = tmp_path / "ck"
    infer.infer_shard(list_path, mimic, out_root, out_root / "m.parquet", checkpoint="best.pt", progress=False)
    manifest = pd.read_parquet(out_root / "m.parquet")
    assert calls == ["best.pt"]
    assert manifest.model_id.iloc[0].startswith("unet-")
    ok = manifest[manifest.status == "ok"].iloc[0]
    assert cv2.imread(str(out_root / ok.image_path), cv2.IMREAD_UNCHANGED).shape == (128, 128)


def test_qc_vs_truth_tracks_dice(shard):
    tmp_path, mimic, list_path = shard
    out_root, manifest_path, _, _ = _run(tmp_path, mimic, list_path)
    truth_dir = tmp_path / "mimic-truth"
    truth_dir.mkdir()
    manifest = pd.read_parquet(manifest_path)
    for rec in manifest[manifest.status == "ok"].itertuples():
        truth = np.zeros((int(rec.orig_height), int(rec.orig_width)), np.uint8)
        h, w = truth.shape
        cv2.ellipse(truth, (int(w * 0.3), int(h * 0.5)), (int(w * 0.15), int(h * 0.3)), 0, 0, 360, 1, -1)
        cv2.ellipse(truth, (int(w * 0.7), int(h * 0.52)), (int(w * 0.13), int(h * 0.28)), 0, 0, 360, 2, -1)
        cv2.imwrite(str(truth_dir / f"{rec.dicom_id}.png"), truth)
    validation = infer.qc_vs_truth(manifest_path, truth_dir, out_root)
    assert len(validation) == 5 and (validation.dice > 0.85).all()
    tracking = infer.qc_tracking(validation)
    assert tracking["n"] == 5 and tracking["mean_dice"] > 0.85

    # a poor mask gets a low score and a low Dice
    poor = pd.DataFrame({"dicom_id": list("abcd"), "qc_score": [0.9, 0.8, 0.3, 0.1], "qc_flags": ["", "", "x", "x"],
                         "dice": [0.95, 0.9, 0.5, 0.2]})
    result = infer.qc_tracking(poor)
    assert result["spearman_rho"] == pytest.approx(1.0)
    assert result["mean_dice_flagged"] < result["mean_dice_unflagged"]


def test_flagged_overlays(shard):
    tmp_path, mimic, list_path = shard
    out_root, manifest_path, _, _ = _run(tmp_path, mimic, list_path, qc_thresholds={"min_qc_score": 1.01})
    table = infer.write_flagged_overlays(manifest_path, mimic, out_root, tmp_path / "overlays", max_images=2)
    assert len(table) == 2
    assert cv2.imread(table.overlay.iloc[0]).shape == (224, 224, 3)


def test_postprocess_block_and_bad_settings(shard):
    tmp_path, mimic, list_path = shard
    _, manifest_path, _, _ = _run(tmp_path, mimic, list_path, postprocess={"keep_components": 1, "closing": 0})
    ok = pd.read_parquet(manifest_path).query("status == 'ok'")
    assert (ok.n_components_kept == 1).all()
    for bad, match in [({"postprocess": {"closng": 3}}, "closng"), ({"qc_thresholds": {"min_area": 0.1}}, "min_area"),
                       ({"mask_format": "bmp"}, "bmp")]:
        with pytest.raises(ValueError, match=match):
            _run(tmp_path, mimic, list_path, out="bad", **bad)
    assert not (tmp_path / "bad").exists()  # settings are checked before any work


def test_a_write_failure_fails_that_image_only(shard):
    tmp_path, mimic, list_path = shard
    blocker = tmp_path / "out" / infer.study_dir(SUBJECT, "50000002")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the study folder should be")
    _, manifest_path, summary, _ = _run(tmp_path, mimic, list_path, write_threads=2)
    manifest = pd.read_parquet(manifest_path).set_index("dicom_id")
    for dicom_id in ("0a-03", "0a-04"):
        assert manifest.loc[dicom_id, "status"] == "failed"
        assert manifest.loc[dicom_id, "error"].startswith("writing outputs failed")
    assert summary["ok"] == 3

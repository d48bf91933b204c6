"""The speed-only GPU knobs of inference (infer.amp_dtype, compile, decode_device) on a CPU-only machine: they
validate, reach InferSettings and the Predictor, and the GPU decode path falls back or matches the CPU path."""

import logging

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg.config import ConfigError
from cxlseg.film import FilmSettings
from cxlseg.inference import gpu_decode
from cxlseg.inference.predictor import Predictor
from cxlseg.inference.settings import InferSettings
from cxlseg.inference.shard import ShardDataset

FILM_ON = FilmSettings(crop_border=True, polarity=True)


def test_speed_keys_validate_and_reach_infer_settings(make_config):
    defaults = InferSettings.from_config(make_config())
    assert (defaults.amp_dtype, defaults.compile, defaults.decode_device) == ("bf16", False, "cpu")
    chosen = InferSettings.from_config(
        make_config(infer={"amp_dtype": "fp16", "compile": True, "decode_device": "gpu"})
    )
    assert (chosen.amp_dtype, chosen.compile, chosen.decode_device) == ("fp16", True, "gpu")
    for bad in ({"amp_dtype": "fp32"}, {"compile": "yes"}, {"decode_device": "cuda"}):
        with pytest.raises(ConfigError):
            make_config(infer=bad)


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_amp_dtype_reaches_the_predictor_and_cpu_stays_float32(toys, amp):
    """On the CPU the network computes in float32 whatever infer.amp_dtype says (autocast is for CUDA; the CUDA
    side is tests/test_cuda.py), and gives exactly the float32 probabilities."""
    spec = toys.spec(in_channels=3)
    x = spec.to_tensor(np.stack([spec.prepare(toys.radiograph_like(64, 56, seed=s)) for s in range(2)]))
    model = toys.RecordsDtype(channels=3)
    predictor = Predictor([model], spec, amp_dtype=amp)
    assert predictor.amp_dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    with torch.no_grad():
        want = torch.sigmoid(model(x))[:, 0].numpy()
    model.dtypes.clear(), model.channels_last.clear()
    assert np.array_equal(predictor.forward(x), want)
    assert model.dtypes == [torch.float32] and model.channels_last == [False]
    # the probe would see it if autocast ran here: CPU autocast does lower the convolution
    with torch.no_grad(), torch.autocast("cpu", dtype=predictor.amp_dtype):
        lowered = torch.sigmoid(model(x).float())[:, 0].numpy()
    assert model.dtypes[-1] == predictor.amp_dtype and not np.array_equal(lowered, want)


def test_compile_wraps_the_networks(toys):
    model = toys.DarkIsLung()
    predictor = Predictor([model], toys.spec(), compile=True)
    assert getattr(predictor.models[0], "_orig_mod", None) is model  # compiled lazily, on the first batch
    assert Predictor([model], toys.spec()).models[0] is model


def test_gpu_decode_on_a_cpu_only_run_falls_back_with_a_warning(shard, infer_run, caplog):
    assert gpu_decode.resolve_decode_device("cpu", torch.device("cuda")) == "cpu"
    with caplog.at_level(logging.WARNING, logger="cxlseg.inference.gpu_decode"):
        gpu = infer_run(shard, "gpu", decode_device="gpu")
    assert "decoding on the CPU" in caplog.text
    cpu = infer_run(shard, "cpu")
    same = ["dicom_id", "status", "error", "note", "decode_factor", "qc_flags", "lung_area_fraction"]
    pd.testing.assert_frame_equal(pd.read_parquet(gpu.manifest)[same], pd.read_parquet(cpu.manifest)[same])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return cv2.PSNR(a, b)


def test_batch_decoder_matches_the_cpu_path_and_its_failures(shard, toys):
    """torchvision's CPU decoder stands in for nvJPEG: same batching, fallbacks and sample records."""
    items = pd.read_parquet(shard.list_path).to_dict("records")
    for it in items:
        it["rows"], it["columns"] = (None if pd.isna(it[k]) else int(it[k]) for k in ("rows", "columns"))
    dataset = ShardDataset(items, shard.mimic, toys.spec(), 224, 1.0, FILM_ON)
    reader = gpu_decode.RawReader(dataset)
    samples = gpu_decode.BatchDecoder(dataset, "cpu")([reader[i] for i in range(len(items))])
    for i, got in enumerate(samples):
        want = dataset[i]
        assert (got["index"], got["ok"], got["error"]) == (want["index"], want["ok"], want["error"]), items[i]
        if want["ok"]:
            assert got["orig_hw"] == tuple(toys.SHARD_CASES[i][3]) or "disagrees" in want["note"]
            assert got["image"].shape == want["image"].shape == (224, 224)
            assert _psnr(got["image"], want["image"]) > 30, items[i]["dicom_id"]
            assert got["model_image"].shape == want["model_image"].shape


def test_the_gpu_decode_loop_runs_end_to_end(shard, infer_run, monkeypatch):
    """The shard loop through gpu_decode.batches (decoding on the CPU here) gives the CPU path's statuses."""
    monkeypatch.setattr(gpu_decode, "resolve_decode_device", lambda requested, device: requested)
    gpu = pd.read_parquet(infer_run(shard, "gpu", decode_device="gpu", num_workers=1).manifest)
    cpu = pd.read_parquet(infer_run(shard, "cpu").manifest)
    assert list(gpu.status) == list(cpu.status) and list(gpu.error) == list(cpu.error)
    ok = cpu.status == "ok"
    assert np.allclose(gpu.lung_area_fraction[ok], cpu.lung_area_fraction[ok], atol=0.02)


def test_the_inference_predictor_gets_the_speed_keys(trained, infer_settings):
    """The rule builds its (ensemble) predictor with inference_predictor: the speed keys must reach it."""
    from cxlseg.inference.shard import inference_predictor

    ckpt = str(trained.checkpoint)
    selected = {"architecture": "sa_unet", "checkpoint": ckpt, "ranking": ["sa_unet"], "checkpoints": {"sa_unet": ckpt}}
    predictor = inference_predictor(selected, infer_settings(amp_dtype="fp16", device="cpu"))
    assert predictor.amp_dtype == torch.float16 and predictor.device.type == "cpu"
    assert inference_predictor(selected, infer_settings(amp_dtype="bf16")).amp_dtype == torch.bfloat16


def test_device_resize_linear_is_cv2_linear_and_area_is_cv2_area(toys):
    """The GPU decode path resizes as the CPU path does for both preprocess.interpolation values (linear within
    one grey level of cv2.INTER_LINEAR)."""
    image = toys.radiograph_like(1531, 1277, seed=4)
    tensor = torch.from_numpy(image)[None]
    linear = gpu_decode.device_resize(tensor, 224, "linear")
    assert np.abs(linear.astype(int) - cv2.resize(image, (224, 224))).max() <= 1
    area = gpu_decode.device_resize(tensor, 224, "area")
    # adaptive average pooling, not OpenCV's exact pixel areas: close on average, not pixel for pixel
    assert np.abs(area.astype(int) - cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)).mean() < 1
    assert np.abs(linear.astype(int) - area).max() > 3

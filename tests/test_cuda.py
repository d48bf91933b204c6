"""The CUDA paths of inference, on a GPU: the predictor (autocast, channels_last), torch.compile and nvJPEG decoding
each give what the CPU path gives, within the tolerance of half precision. Marked `cuda` and skipped without a GPU;
tests/bench/gpu_checks.sh runs them (`pytest -m cuda`) on a lent GPU node. CPU behaviour of the same knobs is in
tests/test_fast_path.py."""

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from cxlseg.film import FilmSettings
from cxlseg.inference import gpu_decode
from cxlseg.inference.predictor import Predictor
from cxlseg.inference.shard import ShardDataset
from cxlseg.training.checkpoint import load_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (tests/bench/gpu_checks.sh on a GPU node)"
    ),
]

CUDA = "cuda"
AMP = ["fp16", "bf16"]


def _films(toys, spec, n: int = 4) -> torch.Tensor:
    return spec.to_tensor(np.stack([spec.prepare(toys.radiograph_like(300, 260, seed=s)) for s in range(n)]))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / max(1, int(a.sum() + b.sum()))


@pytest.mark.parametrize("amp", AMP)
def test_the_predictor_on_cuda_gives_the_cpu_probabilities(trained, toys, amp):
    """A trained network (ensemble of best and last, flip TTA) on CUDA under autocast: the CPU's float32
    probabilities within half-precision error, the same masks, the same agreement features."""
    checkpoints = [trained.checkpoint, trained.folder / "checkpoint_last.pt"]
    cpu = Predictor.from_checkpoints(checkpoints, device="cpu", tta_flip=True)
    gpu = Predictor.from_checkpoints(checkpoints, device=CUDA, tta_flip=True, amp_dtype=amp)
    assert gpu.device.type == "cuda" and all(p.is_cuda for m in gpu.models for p in m.parameters())
    x = _films(toys, cpu.spec)
    want, got = cpu.predict_batch(x, 48, 0.5), gpu.predict_batch(x, 48, 0.5)
    assert got.prob.dtype == np.float32 and got.prob.shape == want.prob.shape == (4, 48, 48)
    error = np.abs(got.prob - want.prob)
    assert error.max() < 0.05 and error.mean() < 0.01, (error.max(), error.mean())
    assert _dice(got.prob >= 0.5, want.prob >= 0.5) > 0.98
    for key in ("member_agreement", "flip_agreement"):
        assert np.allclose(getattr(got, key), getattr(want, key), atol=0.03), key


@pytest.mark.parametrize("amp", AMP)
def test_autocast_and_channels_last_reach_the_network_on_cuda(toys, amp):
    """Inside the network the convolution runs in infer.amp_dtype (fp16 where the GPU has no bf16) on a
    channels_last input; the probabilities come back as float32 close to the float32 ones."""
    spec = toys.spec(in_channels=3)
    x = _films(toys, spec, n=2)
    model = toys.RecordsDtype(channels=3)
    with torch.no_grad():
        want = torch.sigmoid(model(x))[:, 0].numpy()
    predictor = Predictor([model], spec, device=CUDA, amp_dtype=amp)
    model.dtypes.clear(), model.channels_last.clear()
    got = predictor.forward(x)
    expected = torch.bfloat16 if amp == "bf16" and torch.cuda.is_bf16_supported() else torch.float16
    assert predictor.amp_dtype == expected and model.dtypes == [expected] and model.channels_last == [True]
    assert got.dtype == np.float32 and np.abs(got - want).max() < 0.05


def test_compile_on_cuda_gives_the_eager_probabilities(trained, toys):
    """torch.compile traces the same network: its probabilities are eager's, within kernel-fusion rounding."""
    model, _ = load_model(trained.checkpoint, CUDA)
    eager = Predictor.from_checkpoints(trained.checkpoint, device=CUDA, tta_flip=True)
    compiled = Predictor([model], eager.spec, device=CUDA, tta_flip=True, compile=True)
    assert getattr(compiled.models[0], "_orig_mod", None) is model
    x = _films(toys, eager.spec)
    want = eager.forward(x)
    for _ in range(2):  # the first batch compiles, the second runs the compiled graph
        assert np.abs(compiled.forward(x) - want).max() < 0.01


def test_nvjpeg_decode_gives_the_cpu_decode(shard, toys):
    """The batch decoder on the GPU (nvJPEG) gives each image the CPU path gives, and hands the CPU path what it
    cannot decode, so failures and their reasons are the same."""
    assert gpu_decode.resolve_decode_device("gpu", torch.device(CUDA)) == "gpu"
    items = pd.read_parquet(shard.list_path).to_dict("records")
    for it in items:
        it["rows"], it["columns"] = (None if pd.isna(it[k]) else int(it[k]) for k in ("rows", "columns"))
    dataset = ShardDataset(items, shard.mimic, toys.spec(), 224, 1.0, FilmSettings(crop_border=True, polarity=True))
    reader = gpu_decode.RawReader(dataset)
    raw, decoder = [reader[i] for i in range(len(items))], gpu_decode.BatchDecoder(dataset, CUDA)
    on_device = [t for t in decoder._decode([data for _, data in raw if data is not None]) if t is not None]
    assert on_device and all(t.is_cuda for t in on_device)  # nvJPEG decoded them, not the CPU fallback
    samples = decoder(raw)
    decoded_ok = 0
    for i, got in enumerate(samples):
        want = dataset[i]
        assert (got["index"], got["ok"], got["error"]) == (want["index"], want["ok"], want["error"]), items[i]
        if want["ok"]:
            decoded_ok += 1
            assert got["image"].shape == want["image"].shape == (224, 224)
            assert cv2.PSNR(got["image"], want["image"]) > 30, items[i]["dicom_id"]
    assert decoded_ok == sum(case[-1] == "ok" for case in toys.SHARD_CASES)


@pytest.mark.parametrize("interpolation", ["area", "linear"])
def test_device_resize_on_cuda_is_the_cpu_resize(toys, interpolation):
    image = torch.from_numpy(toys.radiograph_like(1531, 1277, seed=4))[None]
    on_gpu = gpu_decode.device_resize(image.to(CUDA), 224, interpolation)
    on_cpu = gpu_decode.device_resize(image, 224, interpolation)
    assert on_gpu.shape == (224, 224) and np.abs(on_gpu.astype(int) - on_cpu).max() <= 1


def test_the_shard_loop_on_cuda_with_gpu_decode_gives_the_cpu_run(shard, infer_run, infer_settings, toys):
    """A whole shard through a CUDA predictor and nvJPEG: the CPU run's statuses, errors and lung areas."""
    tta = infer_settings().tta_flip
    predictor = Predictor([toys.DarkIsLung()], toys.spec(), device=CUDA, tta_flip=tta, model_id="test-model")
    assert gpu_decode.resolve_decode_device("gpu", predictor.device) == "gpu"  # the loop decodes with nvJPEG
    gpu = pd.read_parquet(infer_run(shard, "gpu", predictor=predictor, decode_device="gpu", num_workers=1).manifest)
    cpu = pd.read_parquet(infer_run(shard, "cpu").manifest)
    assert list(gpu.status) == list(cpu.status) and list(gpu.error) == list(cpu.error)
    ok = cpu.status == "ok"
    assert ok.sum() == sum(case[-1] == "ok" for case in toys.SHARD_CASES)
    assert np.allclose(gpu.lung_area_fraction[ok], cpu.lung_area_fraction[ok], atol=0.02)

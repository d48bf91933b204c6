"""Benchmark of inference throughput on MIMIC-size JPEGs (not a test): images/s end to end, where the time
goes, and the ratio to the CXLSeg authors' path measured in the same run. The same command runs on CPU and CUDA.

    python tests/bench/bench_throughput.py --images 48                       # this CPU
    python tests/bench/bench_throughput.py --device cuda --images 2000 --workers 15 --decode-device gpu
    python tests/bench/bench_throughput.py --rss-check                       # memory stays flat over 24,000 images

Writes N phantom radiographs (3056x2544 and 2544x3056, JPEG quality chosen per image for about 1.4 MB, like
MIMIC-CXR-JPG) in MIMIC's layout plus the shard list infer_shard reads, cached in --work. The model is a freshly
initialised checkpoint of the production recipe (config/config.yaml: attention_unet, 16 base channels, 160 px,
flip TTA): throughput does not depend on the weights. Prints:
  * end to end: one infer_shard run (decode, forward, clean-up, QC, two JPEG writes, manifest), images/s;
  * the stages measured one by one on the same images: decode (+ the network's resize and CLAHE), forward,
    clean-up + QC, writes; and end-to-end / sum of parts (target <= 1.15 on CPU);
  * the authors' path: full cv2.imread colour decode, resize, LAB CLAHE, forward with batch size 1, one image
    at a time, same clean-up and writes; and our images/s over theirs;
  * CPU cores available, and GPU utilisation sampled during the end-to-end run on CUDA.
--rss-check segments a long shard of small JPEGs instead; resident memory (with DataLoader workers) at image
~1,000 vs the end must grow < 200 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import record  # noqa: E402
from cxlseg import io  # noqa: E402
from cxlseg.config import load_config  # noqa: E402
from cxlseg.inference import mask_qc as qc  # noqa: E402
from cxlseg.inference.gpu_decode import BatchDecoder, RawReader, resolve_decode_device  # noqa: E402
from cxlseg.inference.outputs import finish_image, mask_file, output_paths, segmented_image  # noqa: E402
from cxlseg.inference.predictor import Predictor  # noqa: E402
from cxlseg.inference.settings import InferSettings  # noqa: E402
from cxlseg.inference.shard import ShardDataset, infer_shard  # noqa: E402
from cxlseg.mimic import image_relpath  # noqa: E402
from cxlseg.phantoms.render import render_phantom  # noqa: E402
from cxlseg.training.checkpoint import build_model, payload, write_checkpoint  # noqa: E402
from cxlseg.training.settings import TrainConfig  # noqa: E402

MIMIC_BYTES = 1.4e6  # mean size of a MIMIC-CXR-JPG file
SHAPES = {"full": ((3056, 2544), (2544, 3056)), "small": ((320, 272), (272, 320))}
RSS_LIMIT_MB = 200.0
TARGET_OVERHEAD = 1.15


def encode_near(image: np.ndarray, target_bytes: float | None) -> bytes:
    """JPEG bytes at the quality (70-97) whose size is nearest the target; quality 90 without a target."""
    encode = lambda q: cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes()  # noqa: E731
    if target_bytes is None:
        return encode(90)
    lo, hi, best = 70, 97, encode(90)
    while lo <= hi:
        q = (lo + hi) // 2
        data = encode(q)
        best = min(best, data, key=lambda d: abs(len(d) - target_bytes))
        lo, hi = (q + 1, hi) if len(data) < target_bytes else (lo, q - 1)
    return best


def make_archive(root: Path, n: int, size: str, listed: int | None = None, seed: int = 0) -> Path:
    """n phantom JPEGs in MIMIC's layout (files already there are kept) and a shard list of `listed` rows (default
    n; more rows list the files again under new ids: a long shard from few files); returns the list's path."""
    rows = []
    for j in range(listed or n):
        i = j % n
        height, width = SHAPES[size][i % 2]
        rel = image_relpath(f"10{i:06d}", f"5{i:07d}", f"{i:08x}-{height:04x}{width:04x}")
        if j < n and not (root / rel).exists():
            image = render_phantom(np.random.default_rng([seed, i]), height, width).image
            with io.atomic_path(root / rel) as tmp:
                tmp.write_bytes(encode_near(image, MIMIC_BYTES if size == "full" else None))
        ids = dict(dicom_id=f"{j:08x}-{height:04x}{width:04x}", subject_id=f"10{j // 50:06d}", study_id=f"5{j:07d}")
        rows.append({**ids, "image_path": rel, "rows": height, "columns": width})
    list_path = root / "lists" / f"p10-{n}x{listed or n}.parquet"
    io.write_parquet(pd.DataFrame(rows), list_path)
    return list_path


def recipe_config(args) -> dict:
    """config/config.yaml (the production recipe) with this run's speed-only infer keys."""
    keys = ("batch_size", "device", "write_threads", "amp_dtype", "compile", "decode_device")
    infer = {"num_workers": args.workers, **{k: getattr(args, k) for k in keys}}
    return load_config(REPO / "config" / "config.yaml", overrides={"infer": infer})


def make_checkpoint(work: Path, config: dict, architecture: str) -> Path:
    """A freshly initialised checkpoint of the recipe's network (seeded, cached)."""
    cfg = dataclasses.asdict(TrainConfig.from_config(config, architecture))
    path = work / f"untrained-{architecture}-{cfg['base_channels']}-{cfg['size']}.pt"
    if not path.exists():
        torch.manual_seed(0)
        write_checkpoint(path, payload(build_model(cfg), cfg, epoch=0, metrics={}))
    return path


def rss_mb() -> float:
    """Resident memory of this process and its children (DataLoader workers), in MB; VmRSS without psutil."""
    try:
        import psutil
    except ImportError:
        status = Path("/proc/self/status").read_text().splitlines()
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))
    total = 0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a worker that just exited
            total += proc.memory_info().rss
    return total / 2**20


class GpuSampler(threading.Thread):
    """GPU utilisation (%) sampled every 0.2 s: torch.cuda.utilization, else nvidia-smi (fixed arguments)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def read(self) -> float | None:
        try:
            return float(torch.cuda.utilization())
        except Exception:  # noqa: BLE001 - needs pynvml; fall back to the CLI
            smi = shutil.which("nvidia-smi")
            if not smi:
                return None
            cmd = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
            return float(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.samples.extend(v for v in (self.read(),) if v is not None)


def end_to_end(list_path: Path, mimic: Path, out: Path, predictor: Predictor, settings: InferSettings) -> dict:
    """One infer_shard run, wall clock; GPU utilisation sampled alongside on CUDA."""
    shutil.rmtree(out, ignore_errors=True)
    sampler = GpuSampler() if predictor.device.type == "cuda" else None
    if sampler:
        sampler.start()
    summary, seconds = _timed(
        infer_shard, list_path, mimic, out, out / "manifest.parquet", predictor, settings, progress=False
    )
    if sampler:
        sampler.stop.set()
        sampler.join()
    util = sampler.samples if sampler else []
    return {
        **seconds,
        "ok": summary["ok"],
        "failed": summary["failed"],
        "gpu_util_mean": float(np.mean(util)) if util else None,
        "gpu_util_max": float(np.max(util)) if util else None,
    }


def _clocks() -> tuple[float, float]:
    """(wall s, CPU s of this process + its finished children, e.g. workers): core-seconds ignore others' load."""
    t = os.times()
    return time.perf_counter(), t.user + t.system + t.children_user + t.children_system


def _timed(fn, *args, **kwargs):
    w0, c0 = _clocks()
    result = fn(*args, **kwargs)
    w1, c1 = _clocks()
    return result, {"wall": w1 - w0, "cpu": c1 - c0}


def stages(items: list[dict], mimic: Path, out: Path, predictor: Predictor, settings: InferSettings) -> dict:
    """Wall and CPU seconds per stage over all images, each stage run on its own in this process."""
    dataset = ShardDataset(items, mimic, predictor.spec, settings.output_size, settings.reduce_min_ratio, settings.film)
    idx, bs = range(len(items)), settings.batch_size
    if resolve_decode_device(settings.decode_device, predictor.device) == "gpu":
        reader, decoder = RawReader(dataset), BatchDecoder(dataset, predictor.device)
        decode = lambda: [s for k in idx[::bs] for s in decoder([reader[i] for i in idx[k : k + bs]])]  # noqa: E731
    else:
        decode = lambda: [dataset[i] for i in idx]  # noqa: E731
    samples, t_decode = _timed(decode)
    assert all(s["ok"] for s in samples), [s["error"] for s in samples if not s["ok"]]
    x = predictor.spec.to_tensor(np.stack([s["model_image"] for s in samples]))
    size = settings.output_size
    forward = lambda: [predictor.predict_batch(x[k : k + bs], size, settings.threshold) for k in idx[::bs]]  # noqa: E731
    batches, t_forward = _timed(forward)
    probs = [(b.prob[j], b.agreement(j)) for b in batches for j in range(len(b.prob))]
    s = settings

    def clean_and_qc(prob, signals):
        mask = s.postprocess.clean(prob, s.threshold)
        return mask, qc.assess(prob, mask, signals, s.qc, None, s.threshold)[1]

    masks, t_clean = _timed(lambda: [clean_and_qc(*p)[0] for p in probs])
    quality = [cv2.IMWRITE_JPEG_QUALITY, int(s.jpeg_quality)]

    def write(i):
        image_rel, mask_rel = output_paths(items[i], s.mask_format)
        segmented = segmented_image(samples[i]["image"], masks[i], s.segmented_source, predictor.spec)
        io.write_image(io.safe_join(out, image_rel), segmented, quality)
        io.write_image(io.safe_join(out, mask_rel), mask_file(masks[i], s.separate_lungs), quality)

    _, t_write = _timed(lambda: [write(i) for i in idx])
    shutil.rmtree(out, ignore_errors=True)
    return {"decode": t_decode, "forward": t_forward, "cleanup_qc": t_clean, "writes": t_write}


def authors_image(path: Path, item: dict, out: Path, predictor: Predictor, settings: InferSettings) -> None:
    """The CXLSeg authors' path for one image: full colour decode, resize, CLAHE on L of LAB, batch-1 forward."""
    spec, size = predictor.spec, settings.output_size
    image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_COLOR), (spec.net_size, spec.net_size))
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=spec.clahe_clip, tileGridSize=(spec.clahe_tiles,) * 2).apply(lab[..., 0])
    gray = cv2.cvtColor(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR), cv2.COLOR_BGR2GRAY)
    prob = predictor.forward(spec.to_tensor(gray[None]), size)[0]
    resized = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (size, size))
    finish_image({**item, "orig_hw": image.shape[:2]}, resized, prob, None, None, out, settings, spec)


def authors_path(items: list[dict], mimic: Path, out: Path, predictor: Predictor, settings: InferSettings) -> dict:
    """Wall and CPU seconds of the authors' one-image-at-a-time path over all images."""
    _, seconds = _timed(lambda: [authors_image(mimic / it["image_path"], it, out, predictor, settings) for it in items])
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def setup(args) -> tuple[Predictor, InferSettings]:
    config = recipe_config(args)
    settings = InferSettings.from_config(config)
    speed = {k: getattr(settings, k) for k in ("device", "tta_flip", "amp_dtype", "compile")}
    members = args.arch[: args.ensemble or settings.ensemble]
    return Predictor.from_checkpoints([make_checkpoint(args.work, config, a) for a in members], **speed), settings


class StandIn(torch.nn.Module):
    """--rss-stand-in: dark is lung, no weights. The network's memory is constant, its CPU time is not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 - x[:, :1]) * 8


def throughput(args) -> dict:
    predictor, settings = setup(args)
    mimic = args.work / f"mimic-{args.size}"
    list_path = make_archive(mimic, args.images, args.size, listed=args.images * args.repeat)
    items = pd.read_parquet(list_path).to_dict("records")
    files = sorted({mimic / it["image_path"] for it in items})
    mean_bytes = float(np.mean([f.stat().st_size for f in files]))
    for f in files:  # page cache: every path reads warm files, as a rerun would
        f.read_bytes()
    warm = items[: settings.batch_size]
    stages(warm, mimic, args.work / "warm", predictor, settings)  # warm-up (cuDNN, compile, allocator)
    authors_path(warm[:2], mimic, args.work / "warm", predictor, settings)

    e2e = end_to_end(list_path, mimic, args.work / "out", predictor, settings)
    parts = stages(items, mimic, args.work / "stages", predictor, settings)
    base = authors_path(items, mimic, args.work / "authors", predictor, settings)
    n, cores = len(items), len(os.sched_getaffinity(0))
    clocks = ("wall", "cpu")
    sum_parts = {c: sum(p[c] for p in parts.values()) for c in clocks}
    core_s = e2e["cpu"] / n
    cpu_run = predictor.device.type == "cpu"
    node_ips = cores / core_s if cpu_run else n / e2e["wall"]  # a dedicated CPU node keeps every core busy
    return {
        "device": str(predictor.device),
        "gpu": torch.cuda.get_device_name(predictor.device) if not cpu_run else None,
        "cpu_cores": cores,
        "torch_threads": torch.get_num_threads(),
        "images": n,
        "distinct_files": len(files),
        "image_shapes": [list(s) for s in SHAPES[args.size]],
        "mean_jpeg_mb": mean_bytes / 1e6,
        "settings": {
            k: getattr(settings, k)
            for k in ("batch_size", "num_workers", "write_threads", "tta_flip", "amp_dtype", "compile", "decode_device")
        },
        "model": f"{'+'.join(args.arch[: len(predictor.models)])} (untrained), net {predictor.spec.net_size} px, "
        f"output {settings.output_size} px",
        "end_to_end": e2e,
        "images_per_s_measured": n / e2e["wall"],
        "core_seconds_per_image": core_s,
        "images_per_s_per_core": 1 / core_s,
        "images_per_s_node": node_ips,
        "stage_ms_per_image": {c: {k: 1000 * v[c] / n for k, v in parts.items()} for c in clocks},
        "e2e_over_sum_of_parts": {c: e2e[c] / sum_parts[c] for c in clocks},
        "authors_images_per_s": n / base["wall"],
        "speedup_vs_authors": {c: base[c] / e2e[c] for c in clocks},
        "projected_hours_243324": 243324 / node_ips / 3600,
    }


def print_throughput(r: dict) -> None:
    gpu = f" ({r['gpu']})" if r["gpu"] else ""
    print(
        f"{r['images']} images ({r['distinct_files']} JPEG files) {r['image_shapes']}, mean {r['mean_jpeg_mb']:.2f} MB; device {r['device']}{gpu}; "
        f"{r['cpu_cores']} CPU cores, torch threads {r['torch_threads']}"
    )
    print(f"settings {r['settings']}; model {r['model']}")
    print("stage (each alone, same images)   wall ms/image   CPU ms/image")
    for name, ms in r["stage_ms_per_image"]["wall"].items():
        print(f"  {name:32s} {ms:13.1f} {r['stage_ms_per_image']['cpu'][name]:14.1f}")
    e2e, n = r["end_to_end"], r["images"]
    print(f"  {'end to end (infer_shard)':32s} {1000 * e2e['wall'] / n:13.1f} {1000 * e2e['cpu'] / n:14.1f}")
    print(f"images/s measured (wall)          {r['images_per_s_measured']:8.2f}")
    print(f"images/s per core (1 / CPU s)     {r['images_per_s_per_core']:8.2f}")
    print(f"images/s per node                 {r['images_per_s_node']:8.2f}  ({r['cpu_cores']} cores)")
    for clock, ratio in r["e2e_over_sum_of_parts"].items():
        verdict = "PASS" if ratio <= TARGET_OVERHEAD else "FAIL"
        print(f"end to end / sum of parts ({clock:4s})  {ratio:6.2f}  target <= {TARGET_OVERHEAD}  {verdict}")
    speed = r["speedup_vs_authors"]
    print(
        f"authors' path {r['authors_images_per_s']:.2f} images/s; ours is {speed['wall']:.2f}x faster (wall), "
        f"{speed['cpu']:.2f}x cheaper (CPU)"
    )
    if e2e["gpu_util_mean"] is not None:
        print(f"GPU utilisation mean {e2e['gpu_util_mean']:.0f}%, max {e2e['gpu_util_max']:.0f}%")
    print(f"243,324 images at {r['images_per_s_node']:.2f} images/s: {r['projected_hours_243324']:.1f} h on one node")


def rss_check(args) -> dict:
    """A long shard of 16 small JPEGs listed under distinct ids; RSS at image ~1,000 and at the end."""
    predictor, settings = setup(args)
    if args.rss_stand_in:
        predictor = Predictor([StandIn()], predictor.spec, device=predictor.device, model_id="stand-in")
    mimic = args.work / "mimic-rss"
    list_path = make_archive(mimic, 16, "small", listed=args.rss_images)
    samples: list[tuple[int, float]] = []
    shutil.rmtree(out := args.work / "rss-out", ignore_errors=True)
    sample = lambda n: samples.append((n, rss_mb()))  # noqa: E731 - after each partial-manifest flush
    _, seconds = _timed(
        lambda: infer_shard(list_path, mimic, out, out / "m.parquet", predictor, settings, on_flush=sample)
    )
    samples = samples or [(args.rss_images, rss_mb())]  # the last flush is the end: workers still alive
    shutil.rmtree(out, ignore_errors=True)
    first = next(((n, mb) for n, mb in samples if n >= min(1000, args.rss_images)), samples[-1])
    growth = samples[-1][1] - first[1]  # the rows kept for the manifest grow it a little, nothing else should
    return {
        "images": args.rss_images,
        "seconds": seconds["wall"],
        "rss_mb_at": {"image": first[0], "mb": first[1]},
        "rss_mb_end": samples[-1][1],
        "rss_peak_mb": max(mb for _, mb in samples),
        "growth_mb": growth,
        "pass": growth < RSS_LIMIT_MB,
        "workers": settings.num_workers,
        "network": predictor.model_id,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    ap.add_argument("--images", type=int, default=48, help="images of the throughput run (default 48)")
    ap.add_argument("--repeat", type=int, default=1, help="list every image this many times (a longer shard)")
    ap.add_argument("--size", choices=sorted(SHAPES), default="full", help="full: MIMIC size; small: a smoke test")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU cores - 1)")
    ap.add_argument("--write-threads", type=int, default=0, help="infer.write_threads (clean-up and writes pool)")
    ap.add_argument("--amp-dtype", choices=["bf16", "fp16"], default="bf16")
    ap.add_argument("--compile", action="store_true", help="infer.compile: torch.compile the network")
    ap.add_argument("--decode-device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument(
        "--arch",
        nargs="+",
        default=["attention_unet", "unet"],
        help="architectures of the untrained checkpoints, the first --ensemble of them are used",
    )
    ap.add_argument("--ensemble", type=int, default=None, help="members (default: infer.ensemble of config.yaml)")
    ap.add_argument("--work", type=Path, default=Path("results/bench-throughput"), help="cache of inputs")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--rss-check", action="store_true", help="check that memory stays flat over a long shard")
    ap.add_argument("--rss-images", type=int, default=24000)
    ap.add_argument("--rss-stand-in", action="store_true", help="RSS check with a weightless stand-in network (fast)")
    args = ap.parse_args(argv)
    if args.workers is None:
        args.workers = max(len(os.sched_getaffinity(0)) - 1, 0)
    args.work.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)  # as in the decode workers; an OpenCV pool started here hangs forked workers' cv2 calls
    if args.rss_check:
        result = rss_check(args)
        print(
            f"RSS over {result['images']} images ({result['network']}, {result['seconds']:.0f} s, "
            f"{result['workers']} workers): "
            f"{result['rss_mb_at']['mb']:.0f} MB at image {result['rss_mb_at']['image']}, "
            f"{result['rss_mb_end']:.0f} MB at the end, growth {result['growth_mb']:+.1f} MB "
            f"(limit {RSS_LIMIT_MB:.0f})  {'PASS' if result['pass'] else 'FAIL'}"
        )
    else:
        result = throughput(args)
        print_throughput(result)
    if args.json:
        record.write(args.json, result, __file__, argv)
    return result


if __name__ == "__main__":
    main()

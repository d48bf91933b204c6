"""Benchmark of `preprocess.interpolation` (not a test): what `linear` (the CXLSeg authors' resize) costs to decode,
and how close each resize comes to CXLSeg's published pixels.

    python tests/bench/bench_interpolation.py --n 8
    python tests/bench/bench_interpolation.py --n 8 --sample "path/to/CXLSeg/sample images" [--json PATH]

(a) Decode cost: MIMIC-sized radiograph-like JPEGs (3056 x 2544, quality 95) decoded to 224 px by
`preprocess.decode_for_inference` with `area` (reduced-DCT 1/8 decode + INTER_AREA, the default) and `linear`
(full decode + INTER_LINEAR), interleaved over --repeat rounds; prints CPU and wall ms per image and linear / area.
(b) With --sample, the authors' published sample (github.com/Wimukti/CXLSeg, `sample images/`: <id>-original.jpg,
<id>-mask.jpg, <id>.jpg; a MIMIC-CXR image, never copied into this project): the segmented image this pipeline
writes from the original and the published mask under each interpolation (3 channels, quality 95, as
config/paper.yaml), and its mean |difference| inside the lungs from AND(INTER_LINEAR resize of the original, mask)
and from the published segmented image.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import record  # noqa: E402
from bench_infer import radiograph  # noqa: E402
from cxlseg import preprocess  # noqa: E402
from cxlseg.inference.outputs import segmented_image  # noqa: E402
from cxlseg.inference.predictor import InputSpec  # noqa: E402

INTERPOLATIONS = ("area", "linear")


def decode_cost(paths: list[Path], hw: tuple[int, int], size: int, repeat: int) -> dict:
    """CPU and wall ms per image of each interpolation's decode, the two interleaved image by image."""
    spent = {k: [0.0, 0.0] for k in INTERPOLATIONS}
    for _ in range(repeat):
        for path in paths:
            for how in INTERPOLATIONS:
                wall, cpu = time.perf_counter(), time.process_time()
                preprocess.decode_for_inference(path, size, *hw, interpolation=how)
                spent[how][0] += time.perf_counter() - wall
                spent[how][1] += time.process_time() - cpu
    n = len(paths) * repeat
    return {how: {"wall_ms": 1000 * w / n, "cpu_ms": 1000 * c / n} for how, (w, c) in spent.items()}


def sample_errors(sample_dir: Path, work: Path) -> dict:
    """Mean |ours - reference| inside the published mask, per interpolation, against the authors' definition
    (AND of the INTER_LINEAR resize and the mask) and against their published segmented JPEG."""
    original = next(sample_dir.glob("*-original.jpg"))
    stem = original.name[: -len("-original.jpg")]
    mask = (cv2.imread(str(sample_dir / f"{stem}-mask.jpg"), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8)
    published = cv2.imread(str(sample_dir / f"{stem}.jpg"), cv2.IMREAD_GRAYSCALE).astype(int)
    full = cv2.imread(str(original), cv2.IMREAD_GRAYSCALE)
    authors = np.where(mask > 0, cv2.resize(full, mask.shape[::-1]), 0)
    inside = mask > 0
    result = {"published_vs_authors": float(np.abs(published - authors)[inside].mean())}
    spec = InputSpec(mask.shape[0], 3, 2.0, 8, "lab")
    for how in INTERPOLATIONS:
        resized = preprocess.decode_for_inference(original, mask.shape[0], *full.shape, interpolation=how)[0]
        path = work / f"{how}.jpg"
        cv2.imwrite(str(path), segmented_image(resized, mask, "original", spec, 3), [cv2.IMWRITE_JPEG_QUALITY, 95])
        ours = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(int)
        result[how] = {
            "vs_authors": float(np.abs(ours - authors)[inside].mean()),
            "vs_published": float(np.abs(ours - published)[inside].mean()),
            "max_resize_difference": int(np.abs(resized.astype(int) - cv2.resize(full, mask.shape[::-1])).max()),
        }
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="synthetic JPEGs")
    ap.add_argument("--height", type=int, default=3056)
    ap.add_argument("--width", type=int, default=2544)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sample", type=Path, default=None, help="folder with the authors' published sample images")
    ap.add_argument("--json", type=Path, help="write the numbers, the command and the machine here")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # one decode worker's cost, as a DataLoader worker runs it
    rng = np.random.default_rng(0)
    hw = (args.height, args.width)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.n):
            paths.append(Path(tmp) / f"{i}.jpg")
            cv2.imwrite(str(paths[-1]), radiograph(*hw, rng), [cv2.IMWRITE_JPEG_QUALITY, 95])
        mb = np.mean([p.stat().st_size for p in paths]) / 1e6
        cost = decode_cost(paths, hw, args.size, args.repeat)
        result = {"images": args.n, "repeat": args.repeat, "mean_mb": round(mb, 2), "decode": cost}
        print(f"{args.n} JPEGs {hw[0]}x{hw[1]}, mean {mb:.2f} MB, {args.repeat} rounds, 1 OpenCV thread")
        for how in INTERPOLATIONS:
            print(
                f"  {how:6s} decode to {args.size}: {cost[how]['cpu_ms']:6.1f} CPU ms, {cost[how]['wall_ms']:6.1f} wall ms"
            )
        ratio = cost["linear"]["cpu_ms"] / max(cost["area"]["cpu_ms"], 1e-9)
        result["linear_over_area_cpu"] = ratio
        print(f"  linear / area: {ratio:.2f}x CPU per image")
        if args.sample is not None:
            errors = sample_errors(args.sample, Path(tmp))
            result["sample"] = errors
            print(f"published sample vs AND(INTER_LINEAR, mask): {errors['published_vs_authors']:.2f} grey levels")
            for how in INTERPOLATIONS:
                e = errors[how]
                print(
                    f"  written under {how:6s}: {e['vs_authors']:.2f} from AND(INTER_LINEAR, mask), "
                    f"{e['vs_published']:.2f} from the published image; resize differs up to "
                    f"{e['max_resize_difference']} levels"
                )
    if args.json:
        record.write(args.json, result, __file__, argv)
    return result


if __name__ == "__main__":
    main()

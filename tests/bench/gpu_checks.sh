#!/usr/bin/env bash
# Every GPU measurement in one run, for the few minutes a lent GPU node gives: the throughput benchmark on CUDA with
# CPU (reduced-DCT) decoding, with nvJPEG decoding on the device, and with one model instead of the default ensemble
# of two, plus the tests that touch the CUDA paths. Run from the repository root; numbers land in $OUT.
set -euo pipefail
OUT=${OUT:-results/gpu-checks}
PY=${PY:-.venv/bin/python}
IMAGES=${IMAGES:-128}
WORKERS=${WORKERS:-$(($(nproc) - 1))}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -m pytest -q -p no:cacheprovider tests/test_fast_path.py tests/test_predictor.py 2>&1 | tail -3 | tee "$OUT/pytest.txt"
common=(--device cuda --images "$IMAGES" --repeat 8 --workers "$WORKERS" --write-threads 2 --work "$OUT/inputs")
$PY tests/bench/bench_throughput.py "${common[@]}" --json "$OUT/cuda-cpu-decode.json" | tee "$OUT/cuda-cpu-decode.txt"
$PY tests/bench/bench_throughput.py "${common[@]}" --decode-device gpu --json "$OUT/cuda-gpu-decode.json" |
    tee "$OUT/cuda-gpu-decode.txt"
$PY tests/bench/bench_throughput.py "${common[@]}" --ensemble 1 --json "$OUT/cuda-single-model.json" |
    tee "$OUT/cuda-single-model.txt"

#!/usr/bin/env bash
# Every GPU measurement in one run, for the few minutes a lent GPU node gives: the tests marked `cuda`
# (tests/test_cuda.py: predictor under autocast, torch.compile, nvJPEG decode, each against the CPU path), then the
# throughput benchmark on CUDA with CPU (reduced-DCT) decoding, with nvJPEG decoding on the device, and with one model
# instead of the production config's ensemble of two. Run from the repository root; numbers land in $OUT. Exits
# non-zero when CUDA is missing or a cuda test fails or skips (after the benchmarks, so their numbers still land).
set -euo pipefail
OUT=${OUT:-results/gpu-checks}
PY=${PY:-.venv/bin/python}
IMAGES=${IMAGES:-128}
WORKERS=${WORKERS:-$(($(nproc) - 1))}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "torch sees no CUDA device")'
tests=0
$PY -m pytest -q -p no:cacheprovider -rs -m cuda >"$OUT/pytest.txt" 2>&1 || tests=$?
tail -15 "$OUT/pytest.txt"
if [ "$tests" = 0 ] && grep -q " skipped" "$OUT/pytest.txt"; then tests=skipped; fi
common=(--device cuda --images "$IMAGES" --repeat 8 --workers "$WORKERS" --write-threads 2 --work "$OUT/inputs")
$PY tests/bench/bench_throughput.py "${common[@]}" --json "$OUT/cuda-cpu-decode.json" | tee "$OUT/cuda-cpu-decode.txt"
$PY tests/bench/bench_throughput.py "${common[@]}" --decode-device gpu --json "$OUT/cuda-gpu-decode.json" |
    tee "$OUT/cuda-gpu-decode.txt"
$PY tests/bench/bench_throughput.py "${common[@]}" --ensemble 1 --json "$OUT/cuda-single-model.json" |
    tee "$OUT/cuda-single-model.txt"
[ "$tests" = 0 ] || { echo "the cuda tests did not all pass ($tests): see $OUT/pytest.txt" >&2; exit 1; }

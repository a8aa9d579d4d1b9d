#!/usr/bin/env bash
# Measures phase 07's GPU warm tier on a machine with an NVIDIA GPU and no
# Rust toolchain (the lent H100/H200). Build on the development machine:
#
#   cargo build --release -p gpu-tiered
#   cargo test --release -p gpu-tiered --lib --no-run   # the unit-test binary
#   scripts/gpu_session.sh --prepare                    # copies both to target/gpu-carry/
#
# then run there (carry target/gpu-carry; OUT is where results go):
#
#   OUT=$OUT scripts/gpu_session.sh
#
# It runs the GPU unit tests (CPU/GPU equivalence, the self-test, kernels),
# `gpubench` at 100 M rows, and the 100 M-record demo with --device gpu,
# writing each one's output under $OUT. NVRTC must be on the machine (or its
# library directory in NVRTC_DIR); libcuda is looked for in
# /usr/local/nvidia/lib64.
set -uo pipefail
cd "$(dirname "$0")/.."
carry=target/gpu-carry
if [[ "${1:-}" == "--prepare" ]]; then
    mkdir -p "$carry"
    cp target/release/07_gpu_tiered "$carry/"
    t=$(ls -t target/release/deps/tiered-* 2>/dev/null | grep -v '\.d$' | head -1)
    [[ -n "$t" ]] || { echo "no test binary: run cargo test --release -p gpu-tiered --lib --no-run" >&2; exit 1; }
    cp "$t" "$carry/tiered-tests"
    du -sh "$carry"
    exit 0
fi
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="/usr/local/nvidia/lib64${NVRTC_DIR:+:$NVRTC_DIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
ldconfig -p 2>/dev/null | grep -i -E "nvrtc|libcuda" > "$OUT/libs.txt"
status=0
"$carry/tiered-tests" gpu:: --nocapture > "$OUT/unit-tests-gpu.txt" 2>&1 || status=1
"$carry/07_gpu_tiered" gpubench --rows 100000000 --batch 10000000 --json "$OUT/gpubench.json" \
    > "$OUT/gpubench.txt" 2>&1 || status=1
"$carry/07_gpu_tiered" --storage /tmp/ssig-100m --device gpu demo 100000000 \
    > "$OUT/demo-100m.txt" 2>&1 || status=1
"$carry/07_gpu_tiered" --storage /tmp/ssig-100m --device gpu stats --json > "$OUT/stats-100m.json" 2>&1 || status=1
tail -n 5 "$OUT"/*.txt
exit $status

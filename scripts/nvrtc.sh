#!/usr/bin/env bash
# Installs NVIDIA's NVRTC library (the CUDA runtime compiler, a pip wheel; no
# GPU needed) into target/nvrtc-venv and prints the directory holding
# libnvrtc.so, for LD_LIBRARY_PATH. With it, the test
# gpu::tests::the_kernels_compile_where_nvrtc_is_found compiles phase 07's
# CUDA kernels on a machine without a GPU.
#   export LD_LIBRARY_PATH="$(scripts/nvrtc.sh)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/nvrtc-venv
if [ ! -x "$venv/bin/pip" ]; then
  python3 -m venv "$venv" >&2
fi
lib=$(find "$venv" -name 'libnvrtc.so.12' -printf '%h\n' 2>/dev/null | head -n 1)
if [ -z "$lib" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'nvidia-cuda-nvrtc-cu12>=12.8,<13' >&2
  lib=$(find "$venv" -name 'libnvrtc.so.12' -printf '%h\n' | head -n 1)
fi
if [ -z "$lib" ]; then
  echo "nvrtc.sh: libnvrtc.so.12 not found after installing" >&2
  exit 1
fi
echo "$PWD/$lib"

#!/usr/bin/env bash
# Installs the Debian packages dtlc needs; quick when they are already there.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config zlib1g-dev python3
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  antlr4 libantlr4-runtime-dev default-jre-headless
  libgtest-dev libopenblas-dev libopenblas-openmp-dev libdnnl-dev libopenmpi-dev openmpi-bin
  nlohmann-json3-dev clang-format-22 clang-22 libclang-rt-22-dev libfuzzer-22-dev libomp-22-dev
  dataset-fashion-mnist fortunes python3-numpy python3-torch
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The CUDA target needs NVIDIA's toolkit (nvcc, cuBLAS, NCCL), which Debian's
# main archive does not carry; the machines here have CUDA 13 in /usr/local/cuda.
if [ ! -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then
  echo "install-deps: no CUDA toolkit (nvcc): dtlc builds without --target=cuda;" \
       "install CUDA 12.x/13 with NCCL from NVIDIA for the GPU target"
fi

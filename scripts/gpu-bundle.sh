#!/usr/bin/env bash
# Builds here what a GPU machine needs to check the CUDA target when it has
# CUDA but not dtlc's build tools (LLVM, ANTLR, Debian's Open MPI and
# OpenBLAS), into .gpu.tar.xz (git-ignored): the CUDA programs of
# test/GPU/cpu-vs-cuda.py with their CPU runs, the kernel tests and
# benchmark, a gpt2-124M program for bench/gpt-gpu.py, and the shared
# libraries they load besides glibc and CUDA (Open MPI relocatable through
# OPAL_PREFIX, with orted and mpirun). Then, there, from the repository
# root: bash scripts/gpu-check.sh (with .gpu.tar.xz carried along).
#
# usage: bash scripts/gpu-bundle.sh [--batch 32]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
batch=32
[ "${1:-}" = "--batch" ] && batch="$2"
bash "$root/scripts/build.sh"
bundle="$root/.gpu"
rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/lib"

/usr/bin/python3 "$root/test/GPU/cpu-vs-cuda.py" --build "$root/build" --source "$root" \
  --prepare "$bundle/compare"
rm -f "$bundle/compare/mlp-cpu" "$bundle/compare/gpt-cpu"
cp "$root/build/bin/dtlrt-cuda-unittests" "$root/build/bin/dtl-bench-cuda-kernels" "$bundle/bin/"
"$root/build/bin/dtlc" --target=cuda --precision=bf16 "$root/examples/gpt.dtl" -D L=12 -D C=768 \
  -D H=12 -D T=1024 -D B="$batch" -D V=50304 --mesh dp=1,tp=1 -o "$bundle/bin/gpt2-bf16-b$batch"

# Libraries beyond glibc and the CUDA toolkit's.
for exe in "$bundle"/bin/* "$bundle"/compare/*-gpu "$bundle"/compare/gpt-bf16 /usr/bin/orted; do
  ldd "$exe" | awk '$3 ~ /^\// {print $3}'
done | sort -u | grep -v -E '/usr/local/cuda|/lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s)\.so' |
  while read -r lib; do cp -L "$lib" "$bundle/lib/"; done
cp -L /lib/x86_64-linux-gnu/libpmix.so.2 "$bundle/lib/"
# Open MPI, relocated: OPAL_PREFIX=$bundle/usr finds its plugins and orted.
mkdir -p "$bundle/usr/bin" "$bundle/usr/lib/x86_64-linux-gnu" "$bundle/usr/share"
cp -a /usr/lib/x86_64-linux-gnu/openmpi "$bundle/usr/lib/x86_64-linux-gnu/"
rm -rf "$bundle/usr/lib/x86_64-linux-gnu/openmpi/include"
cp -a /usr/share/openmpi "$bundle/usr/share/"
cp -L /usr/bin/orted /usr/bin/orterun "$bundle/usr/bin/"
ln -sf orterun "$bundle/usr/bin/mpirun"
tar -C "$root" -cJf "$root/.gpu.tar.xz" .gpu
echo "gpu-bundle: $(du -h "$root/.gpu.tar.xz" | cut -f1) in .gpu.tar.xz (batch $batch);" \
     "carry it and run: bash scripts/gpu-check.sh"

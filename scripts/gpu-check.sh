#!/usr/bin/env bash
# On a machine with a GPU: the checks and benchmarks of the CUDA target, from
# the programs scripts/gpu-bundle.sh built (.gpu.tar.xz in the repository
# root). Logs go to $OUT (the device tool's output folder) or .gpu/out.
#   1. dtlrt-cuda-unittests: every CUDA kernel against its CPU twin
#   2. test/GPU/cpu-vs-cuda.py --check: losses of the MLP and the tiny GPT
#      against the CPU runs made when bundling; two ranks on one GPU refused
#   3. dtl-bench-cuda-kernels, f32 and bf16: GEMMs against cuBLAS, TB/s
#   4. bench/gpt-gpu.py: gpt2-124M (T = 1024) against PyTorch
# usage: bash scripts/gpu-check.sh [--skip-bench]
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$root/.gpu"
[ -d "$bundle" ] || tar -C "$root" -xJf "$root/.gpu.tar.xz" || exit 1
out="${OUT:-$bundle/out}"
mkdir -p "$out"
# CUDA's libraries: the toolkit's, or those of the NVIDIA wheels beside PyTorch.
wheels=$(python3 -c 'import nvidia, os; print(":".join(os.path.join(p, d, "lib") for p in nvidia.__path__ for d in os.listdir(p)))' 2>/dev/null)
export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${wheels}:${LD_LIBRARY_PATH:-}"
# Open MPI: always the bundled one, relocated. The programs load its libmpi
# and libpmix from $bundle/lib, which a machine's own orted and plugins do
# not match (an H200 image's failed with "undefined symbol: PMIx_Info_create").
export OPAL_PREFIX="$bundle/usr" PATH="$bundle/usr/bin:$PATH"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export PYTHONUNBUFFERED=1
status=0
# step NAME COMMAND...: runs it into $out/NAME.log; 77 (skipped) is not a failure.
step() {
  local name="$1"
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.log"
  local rc="${PIPESTATUS[0]}"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || status=1
}
nvidia-smi -L 2>&1 | tee "$out/gpu.log"
step unittests "$bundle/bin/dtlrt-cuda-unittests"
step compare python3 "$root/test/GPU/cpu-vs-cuda.py" --check "$bundle/compare"
step kernels-f32 "$bundle/bin/dtl-bench-cuda-kernels"
step kernels-bf16 "$bundle/bin/dtl-bench-cuda-kernels" --bf16
if [ "${1:-}" != "--skip-bench" ]; then
  program=$(ls "$bundle"/bin/gpt2-bf16-b* | head -1)
  step gpt2 python3 "$root/bench/gpt-gpu.py" --program "$program" --batch "${program##*-b}" --steps 30 --warmup 10
fi
exit $status

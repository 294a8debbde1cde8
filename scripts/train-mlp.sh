#!/usr/bin/env bash
# The main job: installs what is missing, builds dtlc, compiles
# examples/mlp.dtl and trains it on Fashion-MNIST with two MPI ranks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
if [ "$(id -u)" -eq 0 ]; then
  # Open MPI refuses to run as root unless told.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
"$root/build/bin/dtlc" "$root/examples/mlp.dtl" -o "$root/build/mlp"
mpirun -np 2 "$root/build/mlp" "$@"

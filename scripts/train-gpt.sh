#!/usr/bin/env bash
# The GPT example end to end: installs what is missing, builds dtlc, turns
# text from the `fortunes` package into character-level token shards,
# compiles examples/gpt.dtl (the tiny config unless -D flags are given in
# DTLC_FLAGS) and trains it with two MPI ranks, evaluating on held-out text
# and writing the trained weights to build/gpt/gpt.safetensors.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
if [ "$(id -u)" -eq 0 ]; then
  # Open MPI refuses to run as root unless told.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
work="$root/build/gpt"
mkdir -p "$work"
fortunes=/usr/share/games/fortunes
"$root/build/bin/dtl-tokenize" --level char -o "$work/fortunes" \
  "$fortunes"/{fortunes,literature,science,people,wisdom,computers}
# shellcheck disable=SC2086
"$root/build/bin/dtlc" "$root/examples/gpt.dtl" ${DTLC_FLAGS:-} -o "$work/gpt"
cd "$work"
mpirun -np 2 ./gpt --export gpt.safetensors "$@"

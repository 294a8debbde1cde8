#!/usr/bin/env bash
# Configures (once) and builds dtlc, dtl-opt, libdtlrt and the tests in build/:
# Release, Ninja, ccache, two jobs. Quick when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${DTL_BUILD_DIR:-$root/build}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -G Ninja -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
fi
ninja -C "$build" -j "${DTL_JOBS:-2}"

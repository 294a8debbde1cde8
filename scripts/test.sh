#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, then runs lit
# (every stage, diagnostics, end to end under mpirun) and the GoogleTest
# unit tests through ctest. `.ci/run` runs exactly this.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh"
ctest --test-dir "$root/build" --output-on-failure
# ctest lists skipped tests without their reason: say it (the GPU tests skip
# where there is no CUDA device).
grep -h -o 'no CUDA device, so .*' "$root/build/Testing/Temporary/LastTest.log" 2>/dev/null |
  sort -u | sed 's/^/skipped: /' || true

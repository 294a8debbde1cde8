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

# The sanitized build (CMakePresets.json, preset asan: ASan and UBSan over the
# compiler, the runtime, the unit tests and the programs dtlc builds): the
# unit tests, the diagnostics and frontend lit tests and one training run,
# then one minute of fuzzing the frontend (scripts/fuzz.sh).
[ -f "$root/build-asan/build.ninja" ] || cmake --preset asan -S "$root" > /dev/null
ninja -C "$root/build-asan" -j "${DTL_JOBS:-2}" dtlc dtlrt-unittests dtl-frontend-unittests \
  dtl-fuzz
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1"
"$root/build-asan/bin/dtlrt-unittests" --gtest_brief=1
"$root/build-asan/bin/dtl-frontend-unittests" --gtest_brief=1
/usr/lib/llvm-22/bin/lit -sv \
  "$root/build-asan/test/Diagnostics" "$root/build-asan/test/Frontend" \
  "$root/build-asan/test/E2E/checkpoint-resume.test"
bash "$root/scripts/fuzz.sh" 60

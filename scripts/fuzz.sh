#!/usr/bin/env bash
# Fuzzes the frontend and the passes up to partitioning (tools/dtl-fuzz)
# with libFuzzer under ASan and UBSan, from a seed corpus of the examples and
# the tests' .dtl files and a dictionary of the language's tokens.
#
# usage: bash scripts/fuzz.sh [SECONDS] [-- LIBFUZZER FLAGS...]   (default 60)
# Builds the `asan` preset (build-asan/) first. Findings go to
# build-asan/fuzz/findings/ and fail the run; the corpus it grows is kept in
# build-asan/fuzz/corpus/ for the next run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-60}"
shift || true
[ "${1:-}" = "--" ] && shift
build="$root/build-asan"
if [ ! -f "$build/build.ninja" ]; then
  cmake --preset asan -S "$root" > /dev/null
fi
ninja -C "$build" -j "${DTL_JOBS:-2}" dtl-fuzz
work="$build/fuzz"
mkdir -p "$work/corpus" "$work/findings" "$work/seeds" "$work/files"
# Seeds: every .dtl in the tree; imports resolve among the examples.
find "$root/examples" "$root/test" -name '*.dtl' -exec cp {} "$work/seeds/" \;
cp "$root"/examples/*.dtl "$work/files/"
cd "$work/files"
export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" UBSAN_OPTIONS="print_stacktrace=1"
"$build/bin/dtl-fuzz" -max_total_time="$seconds" -max_len=16384 -timeout=20 -rss_limit_mb=3072 \
  -dict="$root/tools/dtl-fuzz/dtl.dict" -artifact_prefix="$work/findings/" -print_final_stats=1 \
  "$@" "$work/corpus" "$work/seeds"

#!/usr/bin/python3
"""Build benchmark: how the generated program and its build time grow with
depth. `repeat` stays a loop, so examples/gpt.dtl at L=48 should generate
about the C++ of L=2 and build in about the same time.

usage: /usr/bin/python3 bench/build-time.py [--dtlc PATH] [--runs 3] [--depths 2,48]

For the tiny config at each depth: the generated C++ (lines, bytes), then
the median wall time of `dtlc examples/gpt.dtl -o EXE` (front end, passes,
printing, host compiler and link) over --runs builds. Prints one line per
depth and the ratio of the deepest build to the shallowest:
  L | C++ lines | C++ bytes | build s
Run it on a quiet machine: the host compiler is most of the time.
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtlc", default=os.path.join(ROOT, "build", "bin", "dtlc"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--depths", default="2,48")
    args = parser.parse_args()
    source = os.path.join(ROOT, "examples", "gpt.dtl")
    depths = [int(d) for d in args.depths.split(",")]
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for depth in depths:
            flags = [source, "-D", f"L={depth}"]
            cpp = os.path.join(work, f"gpt{depth}.cpp")
            subprocess.run([args.dtlc, *flags, "--emit=cpp", "-o", cpp], check=True)
            lines = sum(1 for _ in open(cpp))
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                subprocess.run([args.dtlc, *flags, "-o", os.path.join(work, f"gpt{depth}")],
                               check=True)
                times.append(time.perf_counter() - start)
            rows[depth] = (lines, os.path.getsize(cpp), statistics.median(times))
    print(f"{'L':>3} | {'C++ lines':>9} | {'C++ bytes':>9} | build s")
    for depth, (lines, size, seconds) in rows.items():
        print(f"{depth:>3} | {lines:>9} | {size:>9} | {seconds:7.2f}")
    first, last = rows[depths[0]], rows[depths[-1]]
    print(f"L={depths[-1]} / L={depths[0]}: C++ lines {last[0] / first[0]:.2f}x, "
          f"build time {last[2] / first[2]:.2f}x")


if __name__ == "__main__":
    main()

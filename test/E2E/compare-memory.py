#!/usr/bin/env python3
"""Compares `dtlc --explain=json` memory with what the program allocated.

usage: compare-memory.py --rtol 0.1 explain.json run.log
run.log holds the line `./model --memory` printed. The params, optimizer
state, inputs and step results are checked against the runtime's own
figures (from the tensors it allocated); the total against the growth of
malloc's count of bytes in use over the first step, which sees every
allocation, the step's arena included, and comes from neither the plan nor
the runtime's bookkeeping. Prints each pair and exits 1 when one differs by
more than --rtol (relative).
"""
import argparse
import json
import re
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtol", type=float, required=True)
    parser.add_argument("explain")
    parser.add_argument("log")
    args = parser.parse_args()
    predicted = json.load(open(args.explain))["memory"]
    line = next((l for l in open(args.log) if l.startswith("memory (rank 0, bytes):")), None)
    if line is None:
        sys.exit(f"{args.log}: no memory line")
    measured = {k.strip(): int(v) for k, v in re.findall(r"([a-z ]+?) (\d+)(?: \||$)", line.split(":", 1)[1])}
    # oneDNN's generated GEMM code (bf16) is heap but no tensor: the plan's
    # total is compared with the heap growth without it, both printed.
    measured["heap growth"] -= measured.get("gemm kernels", 0)
    pairs = [("params", "params"), ("optimizer_state", "optimizer state"), ("inputs", "inputs"),
             ("step_results", "step results"), ("total", "heap growth")]
    ok = True
    for key, label in pairs:
        p, m = predicted[key], measured[label]
        error = abs(p - m) / max(m, 1)
        kernels = f" (without {measured['gemm kernels']} bytes of gemm kernels)" if label == "heap growth" and measured.get("gemm kernels") else ""
        print(f"{key}: explain {p} bytes, {label} {m} bytes{kernels}, difference {error:.1%}")
        ok = ok and error <= args.rtol
    print("memory agrees" if ok else "memory DIFFERS")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

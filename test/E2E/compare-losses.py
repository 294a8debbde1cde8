#!/usr/bin/env python3
"""Compares the per-step training loss of runs written with --metrics.

usage: compare-losses.py --rtol 1e-5 [--resumed] reference.jsonl other.jsonl...
Prints the largest relative difference from the reference; exits 1 when it
is above --rtol or when the runs do not cover the same steps. With
--resumed, the others are runs resumed from a checkpoint: each covers the
reference's steps from some step on.
"""
import argparse
import json
import sys


def losses(path):
    """Step -> loss; steps whose update was skipped are left out, so runs
    compare equal only when they skipped the same steps."""
    out = {}
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record and "step" in record and not record.get("skipped"):
                out[record["step"]] = record["loss"]
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtol", type=float, required=True)
    parser.add_argument("--resumed", action="store_true")
    parser.add_argument("reference")
    parser.add_argument("others", nargs="+")
    args = parser.parse_args()
    reference = losses(args.reference)
    if not reference:
        sys.exit(f"{args.reference}: no losses")
    ok = True
    for path in args.others:
        other = losses(path)
        expected = reference.keys()
        if args.resumed and other:
            expected = {s for s in reference if s >= min(other)}
        if other.keys() != expected:
            print(f"{path}: steps {sorted(other)} differ from {sorted(reference)}")
            ok = False
            continue
        worst = max(abs(other[s] - reference[s]) / abs(reference[s]) for s in other)
        first = f" (from step {min(other)})" if args.resumed else ""
        print(f"{path}: {len(other)} steps{first}, max relative loss difference {worst:.3e}")
        ok = ok and worst <= args.rtol
    print("losses agree" if ok else "losses DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

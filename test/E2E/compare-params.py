#!/usr/bin/env python3
"""Compares the params of two safetensors checkpoints (dtlc programs' --export).

usage: compare-params.py --atol 1e-5 reference.safetensors other.safetensors
Prints the largest absolute difference; exits 1 when it is above --atol or
when the files do not hold the same tensors.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import torch_gpt  # noqa: E402  (its safetensors reader)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--atol", type=float, required=True)
    parser.add_argument("reference")
    parser.add_argument("other")
    args = parser.parse_args()
    reference, _ = torch_gpt.read_safetensors(args.reference)
    other, _ = torch_gpt.read_safetensors(args.other)
    if reference.keys() != other.keys() or any(
            reference[k].shape != other[k].shape for k in reference):
        print(f"{args.other}: not the tensors of {args.reference}")
        return 1
    worst = max(float(np.max(np.abs(reference[k] - other[k]))) for k in reference)
    ok = worst <= args.atol
    print(f"{len(reference)} params, max absolute difference {worst:.3e} (atol {args.atol:.0e})")
    print("params agree" if ok else "params DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

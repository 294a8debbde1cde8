#!/usr/bin/env python3
"""Writes an IDX pair of 8 examples with 4 classes, some labels -1 (ignored),
and prints PyTorch's F.cross_entropy(x, y, ignore_index=-1) on them: the
mean over the kept labels. `--all-ignored` makes every label -1. With
`--metrics PATH`, compares the first step's loss there (a model whose
logits are x at step 1) with PyTorch's, within 1e-5."""

import json

import argparse
import struct

import torch
import torch.nn.functional as F


def write_idx(path, code, shape, values, fmt):
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, code, len(shape)))
        f.write(struct.pack(">" + "I" * len(shape), *shape))
        f.write(struct.pack(">" + fmt * len(values), *values))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("prefix")
    parser.add_argument("--all-ignored", action="store_true")
    parser.add_argument("--metrics")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(8, 4) * 2
    # Rank 0 of [dp: 2] holds examples 0-3 (one ignored), rank 1 4-7 (three).
    y = torch.tensor([0, -1, 3, 2, -1, -1, 1, -1], dtype=torch.int32)
    if args.all_ignored:
        y = torch.full((8,), -1, dtype=torch.int32)
    # PyTorch's mean of nothing is 0 / 0; dtl's is 0 (with a warning).
    expected = 0.0 if args.all_ignored else F.cross_entropy(x, y.long(), ignore_index=-1).item()
    if args.metrics:
        with open(args.metrics) as f:
            loss = json.loads(f.readline())["loss"]
        verdict = "agree" if abs(loss - expected) <= 1e-5 else "DIFFER"
        print(f"dtl loss {loss:.6f}, expected {expected:.6f}: {verdict}")
        return
    write_idx(args.prefix + "-x.idx", 0x0D, (8, 4), x.flatten().tolist(), "f")
    write_idx(args.prefix + "-y.idx", 0x0C, (8,), y.tolist(), "i")
    print(f"expected loss {expected:.6f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes float32 IDX images (and u8 labels) from Fashion-MNIST's test set,
with NaN planted in some samples, for the bad-step tests.

usage: poisoned-idx.py OUT_PREFIX --samples 4096 --poison 0,1,2 | --poison all
Writes OUT_PREFIX-images.idx (0x0D, [N, 28, 28], pixels / 255) and
OUT_PREFIX-labels.idx.
"""
import argparse
import gzip
import struct

import numpy as np

ROOT = "/usr/share/datasets/fashion-mnist/"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("prefix")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--poison", required=True)
    args = parser.parse_args()
    n = args.samples
    with gzip.open(ROOT + "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read()[16:16 + n * 784], dtype=np.uint8)
    with gzip.open(ROOT + "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read()[8:8 + n], dtype=np.uint8)
    pixels = (images.astype(np.float32) / 255).reshape(n, 28, 28)
    poisoned = range(n) if args.poison == "all" else map(int, args.poison.split(","))
    for i in poisoned:
        pixels[i, 14, 14] = np.nan
    with open(args.prefix + "-images.idx", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 0x0D, 3, n, 28, 28))
        f.write(pixels.astype(">f4").tobytes())
    with open(args.prefix + "-labels.idx", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 0x08, 1, n))
        f.write(labels.tobytes())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reads a dtlc checkpoint (a step-N directory) independently of the runtime.

usage: checkpoint.py DIR [--against EXPORT.safetensors]
Checks index.json, every slice's CRC-32 and that the slices of each tensor
cover it exactly once, and prints one line per tensor. With --against,
the params must equal those of a file a program wrote with --export, bit
for bit. Exits 1 on any mismatch.
"""
import argparse
import json
import os
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import torch_gpt  # noqa: E402  (its safetensors reader)

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32}


def read_raw(path):
    """The header and the data bytes of a safetensors file."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
        return header, f.read()


def assemble(directory):
    with open(os.path.join(directory, "index.json")) as f:
        index = json.load(f)
    assert index["format"] == "dtlc-checkpoint", index["format"]
    files = {}
    tensors = {}
    for name, entry in index["tensors"].items():
        dtype = DTYPES[entry["dtype"]]
        whole = np.zeros(entry["shape"], dtype=dtype)
        count = np.zeros(entry["shape"], dtype=np.int32)
        for piece in entry["slices"]:
            if piece["file"] not in files:
                files[piece["file"]] = read_raw(os.path.join(directory, piece["file"]))
            header, data = files[piece["file"]]
            # A slice is its own entry of the file when a rank's block is
            # several boxes of the tensor (an interleaved param).
            begin, end = header[piece.get("entry", name)]["data_offsets"]
            raw = data[begin:end]
            if zlib.crc32(raw) != piece["crc32"]:
                sys.exit(f"{piece['file']}: '{name}': checksum mismatch")
            block = np.frombuffer(raw, dtype=dtype).reshape(piece["shape"])
            where = tuple(slice(o, o + n) for o, n in zip(piece["offset"], piece["shape"]))
            whole[where] = block
            count[where] += 1
        if not np.all(count == 1):
            sys.exit(f"'{name}': slices cover some elements {count.min()}..{count.max()} times")
        tensors[name] = (entry["role"], whole)
    return index, tensors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--against")
    args = parser.parse_args()
    index, tensors = assemble(args.directory)
    mesh = ", ".join(f"{k}: {v}" for k, v in index["mesh"].items())
    print(f"step {index['state']['step']} on [{mesh}]: {len(tensors)} tensors, "
          f"{sum(len(e['slices']) for e in index['tensors'].values())} slices, checksums ok")
    if args.against:
        exported, _ = torch_gpt.read_safetensors(args.against)
        params = {k: v for k, (role, v) in tensors.items() if role == "param"}
        if params.keys() != exported.keys():
            sys.exit(f"{args.against}: params {sorted(exported)} differ from {sorted(params)}")
        worst = max(float(np.max(np.abs(params[k] - exported[k]))) for k in params)
        print(f"{len(params)} params, max absolute difference {worst:.3e}")
        print("params equal the checkpoint's" if worst == 0 else "params DIFFER")
        return 0 if worst == 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

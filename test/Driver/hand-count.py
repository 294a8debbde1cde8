#!/usr/bin/env python3
"""Counts a step's matrix-product FLOPs by hand and compares --explain=json's.

usage: hand-count.py mlp B D H C explain.json
       hand-count.py gpt L C T B V explain.json
One rank (a mesh of one device). Every GEMM of the forward pass is done again
twice in the backward (the gradients of both its operands), except that the
MLP's input x needs no gradient; causal attention's two [T, T] x [T, d] GEMMs
per head (4 B T^2 C forward, masked half included) are counted the same way,
plus the scores' GEMM again in the backward (2 B T^2 C: the probabilities
are recomputed from the saved log-sum-exp, not stored).
"""
import json
import sys


def mlp(b, d, h, c):
    first, second = 2 * b * d * h, 2 * b * h * c
    # forward: x @ w1, h @ w2; backward: dW2, dh, dW1 (no dx for the input).
    return 2 * first + 3 * second


def gpt(layers, c, t, b, v):
    per_layer = 4 * (2 * b * t * c * c) + 2 * (2 * b * t * c * 4 * c) + 4 * b * t * t * c
    head = 2 * b * t * c * v
    recomputed_scores = 2 * b * t * t * c
    return 3 * (layers * per_layer + head) + layers * recomputed_scores


def main():
    model, *sizes, path = sys.argv[1:]
    sizes = [int(s) for s in sizes]
    expected = mlp(*sizes) if model == "mlp" else gpt(*sizes)
    counted = json.load(open(path))["step_time"]["matmul_flops_per_rank"]
    print(f"matrix products: explain {int(counted)}, hand count {expected}")
    print("counts agree" if int(counted) == expected else "counts DIFFER")
    sys.exit(0 if int(counted) == expected else 1)


if __name__ == "__main__":
    main()

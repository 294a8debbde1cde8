#!/usr/bin/env python3
"""Trains examples/gpt.dtl's model in PyTorch from a dtlc checkpoint and
compares the loss of every step with the compiled program's --metrics.

usage: gpt-reference.py --checkpoint init.safetensors --data train.bin
         --metrics dtl.jsonl --steps 10 [sizes and optimizer flags] --rtol 1e-4
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
import torch_gpt  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--steps", type=int, default=10)
    for size, default in (("L", 4), ("C", 128), ("H", 4), ("T", 64), ("B", 12), ("V", 128)):
        p.add_argument(f"-{size}", type=int, default=default)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.95))
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="warmup_cosine")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--min-lr", type=float, default=2e-4)
    p.add_argument("--rtol", type=float, default=1e-4)
    a = p.parse_args()

    torch.set_num_threads(1)
    tensors, metadata = torch_gpt.read_safetensors(a.checkpoint)
    print(f"checkpoint: {len(tensors)} tensors, step {metadata.get('step')}, "
          f"{sum(t.size for t in tensors.values())} values")
    model = torch_gpt.GPT(a.L, a.C, a.H, a.T, a.V)
    torch_gpt.load_dtl_checkpoint(model, tensors)
    # nanoGPT's groups: matrices and embeddings decay, biases and layernorm
    # weights do not (dtl's default rule).
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": a.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=a.lr, betas=tuple(a.betas), eps=a.eps)
    tokens = torch_gpt.read_tokens(a.data)
    sampler = torch_gpt.Sampler((len(tokens) - 1) // a.T, a.seed)

    with open(a.metrics) as f:
        dtl = {r["step"]: r["loss"] for r in map(json.loads, f) if "loss" in r and "step" in r}
    worst = 0.0
    for step in range(1, a.steps + 1):
        idx, targets = torch_gpt.batch_at(tokens, sampler, step, a.B, a.T)
        for group in optimizer.param_groups:
            group["lr"] = torch_gpt.lr_at(a.schedule, a.lr, step, a.steps, a.warmup, a.min_lr)
        loss = model(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step not in dtl:
            print(f"step {step}: missing from {a.metrics}")
            return 1
        rel = abs(dtl[step] - loss.item()) / abs(loss.item())
        worst = max(worst, rel)
        print(f"step {step}: torch {loss.item():.6f} dtl {dtl[step]:.6f} rel {rel:.2e}")
    verdict = "agree" if worst <= a.rtol else "DIFFER"
    print(f"max relative difference {worst:.2e} (rtol {a.rtol:.0e}): losses {verdict}")
    return 0 if worst <= a.rtol else 1


if __name__ == "__main__":
    sys.exit(main())

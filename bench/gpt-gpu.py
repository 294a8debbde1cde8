#!/usr/bin/env python3
"""GPU benchmark: the gpt2-124M train step (T = 1024) of examples/gpt.dtl
compiled by dtlc --target=cuda against the same model in PyTorch, side by
side on the same GPU in this one invocation.

usage: python3 bench/gpt-gpu.py [--batch 32] [--steps 30] [--warmup 10]
                                [--precision bf16|f32] [--dtlc PATH | --program PATH]
                                [--no-torch]

--program runs a gpt2-124M program built beforehand (scripts/gpu-bundle.sh
builds one, for machines without dtlc's build tools); --batch must be the
batch it was built with.

dtlc: one rank, `--precision` (bf16: bf16 GEMM math, f32 master weights
and state), CUDA graphs. PyTorch (needs a CUDA build of torch): the same
GPT (bench/torch_gpt.py) with flash attention, bf16 autocast, fused AdamW
and TF32, both eager and torch.compile; the faster is the reference. Each
figure is the median of the steps after `--warmup`. Prints one line per case:
  case | dtl ms/step | ref ms/step | ratio | tok/s | MFU
with ratio = dtl tok/s / ref tok/s (above 1: dtlc is faster; the goal is
at least 0.9), tok/s and MFU for dtlc; MFU uses 6N + 6LCT FLOPs per token
(N counts the padded embedding) and the H100 SXM's 989 TFLOP/s bf16 dense.
Then the reference's own tok/s and MFU. The batch defaults to 32: dtlc
keeps activations (and attention probabilities) in f32, and 64 does not
fit in 80 GB (`dtlc --explain` says how much a batch needs).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_gpt  # noqa: E402

L, C, H, T, V, REAL_VOCAB = 12, 768, 12, 1024, 50304, 50257
PEAK = 989e12


def build_dtl(dtlc, exe, batch, precision):
    defines = [f"-D{k}={v}" for k, v in zip("LCHTBV", (L, C, H, T, batch, V))]
    subprocess.run([dtlc, "--target=cuda", f"--precision={precision}",
                    os.path.join(HERE, "..", "examples", "gpt.dtl"), *defines, "--mesh",
                    "dp=1,tp=1", "-o", exe], check=True)


def run_dtl(exe, work, batch, steps, precision):
    metrics = os.path.join(work, f"gpt2-{precision}.jsonl")
    data = os.path.join(work, "tokens.bin")
    torch_gpt.write_tokens(data, (steps + 2) * batch * T + 1, REAL_VOCAB, 0)
    subprocess.run([exe, "--steps", str(steps), "--log-every", str(steps), "--eval-every", "0",
                    "--data", data, "--eval-data", data, "--metrics", metrics, "--memory"],
                   check=True)
    with open(metrics) as f:
        return [r["ms"] for r in map(json.loads, f) if "ms" in r]


def run_torch(batch, steps, compile, bf16):
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import torch_gpt, json; "
            f"print(json.dumps(torch_gpt.time_train_steps_cuda({L}, {C}, {H}, {T}, {batch}, "
            f"{V}, {steps}, compile={compile}, bf16={bf16})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        print(f"PyTorch ({'compiled' if compile else 'eager'}) failed:\n{result.stderr[-2000:]}")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--precision", default="bf16", choices=["bf16", "f32"])
    p.add_argument("--dtlc", default=os.path.join(HERE, "..", "build", "bin", "dtlc"))
    p.add_argument("--program", help="a gpt2-124M program built with --batch and --precision")
    p.add_argument("--no-torch", action="store_true", help="only dtlc's figures")
    a = p.parse_args()
    steady = lambda times: statistics.median(times[a.warmup:])  # noqa: E731
    flops = 6 * torch_gpt.param_count(L, C, T, V) + 6 * L * C * T
    tokens = a.batch * T
    with tempfile.TemporaryDirectory() as work:
        exe = a.program or os.path.join(work, f"gpt2-{a.precision}")
        if not a.program:
            build_dtl(a.dtlc, exe, a.batch, a.precision)
        dtl = steady(run_dtl(exe, work, a.batch, a.steps, a.precision))
    refs = {}
    if not a.no_torch:
        for compile in (False, True):
            times = run_torch(a.batch, a.steps, compile, a.precision == "bf16")
            if times:
                refs["torch.compile" if compile else "eager"] = steady(times)
    print(f"gpt2-124M, B={a.batch}, T={T}, {a.precision}, {a.steps} steps (median after "
          f"{a.warmup})")
    print("case | dtl ms/step | ref ms/step | ratio | tok/s | MFU")
    dtl_tps = tokens / (dtl / 1e3)
    if refs:
        name, ref = min(refs.items(), key=lambda item: item[1])
        print(f"gpt2-124M | {dtl:.2f} | {ref:.2f} | {ref / dtl:.3f} | {dtl_tps:.0f} | "
              f"{100 * dtl_tps * flops / PEAK:.1f}%")
        for other, ms in sorted(refs.items()):
            tps = tokens / (ms / 1e3)
            print(f"reference PyTorch {other}: {ms:.2f} ms/step, {tps:.0f} tok/s, "
                  f"MFU {100 * tps * flops / PEAK:.1f}%{' (best)' if other == name else ''}")
    else:
        print(f"gpt2-124M | {dtl:.2f} | - | - | {dtl_tps:.0f} | {100 * dtl_tps * flops / PEAK:.1f}%")


if __name__ == "__main__":
    main()

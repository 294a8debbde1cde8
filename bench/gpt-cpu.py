#!/usr/bin/python3
"""CPU benchmark: the full GPT train step (forward, backward, AdamW) of
examples/gpt.dtl compiled by dtlc against the same model in PyTorch eager
(Debian's python3-torch), run side by side in this one invocation.

usage: /usr/bin/python3 bench/gpt-cpu.py [--configs tiny,baby,gpt2-124M]
                                         [--precisions f32,bf16] [--threads 2]
                                         [--steps 15] [--dtlc PATH]

Both sides: flush-to-zero, the same OpenBLAS core (OPENBLAS_CORETYPE, set
when the library would fall back to a generic one), `--threads` threads.
dtlc's program uses OpenMP and OpenBLAS threads; PyTorch is timed with
`--threads` intra-op threads and with 1 intra-op thread over a `--threads`
BLAS, and the faster is the reference. Each figure is the median of the
steps after `--warmup`. bf16: dtlc's `--precision=bf16` (bf16 storage,
oneDNN bf16 GEMMs, f32 masters) against PyTorch under
`torch.autocast("cpu", dtype=torch.bfloat16)`. Prints the CPU's bf16 flags,
then one line per case:
  case precision | dtl ms/step | ref ms/step | ratio | tok/s | MFU
with ratio = dtl / ref (below 1: dtlc is faster), tok/s and MFU for dtlc;
MFU uses 6N + 6LCT FLOPs per token and a peak of 245 GFLOP/s per thread
(benchmarks.md). Then dtlc's speed-up from 1 thread to --threads, and, for
scale, what SGEMM itself gains from the threads on the tiny config's shapes.
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

CONFIGS = {  # L, C, H, T, B, V (padded vocab), real vocab
    "tiny": (4, 128, 4, 64, 12, 128, 65),
    "baby": (6, 384, 6, 256, 8, 128, 65),
    # baby's tokens per step at T = 1024: attention is most of the step.
    "baby-T1024": (6, 384, 6, 1024, 2, 128, 65),
    "gpt2-124M": (12, 768, 12, 64, 4, 50304, 50257),
}
PEAK_PER_THREAD = 245e9


def openblas_core_env():
    """OpenBLAS 0.3.21 does not know the newest Xeons and falls back to its
    slow generic kernels; name the closest core it knows, for both sides."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return {}
    flags = open("/proc/cpuinfo").read()
    if " avx512f " in flags:
        return {"OPENBLAS_CORETYPE": "SkylakeX"}
    if " avx2 " in flags:
        return {"OPENBLAS_CORETYPE": "Haswell"}
    return {}


def run_dtl(dtlc, work, name, precision, config, steps, threads, env):
    L, C, H, T, B, V, real_vocab = config
    exe = os.path.join(work, f"{name}-{precision}")
    if not os.path.exists(exe):
        defines = [f"-D{k}={v}" for k, v in zip("LCHTBV", (L, C, H, T, B, V))]
        subprocess.run([dtlc, os.path.join(HERE, "..", "examples", "gpt.dtl"), *defines,
                        "--mesh", "dp=1,tp=1", "--march=native", f"--precision={precision}",
                        "-o", exe], check=True)
    data = os.path.join(work, f"{name}.bin")
    if not os.path.exists(data):
        torch_gpt.write_tokens(data, (steps + 2) * B * T + 1, real_vocab, 0)
    metrics = os.path.join(work, f"{name}-{precision}-{threads}.jsonl")
    run_env = dict(os.environ, **env, OMP_NUM_THREADS=str(threads),
                   OPENBLAS_NUM_THREADS=str(threads))
    subprocess.run([exe, "--steps", str(steps), "--log-every", str(steps), "--eval-every", "0",
                    "--data", data, "--eval-data", data, "--metrics", metrics],
                   check=True, env=run_env, stdout=subprocess.DEVNULL)
    with open(metrics) as f:
        return [r["ms"] for r in map(json.loads, f) if "ms" in r]


def run_torch(config, precision, steps, threads, intra, env):
    L, C, H, T, B, V, _ = config
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import torch_gpt, json; "
            f"print(json.dumps(torch_gpt.time_train_steps({L}, {C}, {H}, {T}, {B}, {V}, "
            f"{steps}, {intra}, bf16={precision == 'bf16'})))")
    run_env = dict(os.environ, **env, OMP_NUM_THREADS=str(intra),
                   OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run(["/usr/bin/python3", "-c", code], check=True, env=run_env,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default="tiny,baby,gpt2-124M")
    p.add_argument("--precisions", default="f32,bf16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dtlc", default=os.path.join(HERE, "..", "build", "bin", "dtlc"))
    a = p.parse_args()
    env = openblas_core_env()
    print(f"threads {a.threads}, {a.steps} steps (median after {a.warmup}), "
          f"{' '.join(f'{k}={v}' for k, v in env.items()) or 'OpenBLAS default core'}")
    flags = open("/proc/cpuinfo").read().split()
    print("CPU bf16: " + (", ".join(f for f in ("avx512_bf16", "amx_bf16", "amx_tile")
                                    if f in flags) or "none (bf16 GEMMs widen to f32)"))
    print("case precision | dtl ms/step | ref ms/step | ratio | tok/s | MFU")
    with tempfile.TemporaryDirectory() as work:
        for name in a.configs.split(","):
            for precision in a.precisions.split(","):
                config = CONFIGS[name]
                L, C, H, T, B, V, _ = config
                steady = lambda times: statistics.median(times[a.warmup:])  # noqa: E731
                dtl = steady(run_dtl(a.dtlc, work, name, precision, config, a.steps, a.threads,
                                     env))
                ref = min(steady(run_torch(config, precision, a.steps, a.threads, intra, env))
                          for intra in sorted({a.threads, 1}))
                tokens = B * T / (dtl / 1e3)
                flops = 6 * torch_gpt.param_count(L, C, T, V) + 6 * L * C * T
                mfu = tokens * flops / (PEAK_PER_THREAD * a.threads)
                print(f"{name} {precision} | {dtl:.2f} | {ref:.2f} | {dtl / ref:.3f} | "
                      f"{tokens:.0f} | {100 * mfu:.1f}%", flush=True)
                if a.threads > 1:
                    one = steady(run_dtl(a.dtlc, work, name, precision, config, a.steps, 1, env))
                    print(f"{name} {precision} dtl 1 thread {one:.2f} ms/step: {a.threads} "
                          f"threads are {one / dtl:.2f}x faster", flush=True)
    if a.threads > 1:
        gemm_scaling(a.threads, env)


def gemm_scaling(threads, env):
    """SGEMM GFLOP/s with 1 and `threads` threads on GPT shapes (torch.mm)."""
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import torch_gpt, json; "
            f"print(json.dumps([[torch_gpt.gemm_gflops(m, n, k, t) for t in (1, {threads})] "
            f"for m, n, k in ((768, 128, 128), (768, 512, 128), (768, 128, 512))]))")
    out = subprocess.run(["/usr/bin/python3", "-c", code], check=True, capture_output=True,
                         text=True, env=dict(os.environ, **env)).stdout
    for (m, n, k), (one, many) in zip(((768, 128, 128), (768, 512, 128), (768, 128, 512)),
                                      json.loads(out.strip().splitlines()[-1])):
        print(f"sgemm {m}x{n}x{k}: {one:.0f} GFLOP/s on 1 thread, {many:.0f} on {threads} "
              f"({many / one:.2f}x)")


if __name__ == "__main__":
    main()

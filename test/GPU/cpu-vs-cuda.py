#!/usr/bin/env python3
"""The CUDA build of a model trains like its CPU build.

Builds the MLP (synthetic data) and the tiny GPT (characters of the README)
for --target=cpu and --target=cuda, trains each for the same steps on one
rank, and compares the loss of every step:

  f32 on the GPU      within rtol 1e-3 of the CPU (reduction order, expf
                      against the CPU's fastExp, tanhf against fastTanh)
  bf16 GEMMs          within rtol 5e-2 of the CPU's f32
  (relative to the loss, or to 0.1 where the loss is below it)
  CUDA graphs on/off  within rtol 1e-4 of each other (only the embedding
                      gradient's atomic adds are unordered)

Then two ranks on a one-GPU machine must be refused with a message.

Without a CUDA device it prints why and exits 77, which ctest reports as
skipped. `--gpu-target cpu` runs the comparison with CPU builds on both
sides, to test this script where no GPU exists.
"""

import argparse
import json
import os
import re
import subprocess
import sys

SKIP = 77


def losses(path):
    with open(path) as f:
        return [json.loads(line)["loss"] for line in f if line.startswith('{"step"')]


def compare(name, reference, candidate, rtol):
    if len(reference) != len(candidate) or not reference:
        print(f"{name}: FAILED: {len(reference)} reference steps, {len(candidate)} compared")
        return False
    # Relative, but a loss below 0.1 counts as 0.1 (the MLP's synthetic
    # classes are learnt to losses near 0, where relative noise explodes).
    worst = max(abs(a - b) / max(abs(a), 0.1) for a, b in zip(reference, candidate))
    ok = worst <= rtol
    print(f"{name}: {len(reference)} steps, max relative loss difference {worst:.2e} "
          f"(rtol {rtol:.0e}): {'ok' if ok else 'FAILED'}")
    print(f"  first/last loss: {reference[0]:.5f} -> {reference[-1]:.5f} (cpu), "
          f"{candidate[0]:.5f} -> {candidate[-1]:.5f}")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", required=True, help="the CMake build directory")
    parser.add_argument("--source", required=True, help="the repository root")
    parser.add_argument("--work", required=True, help="a scratch directory")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--gpu-target", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    dtlc = os.path.join(args.build, "bin", "dtlc")
    tokenize = os.path.join(args.build, "bin", "dtl-tokenize")
    examples = os.path.join(args.source, "examples")
    os.makedirs(args.work, exist_ok=True)
    work = lambda name: os.path.join(args.work, name)

    def build(source, target, out, *flags):
        subprocess.run([dtlc, f"--target={target}", source, "--mesh", "dp=1,tp=1", "-o", out,
                        *flags], check=True)

    def train(program, metrics, *flags, env=None):
        return subprocess.run([program, "--steps", str(args.steps), "--eval-every", "0",
                               "--metrics", metrics, *flags],
                              capture_output=True, text=True, env=env)

    # The MLP on synthetic data (the GPU machine need not have the datasets).
    with open(os.path.join(examples, "mlp.dtl")) as f:
        mlp = f.read()
    mlp = re.sub(r"data x, y = idx\([^;]*\);", "data x, y = synthetic(classes = 10, size = 4096);", mlp)
    mlp = re.sub(r"eval x, y = idx\([^;]*\);", "", mlp)
    with open(work("mlp.dtl"), "w") as f:
        f.write(mlp)

    build(work("mlp.dtl"), args.gpu_target, work("mlp-gpu"))
    probe = train(work("mlp-gpu"), work("probe.jsonl"))
    if probe.returncode != 0 and "no CUDA device" in probe.stderr:
        reason = probe.stderr.strip().splitlines()[-1]
        print(f"SKIPPED: no CUDA device, so the CUDA builds were not run ({reason})")
        return SKIP
    if probe.returncode != 0:
        print(probe.stdout, probe.stderr)
        return 1
    print(probe.stdout.splitlines()[0])

    subprocess.run([tokenize, "--level", "char", "-o", work("text"),
                    os.path.join(args.source, "README.md")], check=True, capture_output=True)
    text = ["--data", work("text_train.bin"), "--eval-data", work("text_val.bin")]
    gpt = os.path.join(examples, "gpt.dtl")

    ok = True
    build(work("mlp.dtl"), "cpu", work("mlp-cpu"))
    cpu = train(work("mlp-cpu"), work("mlp-cpu.jsonl"))
    ok &= cpu.returncode == 0 and compare("mlp f32", losses(work("mlp-cpu.jsonl")),
                                          losses(work("probe.jsonl")), 1e-3)

    build(gpt, "cpu", work("gpt-cpu"))
    build(gpt, args.gpu_target, work("gpt-gpu"), "--precision=f32")
    build(gpt, args.gpu_target, work("gpt-bf16"), "--precision=bf16")
    runs = {}
    for name, program, env in [("cpu", "gpt-cpu", None), ("gpu", "gpt-gpu", None),
                               ("bf16", "gpt-bf16", None),
                               ("eager", "gpt-gpu", dict(os.environ, DTL_CUDA_GRAPHS="0"))]:
        result = train(work(program), work(f"gpt-{name}.jsonl"), *text, env=env)
        if result.returncode != 0:
            print(f"gpt {name}: FAILED\n{result.stdout}{result.stderr}")
            return 1
        runs[name] = losses(work(f"gpt-{name}.jsonl"))
    ok &= compare("gpt tiny f32", runs["cpu"], runs["gpu"], 1e-3)
    ok &= compare("gpt tiny bf16 GEMMs", runs["cpu"], runs["bf16"], 5e-2)
    ok &= compare("gpt tiny graphs vs eager", runs["eager"], runs["gpu"], 1e-4)

    # Two ranks, one GPU: refused with a message, not a crash or a hang.
    if args.gpu_target == "cuda":
        subprocess.run([dtlc, "--target=cuda", gpt, "--mesh", "dp=2,tp=1", "-o", work("gpt-dp2")],
                       check=True)
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        shared = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", work("gpt-dp2"), "--steps",
                                 "2", "--eval-every", "0", *text],
                                capture_output=True, text=True, env=env, timeout=300)
        if shared.returncode == 0:
            print("two ranks: ran (this machine has a GPU per rank)")
        else:
            refused = "would share GPU" in shared.stderr
            print("two ranks on one GPU: " + ("refused: " + next(
                line for line in shared.stderr.splitlines() if "would share GPU" in line)
                if refused else "FAILED without the message\n" + shared.stderr))
            ok &= refused
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The CUDA build of a model trains like its CPU build.

Builds the MLP (synthetic data) and the tiny GPT (characters of the README)
for --target=cpu and --target=cuda, trains each for the same steps on one
rank, and compares the loss of every step:

  f32 on the GPU      within rtol 1e-3 of the CPU (reduction order, __expf
                      against the CPU's fastExp in softmax and attention)
  bf16 storage        within rtol 3e-2 of the CPU's bf16 (the same scheme;
                      a different summation order flips bf16 roundings)
  CUDA graphs on/off  within rtol 1e-4 of each other (only the embedding
                      gradient's atomic adds are unordered)
  (relative to the loss, or to 0.1 where the loss is below it)

Then two ranks on a one-GPU machine must be refused with a message.

Two phases, so that a GPU machine without dtlc's build tools can run the
second: `--prepare DIR` builds every program and runs the CPU side into DIR;
`--check DIR` runs the GPU side from DIR and compares. Without either it
does both in `--work`. Without a CUDA device the check prints why and exits
77, which ctest reports as skipped. `--gpu-target cpu` builds the "GPU"
programs for the CPU, to test this script where no GPU exists.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

SKIP = 77
STEPS = 30
# name: (source, dtlc flags, needs the text data)
GPU_PROGRAMS = {
    "mlp-gpu": ("mlp.dtl", ["--precision=f32"], False),
    "gpt-gpu": ("gpt.dtl", ["--precision=f32"], True),
    "gpt-bf16": ("gpt.dtl", ["--precision=bf16"], True),
}


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


def train(program, metrics, data, env=None, extra=()):
    flags = ["--data", data + "_train.bin", "--eval-data", data + "_val.bin"] if data else []
    return subprocess.run([program, "--steps", str(STEPS), "--eval-every", "0", "--metrics",
                           metrics, *flags, *extra], capture_output=True, text=True, env=env)


def no_device(program, work):
    """Why `program` (a CUDA build) cannot run here, or None when it can."""
    probe = subprocess.run([program, "--steps", "0", "--eval-every", "0"], capture_output=True,
                           text=True, cwd=work)
    if probe.returncode != 0 and "no CUDA device" in probe.stderr:
        return probe.stderr.strip().splitlines()[-1]
    return None


def prepare(build, source, work, gpu_target, stop_without_device=False):
    """Builds every program into `work` and trains the CPU ones there; with
    `stop_without_device`, returns the reason as soon as a CUDA build shows
    that this machine has no GPU."""
    dtlc = os.path.join(build, "bin", "dtlc")
    examples = os.path.join(source, "examples")
    os.makedirs(work, exist_ok=True)
    at = lambda name: os.path.join(work, name)  # noqa: E731
    # The MLP on synthetic data (the GPU machine need not have the datasets).
    with open(os.path.join(examples, "mlp.dtl")) as f:
        mlp = f.read()
    mlp = re.sub(r"data x, y = idx\([^;]*\);", "data x, y = synthetic(classes = 10, size = 4096);", mlp)
    mlp = re.sub(r"eval x, y = idx\([^;]*\);", "", mlp)
    with open(at("mlp.dtl"), "w") as f:
        f.write(mlp)
    subprocess.run([os.path.join(build, "bin", "dtl-tokenize"), "--level", "char", "-o",
                    at("text"), os.path.join(source, "README.md")], check=True,
                   capture_output=True)
    sources = {"mlp.dtl": at("mlp.dtl"), "gpt.dtl": os.path.join(examples, "gpt.dtl")}

    def build_program(name, dtl, target, *flags, mesh="dp=1,tp=1"):
        subprocess.run([dtlc, f"--target={target}", sources[dtl], "--mesh", mesh, "-o", at(name),
                        *flags], check=True)

    for name, (dtl, flags, _) in GPU_PROGRAMS.items():
        build_program(name, dtl, gpu_target, *flags)
        reason = no_device(at(name), work) if stop_without_device and gpu_target == "cuda" else None
        if reason:
            return reason
    if gpu_target == "cuda":
        build_program("gpt-dp2", "gpt.dtl", "cuda", mesh="dp=2,tp=1")
    for name, dtl, data, flags in (("mlp-cpu", "mlp.dtl", None, []),
                                   ("gpt-cpu", "gpt.dtl", at("text"), ["--precision=f32"]),
                                   ("gpt-cpu-bf16", "gpt.dtl", at("text"), ["--precision=bf16"])):
        build_program(name, dtl, "cpu", *flags)
        result = train(at(name), at(name + ".jsonl"), data)
        if result.returncode != 0:
            sys.exit(f"{name}: {result.stdout}{result.stderr}")
    return None


def skip(reason):
    print(f"SKIPPED: no CUDA device, so the CUDA builds were not run ({reason})")
    return SKIP


def check(work):
    """Runs the GPU programs in `work` and compares them with the CPU runs."""
    at = lambda name: os.path.join(work, name)  # noqa: E731
    text = at("text")
    reason = no_device(at("mlp-gpu"), work)
    if reason:
        return skip(reason)
    probe = train(at("mlp-gpu"), at("mlp-gpu.jsonl"), None)
    if probe.returncode != 0:
        print(probe.stdout, probe.stderr)
        return 1
    print(probe.stdout.splitlines()[0])
    ok = compare("mlp f32", losses(at("mlp-cpu.jsonl")), losses(at("mlp-gpu.jsonl")), 1e-3)
    runs = {}
    for name, program, env in [("gpu", "gpt-gpu", None), ("bf16", "gpt-bf16", None),
                               ("eager", "gpt-gpu", dict(os.environ, DTL_CUDA_GRAPHS="0"))]:
        result = train(at(program), at(f"gpt-{name}.jsonl"), text, env=env)
        if result.returncode != 0:
            print(f"gpt {name}: FAILED\n{result.stdout}{result.stderr}")
            return 1
        runs[name] = losses(at(f"gpt-{name}.jsonl"))
    cpu = losses(at("gpt-cpu.jsonl"))
    ok &= compare("gpt tiny f32", cpu, runs["gpu"], 1e-3)
    ok &= compare("gpt tiny bf16", losses(at("gpt-cpu-bf16.jsonl")), runs["bf16"], 3e-2)
    ok &= compare("gpt tiny graphs vs eager", runs["eager"], runs["gpu"], 1e-4)

    # A checkpoint written from the GPU (downloaded state) and resumed (uploaded):
    # the steps after it agree with the uninterrupted run (the embedding
    # gradient's atomics make GPU runs not bitwise reproducible).
    ck, half = at("ck"), STEPS // 2
    shutil.rmtree(ck, ignore_errors=True)
    saved = train(at("gpt-gpu"), at("gpt-saving.jsonl"), text,
                  extra=["--checkpoint-every", str(half), "--checkpoint-dir", ck])
    resumed = train(at("gpt-gpu"), at("gpt-resumed.jsonl"), text,
                    extra=["--resume", os.path.join(ck, f"step-{half}")])
    if saved.returncode != 0 or resumed.returncode != 0:
        print(f"gpt resumed: FAILED\n{saved.stderr}{resumed.stdout}{resumed.stderr}")
        return 1
    ok &= compare("gpt tiny resumed at step %d" % half, losses(at("gpt-saving.jsonl"))[half:],
                  losses(at("gpt-resumed.jsonl")), 1e-5)

    # Two ranks, one GPU: refused with a message, not a crash or a hang.
    if os.path.exists(at("gpt-dp2")):
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        shared = subprocess.run(["mpirun", "--oversubscribe", "-np", "2", at("gpt-dp2"), "--steps",
                                 "2", "--eval-every", "0", "--data", text + "_train.bin",
                                 "--eval-data", text + "_val.bin"],
                                capture_output=True, text=True, env=env, timeout=300)
        if shared.returncode == 0:
            print("two ranks: ran (this machine has a GPU per rank)")
        else:
            refused = [line for line in shared.stderr.splitlines() if "would share GPU" in line]
            print("two ranks on one GPU: " + (f"refused: {refused[0]}" if refused else
                                              "FAILED without the message\n" + shared.stderr))
            ok &= bool(refused)
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", help="the CMake build directory (to prepare)")
    parser.add_argument("--source", help="the repository root (to prepare)")
    parser.add_argument("--work", help="prepare and check here")
    parser.add_argument("--prepare", metavar="DIR", help="only build and run the CPU side")
    parser.add_argument("--check", metavar="DIR", help="only run the GPU side and compare")
    parser.add_argument("--gpu-target", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    if args.check:
        return check(args.check)
    work = args.prepare or args.work
    if not (work and args.build and args.source):
        parser.error("give --check DIR, or --build, --source and --prepare DIR or --work DIR")
    reason = prepare(args.build, args.source, work, args.gpu_target,
                     stop_without_device=not args.prepare)
    if reason:
        return skip(reason)
    return 0 if args.prepare else check(work)


if __name__ == "__main__":
    sys.exit(main())

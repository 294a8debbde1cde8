#!/usr/bin/env python3
"""What a checkpoint costs against a training step, side by side in one run.

usage: /usr/bin/python3 bench/checkpoint-cost.py [--config baby] [--ranks 2]
                                                 [--mesh dp=2,tp=1] [--steps 40]
Builds the GPT of bench/gpt-cpu.py's config, trains it --steps steps with a
checkpoint every 10 (after 10 warm-up steps), then resumes from the last
checkpoint. Prints the median step time, the median write time of a
checkpoint and its size, the load time, and each as a multiple of a step:
  checkpoint | step ms | write ms (x step) | MB | load ms (x step)
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import importlib.util  # noqa: E402

spec = importlib.util.spec_from_file_location("gpt_cpu", os.path.join(HERE, "gpt-cpu.py"))
gpt_cpu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpt_cpu)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="baby", choices=sorted(gpt_cpu.CONFIGS))
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--mesh", default="dp=2,tp=1")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--dtlc", default=os.path.join(HERE, "..", "build", "bin", "dtlc"))
    a = p.parse_args()
    L, C, H, T, B, V, _ = gpt_cpu.CONFIGS[a.config]
    work = tempfile.mkdtemp(prefix="dtl-ckpt-bench-")
    tokens = os.path.join(work, "text")
    subprocess.run([os.path.join(os.path.dirname(a.dtlc), "dtl-tokenize"), "-o", tokens,
                    "/usr/share/games/fortunes/fortunes"], check=True, stdout=subprocess.DEVNULL)
    exe = os.path.join(work, "gpt")
    defines = [f"-D{k}={v}" for k, v in zip("LCHTBV", (L, C, H, T, B, V))]
    subprocess.run([a.dtlc, os.path.join(HERE, "..", "examples", "gpt.dtl"), *defines,
                    "--mesh", a.mesh, "-o", exe], check=True)
    mpirun = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(a.ranks), exe,
              "--eval-every", "0", "--data", tokens + "_train.bin", "--checkpoint-dir",
              os.path.join(work, "ck"), "--keep-last", "2"]
    metrics = os.path.join(work, "run.jsonl")
    out = subprocess.run(mpirun + ["--steps", str(a.steps), "--checkpoint-every", "10",
                                   "--metrics", metrics, "--log-every", str(a.steps)],
                         check=True, capture_output=True, text=True).stdout
    writes = [float(m) for m in re.findall(r"^checkpoint \S+ \((\d+) ms\)", out, re.M)][1:]
    with open(metrics) as f:
        steps = [json.loads(line)["ms"] for line in f if '"step"' in line][10:]
    last = os.path.join(work, "ck", f"step-{a.steps}")
    size = sum(os.path.getsize(os.path.join(last, n)) for n in os.listdir(last)) / 1e6
    resumed = subprocess.run(mpirun + ["--steps", str(a.steps), "--resume", last],
                             check=True, capture_output=True, text=True).stdout
    load = float(re.search(r"^resumed from .*\((\d+) ms\)", resumed, re.M).group(1))
    step, write = statistics.median(steps), statistics.median(writes)
    print("checkpoint | step ms | write ms (x step) | MB | load ms (x step)")
    print(f"{a.config} GPT, {a.ranks} ranks [{a.mesh}] | {step:.1f} | {write:.0f} "
          f"({write / step:.1f}x) | {size:.1f} | {load:.0f} ({load / step:.1f}x)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Crash consistency of checkpoints: kills a training job with SIGKILL (every
rank and mpirun at once, as a node failure would) at random moments while it
checkpoints every step, then resumes it, many times over.

usage: scripts/checkpoint-stress.py --program BUILT_PROGRAM [--ranks 2]
                                    [--trials 50] [--dir DIR] [--seed 1]
Each trial starts `mpirun -np RANKS PROGRAM --checkpoint-every 1 --resume
auto` on one checkpoint dir and kills it 0.2 to 1.5 s after its first step.
Then every complete-looking checkpoint (step-N/) must read back whole
(test/E2E/checkpoint.py: index, CRC-32 of every slice, coverage) and
`latest` must name one; the next trial must resume from exactly that one.
Prints one line per trial and a summary; exits 1 on any torn checkpoint or
any resume from another step than latest's.
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "E2E"))
import checkpoint  # noqa: E402


def tagged(tag):
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"DTL_STRESS_TAG={tag}".encode() in f.read().split(b"\0"):
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def complete_checkpoints(root):
    """step -> None when it reads back whole, else what is wrong."""
    found = {}
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if re.fullmatch(r"step-\d+", name):
            try:
                checkpoint.assemble(os.path.join(root, name))
                found[int(name[5:])] = None
            except (SystemExit, Exception) as e:  # noqa: BLE001 (any failure is a torn one)
                found[int(name[5:])] = str(e) or type(e).__name__
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--program", required=True)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--dir")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.dir or tempfile.mkdtemp(prefix="dtl-stress-")
    root = os.path.join(work, "ck")
    shutil.rmtree(root, ignore_errors=True)
    expected = None  # the step the next trial must resume from
    resumed_right = torn = during_write = 0
    for trial in range(1, args.trials + 1):
        tag = f"{os.getpid()}-{trial}"
        env = dict(os.environ, DTL_STRESS_TAG=tag)
        job = subprocess.Popen(
            ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(args.ranks),
             args.program, "--steps", "100000000", "--eval-every", "0", "--log-every", "1",
             "--checkpoint-every", "1", "--keep-last", "3", "--checkpoint-dir", root,
             "--resume", "auto"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        resumed = None
        for line in job.stdout:
            m = re.match(r"resumed from .*: step (\d+),", line)
            if m:
                resumed = int(m.group(1))
            if line.startswith("step "):
                break
        time.sleep(rng.uniform(0.2, 1.5))
        for pid in tagged(tag) + [job.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        job.wait()
        job.stdout.close()
        for pid in tagged(tag):  # anything mpirun had not reaped
            os.kill(pid, signal.SIGKILL)
        ok_resume = resumed == expected or (expected is None and resumed is None)
        resumed_right += ok_resume
        found = complete_checkpoints(root)
        bad = {step: why for step, why in found.items() if why}
        torn += len(bad)
        writing = any(name.endswith(".tmp") for name in os.listdir(root))
        during_write += writing
        with open(os.path.join(root, "latest")) as f:
            latest = int(f.read().strip()[5:])
        if latest not in found or found[latest]:
            torn += 1
            bad[latest] = "latest names no complete checkpoint"
        print(f"trial {trial}: resumed from {resumed} (expected {expected}), latest step-{latest}"
              f"{', killed during a write' if writing else ''}"
              f"{', TORN: ' + str(bad) if bad else ''}", flush=True)
        expected = latest
    print(f"{args.trials} trials: {resumed_right} resumed from the last complete checkpoint, "
          f"{torn} torn checkpoints found, {during_write} kills left a checkpoint half written")
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if resumed_right == args.trials and torn == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

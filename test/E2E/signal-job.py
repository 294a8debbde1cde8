#!/usr/bin/env python3
"""Runs an MPI job and signals it mid-run, as a scheduler or a failure would.

usage: signal-job.py --signal STOP|TERM|USR1 --to rank1|ranks|launcher
                     [--after-step N] [--twice] -- COMMAND...
Starts COMMAND (mpirun ...), echoes its output, and once it has printed
"step N/" (N >= --after-step) sends the signal to rank 1, to every rank, or
to the launcher (--twice: a second one right after). Then it waits for the
job and prints its exit code and how many seconds after the signal it
ended; a rank still alive afterwards is killed and reported as LEFT OVER.
Ranks are found by a tag this script puts in the job's environment.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time


def ranks(tag):
    """Rank number -> pid of the processes carrying `tag` in their environment."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        except OSError:
            continue
        if env.get(b"DTL_SIGNAL_JOB_TAG") == tag.encode() and b"OMPI_COMM_WORLD_RANK" in env:
            found[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--signal", required=True, choices=["STOP", "TERM", "USR1"])
    parser.add_argument("--to", required=True, choices=["rank1", "ranks", "launcher"])
    parser.add_argument("--after-step", type=int, default=1)
    parser.add_argument("--twice", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    tag = f"{os.getpid()}-{time.time()}"
    env = dict(os.environ, DTL_SIGNAL_JOB_TAG=tag)
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, bufsize=1)
    sent_at = None
    number = getattr(signal, "SIG" + args.signal)
    for line in job.stdout:
        sys.stdout.write(line)
        step = re.match(r"step (\d+)/", line)
        if sent_at is None and step and int(step.group(1)) >= args.after_step:
            targets = {"launcher": lambda: [job.pid],
                       "ranks": lambda: list(ranks(tag).values()),
                       "rank1": lambda: [ranks(tag)[1]]}[args.to]()
            for _ in range(2 if args.twice else 1):
                for pid in targets:
                    os.kill(pid, number)
            sent_at = time.monotonic()
            print(f"signal-job: sent SIG{args.signal} to {args.to}", flush=True)
    code = job.wait()
    ended = time.monotonic()
    print(f"signal-job: exit code {code}", flush=True)
    if sent_at is not None:
        print(f"signal-job: the job ended {ended - sent_at:.1f} s after the signal", flush=True)
    left = ranks(tag)
    for pid in left.values():
        os.kill(pid, signal.SIGKILL)
    if left:
        print(f"signal-job: LEFT OVER ranks {sorted(left)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

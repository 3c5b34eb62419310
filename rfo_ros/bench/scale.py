"""``python -m rfo_ros.bench scale``: env steps/s of 1 process x T threads against P torchrun ranks x T/P
threads, with the same total envs, on this machine.

Alternates the two layouts for ``--rounds`` rounds of ``--seconds`` of training each (the same load on
the machine for both), reads each run's ``summary.json`` (env steps/s over its training wall time, all
ranks together) and prints the mean of each layout and their ratio. Every run is a normal training run
of ``--config`` (default: the quadruped RFO config), in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config/train/quadruped_rfo.yaml", help="training YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--envs", type=int, default=32, help="total envs (split evenly over the ranks)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="simulation threads in total")
    p.add_argument("--procs", type=int, default=2, help="torchrun ranks of the distributed layout")
    p.add_argument("--seconds", type=float, default=60.0, help="training wall time per run")
    p.add_argument("--rounds", type=int, default=2, help="runs of each layout, alternated")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")


def _train_command(args: argparse.Namespace, procs: int, out: Path) -> list[str]:
    if procs == 1:
        cmd = [sys.executable, "-m", "rfo_ros.train"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
        cmd += ["-m", "rfo_ros.train"]
    cmd += ["--no-progress", "--config", args.config, "--out", str(out)]
    sets = [
        f"env.num_envs={args.envs // procs}",
        f"env.threads={max(1, args.threads // procs)}",
        f"run.max_wall_time_s={args.seconds}",
        "run.total_env_steps=1000000000",
        "run.eval_episodes=1",
        "run.checkpoint_every=1000000",
    ]
    for s in sets + args.set:
        cmd += ["--set", s]
    return cmd


def _one_run(args: argparse.Namespace, procs: int, out: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(_train_command(args, procs, out), capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"training run failed ({procs} process(es)):\n{result.stderr[-3000:]}")
    return float(json.loads((out / "summary.json").read_text())["env_steps_per_s"])


def run(args: argparse.Namespace) -> int:
    if args.procs < 2 or args.envs % args.procs or args.threads < args.procs:
        raise SystemExit("--procs must be >= 2, divide --envs, and be at most --threads")
    rates: dict[int, list[float]] = {1: [], args.procs: []}
    with tempfile.TemporaryDirectory(prefix="rfo_bench_scale_") as tmp:
        for r in range(args.rounds):
            for procs in rates:
                rates[procs].append(_one_run(args, procs, Path(tmp) / f"p{procs}_r{r}"))
    single, multi = np.mean(rates[1]), np.mean(rates[args.procs])
    result = {
        "config": args.config,
        "total_envs": args.envs,
        "total_threads": args.threads,
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "single": {"layout": f"1 process x {args.threads} threads", "env_steps_per_s": rates[1]},
        "distributed": {
            "layout": f"{args.procs} ranks x {max(1, args.threads // args.procs)} threads",
            "env_steps_per_s": rates[args.procs],
        },
        "speedup": multi / single,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{'layout':<28} env steps/s (each run)")
        for key in ("single", "distributed"):
            runs = ", ".join(f"{v:.0f}" for v in result[key]["env_steps_per_s"])
            print(f"{result[key]['layout']:<28} {np.mean(result[key]['env_steps_per_s']):7.0f}  ({runs})")
        print(f"speedup: {result['speedup']:.2f}x  ({args.envs} envs in total, runs alternated)")
    return 0

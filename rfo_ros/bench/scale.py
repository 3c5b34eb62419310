"""``python -m rfo_ros.bench scale``: env steps/s of 1 process x T threads against P torchrun ranks x T/P
threads, with the same total envs, on this machine; and, as the ceiling of data parallelism here, P
independent processes of the same shape that never communicate.

Alternates the layouts for ``--rounds`` rounds of ``--seconds`` of training each (the same load on the
machine for all), reads each run's ``summary.json`` (env steps/s over its training wall time, all ranks
together; the independent processes' rates are summed) and prints the mean of each layout and the
ratios: distributed / single is the speedup, independent / single what the layout alone could give,
distributed / independent what the collectives cost. Every run is a normal training run of ``--config``
(default: the quadruped RFO config), in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from rfo_ros.bench import train_launcher

LAYOUTS = ("single", "distributed", "independent")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config/train/quadruped_rfo.yaml", help="training YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--envs", type=int, default=32, help="total envs (split evenly over the ranks)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="simulation threads in total")
    p.add_argument("--procs", type=int, default=2, help="torchrun ranks of the distributed layout")
    p.add_argument("--seconds", type=float, default=60.0, help="training wall time per run")
    p.add_argument("--rounds", type=int, default=2, help="runs of each layout, alternated")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")


def _train_command(args: argparse.Namespace, out: Path, ranks: int, parts: int, seed: int) -> list[str]:
    """One training run under ``ranks`` torchrun ranks (1: a plain process), each with 1/``parts`` of the
    envs and threads."""
    cmd = [*train_launcher(ranks), "--no-progress", "--config", args.config, "--out", str(out)]
    sets = [
        f"env.num_envs={args.envs // parts}",
        f"env.threads={max(1, args.threads // parts)}",
        f"run.max_wall_time_s={args.seconds}",
        f"run.seed={seed}",
        "run.total_env_steps=1000000000",
        "run.eval_episodes=1",
        "run.checkpoint_every=1000000",
    ]
    for s in sets + args.set:
        cmd += ["--set", s]
    return cmd


def layout_rate(args: argparse.Namespace, layout: str, folder: Path) -> float:
    """Env steps/s of one run of ``layout`` (``args.procs`` ranks or processes, ``args.envs`` envs and
    ``args.threads`` threads in all; ``args.config``, ``args.set``, ``args.seconds``), all its processes
    together (started at once). A failed run raises ``SystemExit`` with its stderr's tail."""
    P = args.procs
    runs = {  # layout -> [(out folder, torchrun ranks, seed)], each run with 1/parts of envs and threads
        "single": [(folder, 1, 0)],
        "distributed": [(folder, P, 0)],
        "independent": [(folder / f"proc{i}", 1, i) for i in range(P)],
    }[layout]
    parts = 1 if layout == "single" else P
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = [
        (out, subprocess.Popen(_train_command(args, out, ranks, parts, seed), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env))
        for out, ranks, seed in runs
    ]  # fmt: skip
    total = 0.0
    for out, process in started:
        _, stderr = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"training run failed ({layout}):\n{stderr[-3000:]}")
        total += float(json.loads((out / "summary.json").read_text())["env_steps_per_s"])
    return total


def run(args: argparse.Namespace) -> int:
    if args.procs < 2 or args.envs % args.procs or args.threads < args.procs:
        raise SystemExit("--procs must be >= 2, divide --envs, and be at most --threads")
    rates: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    with tempfile.TemporaryDirectory(prefix="rfo_bench_scale_") as tmp:
        for r in range(args.rounds):
            for layout in LAYOUTS:
                rates[layout].append(layout_rate(args, layout, Path(tmp) / f"{layout}_r{r}"))
    mean = {layout: float(np.mean(v)) for layout, v in rates.items()}
    per = max(1, args.threads // args.procs)
    names = {
        "single": f"1 process x {args.threads} threads",
        "distributed": f"{args.procs} ranks x {per} threads",
        "independent": f"{args.procs} independent x {per} threads",
    }
    result = {
        "config": args.config,
        "total_envs": args.envs,
        "total_threads": args.threads,
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        **{layout: {"layout": names[layout], "env_steps_per_s": rates[layout]} for layout in LAYOUTS},
        "speedup": mean["distributed"] / mean["single"],
        "independent_over_single": mean["independent"] / mean["single"],
        "distributed_over_independent": mean["distributed"] / mean["independent"],
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'layout':<30} env steps/s (each run)")
    for layout in LAYOUTS:
        each = ", ".join(f"{v:.0f}" for v in rates[layout])
        print(f"{names[layout]:<30} {mean[layout]:7.0f}  ({each})")
    speedup = result["speedup"]
    print(f"speedup (distributed / single): {speedup:.2f}x  ({args.envs} envs in total, runs alternated)")
    print(f"the layout's ceiling (independent / single): {result['independent_over_single']:.2f}x")
    print(f"the collectives' cost (distributed / independent): {result['distributed_over_independent']:.2f}x")
    return 0

"""``python -m rfo_ros.bench train``: training throughput with Jacobians inline vs overlapped, side by side.

Builds the trainer twice from one config (``env.fd_overlap`` false and true), warms both up, then
alternates single iterations between them so both see the same machine load, and prints env steps/s and
where each iteration's wall time went (``rfo_ros.metrics.split_time``: mj_step, waiting for Jacobians,
the rest of the rollout, backward, critic; and the Jacobians' own compute time, which overlap hides
behind the rest). Only RFO and SHAC configs compute Jacobians.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from rfo_ros.algos import DIFFERENTIABLE
from rfo_ros.config import load_config
from rfo_ros.metrics import TIME_PARTS, split_time
from rfo_ros.runner import Runner


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config/train/quadruped_rfo.yaml", help="training YAML (rfo or shac)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--iterations", type=int, default=10, help="timed iterations per mode")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per mode first")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.iterations < 1 or args.warmup < 0:
        raise SystemExit("--iterations must be >= 1 and --warmup >= 0")
    result = bench_train(args.config, args.set, args.iterations, args.warmup)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def bench_train(config: str, overrides: list[str], iterations: int, warmup: int) -> dict:
    """Time ``iterations`` training iterations with Jacobians inline and overlapped (interleaved); returns a
    JSON-able dict."""
    modes = {"inline": ["env.fd_overlap=false"], "overlap": ["env.fd_overlap=true"]}
    result = time_modes(config, overrides, modes, iterations, warmup)
    rates = result["steps_per_s"]
    return {
        "config": config,
        "overrides": overrides,
        **result,
        "overlap_speedup": rates["overlap"] / rates["inline"],
    }


def time_modes(
    config: str, overrides: list[str], modes: dict[str, list[str]], iterations: int, warmup: int
) -> dict:
    """One trainer per mode (``config`` + ``overrides`` + the mode's own overrides), warmed up, then
    ``iterations`` single iterations of each in turn, so all modes see the same machine load.

    Returns task, algo, envs, horizon, threads (the first mode's), iterations, and per mode the networks'
    ``device``, ``env_steps_per_iteration`` (num_envs × horizon: a mode may change either), ``steps_per_s``
    and ``ms_per_iteration`` (wall and ``split_time`` parts).
    """
    runners: dict[str, Runner] = {}
    with tempfile.TemporaryDirectory(prefix="rfo_bench_train_") as tmp:
        try:
            for mode, sets in modes.items():
                cfg = load_config(config, [*overrides, *sets])
                if not DIFFERENTIABLE[cfg.algo]:
                    raise SystemExit(f"bench train needs an rfo, shac or sapo config, got algo {cfg.algo!r}")
                runners[mode] = Runner(cfg, f"{tmp}/{mode}", progress=False)
            for runner in runners.values():
                for _ in range(warmup):
                    runner.algo.iterate()
            wall = dict.fromkeys(modes, 0.0)
            parts = {mode: dict.fromkeys(TIME_PARTS, 0.0) for mode in modes}
            for _ in range(iterations):
                for mode, runner in runners.items():
                    t0 = time.perf_counter()
                    metrics = runner.algo.iterate()
                    wall[mode] += time.perf_counter() - t0
                    for key, value in split_time(metrics).items():
                        parts[mode][key] += value
        finally:
            for runner in runners.values():
                runner.env.close()
    first = next(iter(runners.values()))
    cfg = first.cfg
    per_iteration = {mode: r.cfg.env.num_envs * r.cfg.diff.horizon for mode, r in runners.items()}
    return {
        "task": cfg.env.task,
        "algo": cfg.algo,
        "envs": cfg.env.num_envs,
        "horizon": cfg.diff.horizon,
        "threads": first.env.sim.threads,
        "iterations": iterations,
        "device": {mode: str(runner.device) for mode, runner in runners.items()},
        "env_steps_per_iteration": per_iteration,
        "steps_per_s": {mode: per_iteration[mode] * iterations / wall[mode] for mode in modes},
        "ms_per_iteration": {
            mode: {k: round(1e3 * v / iterations, 1) for k, v in (("wall", wall[mode]), *parts[mode].items())}
            for mode in modes
        },
    }


def format_table(r: dict) -> str:
    head = f"{r['algo']} on {r['task']}: {r['envs']} envs x H={r['horizon']}, {r['threads']} threads"
    lines = [head, f"{'ms per iteration':<22}{'inline':>10}{'overlap':>10}"]
    for key in ("wall", *TIME_PARTS):
        lines.append(
            f"{key:<22}{r['ms_per_iteration']['inline'][key]:>10.1f}"
            f"{r['ms_per_iteration']['overlap'][key]:>10.1f}"
        )
    rates = r["steps_per_s"]
    lines.append(f"{'env steps/s':<22}{rates['inline']:>10.0f}{rates['overlap']:>10.0f}")
    speedup, n = r["overlap_speedup"], r["iterations"]
    lines.append(f"overlap speedup: {speedup:.2f}x  ({n} interleaved iterations each)")
    return "\n".join(lines)

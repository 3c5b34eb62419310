"""``python -m rfo_ros.bench learn --tasks cartpole,quadruped --algos rfo,shac,fpo,ppo --seeds 3 --steps S``.

Runs the grid of training runs (``--jobs`` at a time, each pinned to ``threads`` simulation threads),
then writes ``results.md`` (mean ± std of the final zero-noise return at equal env steps; env steps and
wall time until the training return first reaches the task's threshold) and one comparison plot per
task. Every run is a normal ``rfo_ros.train`` run folder, so each number can be traced and re-run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from rfo_ros.bench import train_launcher

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "train"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", default="cartpole", help="comma-separated task names")
    p.add_argument("--algos", default="rfo,shac,fpo,ppo", help="comma-separated algorithms")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, required=True, help="env steps per run (equal for every algorithm)")
    p.add_argument("--out", type=Path, default=Path("docs/results"))
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel")
    p.add_argument("--threads", type=int, default=None, help="simulation threads per run")
    p.add_argument("--max-wall", type=float, default=None, help="wall-clock cap per run, seconds")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra --set for every run")
    p.add_argument("--tag", default="", help="suffix for the run folders (e.g. an ablation name)")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="torchrun ranks per run (each rank owns env.num_envs envs; steps count all ranks)",
    )
    p.add_argument(
        "--config-task",
        default=None,
        help="take every algorithm's settings from config/train/<THIS>_<algo>.yaml (default: the task's own "
        "file where it exists), e.g. quadruped's tuned configs on soft_quadruped",
    )
    p.add_argument("--report-only", action="store_true", help="only aggregate existing run folders")
    p.add_argument(
        "--at-steps",
        default="250000,500000,750000",
        help="comma-separated env steps at which to compare training returns (a second table)",
    )


def run_dir(args: argparse.Namespace, task: str, algo: str, seed: int) -> Path:
    return args.out / task / f"{algo}{args.tag}_s{seed}"


def _command(args: argparse.Namespace, task: str, algo: str, seed: int) -> list[str]:
    cmd = [*train_launcher(args.nproc), "--no-progress", "--out", str(run_dir(args, task, algo, seed))]
    config = CONFIG_DIR / f"{args.config_task or task}_{algo}.yaml"
    if config.is_file():
        cmd += ["--config", str(config)]
    sets = [f"env.task={task}", f"algo={algo}", f"run.seed={seed}", f"run.total_env_steps={args.steps}"]
    if args.threads:
        sets.append(f"env.threads={args.threads}")
    if args.max_wall:
        sets.append(f"run.max_wall_time_s={args.max_wall}")
    for s in sets + args.overrides:
        cmd += ["--set", s]
    return cmd


def _run_one(args: argparse.Namespace, task: str, algo: str, seed: int) -> tuple[str, int, float]:
    folder = run_dir(args, task, algo, seed)
    if (folder / "summary.json").is_file():
        return str(folder), 0, 0.0
    t0 = time.perf_counter()
    cmd = _command(args, task, algo, seed)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f"{folder.name}.log").open("w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    return str(folder), rc, time.perf_counter() - t0


def _first_crossing(log, threshold: float | None) -> tuple[float | None, float | None]:
    """(env steps, wall seconds) when the training return (mean of last 100) first reached ``threshold``
    (never, when the task documents no return to reach)."""
    if threshold is None:
        return None, None
    for row in log.rows:
        if row.get("Train/return_mean100", -float("inf")) >= threshold:
            return row["Train/env_steps"], row["Train/wall_time_s"]
    return None, None


def _fmt(values: list[float], digits: int = 1) -> str:
    if not values:
        return "—"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def aggregate(args: argparse.Namespace, tasks: list[str], algos: list[str]) -> str:
    from rfo_ros.metrics import MetricsLog
    from rfo_ros.plots import seed_band_curves

    budget = f"at most {args.max_wall:.0f} s of training wall-clock per run; " if args.max_wall else ""
    lines = [f"{budget}seeds: {args.seeds}; tag: '{args.tag or '-'}'. Step budgets per row.", ""]
    lines += [
        "| task | algo | final return (sampled noise) | zero noise | forward speed m/s | falls / episodes "
        "| success | step budget | env steps done | env steps/s | steps to threshold | wall s to threshold "
        "| solved runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    marks = [int(float(x)) for x in args.at_steps.split(",") if x]
    at_lines = [
        "",
        "Training return (mean of the last 100 episodes) at equal env steps, mean ± std over the seeds "
        "that got that far (how many in brackets):",
        "",
        "| task | algo | " + " | ".join(f"at {m:,} steps" for m in marks) + " |",
        "|---|---|" + "---|" * len(marks),
    ]
    for task in tasks:
        by_steps: dict[str, list] = {}
        by_wall: dict[str, list] = {}
        threshold = None
        for algo in algos:
            finals, stoch, rates, steps_at, wall_at, solved, runs = [], [], [], [], [], 0, 0
            done_steps, budgets = [], set()
            speeds, successes, falls, episodes = [], [], 0, 0
            xs, ys, walls = [], [], []
            for seed in range(args.seeds):
                folder = run_dir(args, task, algo, seed)
                path = folder / "summary.json"
                if not path.is_file():
                    continue
                s = json.loads(path.read_text())
                runs += 1
                threshold = s["solved_threshold"]
                finals.append(s["final_return"])
                stoch.append(s["final_return_zero_noise"])
                rates.append(s["env_steps_per_s"])
                done_steps.append(s["env_steps"])
                sampled = s["eval"]["stochastic"]
                if "forward_speed_mean" in sampled:
                    speeds.append(sampled["forward_speed_mean"])
                if "success_rate" in sampled:
                    successes.append(sampled["success_rate"])
                falls += sampled["falls"]
                run_cfg = yaml.safe_load((folder / "config.yaml").read_text())["run"]
                episodes += run_cfg["eval_episodes"]
                budgets.add(run_cfg["total_env_steps"])
                solved += int(s["solved"])
                log = MetricsLog(folder, tensorboard=False)
                log.load(10**12)
                st, wt = _first_crossing(log, threshold)
                if st is not None:
                    steps_at.append(st)
                    wall_at.append(wt)
                x, y = log.series("Train/return_mean100")
                xs.append(x)
                ys.append(y)
                walls.append([r["Train/wall_time_s"] for r in log.rows if "Train/return_mean100" in r])
            if not runs:
                continue
            reached = f"{_fmt(steps_at, 0)} ({len(steps_at)}/{runs})"
            lines.append(
                f"| {task} | {algo}{args.tag} | {_fmt(finals)} | {_fmt(stoch)} | {_fmt(speeds, 2)} | "
                f"{falls} / {episodes} | {_fmt(successes, 2)} | "
                f"{'/'.join(f'{b:,}' for b in sorted(budgets))} | "
                f"{_fmt(done_steps, 0)} | {_fmt(rates, 0)} | "
                f"{reached} | {_fmt(wall_at, 0)} | {solved}/{runs} |"
            )
            cells = []
            for mark in marks:
                reached = [
                    float(np.interp(mark, x, y)) for x, y in zip(xs, ys, strict=True) if x and x[-1] >= mark
                ]
                cells.append(f"{_fmt(reached, 0)} ({len(reached)})" if reached else "—")
            at_lines.append(f"| {task} | {algo}{args.tag} | " + " | ".join(cells) + " |")
            by_steps[f"{algo}{args.tag}"] = list(zip(xs, ys, strict=True))
            by_wall[f"{algo}{args.tag}"] = list(zip(walls, ys, strict=True))
        if by_steps:
            name = f"{task}{args.tag}"
            seed_band_curves(
                by_steps, f"{task}: training return", "env steps", args.out / f"{name}.png", threshold
            )
            seed_band_curves(
                by_wall, f"{task}: training return", "wall-clock s", args.out / f"{name}_wall.png", threshold
            )
    return "\n".join(lines + at_lines)


def run(args: argparse.Namespace) -> int:
    tasks = [t for t in args.tasks.split(",") if t]
    algos = [a for a in args.algos.split(",") if a]
    prefix = args.config_task
    missing = [a for a in algos if prefix and not (CONFIG_DIR / f"{prefix}_{a}.yaml").is_file()]
    if missing:
        print(f"--config-task {prefix}: no config/train/{prefix}_<algo>.yaml for {', '.join(missing)}")
        return 2
    if not args.report_only:
        grid = [(t, a, s) for t in tasks for a in algos for s in range(args.seeds)]
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for folder, rc, secs in pool.map(lambda job: _run_one(args, *job), grid):
                print(f"{'ok ' if rc == 0 else f'FAILED rc={rc}'} {folder} ({secs:.0f} s)", flush=True)
    table = aggregate(args, tasks, algos)
    args.out.mkdir(parents=True, exist_ok=True)
    report = args.out / f"results{args.tag}.md"
    report.write_text(table + "\n")
    print(table)
    return 0

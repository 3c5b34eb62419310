"""``python -m rfo_ros.bench robust --policies A.onnx,B.pt [--sets ...] [--episodes 32] [--command 1.0]``.

Every policy (an exported ONNX model or a training checkpoint) in every named perturbation set of
``rfo_ros.randomization.PERTURBATION_SETS`` (friction low/high, payload, weak motors, latency, sensor
noise, pushes): ``--episodes`` episodes at a fixed forward command, with the flow's noise sampled as the
policies were trained, or (``--zero-noise``) at zero, as the policy node runs them by default. One table:
mean forward speed (body frame: what the command asks for), speed as a fraction of the policy's own
nominal speed, the speed made good along the start heading (a robot that turns while it walks makes less
good than its body speed), falls and tracking error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rfo_ros.evaluate import OnnxActor, load_policy
from rfo_ros.randomization import PERTURBATION_SETS

__all__ = ["OnnxActor", "add_arguments", "load_policy", "run", "table"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policies", required=True, help="comma-separated .onnx models or .pt checkpoints")
    p.add_argument("--labels", default=None, help="comma-separated names for the table (default: file names)")
    p.add_argument("--sets", default=",".join(PERTURBATION_SETS), help="perturbation sets to run")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--command", type=float, default=1.0, help="forward velocity command (m/s)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument(
        "--zero-noise", action="store_true", help="deterministic flow (noise 0), the policy node's default"
    )
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")


def run(args: argparse.Namespace) -> int:
    from rfo_ros.evaluate import evaluate

    paths = args.policies.split(",")
    labels = args.labels.split(",") if args.labels else [Path(p).stem for p in paths]
    sets = args.sets.split(",")
    unknown = [s for s in sets if s not in PERTURBATION_SETS]
    if unknown:
        raise SystemExit(f"unknown perturbation sets {unknown}; known: {', '.join(PERTURBATION_SETS)}")
    if len(labels) != len(paths):
        raise SystemExit(f"{len(labels)} labels for {len(paths)} policies")
    rows = []
    for path, label in zip(paths, labels, strict=True):
        actor, task, options = load_policy(path)
        torch.manual_seed(args.seed)
        for name in sets:
            result = evaluate(
                actor, task, args.episodes, args.seed, deterministic=args.zero_noise,
                command=(args.command, 0.0, 0.0),
                task_options=options, randomization=PERTURBATION_SETS[name],
            )  # fmt: skip
            rows.append({"policy": label, "set": name, **result})
            print(f"  {label:<24} {name:<14} speed {result['forward_speed_mean']:.2f} m/s "
                  f"(made good {result['progress_speed_mean']:.2f}), "
                  f"falls {result['falls']}/{args.episodes}", flush=True)  # fmt: skip
    print(table(rows, args.episodes, args.command, args.zero_noise))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def table(rows: list[dict], episodes: int, command: float, zero_noise: bool = False) -> str:
    """Markdown: one row per perturbation set, per policy speed (share of its nominal), speed made good
    along the start heading, falls, tracking."""
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    sets = list(dict.fromkeys(r["set"] for r in rows))
    by = {(r["policy"], r["set"]): r for r in rows}
    columns = " | ".join(f"{p}: speed (× nominal), made good, falls/{episodes}, track err" for p in policies)
    noise = "zero noise (the policy node's default)" if zero_noise else "sampled noise"
    lines = [f"command {command:g} m/s, {episodes} episodes per cell, {noise}", "",
             f"| set | {columns} |", "|---|" + "---|" * len(policies)]  # fmt: skip
    for s in sets:
        cells = []
        for p in policies:
            r, nominal = by.get((p, s)), by.get((p, "nominal"))
            if r is None:
                cells.append("")
                continue
            share = r["forward_speed_mean"] / nominal["forward_speed_mean"] if nominal else float("nan")
            error = r.get("tracking_error_mean", float("nan"))
            made_good = r.get("progress_speed_mean", float("nan"))  # absent in rows saved before it was
            cells.append(
                f"{r['forward_speed_mean']:.2f} ({share:.2f}), {made_good:.2f}, {r['falls']}, {error:.2f}"
            )
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

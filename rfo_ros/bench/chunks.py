"""``python -m rfo_ros.bench chunks --model M.onnx``: how smooth each chunk-execution mode is in closed loop.

For every blend (latest, ensemble, overlap, and realtime when the model was exported with
``--inpainting``) the model drives its task's MuJoCo world for ``--seconds`` through the runtime pieces
the policy node uses (``Policy`` + ``ChunkScheduler``; observation = the task's, which the node
reproduces exactly), replanning every ``--replan-every`` steps. Reported per blend: the largest and the
mean joint-command jump |u_t - u_{t-1}| at replan steps and at the other steps, forward speed and falls,
and the *switch*: at a replan step that the older plans still cover, |u_t - u'_t| where u'_t is what
they would have commanded without the new chunk. The jump at a replan step is the plan's own motion plus
the switch; only the switch is what replanning adds.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="exported ONNX policy with C > 1")
    p.add_argument("--replan-every", type=int, default=None, help="R (default C/2)")
    p.add_argument("--seconds", type=float, default=10.0, help="sim time per blend")
    p.add_argument(
        "--committed-steps", type=int, default=1, help="d of the realtime blend (the node's committed_steps)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")


def closed_loop(
    model: str, blend: str, replan_every: int, seconds: float, seed: int, committed_steps: int = 1
) -> dict:
    """One closed-loop run of ``model`` with ``blend``; command-jump statistics (rad), speed, falls."""
    import torch

    from rfo_ros.envs import task_from_metadata
    from rfo_ros.envs.vec_env import VecEnv
    from rfo_ros.runtime import ChunkScheduler, make_policy

    policy = make_policy(model, provider="cpu", seed=seed)
    meta = policy.metadata
    env = VecEnv(task_from_metadata(meta.task, meta.robot), 1, seed=seed, threads=1)
    scheduler = ChunkScheduler(
        meta.chunk, meta.action_dim, replan_every=replan_every, blend=blend, committed_steps=committed_steps
    )
    obs, previous = env.reset(), None
    at_replan, between, switches, speeds, falls = [], [], [], [], 0
    speed_of = env.task.forward_speed if env.task.forward_speed(env.state) is not None else None
    with torch.no_grad():
        for step in range(int(round(seconds / meta.dt))):
            planned = scheduler.needs_plan(step)
            if planned:
                chunk = policy.infer(obs[0].numpy(), **scheduler.conditioning(step))
                old_plan = scheduler.action(step)  # None when no older chunk covers this step
                scheduler.add(chunk, step)
            command = scheduler.action(step)
            if planned and old_plan is not None:
                switches.append(float(np.abs(command - old_plan).max()))
            if previous is not None:
                (at_replan if planned else between).append(float(np.abs(command - previous).max()))
            previous = command
            action = meta.policy_action(command, meta.step_prior(obs.numpy()[:, : meta.obs_dim])[0])
            result = env.step(torch.as_tensor(action, dtype=torch.float32)[None])
            if speed_of is not None:
                speeds.append(float(speed_of(env.state)[0]))
            falls += int(result.terminated[0])
            obs = result.obs
    env.close()
    return {
        "blend": blend,
        "max_jump_at_replan": max(at_replan, default=0.0),
        "mean_jump_at_replan": float(np.mean(at_replan)) if at_replan else 0.0,
        "max_jump_between": max(between, default=0.0),
        "mean_jump_between": float(np.mean(between)) if between else 0.0,
        "max_switch": max(switches, default=0.0),
        "mean_switch": float(np.mean(switches)) if switches else 0.0,
        "forward_speed": float(np.mean(speeds)) if speeds else None,
        "falls": falls,
    }


def run(args: argparse.Namespace) -> int:
    from rfo_ros.runtime import BLENDS, load_metadata

    meta = load_metadata(args.model)
    if meta.chunk < 2:
        raise SystemExit(f"{args.model} has C={meta.chunk}: chunk execution needs C > 1")
    replan = args.replan_every or max(1, meta.chunk // 2)
    blends = [b for b in BLENDS if b != "realtime" or meta.inpainting]
    rows = [closed_loop(args.model, b, replan, args.seconds, args.seed, args.committed_steps) for b in blends]
    if args.json:
        print(json.dumps({"model": args.model, "chunk": meta.chunk, "replan_every": replan, "rows": rows}))
        return 0
    print(f"{args.model}: C={meta.chunk}, replan every {replan} steps, {args.seconds:g} s per blend")
    widths = (10, 19, 7, 17, 7, 11, 7, 6, 5)
    header = (
        "blend", "max jump at replan", "mean", "max jump between", "mean", "max switch", "mean", "speed",
        "falls",
    )  # fmt: skip
    print(
        " ".join(
            f"{h:<{w}}" if k == 0 else f"{h:>{w}}"
            for k, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for r in rows:
        speed = "-" if r["forward_speed"] is None else f"{r['forward_speed']:.2f}"
        print(
            f"{r['blend']:<10} {r['max_jump_at_replan']:19.4f} {r['mean_jump_at_replan']:7.4f} "
            f"{r['max_jump_between']:17.4f} {r['mean_jump_between']:7.4f} "
            f"{r['max_switch']:11.4f} {r['mean_switch']:7.4f} {speed:>6} {r['falls']}"
        )
    return 0

"""``python -m rfo_ros.bench twin``: how good a gradient twin's gradient is, and what it costs.

For a robot (``--robot``), from states that a no-grad walk of random actions reaches, the same action
sequence is rolled ``--horizon`` control steps with gradients, once with the exact Jacobians of each
control step (finite differences of the simulator's own substeps) and once per twin setting
(``--twins``: ``steps[:integrator[:cone]]``, e.g. ``1:implicitfast:pyramidal``). The forward
simulation is the same bit for bit, so the rewards are too; only the gradient differs. Reported per
setting: the gradient of the summed reward with respect to every action, per env, as cosine and
relative error against the exact one (median and worst over envs); the one-step Jacobians' cosines
(B = d next state / d ctrl, A = d next state / d state) on the first step; and the Jacobians' compute
time per control step and env, single-threaded and inline.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from rfo_ros.envs import VecEnv, make_task
from rfo_ros.sim import FDConfig
from rfo_ros.sim.gradient_model import GradientModel


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robot", default="go1_fine", help="robot file (name in config/robots or a path)")
    p.add_argument("--twins", nargs="+", default=["1:implicitfast:pyramidal", "2:implicitfast:pyramidal",
                                                  "4:implicitfast:pyramidal", "1"],
                   help="twin settings steps[:integrator[:cone]]")  # fmt: skip
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--horizon", type=int, default=32)
    p.add_argument("--warmup", type=int, default=25, help="no-grad control steps before the window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jacobians", choices=["fd", "hybrid"], default="fd",
                   help="the twins' Jacobians (the exact ones fall back to fd where hybrid cannot go)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON line")


def parse_twin(text: str) -> GradientModel:
    """``steps[:integrator[:cone]]`` -> the twin's ``GradientModel``."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"twin setting {text!r}: steps[:integrator[:cone]]")
    steps = int(parts[0])
    integrator = parts[1] if len(parts) > 1 and parts[1] else None
    cone = parts[2] if len(parts) > 2 and parts[2] else None
    return GradientModel(steps=steps, integrator=integrator, cone=cone)


def _cosines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise cosine of (n, ...) arrays."""
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    return np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-30)


def window_gradient(args: argparse.Namespace, gradient: GradientModel | None) -> dict:
    """The window's action gradient (envs, horizon, m), the first step's Jacobians and their cost."""
    task = make_task("legged", robot=args.robot)
    fd = FDConfig(overlap=False, method=args.jacobians)
    env = VecEnv(task, args.envs, seed=args.seed, threads=1, fd=fd, gradient=gradient)
    rng = np.random.default_rng(args.seed)
    env.reset()
    with torch.no_grad():
        for _ in range(args.warmup):
            env.step(torch.from_numpy(rng.uniform(-0.5, 0.5, (args.envs, task.action_dim))).float())
    env.detach()
    # The one-step Jacobians at the window's start (zero action). This probe step moves the solver's
    # warm-starts, identically for every setting, so the window's forward pass stays the same for all.
    start = env.state
    ctrl0 = task.action_to_ctrl(torch.zeros(args.envs, task.action_dim)).double().numpy()
    out = env.sim.step(start.qpos.numpy(), start.qvel.numpy(), start.act.numpy(), ctrl0, jacobians=True)
    A, B = (x.copy() for x in out.jacobians.result())
    actions = torch.from_numpy(rng.uniform(-0.5, 0.5, (args.horizon, args.envs, task.action_dim)))
    actions = actions.float().requires_grad_(True)
    env.sim.timing["fd"] = 0.0
    total = torch.zeros(())
    for t in range(args.horizon):
        total = total + env.step(actions[t]).reward.sum()
    total.backward()
    jacobian_s = env.sim.timing["fd"]
    env.close()
    return {
        "grad": actions.grad.detach().numpy().transpose(1, 0, 2).copy(),
        "A": A,
        "B": B,
        "ms_per_step": 1e3 * jacobian_s / (args.horizon * args.envs),
    }


def compare(args: argparse.Namespace) -> list[dict]:
    """One row per setting, the exact Jacobians first."""
    exact = window_gradient(args, None)
    rows = [{"setting": "exact", "ms_per_step": exact["ms_per_step"]}]
    for text in args.twins:
        twin = window_gradient(args, parse_twin(text))
        cos = _cosines(twin["grad"], exact["grad"])
        rel = np.linalg.norm((twin["grad"] - exact["grad"]).reshape(args.envs, -1), axis=1)
        rel /= np.linalg.norm(exact["grad"].reshape(args.envs, -1), axis=1) + 1e-30
        cos_b, cos_a = _cosines(twin["B"], exact["B"]), _cosines(twin["A"], exact["A"])
        rows.append({
            "setting": text,
            "ms_per_step": twin["ms_per_step"],
            "cost_ratio": exact["ms_per_step"] / twin["ms_per_step"],
            "grad_cos_median": float(np.median(cos)),
            "grad_cos_min": float(cos.min()),
            "grad_rel_error_median": float(np.median(rel)),
            "B_cos_median": float(np.median(cos_b)),
            "B_cos_min": float(cos_b.min()),
            "A_cos_median": float(np.median(cos_a)),
        })  # fmt: skip
    return rows


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    rows = compare(args)
    if args.json:
        print(json.dumps({"robot": args.robot, "envs": args.envs, "horizon": args.horizon, "rows": rows}))
        return 0
    print(f"robot {args.robot}: {args.envs} envs, the gradient of a {args.horizon}-step return w.r.t. every "
          f"action against the exact one; {args.jacobians} Jacobians ({time.perf_counter() - t0:.0f} s)")
    print(f"{'setting':<26} {'ms/step':>8} {'cheaper':>8} {'cos med':>8} {'cos min':>8} {'rel err':>8} "
          f"{'cos(B)':>7} {'min':>6} {'cos(A)':>7}")  # fmt: skip
    for r in rows:
        if r["setting"] == "exact":
            print(f"{'exact':<26} {r['ms_per_step']:8.2f}")
            continue
        print(f"{r['setting']:<26} {r['ms_per_step']:8.2f} {r['cost_ratio']:7.1f}x "
              f"{r['grad_cos_median']:8.3f} {r['grad_cos_min']:8.3f} {r['grad_rel_error_median']:8.3f} "
              f"{r['B_cos_median']:7.3f} "
              f"{r['B_cos_min']:6.3f} {r['A_cos_median']:7.3f}")  # fmt: skip
    return 0

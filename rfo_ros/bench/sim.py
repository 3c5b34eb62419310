"""``python -m rfo_ros.bench sim``: simulator throughput and the gradient wrapper's overhead.

Measures, on one task's ``VecEnv`` (random actions in [-1, 1]):

- ``plain_steps_per_s``: env steps/s of a no-grad rollout (what PPO/FPO pay);
- ``grad_steps_per_s``: env steps/s of a gradient rollout — ``horizon`` steps with actions that require
  grad, then ``backward`` of the summed reward (what RFO/SHAC pay) — with ``mjd_transitionFD``
  Jacobians; ``<method>_steps_per_s`` and ``<method>_cost_in_plain_steps`` (plain rate / gradient rate)
  for each of ``--jacobians`` (``fd``, and ``hybrid``: exact velocity and control columns, see
  ``rfo_ros.sim.jacobians``), measured side by side in the same repeats; inline (the caller waits for
  each step's Jacobians), or with ``_overlap`` (``fd_overlap``, ``hybrid_overlap``) in background threads
  while the caller goes on, as training computes them (``env.fd_overlap``);
- ``floor_ms``: one bare ``mjd_transitionFD`` + one bare ``mj_step``, single-threaded, on the states
  (and solver warm-starts) the gradient rollout visited;
- ``fd_floor_ratio`` = (gradient rollout wall time per env step) / (floor / threads): 1.0 would mean
  the wrapper, Python, torch and the thread pool cost nothing beyond the C calls split perfectly.

Each repeat times a plain rollout, then a gradient rollout, then the floor on the states that gradient
rollout visited (so a ratio's two halves see the same machine load). Reported: the best of
``--repeats`` for each rate, the best repeat's ratio (and the median), and that repeat's ``parts_ms``
(per rollout: forward and backward wall time, time inside ``mjd_transitionFD`` / ``mj_step`` summed
over threads / threads, and the rest of the forward pass). Best-of, because the machine may be shared:
the best run is the least disturbed one.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import mujoco
import numpy as np
import torch

from rfo_ros.envs import VecEnv, make_task
from rfo_ros.sim import FDConfig, SimState

#: Keys every result carries (the test checks them).
RESULT_KEYS = (
    "task",
    "envs",
    "horizon",
    "threads",
    "fd",
    "plain_steps_per_s",
    "grad_steps_per_s",
    "floor_ms",
    "fd_floor_ratio",
    "fd_floor_ratio_median",
    "bare_threaded_ratio",
    "parts_ms",
    "repeats",
    "jacobians",
)


#: ``--jacobians`` choices: the Jacobian method, and whether it runs overlapped with the caller.
JACOBIAN_MODES = {
    "fd": {"method": "fd", "overlap": False},
    "hybrid": {"method": "hybrid", "overlap": False},
    "fd_overlap": {"method": "fd", "overlap": True},
    "hybrid_overlap": {"method": "hybrid", "overlap": True},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="quadruped", help="task name (see rfo_ros.envs.TASKS)")
    p.add_argument("--envs", type=int, default=32, help="parallel envs")
    p.add_argument("--horizon", type=int, default=16, help="steps per differentiable rollout")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="simulation threads")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--centered", dest="centered", action="store_true", default=False, help="centered FD")
    mode.add_argument("--forward", dest="centered", action="store_false", help="forward FD (the default)")
    p.add_argument("--eps", type=float, default=FDConfig.eps, help="FD perturbation")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (best is reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--jacobians",
        default="fd,hybrid",
        help=f"Jacobian modes timed side by side (comma list of {', '.join(JACOBIAN_MODES)})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")


def run(args: argparse.Namespace) -> int:
    for name in ("envs", "horizon", "threads", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1, got {getattr(args, name)}")
    methods = tuple(m.strip() for m in args.jacobians.split(",") if m.strip())
    if not methods or any(m not in JACOBIAN_MODES for m in methods):
        choices = ", ".join(JACOBIAN_MODES)
        raise SystemExit(f"--jacobians takes a comma list of {choices}, got {args.jacobians!r}")
    result = bench_sim(
        args.task,
        methods=methods,
        envs=args.envs,
        horizon=args.horizon,
        threads=args.threads,
        fd=FDConfig(eps=args.eps, centered=args.centered),  # each mode sets its method and overlap
        repeats=args.repeats,
        seed=args.seed,
    )
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def bench_sim(
    task_name: str,
    envs: int = 32,
    horizon: int = 16,
    threads: int | None = None,
    fd: FDConfig | None = None,
    repeats: int = 5,
    seed: int = 0,
    methods: tuple[str, ...] = ("fd",),
) -> dict:
    """Run the measurements described in the module docstring; returns a JSON-able dict.

    ``fd``'s eps and centering hold for every mode of ``methods`` (``JACOBIAN_MODES``: each sets its
    method and overlap); the ``mjd_transitionFD`` floor is always measured, on the states that the ``fd``
    rollout (or the first mode's) visited.
    """
    fd = fd or FDConfig()
    methods = tuple(sorted(methods, key=lambda m: m != "fd"))  # the floor and grad_steps_per_s: fd's
    task = make_task(task_name)
    modes = {m: replace(fd, **JACOBIAN_MODES[m]) for m in methods}
    sims = {m: VecEnv(task, envs, seed=seed, threads=threads, fd=modes[m]) for m in methods}
    env = sims[methods[0]]
    rng = torch.Generator().manual_seed(seed)
    env_steps, plain_times, pairs = envs * horizon, [], []
    grad_times: dict[str, list[float]] = {m: [] for m in methods}
    try:
        for other in sims.values():
            _grad_rollout(other, horizon, rng)  # warm-up: thread pool, allocator, first contacts
        for _ in range(repeats):
            plain_times.append(_plain_rollout(env, horizon, rng))
            for method, other in list(sims.items())[1:]:
                timed = _grad_rollout(other, horizon, rng)
                grad_times[method].append(timed["forward"] + timed["backward"])
            run = _grad_rollout(env, horizon, rng)
            grad_times[methods[0]].append(run["forward"] + run["backward"])
            items = _bare_items(env, run.pop("visited"))
            run["floor"] = _bare(env.sim.model, items, fd, threads=1)
            run["bare_threaded"] = _bare(env.sim.model, items, fd, threads=env.sim.threads)
            grad_per_step = (run["forward"] + run["backward"]) / env_steps
            run["ratio"] = grad_per_step / (run["floor"] / env.sim.threads)
            pairs.append(run)
    finally:
        for other in sims.values():
            other.close()
    best = min(pairs, key=lambda r: r["ratio"])
    parts = {k: 1e3 * best[k] for k in ("forward", "backward", "sim_fd", "sim_step")}
    parts["forward_other"] = parts["forward"] - parts["sim_fd"] - parts["sim_step"]
    return {
        "task": task_name,
        "envs": envs,
        "horizon": horizon,
        "threads": env.sim.threads,
        "fd": {"eps": fd.eps, "centered": fd.centered},
        "plain_steps_per_s": env_steps / min(plain_times),
        "grad_steps_per_s": max(env_steps / (r["forward"] + r["backward"]) for r in pairs),
        "floor_ms": 1e3 * min(r["floor"] for r in pairs),
        "fd_floor_ratio": best["ratio"],
        "fd_floor_ratio_median": float(np.median([r["ratio"] for r in pairs])),
        # The same C calls from bare threads, no wrapper: how much of the ratio is thread scaling.
        "bare_threaded_ratio": best["bare_threaded"] / (best["floor"] / env.sim.threads),
        "parts_ms": {k: round(v, 3) for k, v in parts.items()},
        "repeats": repeats,
        "jacobians": {
            m: {"fallback": other.sim.hybrid_fallback} if m.startswith("hybrid") else {}
            for m, other in sims.items()
        },
        **{f"{m}_steps_per_s": env_steps / min(t) for m, t in grad_times.items()},
        **{f"{m}_cost_in_plain_steps": min(t) / min(plain_times) for m, t in grad_times.items()},
    }


def _random_actions(env: VecEnv, horizon: int, rng: torch.Generator) -> torch.Tensor:
    return torch.rand(horizon, env.num_envs, env.action_dim, generator=rng, dtype=torch.float64) * 2 - 1


def _plain_rollout(env: VecEnv, horizon: int, rng: torch.Generator) -> float:
    actions = _random_actions(env, horizon, rng)
    env.detach()
    with torch.no_grad():
        t0 = time.perf_counter()
        for t in range(horizon):
            env.step(actions[t])
        return time.perf_counter() - t0


def _grad_rollout(env: VecEnv, horizon: int, rng: torch.Generator) -> dict:
    """One differentiable window; returns wall times (s) and the (state, ctrl, warm-start) it visited."""
    actions = _random_actions(env, horizon, rng).requires_grad_()
    env.detach()
    visited, recording = [], 0.0
    timing0 = dict(env.sim.timing)
    t0 = time.perf_counter()
    total = torch.zeros((), dtype=torch.float64)
    for t in range(horizon):
        r0 = time.perf_counter()
        ctrl = env.task.action_to_ctrl(actions[t].detach())
        visited.append((env.state.detach(), ctrl, env.sim.warmstart()))
        recording += time.perf_counter() - r0
        total = total + env.step(actions[t]).reward.sum()
    t1 = time.perf_counter()
    (-total).backward()
    t2 = time.perf_counter()
    return {
        "forward": t1 - t0 - recording,
        "backward": t2 - t1,
        "sim_fd": env.sim.timing["fd"] - timing0["fd"],
        "sim_step": env.sim.timing["step"] - timing0["step"],
        "visited": visited,
    }


def _bare_items(env: VecEnv, visited: list[tuple[SimState, torch.Tensor, np.ndarray]]) -> list[tuple]:
    """The visited (qpos, qvel, act, ctrl, warm-start) of every env and step, as numpy rows."""
    items = []
    for state, ctrl, warmstart in visited:
        rows = (state.qpos.numpy(), state.qvel.numpy(), state.act.numpy(), ctrl.numpy(), warmstart)
        items += list(zip(*rows, strict=True))
    return items


def _bare(model: mujoco.MjModel, items: list[tuple], fd: FDConfig, threads: int) -> float:
    """Wall seconds per item of bare ``mjd_transitionFD`` + ``mj_step`` calls over ``items``.

    ``threads`` = 1: the floor, only the two C calls timed. ``threads`` > 1: plain Python threads, each
    with its own ``MjData`` and a contiguous share of the items, no wrapper at all — what the machine's
    thread scaling alone allows.
    """
    nx = 2 * model.nv + model.na
    shares = np.array_split(np.arange(len(items)), threads)

    def work(share: np.ndarray) -> float:
        d = mujoco.MjData(model)
        A, B = np.empty((nx, nx)), np.empty((nx, model.nu))
        elapsed = 0.0
        for k in share:
            d.qpos[:], d.qvel[:], d.act[:], d.ctrl[:], d.qacc_warmstart[:] = items[k]
            t0 = time.perf_counter()
            mujoco.mjd_transitionFD(model, d, fd.eps, fd.centered, A, B, None, None)
            mujoco.mj_step(model, d)
            elapsed += time.perf_counter() - t0
        return elapsed

    if threads == 1:
        return work(shares[0]) / len(items)
    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(work, shares))
        return (time.perf_counter() - t0) / len(items)


def _method_row(r: dict, method: str) -> str:
    cost = r[f"{method}_cost_in_plain_steps"]
    return f"{r[f'{method}_steps_per_s']:,.0f} steps/s: one costs {cost:.2f} plain steps"


def format_table(r: dict) -> str:
    fd = r["fd"]
    rows = [
        ("task", f"{r['task']}  ({r['envs']} envs, horizon {r['horizon']}, {r['threads']} threads)"),
        ("FD", f"eps {fd['eps']:g}, {'centered' if fd['centered'] else 'forward'}"),
        ("plain steps/s", f"{r['plain_steps_per_s']:,.0f}"),
        ("gradient steps/s", f"{r['grad_steps_per_s']:,.0f}  (forward + backward)"),
        *(
            (f"{m} Jacobians", _method_row(r, m))
            for m in r["jacobians"]
        ),
        ("floor (FD + step)", f"{r['floor_ms']:.3f} ms single-threaded, / {r['threads']} threads"),
        ("fd_floor_ratio", f"{r['fd_floor_ratio']:.3f}  (median {r['fd_floor_ratio_median']:.3f})"),
        ("bare_threaded_ratio", f"{r['bare_threaded_ratio']:.3f}  (bare threads, no wrapper)"),
    ]
    rows += [(f"  {k} ms", f"{v:.2f}") for k, v in r["parts_ms"].items()]
    width = max(len(k) for k, _ in rows)
    note = f"best of {r['repeats']} repeats; parts: the best repeat's, per {r['envs']}x{r['horizon']} rollout"
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows) + f"\n({note})"

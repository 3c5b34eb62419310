"""``python -m rfo_ros.bench soak [--minutes 10] [--state-hz 500] [--model PATH] [--json]``: a long run.

The policy node runs in its own process as on a robot: its steady-clock timer at the model's control
rate (100 Hz for the quadruped), a plan every ``replan_every`` (= C) ticks. A driver here publishes
``imu``, ``odom`` and ``joint_states`` at ``--state-hz`` with ±``--jitter`` of the period at random, each
``joint_states`` stamped with a sequence number; every ``action_chunk`` carries the stamp of the state it
planned from, so its age on arrival is the observation-to-plan latency a robot sees (the wait for the
next tick included). Per minute: that latency's p50/p99, the plans received against the node's ticks,
holds, and the node's resident memory (``/proc/PID/status``). Goals: memory flat within 5 %, p99 within
20 % of the first minute's, no plan missed, no hold.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

GOAL_MEMORY_GROWTH = 0.05
GOAL_P99_DRIFT = 0.20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="ONNX policy (default: models/quadruped.onnx)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--state-hz", type=float, default=500.0, help="joint_states rate")
    p.add_argument("--jitter", type=float, default=0.3, help="± fraction of the state period, uniform")
    p.add_argument("--provider", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def resident_mb(pid: int) -> float:
    """VmRSS of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for process {pid}")


def run(args: argparse.Namespace) -> int:
    from rfo_ros.bench.latency import resolve_model

    with tempfile.TemporaryDirectory(prefix="rfo_soak_") as tmp:
        model, _ = resolve_model(args.model, 8, 8, Path(tmp))
        result = soak(model, args.minutes, args.state_hz, args.jitter, args.provider)
    if args.json:
        print(json.dumps(result))
    else:
        print(report(result))
    return 0


def soak(model: Path, minutes: float, state_hz: float, jitter: float, provider: str) -> dict:
    """Drive a policy-node process for ``minutes``; per-minute latency, plans and memory (see module doc)."""
    from rfo_ros.nodes.latency_driver import LatencyDriver, policy_node_process
    from rfo_ros.nodes.spin import isolated_ros_env
    from rfo_ros.runtime import load_metadata

    meta = load_metadata(model)
    os.environ.update(isolated_ros_env())
    namespace = f"/rfo_soak_{os.getpid()}"
    params = {
        "model_path": model,
        "provider": provider,
        "tick_source": "timer",
        "publish_diagnostics_hz": 1.0,
    }
    rng = np.random.default_rng(0)
    rows = []
    with (
        policy_node_process(namespace, params) as node,
        LatencyDriver(namespace, meta.joint_names, meta.action_offset.tolist()) as driver,
    ):
        driver.wait_for_policy(timeout_s=60.0, process=node)
        sent: dict[int, float] = {}
        arrivals: deque[tuple[int, float]] = deque()  # appended by the spinning thread (thread-safe)
        driver.on_chunk = lambda stamp_seq, t: arrivals.append((stamp_seq, t))
        spinner = threading.Thread(target=driver.executor.spin, daemon=True)
        spinner.start()
        period, seq = 1.0 / state_hz, 1
        start = next_send = time.perf_counter()
        rss_start = resident_mb(node.pid)
        before, commands_before = driver.last_diagnostics_now(), driver.commands_received
        for minute in range(int(np.ceil(minutes))):
            end = start + min(60.0 * (minute + 1), 60.0 * minutes)
            while time.perf_counter() < end:
                delay = next_send - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent[seq] = driver.send(seq)
                seq += 1
                next_send += period * (1.0 + rng.uniform(-jitter, jitter))
            got = [arrivals.popleft() for _ in range(len(arrivals))]
            ages = np.array([t - sent[s] for s, t in got if s in sent]) * 1e3
            for s in [s for s in sent if s < seq - 5 * int(state_hz)]:  # keep ~5 s of send times
                del sent[s]
            after, commands = driver.last_diagnostics_now(), driver.commands_received
            ticks, commands_before = commands - commands_before, commands  # one joint_commands per tick
            rows.append({
                "minute": minute + 1,
                "plans_received": len(ages),
                "ticks": ticks,
                "plans_expected": ticks / meta.chunk,  # the node replans every C ticks by default
                "holds": after.get("hold_ticks", 0) - before.get("hold_ticks", 0),  # diagnostics: 1 Hz
                "p50_ms": float(np.percentile(ages, 50)) if len(ages) else float("nan"),
                "p99_ms": float(np.percentile(ages, 99)) if len(ages) else float("nan"),
                "rss_mb": resident_mb(node.pid),
            })  # fmt: skip
            before, r = after, rows[-1]
            print(
                f"  minute {r['minute']}: {r['plans_received']} plans, p50 {r['p50_ms']:.2f} ms, "
                f"p99 {r['p99_ms']:.2f} ms, holds {r['holds']:g}, RSS {r['rss_mb']:.1f} MB",
                flush=True,
            )
        driver.executor.shutdown()
        spinner.join(timeout=5)
    return summarise(rows, rss_start, model, state_hz, jitter)


def summarise(rows: list[dict], rss_start: float, model: Path, state_hz: float, jitter: float) -> dict:
    """The goals over the per-minute rows (the first minute is the reference for p99)."""
    p99 = [r["p99_ms"] for r in rows]
    missed = sum(max(0.0, r["plans_expected"] - r["plans_received"] - 1) for r in rows)  # ±1 at edges
    growth = rows[-1]["rss_mb"] / rss_start - 1.0
    drift = max(abs(p - p99[0]) / p99[0] for p in p99)
    return {
        "model": str(model),
        "state_hz": state_hz,
        "jitter": jitter,
        "minutes": rows,
        "rss_start_mb": rss_start,
        "rss_end_mb": rows[-1]["rss_mb"],
        "rss_growth": growth,
        "p99_drift": drift,
        "plans_missed": missed,
        "holds": sum(r["holds"] for r in rows),
        "goals": {
            f"memory flat within {GOAL_MEMORY_GROWTH:.0%}": abs(growth) <= GOAL_MEMORY_GROWTH,
            f"p99 within {GOAL_P99_DRIFT:.0%} of minute 1": drift <= GOAL_P99_DRIFT,
            "no plan missed, no hold": missed == 0 and sum(r["holds"] for r in rows) == 0,
        },
    }


def report(result: dict) -> str:
    r = result
    lines = [
        f"soak: {r['model']}, joint_states at {r['state_hz']:g} Hz ± {r['jitter']:.0%}",
        "| minute | plans | expected | holds | p50 ms | p99 ms | RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in r["minutes"]:
        lines.append(
            f"| {m['minute']} | {m['plans_received']} | {m['plans_expected']:.0f} | {m['holds']:g} | "
            f"{m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['rss_mb']:.1f} |"
        )
    lines.append(
        f"RSS {r['rss_start_mb']:.1f} -> {r['rss_end_mb']:.1f} MB ({r['rss_growth']:+.1%}), p99 drift "
        f"{r['p99_drift']:.1%}, plans missed {r['plans_missed']:g}, holds {r['holds']:g}"
    )
    lines += [f"  {'met ' if ok else 'MISSED'}  {goal}" for goal, ok in result["goals"].items()]
    return "\n".join(lines)

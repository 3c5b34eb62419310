"""How a policy was made: the chain of training stages behind a checkpoint (and its exported model).

A run that starts from another run's checkpoint (``run.init_from``) inherits that run's route and adds
itself, so the exported model's ``route`` metadata lists every stage, first first: its algorithm, env
steps, wall-clock, device and what else the stage wants recorded (a distillation's teacher).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Stage = dict[str, Any]


def stage(algo: str, env_steps: int, wall_time_s: float, device: str, **extra: Any) -> Stage:
    """One stage of a route (JSON-able)."""
    return {"algo": algo, "env_steps": int(env_steps), "wall_time_s": round(float(wall_time_s), 1),
            "device": device, **extra}  # fmt: skip


def route_of(payload: dict[str, Any], path: str | Path) -> list[Stage]:
    """The route that made the checkpoint ``payload`` (read from ``path``). Checkpoints written before
    routes were recorded give one stage built from what they do carry."""
    if payload.get("route"):
        return list(payload["route"])
    legacy = stage(payload["algo"], payload.get("env_steps", 0), payload.get("wall_time_s", 0.0), "unknown")
    return [legacy | {"checkpoint": Path(path).name, "note": "recorded before routes were"}]

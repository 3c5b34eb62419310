"""Checkpoint files: written atomically, read back with clear errors.

A checkpoint is a ``torch.save``d dict with at least::

    format: "rfo_ros.checkpoint/1"
    task, algo: str                  # task name (rfo_ros.envs.TASKS) and algorithm
    actor: Actor.spec()              # policy kind, constructor kwargs, state (incl. normaliser)
    config: dict                     # the resolved training config
    commit: str                      # git commit of the code that trained it ("unknown" outside git)
    iteration, env_steps: int
plus algorithm/optimiser state for ``--resume``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from rfo_ros.nets.actor import Actor

FORMAT = "rfo_ros.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or not an rfo_ros checkpoint."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint, raising ``CheckpointError`` with the reason on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable (corrupt or truncated?): {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rfo_ros checkpoint (expected format {FORMAT})")
    return payload


def load_actor(path: str | os.PathLike) -> tuple[Actor, dict[str, Any]]:
    """The trained actor (eval mode) and the checkpoint payload it came from."""
    payload = load_checkpoint(path)
    missing = [key for key in ("task", "algo", "commit", "actor") if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    try:
        actor = Actor.from_spec(payload["actor"]).eval()
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path}: cannot rebuild its actor: {exc!r}") from exc
    return actor, payload

"""The contract between the trainer and an algorithm."""

from __future__ import annotations

from typing import Protocol

from rfo_ros.nets.actor import Actor


class Algorithm(Protocol):
    """One training iteration at a time; owns its optimisers, borrows the env and the actor.

    Optionally ``stage_info() -> dict``: what the run's route (``rfo_ros.route``) records about the stage
    beyond its algorithm, steps and time (a distillation's teacher).
    """

    actor: Actor

    def iterate(self) -> dict[str, float]:
        """Collect experience and update once; returns metrics keyed ``Loss/``, ``Policy/``, ``Perf/``."""
        ...

    def state_dict(self) -> dict:
        """Everything needed to resume bit-for-bit (optimisers, critic, regulariser buffers)."""
        ...

    def load_state_dict(self, state: dict) -> None: ...

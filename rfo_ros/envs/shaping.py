"""Reward terms that need more than the task's (state, action, next state): the previous action.

``VecEnv`` adds each term of its ``shaping`` to the task's reward at every step, inside the autograd graph,
so the differentiable methods see their gradient too (the previous action keeps its graph within a
window). They are training choices, not task definitions: evaluation scores the task's own reward.
"""

from __future__ import annotations

from typing import Protocol

import torch

__all__ = ["ActionRate", "StepShaping", "make_shaping"]


class StepShaping(Protocol):
    """A per-step reward term (N,) of the action and the action before it (zeros after a reset)."""

    def __call__(self, action: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor: ...


class ActionRate:
    """``-weight · |a_t - a_{t-1}|²`` in policy units ([-1, 1] per entry): penalises command jumps.

    A policy free of it may switch a joint target across its whole range from one control step to the
    next (bang-bang gaits), which a real actuator, its gearbox and a chunked executor all pay for.
    """

    def __init__(self, weight: float) -> None:
        if not weight > 0:
            raise ValueError(f"action-rate weight must be > 0, got {weight}")
        self.weight = float(weight)

    def __call__(self, action: torch.Tensor, last_action: torch.Tensor) -> torch.Tensor:
        return -self.weight * ((action - last_action) ** 2).sum(1)


def make_shaping(action_rate: float = 0.0) -> tuple[StepShaping, ...]:
    """The shaping terms of a training config's ``env`` section (weight 0 leaves a term out)."""
    return (ActionRate(action_rate),) if action_rate > 0 else ()

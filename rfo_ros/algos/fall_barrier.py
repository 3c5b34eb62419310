"""A differentiable fall barrier for RFO's window: the gradient sees a fall coming.

A fall ends its episode, and the window's objective then loses the rest of the episode's reward, but
nothing in it is a function of the state whose gradient says so: termination is a threshold on the
trunk's height and tilt, flat on both sides, and the bootstrap is simply left out. A quadruped's trunk
sinks over ~0.4 s before the bound, time enough for a window's gradient to act if it sees the approach.
Measured on the race (docs/results, "RFO's plateau, continued"): within the seeds' noise at weight 2
(finals 0.91 against 0.80 m/s); the falls that held RFO's return back there came from sample reuse.

``FallBarrier`` wraps the env RFO steps: each step's reward, as the window's objective and the critic's
targets see it, is the task's reward less ``weight · fall_proximity(state)`` (``Task.fall_proximity``: 0
far from the bounds, 1 at them, differentiable). The steps that end an episode add nothing (their state
was reset already). The env's own episode returns, which training reports, stay the task's reward.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from rfo_ros.envs.vec_env import StepResult


class FallBarrier:
    """An env whose step rewards carry ``-weight · task.fall_proximity(state)``; everything but ``step``
    is the wrapped env's."""

    def __init__(self, env: Any, weight: float) -> None:
        if env.task.fall_proximity(env.state) is None:
            raise ValueError(
                f"diff.lambda_fall: task {type(env.task).__name__} has no fall condition to keep away from"
            )
        self.env, self.weight = env, weight

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def step(self, action: torch.Tensor) -> StepResult:
        result = self.env.step(action)
        proximity = self.env.task.fall_proximity(self.env.state).to(result.reward)
        done = (result.terminated | result.truncated).to(result.reward.device)
        penalty = torch.where(done, torch.zeros_like(proximity), self.weight * proximity)
        return dataclasses.replace(result, reward=result.reward - penalty)

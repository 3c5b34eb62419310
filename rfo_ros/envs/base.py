"""The task contract: what a world observes, rewards, terminates on and resets to.

A task is pure maths over batched torch tensors (float64 state in, differentiable outputs), so the
same definitions serve the differentiable trainer, the plain-stepping baselines and evaluation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from rfo_ros.sim.autograd import SimState


@dataclass(frozen=True)
class TaskInfo:
    """Documented facts about a task, reported next to results.

    ``solved_return``: undiscounted episode return counted as solved; ``random_return``: what a
    uniform-random policy scores (measured, see the task's docstring).
    """

    episode_length: int
    solved_return: float
    random_return: float
    description: str


class Task(ABC):
    """One world's observation, reward, termination and reset distribution, vectorised over envs.

    Subclasses set ``world`` (the MJCF name in ``sim/``) and ``info``, and implement the abstract
    methods. All tensors are batched along dim 0.
    """

    world: str
    info: TaskInfo
    #: mj_steps per control step (same ctrl held); each one is differentiated.
    substeps: int = 1

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        lo, hi = model.actuator_ctrlrange[:, 0].copy(), model.actuator_ctrlrange[:, 1].copy()
        limited = model.actuator_ctrllimited.astype(bool)
        self.ctrl_low = torch.tensor(np.where(limited, lo, -1.0))
        self.ctrl_high = torch.tensor(np.where(limited, hi, 1.0))

    @property
    def action_dim(self) -> int:
        return self.model.nu

    @property
    def obs_dim(self) -> int:
        return int(
            self.observe(
                self.initial_state(1, np.random.default_rng(0)), torch.zeros(1, self.action_dim)
            ).shape[1]
        )

    @property
    def dt(self) -> float:
        """Control period in seconds."""
        return float(self.model.opt.timestep) * self.substeps

    def action_to_ctrl(self, action: torch.Tensor) -> torch.Tensor:
        """Map a policy action in [-1, 1]^m to actuator controls (default: the ctrlrange box)."""
        a = action.to(torch.float64)
        return self.ctrl_low + (a + 1.0) * 0.5 * (self.ctrl_high - self.ctrl_low)

    @abstractmethod
    def initial_state(self, n: int, rng: np.random.Generator) -> SimState:
        """Sample ``n`` start states from the reset distribution (no grad)."""

    @abstractmethod
    def observe(self, state: SimState, last_action: torch.Tensor) -> torch.Tensor:
        """Observation (N, obs_dim), differentiable in ``state``."""

    @abstractmethod
    def reward(self, state: SimState, action: torch.Tensor, next_state: SimState) -> torch.Tensor:
        """Per-step reward (N,), differentiable in all arguments."""

    @abstractmethod
    def terminated(self, state: SimState) -> torch.Tensor:
        """Failure termination (N,) bool: no bootstrap past it."""

    def resample(self, mask: np.ndarray, rng: np.random.Generator) -> None:  # noqa: B027 - optional hook
        """Re-draw per-env task variables (goals, commands) for the envs in ``mask`` (N,) bool.

        Tasks without such variables keep this no-op; tasks with them allocate for ``len(mask)`` envs.
        """

"""Planar pushing: a 3-link arm pushes a box across a table to a per-env goal."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import torch

from rfo_ros.envs.base import Task, TaskInfo
from rfo_ros.sim.autograd import SimState

#: Arm link lengths (m), base at the world origin (sim/push.xml).
LINK_LENGTHS = (0.25, 0.20, 0.10)
#: Box within this distance (m) of the goal counts as success.
SUCCESS_RADIUS = 0.05


def fingertip_xy(q: torch.Tensor, lengths: tuple[float, ...] = LINK_LENGTHS) -> torch.Tensor:
    """Planar forward kinematics, joint angles (N, k) -> fingertip (N, 2): ``Σ l_i (cos, sin)(q_1+…+q_i)``."""
    angles = torch.cumsum(q, dim=1)
    length = torch.tensor(lengths, dtype=q.dtype, device=q.device)
    return torch.stack([(length * torch.cos(angles)).sum(1), (length * torch.sin(angles)).sum(1)], dim=1)


def _polar(
    rng: np.random.Generator, n: int, radius: tuple[float, float], angle: tuple[float, float]
) -> np.ndarray:
    r, a = rng.uniform(*radius, n), rng.uniform(*angle, n)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


class PushBox(Task):
    """Push the box to the goal on the table, 50 Hz control.

    State: qpos = (shoulder, elbow, wrist, box x, box y, box z, box yaw); the goal (x, y) is per-env task
    data drawn in ``resample`` (``goal``, (N, 2)). Action (3) in [-1, 1]: joint motor torques (gear 2, 1.5,
    1 N·m). Observation (23): cos and sin of the 3 joint angles, joint velocities (×0.1), fingertip (x, y),
    box (x, y), cos and sin of 4·box yaw (a square box looks the same every quarter turn), box velocity
    (x, y), goal (x, y), box − goal, fingertip − box.
    Reward per step: ``-|box - goal| - 0.5·|tip - box| + 1[|box - goal| < 0.05] - 0.01·mean(a²)``
    (distances in m, the fingertip from torch forward kinematics). Never terminates; ``success`` marks the box
    within 5 cm of the goal.
    Reset: box at 0.25–0.45 m from the base within ±45°, goal at 0.25–0.5 m within ±60° (the goal at
    least 0.1 m from the box), arm at a random pose whose fingertip is at least 0.1 m from the box.
    Episode 250 steps (5 s).

    Returns: pushing the box to the goal in ~2 s and holding it there scores ≈ 120; leaving it scores
    ≈ -100 (zero actions: -85). Solved at 50. A uniform-random policy scores -107 ± 74 (measured: 128
    episodes, 32 envs × 1000 steps, seed 1).
    """

    world = "push"
    info = TaskInfo(
        episode_length=250,
        solved_return=50.0,
        random_return=-107.0,
        description="planar 3-link arm: push a box to a goal on a table within 5 s",
    )
    substeps = 1
    box_radius = (0.25, 0.45)
    box_angle = (-math.pi / 4, math.pi / 4)
    goal_radius = (0.25, 0.5)
    goal_angle = (-math.pi / 3, math.pi / 3)

    def __init__(self, model: mujoco.MjModel) -> None:
        super().__init__(model)
        names = tuple(model.joint(j).name for j in range(model.njnt))
        if names != ("shoulder", "elbow", "wrist", "box_x", "box_y", "box_z", "box_yaw"):
            raise ValueError(
                f"push world joints must be shoulder, elbow, wrist, box_x/y/z, box_yaw; got {names}"
            )
        self.goal: torch.Tensor | None = None

    # --- per-env goals -----------------------------------------------------------------------------
    def resample(self, mask: np.ndarray, rng: np.random.Generator) -> None:
        self.goal = self.resample_rows(
            self.goal, mask, lambda k: _polar(rng, k, self.goal_radius, self.goal_angle)
        )

    def goals_for(self, n: int) -> torch.Tensor:
        """The (n, 2) goals; for a batch of another size (``obs_dim``'s probe) a fixed mid-range goal."""
        if self.goal is not None and self.goal.shape[0] == n:
            return self.goal
        return torch.tensor([[0.4, 0.0]], dtype=torch.float64).expand(n, 2)

    def initial_state(self, n: int, rng: np.random.Generator) -> SimState:
        box = _polar(rng, n, self.box_radius, self.box_angle)
        arm = np.empty((n, 3))
        todo = np.ones(n, dtype=bool)
        while todo.any():  # rejection-sample arm poses whose fingertip is clear of the box
            k = int(todo.sum())
            arm[todo] = rng.uniform([-1.5, -2.0, -2.0], [1.5, 2.0, 2.0], (k, 3))
            tip = fingertip_xy(torch.from_numpy(arm[todo])).numpy()
            todo[todo] = np.linalg.norm(tip - box[todo], axis=1) < 0.1
        yaw = rng.uniform(-math.pi, math.pi, n)
        qpos = np.concatenate([arm, box, np.zeros((n, 1)), yaw[:, None]], axis=1)
        return SimState(
            torch.from_numpy(qpos),
            torch.zeros(n, self.model.nv, dtype=torch.float64),
            torch.zeros(n, self.model.na, dtype=torch.float64),
        )

    # --- task maths --------------------------------------------------------------------------------
    def tip_box_goal(self, state: SimState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fingertip (N, 2), box centre (N, 2) and goal (N, 2) in world x/y (m)."""
        q = state.qpos
        return fingertip_xy(q[:, 0:3]), q[:, 3:5], self.goals_for(q.shape[0]).to(q.dtype)

    def observe(self, state: SimState, last_action: torch.Tensor) -> torch.Tensor:
        q, v = state.qpos, state.qvel
        tip, box, goal = self.tip_box_goal(state)
        yaw4 = 4.0 * q[:, 6:7]
        return torch.cat(
            [
                torch.cos(q[:, 0:3]),
                torch.sin(q[:, 0:3]),
                0.1 * v[:, 0:3],
                tip,
                box,
                torch.cos(yaw4),
                torch.sin(yaw4),
                v[:, 3:5],
                goal,
                box - goal,
                tip - box,
            ],
            dim=1,
        )

    def box_goal_distance(self, state: SimState) -> torch.Tensor:
        _, box, goal = self.tip_box_goal(state)
        return torch.linalg.vector_norm(box - goal, dim=1)

    def success(self, state: SimState) -> torch.Tensor:
        """(N,) bool: box centre within ``SUCCESS_RADIUS`` of the goal."""
        return self.box_goal_distance(state).detach() < SUCCESS_RADIUS

    def reward(self, state: SimState, action: torch.Tensor, next_state: SimState) -> torch.Tensor:
        tip, box, goal = self.tip_box_goal(next_state)
        box_goal = torch.linalg.vector_norm(box - goal, dim=1)
        tip_box = torch.linalg.vector_norm(tip - box, dim=1)
        bonus = (box_goal.detach() < SUCCESS_RADIUS).to(box_goal.dtype)
        return -box_goal - 0.5 * tip_box + bonus - 0.01 * (action.to(box_goal.dtype) ** 2).mean(1)

    def terminated(self, state: SimState) -> torch.Tensor:
        return torch.zeros(state.qpos.shape[0], dtype=torch.bool)

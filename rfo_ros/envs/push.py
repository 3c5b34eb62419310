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
#: Where the fingertip should be to push the box towards the goal: this far (m) behind the box centre on
#: the goal line (box half-width 0.04 + fingertip radius 0.02 + 1 cm).
PUSH_OFFSET = 0.07


def fingertip_xy(q: torch.Tensor, lengths: tuple[float, ...] = LINK_LENGTHS) -> torch.Tensor:
    """Planar forward kinematics, joint angles (N, k) -> fingertip (N, 2): ``Σ l_i (cos, sin)(q_1+…+q_i)``."""
    angles = torch.cumsum(q, dim=1)
    length = torch.tensor(lengths, dtype=q.dtype, device=q.device)
    return torch.stack([(length * torch.cos(angles)).sum(1), (length * torch.sin(angles)).sum(1)], dim=1)


def push_point_of(box: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
    """(N, 2) where the fingertip pushes the box goalwards: ``PUSH_OFFSET`` behind it, away from the goal."""
    away = box - goal
    return box + PUSH_OFFSET * away / torch.linalg.vector_norm(away, dim=1, keepdim=True).clamp_min(1e-6)


def _polar(
    rng: np.random.Generator, n: int, radius: tuple[float, float], angle: tuple[float, float]
) -> np.ndarray:
    r, a = rng.uniform(*radius, n), rng.uniform(*angle, n)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


class PushBox(Task):
    """Push the box to the goal on the table, 50 Hz control.

    State: qpos = (shoulder, elbow, wrist, box x, box y, box z, box yaw); the goal (x, y) is per-env task
    data drawn in ``resample`` (``goal``, (N, 2)). Action (3) in [-1, 1]: joint position targets over each
    joint's range (position servos in ``sim/push.xml``). Observation (28): the 3 joint angles (÷π), their
    cos and sin, joint velocities (×0.1), fingertip (x, y), box (x, y), cos and sin of 4·box yaw (a square
    box looks the same every quarter turn), box velocity (x, y), goal (x, y), box − goal, fingertip − box,
    push point − fingertip.
    Reward per step: ``-|box - goal| - 0.5·|tip - p| + 1[|box - goal| < 0.05] - 0.001·mean(q̇²)`` with
    ``p`` the push point, ``PUSH_OFFSET`` behind the box on the line from the goal through the box (the
    fingertip's place to push it goalwards; distances in m, the fingertip from torch forward kinematics).
    Never terminates; ``success`` marks the box within 5 cm of the goal.
    Reset: box at 0.25–0.45 m from the base within ±45°, goal 0.1–0.25 m from the box in any direction
    that keeps it at 0.25–0.5 m within ±60°, the fingertip within 4 cm (per axis) of the push point and
    at least 8 cm from the box centre, at a random wrist heading (the task is the push, not the search
    for a way around the box: with the arm anywhere no method here learned to push). Episode 250 steps
    (5 s).

    Returns: a scripted pusher (damped least-squares inverse kinematics of the fingertip to the push
    point, then 6 cm through it until the box is within 2 cm of the goal) scores 115 ± 100, with the box
    at the goal at the end of 72 % of its episodes; holding the arm still scores -45 ± 10, uniform-random
    actions -64 ± 50 (measured: 64 episodes each; the pusher is ``tests/test_worlds.py``'s). Solved at 50.
    """

    world = "push"
    info = TaskInfo(
        episode_length=250,
        solved_return=50.0,
        random_return=-64.0,
        description="planar 3-link arm: push a box to a goal on a table within 5 s",
    )
    substeps = 1
    box_radius = (0.25, 0.45)
    box_angle = (-math.pi / 4, math.pi / 4)
    goal_radius = (0.25, 0.5)
    goal_angle = (-math.pi / 3, math.pi / 3)
    goal_distance = (0.1, 0.25)  # from the box
    start_spread = 0.04  # the fingertip starts within this (per axis) of the push point
    start_clearance = 0.08  # ... and at least this far from the box centre (clear of any corner)

    def __init__(self, model: mujoco.MjModel) -> None:
        super().__init__(model)
        names = tuple(model.joint(j).name for j in range(model.njnt))
        if names != ("shoulder", "elbow", "wrist", "box_x", "box_y", "box_z", "box_yaw"):
            raise ValueError(
                f"push world joints must be shoulder, elbow, wrist, box_x/y/z, box_yaw; got {names}"
            )
        self.goal: torch.Tensor | None = None
        self._drawn_goal: np.ndarray | None = None

    # --- per-env goals and the reset -----------------------------------------------------------------
    def resample(self, mask: np.ndarray, rng: np.random.Generator) -> None:
        """The goals of the envs in ``mask``: those drawn with their boxes by the ``initial_state`` that
        this reset used (the arm starts at the push point, which needs the goal), else fresh ones."""
        drawn = self._drawn_goal
        if drawn is None or len(drawn) != len(mask):
            drawn = self._goals_near(_polar(rng, len(mask), self.box_radius, self.box_angle), rng)
        self.goal = self.resample_rows(self.goal, mask, lambda k: drawn[mask] if k < len(mask) else drawn)

    def goals_for(self, n: int) -> torch.Tensor:
        """The (n, 2) goals; for a batch of another size (``obs_dim``'s probe) a fixed mid-range goal."""
        if self.goal is not None and self.goal.shape[0] == n:
            return self.goal
        return torch.tensor([[0.4, 0.0]], dtype=torch.float64).expand(n, 2)

    def _goals_near(self, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A goal per box, ``goal_distance`` from it, inside the goal region (rejection-sampled)."""
        goal = np.empty_like(box)
        todo = np.ones(len(box), dtype=bool)
        while todo.any():
            k = int(todo.sum())
            heading = rng.uniform(-math.pi, math.pi, k)
            goal[todo] = box[todo] + rng.uniform(*self.goal_distance, (k, 1)) * np.stack(
                [np.cos(heading), np.sin(heading)], axis=1
            )
            radius, angle = np.linalg.norm(goal[todo], axis=1), np.arctan2(goal[todo, 1], goal[todo, 0])
            inside = (radius >= self.goal_radius[0]) & (radius <= self.goal_radius[1])
            todo[todo] = ~(inside & (np.abs(angle) <= self.goal_angle[1]))
        return goal

    def _arm_at(self, target: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Joint angles (n, 3) putting the fingertip within ``start_spread`` of ``target`` (n, 2), clear of
        the box: a random wrist heading, then the shoulder-elbow pair's closed-form inverse kinematics."""
        l1, l2, l3 = LINK_LENGTHS
        lower, upper = self.model.jnt_range[:3, 0], self.model.jnt_range[:3, 1]
        arm = np.empty((len(target), 3))
        todo = np.ones(len(target), dtype=bool)
        while todo.any():
            k = int(todo.sum())
            tip = target[todo] + rng.uniform(-self.start_spread, self.start_spread, (k, 2))
            heading = rng.uniform(-math.pi, math.pi, k)
            wrist = tip - l3 * np.stack([np.cos(heading), np.sin(heading)], axis=1)
            reach = np.linalg.norm(wrist, axis=1)
            cos_elbow = np.clip((reach**2 - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0)
            elbow = rng.choice([-1.0, 1.0], k) * np.arccos(cos_elbow)
            shoulder = np.arctan2(wrist[:, 1], wrist[:, 0]) - np.arctan2(
                l2 * np.sin(elbow), l1 + l2 * np.cos(elbow)
            )
            wrist_angle = np.angle(np.exp(1j * (heading - shoulder - elbow)))
            q = np.stack([np.angle(np.exp(1j * shoulder)), elbow, wrist_angle], axis=1)
            reached = fingertip_xy(torch.from_numpy(q)).numpy()
            ok = (
                (reach >= abs(l1 - l2))
                & (reach <= l1 + l2)
                & np.all((q >= lower) & (q <= upper), axis=1)
                & (np.linalg.norm(reached - box[todo], axis=1) >= self.start_clearance)
            )
            rows = np.flatnonzero(todo)[ok]
            arm[rows] = q[ok]
            todo[rows] = False
        return arm

    def initial_state(self, n: int, rng: np.random.Generator) -> SimState:
        box = _polar(rng, n, self.box_radius, self.box_angle)
        goal = self._goals_near(box, rng)
        self._drawn_goal = goal  # ``resample`` gives these to the envs this reset is for
        arm = self._arm_at(push_point_of(torch.from_numpy(box), torch.from_numpy(goal)).numpy(), box, rng)
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
                q[:, 0:3] / math.pi,  # the actions are joint-angle targets: the angles themselves help
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
                push_point_of(box, goal) - tip,
            ],
            dim=1,
        )

    def box_goal_distance(self, state: SimState) -> torch.Tensor:
        _, box, goal = self.tip_box_goal(state)
        return torch.linalg.vector_norm(box - goal, dim=1)

    def success(self, state: SimState) -> torch.Tensor:
        """(N,) bool: box centre within ``SUCCESS_RADIUS`` of the goal."""
        return self.box_goal_distance(state).detach() < SUCCESS_RADIUS

    def push_point(self, state: SimState) -> torch.Tensor:
        """(N, 2) the push point (``push_point_of``) of each env's box and goal."""
        _, box, goal = self.tip_box_goal(state)
        return push_point_of(box, goal)

    def reward(self, state: SimState, action: torch.Tensor, next_state: SimState) -> torch.Tensor:
        tip, box, goal = self.tip_box_goal(next_state)
        box_goal = torch.linalg.vector_norm(box - goal, dim=1)
        tip_push = torch.linalg.vector_norm(tip - push_point_of(box, goal), dim=1)
        bonus = (box_goal.detach() < SUCCESS_RADIUS).to(box_goal.dtype)
        motion = (next_state.qvel[:, 0:3] ** 2).mean(1)
        return -box_goal - 0.5 * tip_push + bonus - 0.001 * motion

    def terminated(self, state: SimState) -> torch.Tensor:
        return torch.zeros(state.qpos.shape[0], dtype=torch.bool)

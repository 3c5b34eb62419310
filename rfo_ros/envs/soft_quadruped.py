"""Soft, under-actuated quadruped: elastic passive legs, only the hips driven; run forwards."""

from __future__ import annotations

import torch

from rfo_ros.envs.base import TaskInfo
from rfo_ros.envs.legged import (
    LeggedTask,
    base_ang_vel_body,
    base_height,
    base_lin_vel_body,
    base_quat,
    forward_locomotion_reward,
    projected_gravity,
)
from rfo_ros.sim.autograd import SimState

#: Per leg: abduction, swing (actuated, series-elastic), then three passive elastic flex hinges.
JOINTS_PER_LEG = 5


class SoftQuadrupedRun(LeggedTask):
    """Run along world +x with a trunk on four elastic legs, 100 Hz control.

    Action (8) in [-1, 1]: hip motor torques (gear 3 N·m), per leg (abduction, swing), legs FR, FL, RR, RL.
    The 12 flex hinges of the legs are passive springs: the policy moves them only through the dynamics.
    Observation (54): trunk height, quaternion (w, x, y, z), body-frame linear (×0.5) and angular (×0.25)
    velocity, projected gravity, the 20 joint angles (hips and passive flex hinges), the 20 joint
    velocities (×0.1).
    Reward per step (``legged.forward_locomotion_reward``):
    ``vx + 1 (healthy) + 0.5·cos(tilt) - 0.05·mean(a²)``, vx soft-capped at 2 m/s.
    Termination: trunk centre below 0.1 m (on its belly) or tilt past 60°.
    Reset: legs straight down, ±0.05 rad noise on every joint, dropped from 0.28 m. Episode 1000 steps (10 s).

    The hips are series-elastic (4 N·m/rad towards straight down), so with the motors off it stands.
    Returns: standing still scores ≈ 1.5 per step (1500); moving at 0.5 m/s ≈ 2.0 per step. Solved at
    1900 (≈ 0.4 m/s on average for 10 s). A uniform-random policy rolls over after ~3 s on average:
    412 ± 258 (measured: 96 episodes, 32 envs × 1000 steps, seed 1).
    """

    world = "soft_quadruped"
    info = TaskInfo(
        episode_length=1000,
        solved_return=1900.0,
        random_return=412.0,
        description="soft quadruped with passive elastic legs: run forwards (world +x) for 10 s",
    )
    substeps = 1
    start_height = 0.28
    default_joint_pos = (0.0,) * (4 * JOINTS_PER_LEG)
    joint_noise = 0.05
    min_height = 0.1
    max_tilt_deg = 60.0

    def observe(self, state: SimState, last_action: torch.Tensor) -> torch.Tensor:
        qpos, qvel = state.qpos, state.qvel
        return torch.cat(
            [
                base_height(qpos)[:, None],
                base_quat(qpos),
                0.5 * base_lin_vel_body(qpos, qvel),
                0.25 * base_ang_vel_body(qvel),
                projected_gravity(base_quat(qpos)),
                qpos[:, 7:],
                0.1 * qvel[:, 6:],
            ],
            dim=1,
        )

    def reward(self, state: SimState, action: torch.Tensor, next_state: SimState) -> torch.Tensor:
        return forward_locomotion_reward(state, action, next_state, max_speed=2.0)

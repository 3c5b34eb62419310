"""Ant-like quadruped running forwards (world +x) with 8 torque motors."""

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


class AntRun(LeggedTask):
    """Run along world +x as fast as possible without falling, 100 Hz control.

    Action (8) in [-1, 1]: motor torques (gear 8 N·m), per leg (hip yaw, ankle), legs in the order
    front-left, back-left, back-right, front-right.
    Observation (30): torso height, torso quaternion (w, x, y, z), body-frame linear (×0.5) and angular
    (×0.25) velocity, projected gravity, 8 joint angles, 8 joint velocities (×0.1) — no world x/y, so the
    policy is translation invariant.
    Reward per step (``legged.forward_locomotion_reward``):
    ``vx + 1 (healthy) + 0.5·cos(tilt) - 0.05·mean(a²)``, vx the torso's world-frame forward velocity
    (m/s), soft-capped at 3 m/s.
    Termination: torso centre below 0.22 m (lying on its belly) or above 1.0 m, or tilt past 80°.
    Reset: standing pose (ankles 1.0 rad) dropped from 0.42 m, ±0.1 rad joint noise.
    Episode 1000 steps (10 s).

    The ankles' lower limit (0.6 rad) holds the torso up when the motors are off, so standing still or
    flailing rarely terminates (as in the classic ant); falling means flipping over or lying on the belly.

    Returns: standing still scores ≈ 1.5 per step (1500); running at 1 m/s ≈ 2.5 per step. Solved at 2300
    (≈ 0.8 m/s on average for 10 s). A uniform-random policy scores 1480 ± 17 (measured: 32 full-length
    episodes, 32 envs × 1000 steps, seed 1), i.e. it stands and jitters in place.
    """

    world = "ant"
    info = TaskInfo(
        episode_length=1000,
        solved_return=2300.0,
        random_return=1480.0,
        description="ant-like quadruped: run forwards (world +x) for 10 s without falling",
    )
    substeps = 1
    start_height = 0.42
    default_joint_pos = (0.0, 1.0) * 4
    joint_noise = 0.1
    min_height = 0.22
    max_height = 1.0
    max_tilt_deg = 80.0

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
        return forward_locomotion_reward(state, action, next_state, max_speed=3.0)

"""Ant-like quadruped running forwards (world +x) with 8 torque motors."""

from __future__ import annotations

from rfo_ros.envs.base import TaskInfo
from rfo_ros.envs.legged import ForwardRunTask


class AntRun(ForwardRunTask):
    """Run along world +x as fast as possible without falling, 100 Hz control.

    Action (8) in [-1, 1]: motor torques (gear 8 N·m), per leg (hip yaw, ankle), legs in the order
    front-left, back-left, back-right, front-right.
    Observation (30, ``legged.free_base_proprioception``): torso height, quaternion (w, x, y, z),
    body-frame linear (×0.5) and angular (×0.25) velocity, projected gravity, 8 joint angles, 8 joint
    velocities (×0.1) — no world x/y, so the policy is translation invariant.
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
    max_speed = 3.0

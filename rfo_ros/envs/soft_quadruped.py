"""Soft, under-actuated quadruped: elastic passive legs, only the hips driven; run forwards."""

from __future__ import annotations

from rfo_ros.envs.base import TaskInfo
from rfo_ros.envs.legged import ForwardRunTask

#: Per leg: abduction, swing (actuated, series-elastic), then three passive elastic flex hinges.
JOINTS_PER_LEG = 5


class SoftQuadrupedRun(ForwardRunTask):
    """Run along world +x with a trunk on four elastic legs, 100 Hz control.

    Action (8) in [-1, 1]: hip motor torques (gear 3 N·m), per leg (abduction, swing), legs FR, FL, RR, RL.
    The 12 flex hinges of the legs are passive springs: the policy moves them only through the dynamics.
    Observation (54, ``legged.free_base_proprioception``): trunk height, quaternion (w, x, y, z),
    body-frame linear (×0.5) and angular (×0.25) velocity, projected gravity, the 20 joint angles (hips
    and passive flex hinges), the 20 joint velocities (×0.1).
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
    max_speed = 2.0

"""Shared maths of free-base legged robots (quadruped, ant, soft quadruped).

Batched torch functions of the float64 ``SimState`` (differentiable), and ``LeggedTask``: the reset
distribution (a standing pose dropped from a height, small noise, random heading) and the failure
termination (trunk too low/high or tilted too far) that every legged task shares. A model's first joint
must be the free joint of its trunk: ``qpos[:, 0:7]`` = position + quaternion (w, x, y, z),
``qvel[:, 0:3]`` world-frame linear velocity, ``qvel[:, 3:6]`` body-frame angular velocity.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import torch

from rfo_ros.envs.base import Task
from rfo_ros.envs.legged_obs import projected_gravity, quat_rotate_inverse
from rfo_ros.sim.autograd import SimState

__all__ = [
    "ForwardRunTask",
    "LeggedTask",
    "base_ang_vel_body",
    "base_height",
    "base_lin_vel_body",
    "base_quat",
    "forward_locomotion_reward",
    "free_base_proprioception",
    "projected_gravity",
    "quat_rotate_inverse",
    "tilt_cos",
    "yaw_of",
    "yaw_quat",
]


def base_height(qpos: torch.Tensor) -> torch.Tensor:
    """Trunk origin height (N,)."""
    return qpos[:, 2]


def base_quat(qpos: torch.Tensor) -> torch.Tensor:
    """Trunk orientation (N, 4), (w, x, y, z)."""
    return qpos[:, 3:7]


def base_lin_vel_body(qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
    """Trunk linear velocity in the body frame (N, 3) (MuJoCo's free-joint qvel[0:3] is world frame)."""
    return quat_rotate_inverse(base_quat(qpos), qvel[:, 0:3])


def base_ang_vel_body(qvel: torch.Tensor) -> torch.Tensor:
    """Trunk angular velocity in the body frame (N, 3) (MuJoCo's free-joint qvel[3:6] already is)."""
    return qvel[:, 3:6]


def tilt_cos(qpos: torch.Tensor) -> torch.Tensor:
    """cos of the angle between the trunk's z axis and the world's (N,): 1 upright, 0 on its side.

    The z row of ``R(q)``'s z column, 1 − 2(x² + y²) for a unit (w, x, y, z): ``-projected_gravity``'s z
    component in three operations instead of the whole vector."""
    return 1.0 - 2.0 * (qpos[:, 4:6] ** 2).sum(1)


def yaw_quat(yaw: np.ndarray) -> np.ndarray:
    """Quaternions (N, 4) (w, x, y, z) of rotations by ``yaw`` (N,) about the world z axis."""
    zeros = np.zeros_like(yaw)
    return np.stack([np.cos(yaw / 2), zeros, zeros, np.sin(yaw / 2)], axis=1)


def yaw_of(quat_wxyz: np.ndarray) -> np.ndarray:
    """Heading (rad) of quaternions (N, 4) (w, x, y, z) about the world z axis (``yaw_quat``'s inverse)."""
    w, x, y, z = np.moveaxis(np.asarray(quat_wxyz, dtype=np.float64), -1, 0)
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def forward_locomotion_reward(
    state: SimState,
    action: torch.Tensor,
    next_state: SimState,
    *,
    forward_weight: float = 1.0,
    healthy_bonus: float = 1.0,
    upright_weight: float = 0.5,
    ctrl_cost: float = 0.05,
    max_speed: float | None = None,
) -> torch.Tensor:
    """Run along world +x: ``w_f·vx + healthy + w_u·cos(tilt) - c·|a|²/m`` (N,).

    ``vx`` is the trunk's world-frame forward velocity after the step, optionally soft-capped at
    ``max_speed`` (so a flailing random policy cannot score by bouncing); the upright term keeps a
    gradient towards staying on the feet (a fall ends the episode, and no gradient sees a termination:
    with forward velocity alone the gait fell after 3-5 s); the control cost is per action entry.
    """
    vx = next_state.qvel[:, 0]
    if max_speed is not None:
        vx = max_speed * torch.tanh(vx / max_speed)
    a = action.to(vx.dtype)
    return (
        forward_weight * vx
        + healthy_bonus
        + upright_weight * tilt_cos(next_state.qpos)
        - ctrl_cost * (a**2).mean(1)
    )


def free_base_proprioception(qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
    """Generic observation of a free-base robot (N, 14 + 2·(nq-7)), no world x/y (translation invariant).

    Trunk height, quaternion (w, x, y, z), body-frame linear (×0.5) and angular (×0.25) velocity,
    projected gravity, the joint angles after the free joint and their velocities (×0.1).
    """
    quat = base_quat(qpos)
    return torch.cat(
        [
            base_height(qpos)[:, None],
            quat,
            0.5 * base_lin_vel_body(qpos, qvel),
            0.25 * base_ang_vel_body(qvel),
            projected_gravity(quat),
            qpos[:, 7:],
            0.1 * qvel[:, 6:],
        ],
        dim=1,
    )


class LeggedTask(Task):
    """A free-base robot: standing-pose resets and height/tilt failure termination.

    Subclasses set ``start_height`` (trunk height at reset, the robot is dropped from there),
    ``default_joint_pos`` (the standing pose of the joints after the free joint, length nq - 7),
    ``joint_noise`` (uniform ± rad), ``min_height``/``max_height`` and ``max_tilt_deg``.
    """

    start_height: float
    default_joint_pos: tuple[float, ...]
    joint_noise: float = 0.05
    velocity_noise: float = 0.05
    random_heading: bool = False
    min_height: float = 0.0
    max_height: float = math.inf
    max_tilt_deg: float = 90.0

    def __init__(self, model: mujoco.MjModel) -> None:
        super().__init__(model)
        if model.njnt == 0 or model.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"{type(self).__name__} needs the trunk's free joint as the model's first joint")
        if len(self.default_joint_pos) != model.nq - 7:
            raise ValueError(
                f"{type(self).__name__}.default_joint_pos has {len(self.default_joint_pos)} entries, "
                f"the model has {model.nq - 7} joint coordinates after the free joint"
            )
        self._min_tilt_cos = math.cos(math.radians(self.max_tilt_deg))

    def initial_state(self, n: int, rng: np.random.Generator) -> SimState:
        joints = np.asarray(self.default_joint_pos) + rng.uniform(
            -self.joint_noise, self.joint_noise, (n, self.model.nq - 7)
        )
        lo, hi = self.model.jnt_range[1:, 0], self.model.jnt_range[1:, 1]
        limited = self.model.jnt_limited[1:].astype(bool)
        # Clip limited hinge/slide joints into their range (every joint after the free one is 1-dof here).
        if self.model.nq - 7 == self.model.njnt - 1:
            joints = np.where(limited, np.clip(joints, lo, hi), joints)
        yaw = rng.uniform(-math.pi, math.pi, n) if self.random_heading else np.zeros(n)
        base = np.concatenate([np.zeros((n, 2)), np.full((n, 1), self.start_height), yaw_quat(yaw)], axis=1)
        qpos = np.concatenate([base, joints], axis=1)
        qvel = rng.uniform(-self.velocity_noise, self.velocity_noise, (n, self.model.nv))
        return SimState(
            torch.from_numpy(qpos), torch.from_numpy(qvel), torch.zeros(n, self.model.na, dtype=torch.float64)
        )

    def planar_pose(self, state: SimState) -> np.ndarray:
        q = state.qpos.detach().cpu().numpy()
        return np.stack([q[:, 0], q[:, 1], yaw_of(q[:, 3:7])], axis=1)

    def trunk_height(self, qpos: torch.Tensor) -> torch.Tensor:
        """(N,) the trunk's height above the ground that carries the robot: on flat ground, its z."""
        return base_height(qpos)

    def healthy(self, state: SimState) -> torch.Tensor:
        """(N,) bool: trunk height (``trunk_height``) within [min_height, max_height] and tilt below
        ``max_tilt_deg``."""
        h = self.trunk_height(state.qpos)
        return (h >= self.min_height) & (h <= self.max_height) & (tilt_cos(state.qpos) >= self._min_tilt_cos)

    def terminated(self, state: SimState) -> torch.Tensor:
        with torch.no_grad():  # a mask: recording its graph would only cost time
            return ~self.healthy(state)

    def fall_proximity(self, state: SimState) -> torch.Tensor:
        """(N,) 0 while the trunk stands above halfway from ``min_height`` to ``start_height`` and tilts
        less than half of ``max_tilt_deg``; past either, the squared fraction of the rest of the way to
        the termination bound (1 there), summed over the two."""
        soft_height = (self.min_height + self.start_height) / 2
        low = torch.relu(soft_height - self.trunk_height(state.qpos)) / (soft_height - self.min_height)
        soft_cos = math.cos(math.radians(self.max_tilt_deg / 2))
        tilted = torch.relu(soft_cos - tilt_cos(state.qpos)) / (soft_cos - self._min_tilt_cos)
        return low**2 + tilted**2


class ForwardRunTask(LeggedTask):
    """Run along world +x: ``free_base_proprioception`` observation, ``forward_locomotion_reward``.

    Subclasses configure the reset/termination (``LeggedTask``) and ``max_speed`` (the soft speed cap).
    """

    max_speed: float = 3.0

    def observe(self, state: SimState, last_action: torch.Tensor) -> torch.Tensor:
        return free_base_proprioception(state.qpos, state.qvel)

    def reward(self, state: SimState, action: torch.Tensor, next_state: SimState) -> torch.Tensor:
        return forward_locomotion_reward(state, action, next_state, max_speed=self.max_speed)

    def forward_speed(self, state: SimState) -> torch.Tensor:
        """(N,) the trunk's world-frame velocity along +x (m/s), the direction the reward pays for."""
        return state.qvel[:, 0].detach()

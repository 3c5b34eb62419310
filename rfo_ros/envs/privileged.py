"""What the critic may know and the robot cannot: the privileged observation group (asymmetric actor-critic).

legged_gym, rsl_rl, Isaac Lab and mjlab train the critic on what the simulator knows (the trunk's true
velocity, the drawn physics, the pushes) while the actor sees only what the robot measures. Only the
actor is exported, so nothing here reaches a robot. ``env.critic_obs`` of a training config (or the robot
file's ``critic_obs``) names the fields; the critic observes the actor's observation (history and sensor
noise included) followed by those fields, in the order named:

- ``base_lin_vel`` (3): the trunk's linear velocity in the body frame, m/s × 2 (the actor's scale),
  noise-free; differentiable, so a differentiable method's bootstrap passes its gradient on.
- ``base_height`` (1): the trunk's height (m) above the ground that carries it (``trunk_height``: on flat
  ground the trunk origin's z), differentiable.
- ``clean_obs`` (D): the present observation frame without sensor noise, differentiable.
- ``physics`` (12): the env's drawn constants: friction, added trunk mass (kg), CoM offset (3, m), link
  mass scale, motor strength, kp and kd scale, joint damping and armature scale, friction loss; the
  nominal values where the world does not draw them.
- ``latency`` (1): the actuation delay (control steps).
- ``push`` (3): the last push's impulse (m/s, world x and y, 0 before the first) and the fraction of the
  push interval elapsed since (0 without pushes).
- ``height_scan`` (15): the obstacle course's heights ahead of the trunk, in the units of the
  ``legged_terrain_scan`` task's observation field (``course_walk.HEIGHT_SCAN``); course tasks only. The
  same reader gives a privileged teacher its scan when it labels a depth-seeing student.

Only legged tasks (a trunk on a free joint, a robot file) have these fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from rfo_ros.envs.legged import base_lin_vel_body
from rfo_ros.envs.legged_obs import PRIVILEGED_FIELDS, ObsLayout, build_observation, check_privileged_fields

if TYPE_CHECKING:
    from rfo_ros.envs.vec_env import VecEnv

#: Values of ``physics`` in its order (``com_offset_m`` is three of them).
PHYSICS_ORDER = ("friction", "added_mass_kg", "com_offset_m", "link_mass_scale", "motor_strength", "kp_scale",
                 "kd_scale", "joint_damping_scale", "armature_scale", "frictionloss")  # fmt: skip
#: Where ``physics`` reads a constant the world does not draw: what the nominal world has.
NOMINAL_FACTORS = {
    "added_mass_kg": 0.0, "com_offset_m": 0.0, "link_mass_scale": 1.0, "motor_strength": 1.0, "kp_scale": 1.0,
    "kd_scale": 1.0, "joint_damping_scale": 1.0, "armature_scale": 1.0,
}  # fmt: skip

Reader = Callable[[], torch.Tensor]


def _base_lin_vel(env: VecEnv) -> Reader:
    return lambda: 2.0 * base_lin_vel_body(env.state.qpos, env.state.qvel)


def _base_height(env: VecEnv) -> Reader:
    return lambda: env.task.trunk_height(env.state.qpos)[:, None]


def _clean_obs(env: VecEnv) -> Reader:
    return lambda: env.task.observe(env.state, env.last_action)


def _height_scan(env: VecEnv) -> Reader:
    from rfo_ros.envs.course_walk import HEIGHT_SCAN

    task = env.task
    if not hasattr(task, "height_scan"):
        raise ValueError(f"height_scan: task {type(task).__name__} has no obstacle course to scan")
    layout = ObsLayout((HEIGHT_SCAN,))  # scaled as the scan task's observation scales it
    return lambda: build_observation({"height_scan": task.height_scan(env.state.qpos)}, layout)


def _physics(env: VecEnv) -> Reader:
    model = env.task.model
    nominal = dict(NOMINAL_FACTORS)
    nominal["friction"] = float(model.geom_friction[0, 0])  # the first geom: the ground of every world
    nominal["frictionloss"] = float(model.dof_frictionloss[env.task.robot.dof_adr].mean())

    def read() -> torch.Tensor:
        drawn = env.perturb.drawn_physics()
        columns = []
        for name in PHYSICS_ORDER:
            width = 3 if name == "com_offset_m" else 1
            value = drawn.get(name)
            value = np.full((env.num_envs, width), nominal[name]) if value is None else value
            columns.append(np.asarray(value, dtype=np.float64).reshape(env.num_envs, width))
        return torch.from_numpy(np.concatenate(columns, axis=1))

    return read


def _latency(env: VecEnv) -> Reader:
    return lambda: torch.from_numpy(env.perturb.delay_steps(env.num_envs).astype(np.float64))[:, None]


def _push(env: VecEnv) -> Reader:
    return lambda: torch.from_numpy(env.perturb.push_state(env.num_envs))


#: Each field: its reader's builder (for a legged task: every field needs a robot file); the names are
#: ``legged_obs.PRIVILEGED_FIELDS``, which configs validate against without importing torch.
FIELDS: dict[str, Callable[[VecEnv], Reader]] = {
    "base_lin_vel": _base_lin_vel,
    "base_height": _base_height,
    "clean_obs": _clean_obs,
    "physics": _physics,
    "latency": _latency,
    "push": _push,
    "height_scan": _height_scan,
}


class CriticObservation:
    """The critic's input for ``env``: the actor's observation, then the privileged ``fields``."""

    def __init__(self, env: VecEnv, fields: Sequence[str]) -> None:
        self.fields = check_privileged_fields(fields)
        if self.fields and env.task.robot is None:
            raise ValueError(
                f"env.critic_obs: {self.fields[0]!r} is a legged robot's privileged value; task "
                f"{type(env.task).__name__} has no robot file, so none of {', '.join(PRIVILEGED_FIELDS)} "
                "applies: leave env.critic_obs empty"
            )
        self._readers = [FIELDS[name](env) for name in self.fields]
        self.size = int(self.privileged().shape[1])

    def privileged(self) -> torch.Tensor:
        """The privileged fields at the env's current state (N, size), in torch's default dtype."""
        dtype = torch.get_default_dtype()
        return torch.cat([read().to(dtype) for read in self._readers], dim=1)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """The critic's observation (N, obs_dim + size) for the actor's ``obs`` at the current state."""
        return torch.cat([obs, self.privileged().to(obs.dtype)], dim=1)

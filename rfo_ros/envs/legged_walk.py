"""Velocity-tracking locomotion for any legged robot that a robot file describes (``rfo_ros.robot``).

``env.task: legged`` with ``env.robot: config/robots/<name>.yaml`` trains it; ``env.task: quadruped`` is
this task on ``config/robots/go1.yaml``. Nothing here knows a joint name, a pose or a gain: the
observation layout is sized from the robot's joints, and every reward term is written over the
description (weights ``rewards``, kernel widths ``reward_shape``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rfo_ros.envs import walk_reward
from rfo_ros.envs.base import ActionMap, TaskInfo
from rfo_ros.envs.depth import DepthCamera
from rfo_ros.envs.gait import GaitPrior
from rfo_ros.envs.legged import (
    LeggedTask,
    base_ang_vel_body,
    base_lin_vel_body,
    base_quat,
    projected_gravity,
)
from rfo_ros.envs.legged_obs import build_observation, check_frames, layout_metadata, legged_obs_layout
from rfo_ros.robot import Robot, RobotDescription, description_tree
from rfo_ros.sim.autograd import SimState

__all__ = ["LeggedWalk", "LeggedWalkDepth", "QuadrupedWalk", "QuadrupedWalkDepth"]

RobotSource = str | os.PathLike | Mapping[str, Any] | RobotDescription | Robot


class LeggedWalk(LeggedTask):
    """Walk at a commanded body-frame velocity (vx, vy, yaw rate) on flat ground.

    Action (n = the robot's policy joints) in [-1, 1]: position targets ``standing_pose + action_scale·a``
    (clipped to the actuators' control range) for the PD position actuators, in policy-joint order.
    Observation (12 + 3n, ``legged_obs.legged_obs_layout``): body-frame velocities, projected gravity,
    command, joint positions minus the standing pose, joint velocities, last action; scaled. The policy
    node builds the same vector from ROS messages with the same function.
    Command: drawn per env at reset from the robot's ``commands`` ranges (``command_range``); set
    ``fixed_command`` to (vx, vy, yaw rate) to evaluate at one command.

    Reward per step (body frame, after the step; weights w and widths from the robot file, defaults the
    Go1-class quadruped's): ``w_v·exp(-|cmd_xy - v_xy|²/σ_v²) + w_ω·exp(-(cmd_yaw - ω_z)²/σ_ω²)
    + w_h·band(h; height_band, width) + w_g·|g_xy|² + w_z·v_z² + w_xy·|ω_xy|² + w_q̇·|q̇|² + w_τ·|τ|²``
    where g is the projected gravity and τ the PD torque the action asks for at the current joint state
    (an effort/smoothness penalty that stands in for the action-rate term, which needs the previous
    action the reward does not receive). Defaults: w = (1.5, 0.5, 0.5, -2, -1, -0.05, -1e-4, -2e-4),
    σ_v² = 1, σ_ω² = 0.25, band width 0.08 m: at most 2.5 per step.
    Termination: the robot's ``termination``. Reset: the standing pose dropped from ``start_height``,
    ``reset`` noise on joints and velocities.
    """

    #: Set by tasks fixed to one robot (``quadruped``: go1); None: the robot is an option (``legged``).
    default_robot: str | None = None
    commanded = True

    @classmethod
    def create(
        cls, robot: RobotSource | None = None, base_lin_vel: bool = True, obs_history: int = 1
    ) -> LeggedWalk:
        """The task on ``robot`` (a robot file, name, description or ``Robot``), else ``default_robot``;
        ``base_lin_vel=False`` leaves the trunk's linear velocity out of the observation, and the policy
        observes the last ``obs_history`` frames of it (``legged_obs.FrameHistory``)."""
        if robot is None:
            robot = cls.default_robot
            if robot is None:
                raise ValueError("the legged task needs a robot file: env.robot: config/robots/<name>.yaml")
        robot = robot if isinstance(robot, Robot) else Robot.load(robot)
        if cls.default_robot is not None and robot.name != cls.default_robot:
            raise ValueError(
                f"task {cls.__name__} is the {cls.default_robot} robot, not {robot.name!r}; "
                "train another robot with env.task: legged"
            )
        return cls(robot, base_lin_vel=base_lin_vel, obs_history=obs_history)

    def __init__(self, robot: Robot, base_lin_vel: bool = True, obs_history: int = 1) -> None:
        d = self.description = robot.description
        self.base_lin_vel = base_lin_vel
        self.obs_history = check_frames(obs_history, "obs_history")
        self.robot = robot
        self.world = d.mjcf
        self.info = TaskInfo(
            episode_length=d.episode.length,
            solved_return=d.episode.solved_return,
            random_return=d.episode.random_return,
            description=f"{d.name}: track a velocity command (vx {d.commands.vx[0]:g}-{d.commands.vx[1]:g} "
            f"m/s) for {d.episode.length} steps",
        )
        model = robot.model
        self.substeps = d.control.substeps
        self.start_height = d.start_height
        # Every coordinate after the free joint: the model's qpos0, the policy joints at the standing pose.
        self.default_joint_pos = tuple(robot.standing_qpos()[7:].tolist())
        self.joint_noise, self.velocity_noise = d.reset.joint_noise, d.reset.velocity_noise
        self.random_heading = d.reset.random_heading
        t = d.termination
        self.min_height, self.max_tilt_deg = t.min_height, t.max_tilt_deg
        self.max_height = math.inf if t.max_height is None else t.max_height
        self.obs_layout = legged_obs_layout(
            d.joints, robot.standing_pose.tolist(), base_lin_vel=base_lin_vel, gait_clock=d.gait is not None
        )
        self.default_critic_obs = d.critic_obs
        super().__init__(model)
        self._qpos_idx = torch.from_numpy(robot.qpos_adr.astype(np.int64))
        self._qvel_idx = torch.from_numpy(robot.dof_adr.astype(np.int64))
        identity = np.array_equal(robot.ctrl_order, np.arange(model.nu))
        self._ctrl_idx = None if identity else torch.from_numpy(robot.ctrl_order.astype(np.int64))
        shape = d.reward_shape
        self._reward_spec = walk_reward.WalkRewardSpec(
            weights=d.rewards.model_dump(),
            lin_vel_sigma_sq=shape.lin_vel_sigma_sq,
            yaw_rate_sigma_sq=shape.yaw_rate_sigma_sq,
            height_band=tuple(d.height_band),
            height_width=shape.height_width,
            kp=robot.kp,
            kd=robot.kd,
            torque_limit=robot.torque_limit,
        )
        self._reward_spec_tensors = self._reward_spec.as_tensors()
        #: (low, high) per command entry (vx, vy, yaw rate) for ``resample``.
        self.command_range: tuple[tuple[float, float], ...] = d.commands.ranges()
        self.command: torch.Tensor | None = None
        g = d.gait
        self.gait = None if g is None else GaitPrior(g.frequency_hz, g.phase, g.lift, self.dt)
        #: Control steps since each env's reset: the gait clock's time (``advance``, ``resample``).
        self.gait_steps: torch.Tensor | None = None

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The policy joints, in action order (what the exported model commands)."""
        return self.description.joints

    # --- commands ----------------------------------------------------------------------------------
    def resample(self, mask: np.ndarray, rng: np.random.Generator) -> None:
        def draw(k: int) -> np.ndarray:
            if self.fixed_command is not None:
                return np.tile(np.asarray(self.fixed_command, dtype=np.float64), (k, 1))
            lo, hi = np.asarray(self.command_range, dtype=np.float64).T
            return rng.uniform(lo, hi, (k, 3))

        self.command = self.resample_rows(self.command, mask, draw)
        if self.gait is not None:
            self.gait_steps = self.resample_rows(self.gait_steps, mask, lambda k: np.zeros(k))

    def advance(self) -> None:
        if self.gait_steps is not None:
            self.gait_steps = self.gait_steps + 1

    def gait_steps_for(self, n: int) -> torch.Tensor:
        """The (n,) gait clock's steps: the per-env ones, or zeros for a batch of another size."""
        if self.gait_steps is not None and self.gait_steps.shape[0] == n:
            return self.gait_steps
        return torch.zeros(n, dtype=torch.float64)

    def commands_for(self, n: int) -> torch.Tensor:
        """The (n, 3) command: the per-env one, or (for a batch of another size, e.g. ``obs_dim``'s probe)
        the fixed command / the middle of ``command_range``."""
        if self.command is not None and self.command.shape[0] == n:
            return self.command
        if self.fixed_command is not None:
            mid = torch.tensor(self.fixed_command, dtype=torch.float64)
        else:
            mid = torch.tensor(self.command_range, dtype=torch.float64).mean(1)
        return mid.expand(n, 3)

    def command_at(self, qpos: torch.Tensor) -> torch.Tensor:
        """(N, 3) the command the policy observes and is rewarded for at ``qpos``: here the drawn one
        (``commands_for``); a task that steers its robot (the obstacle course) computes part of it."""
        return self.commands_for(qpos.shape[0])

    # --- task maths --------------------------------------------------------------------------------
    def action_map(self) -> ActionMap:
        """Position targets ``standing_pose + action_scale·a`` in policy-joint order, clipped to each
        joint's actuator control range (its joint range where the control is unlimited)."""
        r, m = self.robot, self.model
        a = r.actuator_ids
        limited = m.actuator_ctrllimited[a].astype(bool)
        low = np.where(limited, m.actuator_ctrlrange[a, 0], r.joint_lower)
        high = np.where(limited, m.actuator_ctrlrange[a, 1], r.joint_upper)
        return ActionMap(scale=r.action_scale.copy(), offset=r.standing_pose.copy(), low=low, high=high)

    def joint_targets(self, action: torch.Tensor) -> torch.Tensor:
        """Position targets (N, n) in policy-joint order for ``action`` (N, n), the gait's prior added
        before the clip where the robot has one."""
        prior = 0.0 if self.gait is None else self.gait.prior(self.gait_steps_for(action.shape[0]))
        return super().action_to_ctrl(action, prior)

    def action_to_ctrl(self, action: torch.Tensor) -> torch.Tensor:
        targets = self.joint_targets(action)
        return targets if self._ctrl_idx is None else targets[:, self._ctrl_idx]

    def joint_pos(self, qpos: torch.Tensor) -> torch.Tensor:
        """The policy joints' positions (N, n)."""
        return qpos[:, self._qpos_idx]

    def joint_vel(self, qvel: torch.Tensor) -> torch.Tensor:
        """The policy joints' velocities (N, n)."""
        return qvel[:, self._qvel_idx]

    def observe(self, state: SimState, last_action: torch.Tensor) -> torch.Tensor:
        return build_observation(self.observation_fields(state, last_action), self.obs_layout)

    def observation_fields(self, state: SimState, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every field the observation layout may name (N, size each), unscaled."""
        qpos, qvel = state.qpos, state.qvel
        fields = {
            "base_lin_vel": base_lin_vel_body(qpos, qvel),
            "base_ang_vel": base_ang_vel_body(qvel),
            "projected_gravity": projected_gravity(base_quat(qpos)),
            "command": self.command_at(qpos).to(qpos.dtype),
            "joint_pos": self.joint_pos(qpos),
            "joint_vel": self.joint_vel(qvel),
            "last_action": last_action.to(qpos.dtype),
        }
        if self.gait is not None:
            fields["gait_clock"] = self.gait.clock(self.gait_steps_for(qpos.shape[0])).to(qpos.dtype)
        return fields

    def reward_inputs(
        self, state: SimState, action: torch.Tensor, next_state: SimState
    ) -> dict[str, torch.Tensor]:
        """What the reward is a function of (``walk_reward.INPUTS``), differentiable in the states and
        ``action``."""
        qpos, qvel = next_state.qpos, next_state.qvel
        return {
            "command": self.command_at(state.qpos).to(qpos.dtype),  # what the policy saw when it acted
            "height": self.trunk_height(qpos),
            "lin_vel": base_lin_vel_body(qpos, qvel),
            "ang_vel": base_ang_vel_body(qvel),
            "gravity": projected_gravity(base_quat(qpos)),
            "joint_vel": self.joint_vel(qvel),
            "target": self.joint_targets(action),
            "joint_pos": self.joint_pos(state.qpos),
            "joint_vel_before": self.joint_vel(state.qvel),
        }

    def reward_terms(
        self, state: SimState, action: torch.Tensor, next_state: SimState
    ) -> dict[str, torch.Tensor]:
        """Each weighted reward term (N,), by name (terms of weight 0 left out), through torch's autograd:
        ``reward`` is their sum, computed as one node with a closed-form gradient (``walk_reward``)."""
        inputs = self.reward_inputs(state, action, next_state)
        return walk_reward.reward_terms(self._reward_spec_tensors, inputs)

    def reward(self, state: SimState, action: torch.Tensor, next_state: SimState) -> torch.Tensor:
        return walk_reward.walk_reward(self._reward_spec, self.reward_inputs(state, action, next_state))

    def forward_speed(self, state: SimState) -> torch.Tensor:
        """Trunk forward (body x) speed (N,), m/s: what evaluation reports as walking speed."""
        return base_lin_vel_body(state.qpos, state.qvel)[:, 0]

    def tracking_error(self, state: SimState) -> torch.Tensor:
        """|command_xy - v_xy| (N,), m/s: how far the trunk's planar velocity is from the command."""
        v = base_lin_vel_body(state.qpos, state.qvel)[:, :2]
        cmd = self.commands_for(v.shape[0]).to(v.dtype)[:, :2]
        return (cmd - v).norm(dim=1)

    def command_speed(self, state: SimState) -> torch.Tensor:
        """|command_xy| (N,), m/s: the commanded planar speed (``tracking_error``'s yardstick)."""
        return self.commands_for(state.qpos.shape[0])[:, :2].norm(dim=1)

    @property
    def solved_rule(self) -> str:
        tolerance = self.description.episode.solved_tracking
        return f"falls == 0 and tracking_error_mean <= {tolerance:g} x command_speed_mean"

    def solved(self, evaluation: dict[str, float]) -> bool:
        """Solved when it walks: no episode fell, and the trunk's planar velocity stayed within
        ``episode.solved_tracking`` × the commanded speed on average. A robot standing still at its
        command is off by the whole command, so it is never solved, whatever its return."""
        tolerance = self.description.episode.solved_tracking
        walks = evaluation["tracking_error_mean"] <= tolerance * evaluation["command_speed_mean"]
        return evaluation["falls"] == 0 and bool(walks)

    # --- what the ROS side and checkpoints need ---------------------------------------------------
    def options(self) -> dict[str, Any]:
        """What ``make_task`` needs to build this task again: the resolved robot description."""
        options = {"robot": description_tree(self.description)}
        if not self.base_lin_vel:
            options["base_lin_vel"] = False
        if self.obs_history > 1:
            options["obs_history"] = self.obs_history
        return options

    @property
    def omitted_obs_fields(self) -> tuple[str, ...]:
        """``("base_lin_vel",)`` when the observation leaves the trunk's linear velocity out."""
        return () if self.base_lin_vel else ("base_lin_vel",)

    def robot_spec(self) -> dict:
        """JSON-able robot contract: joints, default pose, action map, limits, gains, dt, obs layout, and
        the task's other options (``base_lin_vel: false``, ``obs_history``), which rebuild the training
        task from a model."""
        others = {k: v for k, v in self.options().items() if k != "robot"}  # the robot is the contract
        return {
            **self.robot.contract(),
            "observation": layout_metadata(self.obs_layout, self.obs_history),
            "task_options": others,
        }


class QuadrupedWalk(LeggedWalk):
    """``LeggedWalk`` on the Go1-class quadruped (``config/robots/go1.yaml``): the ROS demo's task.

    Observation 48, action 12, 100 Hz. Returns: walking at the command for the whole episode scores
    ≈ 2.3–2.4 per step; solved at 2100 (tracking within ~0.45 m/s on average for 10 s). Standing tall
    without walking at a 1 m/s command scores ≈ 1550. A uniform-random policy falls within ~1 s:
    return 14 ± 15 (measured: 286 episodes, 32 envs × 1000 steps, seed 1).
    """

    default_robot = "go1"


class LeggedWalkDepth(LeggedWalk):
    """``LeggedWalk`` plus a 16×16 ray-cast depth image from the robot file's ``camera``.

    Observation (12 + 3n + 256): the proprioceptive vector of ``LeggedWalk``, then the depth image
    flattened row-major (``image_shape`` = (1, 16, 16); distance along the ray / 4 m, clipped to [0, 1],
    1 = nothing within 4 m). The robot's own geoms are invisible to the rays. The image is a
    non-differentiable input (detached; computed from ``qpos`` with ``mj_multiRay``). Reward, termination,
    returns: as ``LeggedWalk``.
    """

    image_shape = (1, 16, 16)
    depth_range = 4.0

    def __init__(self, robot: Robot, base_lin_vel: bool = True, obs_history: int = 1) -> None:
        if obs_history != 1:  # K copies of the image would be K times the pixels for one new frame
            raise ValueError("the depth task observes one frame: obs_history must be 1")
        super().__init__(robot, base_lin_vel)
        if robot.description.camera is None:
            raise ValueError(f"robot {robot.name!r} has no camera: set `camera:` in its robot file")
        _, h, w = self.image_shape
        self.depth_camera = DepthCamera(
            self.model, robot.description.camera, width=w, height=h, max_range=self.depth_range
        )

    def depth_image(self, qpos: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalised depth for ``qpos`` (N, nq), no gradient; each env in its own world
        when the task has per-env worlds (``env_models``) of that batch size."""
        models = self.models_of_batch(qpos.shape[0])
        image = self.depth_camera.render(qpos.detach().cpu().numpy(), models)
        return torch.from_numpy(image).unsqueeze(1)

    def observe(self, state: SimState, last_action: torch.Tensor) -> torch.Tensor:
        proprio = super().observe(state, last_action)
        pixels = self.depth_image(state.qpos).to(proprio.dtype).flatten(1)
        return torch.cat([proprio, pixels], dim=1)


class QuadrupedWalkDepth(LeggedWalkDepth):
    """``LeggedWalkDepth`` on the Go1-class quadruped: its ``front`` camera, observation 48 + 256."""

    default_robot = "go1"

"""Walking across an obstacle course: the legged velocity task in a world with blocks ahead of the robot.

``quadruped_terrain`` (blind) and ``quadruped_terrain_depth`` (plus a depth image of the course's camera)
put the Go1-class quadruped (``config/robots/go1.yaml``) into ``sim/quadruped_terrain.xml``: the same
world, rewards and termination, only the observation differs. ``legged_terrain`` and
``legged_terrain_depth`` do the same for any robot file whose MJCF the course world includes, and
``legged_terrain_scan`` observes the course's true heights ahead (``HEIGHT_SCAN``): a privileged
teacher's input, which no robot topic supplies (the node refuses such a model). The world's course
(``rfo_ros.envs.course``) is drawn again for every episode of every env, so the edges are never where the
last episode had them.

What differs from flat ground (``LeggedWalk``), all read from the world file: the forward speed commands
(``course_command_vx``; the robot file's other ranges stay), the robot's ``camera`` (``course_camera``),
and heights: the trunk's height for the height reward, the termination and a privileged critic is
measured above the mean ground under the standing feet, not above the floor, so standing on a block is
standing tall. Success is crossing: the trunk past the last block's far edge plus ``course_finish_margin``
without a fall in the episode (``rfo_ros.evaluate``: ``crossings``, ``crossing_rate``).
"""

from __future__ import annotations

import copy
from typing import Any

import mujoco
import numpy as np
import torch

from rfo_ros.envs.base import TaskInfo
from rfo_ros.envs.course import Course, CourseSpec, support_points
from rfo_ros.envs.course_levels import CourseLevels
from rfo_ros.envs.legged import base_height, yaw_of
from rfo_ros.envs.legged_obs import ObsField, ObsLayout
from rfo_ros.envs.legged_walk import LeggedWalk, LeggedWalkDepth, RobotSource
from rfo_ros.robot import Robot, RobotDescription, default_tracking_widths, read_description
from rfo_ros.sim.autograd import SimState
from rfo_ros.sim.worlds import load_model

__all__ = [
    "HEIGHT_SCAN",
    "CourseWalk",
    "CourseWalkDepth",
    "CourseWalkScan",
    "LeggedTerrain",
    "LeggedTerrainDepth",
    "LeggedTerrainScan",
    "QuadrupedTerrain",
    "QuadrupedTerrainDepth",
    "course_description",
]

#: The course's heading controller (``CourseWalk.command_at``): yaw-rate command per radian of heading
#: error (legged_gym's 0.5), and its limit (rad/s).
HEADING_GAIN, HEADING_MAX_YAW_RATE = 0.5, 1.0
#: Where the height scan reads the ground: trunk-frame offsets ahead along the heading (m), -0.2 to 1.2.
SCAN_AHEAD_M = tuple(round(-0.2 + 0.1 * i, 1) for i in range(15))
#: Where the scan's values are centred (m): a fixed feature centring, as legged_gym's 0.5 m in its measured
#: heights, near a Go1-class trunk's standing height; another robot's scan is the same feature off-centre.
SCAN_NOMINAL_HEIGHT_M = 0.3
#: The height scan field: the trunk's height above the ground at each scan point, minus the nominal
#: height, ×5 (legged_gym's scale for its measured heights): 0 on flat ground, -0.75 before a 0.15 m block.
HEIGHT_SCAN = ObsField.make(
    "height_scan",
    len(SCAN_AHEAD_M),
    "trunk height above the ground (m) minus 0.3 at points "
    f"{SCAN_AHEAD_M[0]:g}..{SCAN_AHEAD_M[-1]:g} m ahead along the heading (the simulator's course)",
    scale=5.0,
    offset=SCAN_NOMINAL_HEIGHT_M,
)


def course_description(robot: RobotSource, world: str) -> RobotDescription:
    """``robot``'s description placed in the course ``world`` (a name in sim/ that includes the robot's
    MJCF): its ``mjcf``, the course's forward commands (and the tracking widths, where they followed the
    robot's commands) and camera. Idempotent: a description it made (a checkpoint's task options) comes
    back unchanged."""
    if isinstance(robot, Robot):
        robot = robot.description
    description = read_description(robot)
    spec = CourseSpec.from_model(load_model(world))
    if spec is None:
        raise ValueError(f"world {world!r} declares no obstacle course (<numeric name='course_start_x'>)")
    commands = description.commands.model_copy(update={"vx": spec.command_vx})
    update: dict[str, Any] = {"mjcf": world, "commands": commands}
    # Tracking widths that followed the robot's commands follow the course's (a robot file's own stay).
    shape = description.reward_shape
    if (shape.lin_vel_sigma_sq, shape.yaw_rate_sigma_sq) == default_tracking_widths(description.commands):
        lin_vel, yaw_rate = default_tracking_widths(commands)
        update["reward_shape"] = shape.model_copy(
            update={"lin_vel_sigma_sq": lin_vel, "yaw_rate_sigma_sq": yaw_rate}
        )
    if spec.camera is not None:
        update["camera"] = spec.camera
    return description.model_copy(update=update)


class CourseWalk(LeggedWalk):
    """``LeggedWalk`` in a world with an obstacle course (module docstring), drawn per env at reset.

    Per env: its own MjModel copy holding its course (``env_models``; ``VecEnv`` steps those) and its
    layout ``course_layout`` (N, B, 3): near edge, far edge and height of each block, redrawn with the
    command in ``resample``. Rewards and termination are ``LeggedWalk``'s with ``trunk_height`` above the
    ground under the feet. Solved: no fall and a crossing rate of at least ``course_solved_crossing_rate``.
    """

    #: The course world (a name in sim/) the robot is placed in.
    course_world: str

    @classmethod
    def create(
        cls, robot: RobotSource | None = None, base_lin_vel: bool = True, obs_history: int = 1
    ) -> CourseWalk:
        source = cls.default_robot if robot is None else robot
        if source is None:
            raise ValueError(f"task {cls.__name__} needs a robot")
        description = course_description(source, cls.course_world)
        if cls.default_robot is not None and description.name != cls.default_robot:
            raise ValueError(
                f"task {cls.__name__} is the {cls.default_robot} robot in sim/{cls.course_world}.xml, "
                f"not {description.name!r}"
            )
        return super().create(description, base_lin_vel, obs_history)

    def __init__(self, robot: Robot, base_lin_vel: bool = True, obs_history: int = 1) -> None:
        super().__init__(robot, base_lin_vel, obs_history)
        self.course = Course(self.model)
        self._support = support_points(robot)  # (F, 2): the standing feet, trunk frame
        #: Each env's course (N, B, 3), float64; None until ``resample`` draws it.
        self.course_layout: torch.Tensor | None = None
        self._models: list[mujoco.MjModel] | None = None
        #: A block-height curriculum (``use_levels``; training only), and each env's level (N,) under it.
        self._levels: CourseLevels | None = None
        self.course_level: torch.Tensor | None = None
        s, d = self.course.spec, self.description
        self.info = TaskInfo(
            episode_length=d.episode.length,
            solved_return=None,  # solved is judged by crossings (``solved``), not by a return
            random_return=d.episode.random_return if s.random_return is None else s.random_return,
            description=f"{d.name}: cross {self.course.num_blocks} blocks {s.block_height[0]:g}-"
            f"{s.block_height[1]:g} m high at {s.command_vx[0]:g}-{s.command_vx[1]:g} m/s in "
            f"{d.episode.length} steps",
        )

    # --- per-env worlds ----------------------------------------------------------------------------
    def env_models(self, num_envs: int) -> list[mujoco.MjModel]:
        if self._models is None or len(self._models) != num_envs:
            self._models = [copy.copy(self.model) for _ in range(num_envs)]
            if self.course_layout is not None and self.course_layout.shape[0] == num_envs:
                self._apply(np.arange(num_envs))
        return self._models

    def models_of_batch(self, n: int) -> list[mujoco.MjModel] | None:
        return self._models if self._models is not None and len(self._models) == n else None

    def layouts(self, n: int) -> np.ndarray:
        """(n, B, 3) the envs' courses; for a batch of another size, the world's nominal course."""
        if self.course_layout is not None and self.course_layout.shape[0] == n:
            return self.course_layout.numpy()
        return np.broadcast_to(self.course.nominal, (n, *self.course.nominal.shape))

    def _apply(self, rows: np.ndarray) -> None:
        layout = self.course_layout.numpy()
        for i in rows:
            self.course.apply(self._models[i], layout[i])

    def use_levels(self, levels: CourseLevels) -> None:
        """Draw every course from now on at its env's level of ``levels`` (a curriculum; training only)."""
        self._levels = levels

    def episode_end(self, mask: np.ndarray, state: SimState, rng: np.random.Generator) -> None:
        """Move each ended episode's env up or down the curriculum (``CourseLevels.update``)."""
        if self._levels is None or self.course_level is None or len(self.course_level) != len(mask):
            return
        rows = np.flatnonzero(mask)
        finish = self.course.finish_x(self.layouts(len(mask))[rows])
        x = state.qpos[rows, 0].detach().cpu().numpy()
        level = self._levels.update(self.course_level.numpy()[rows], x >= finish, x / finish, rng)
        self.course_level[torch.from_numpy(rows)] = torch.from_numpy(level)

    def train_metrics(self) -> dict[str, float]:
        if self._levels is None or self.course_level is None:
            return {}
        return {"Train/course_level_mean": float(self.course_level.double().mean())}

    def resample(self, mask: np.ndarray, rng: np.random.Generator) -> None:
        """New commands and new courses for the envs in ``mask``, written into their models."""
        super().resample(mask, rng)
        n = len(mask)
        fresh = self.course_layout is None or self.course_layout.shape[0] != n
        rows = np.arange(n) if fresh else np.flatnonzero(mask)  # the rows drawn now (all, for a new batch)
        scale = None
        if self._levels is not None:
            if self.course_level is None or len(self.course_level) != n:
                self.course_level = torch.from_numpy(self._levels.start(n))
            scale = self._levels.height_scale(self.course_level.numpy()[rows])
        self.course_layout = self.resample_rows(
            self.course_layout, mask, lambda k: self.course.draw(rng, k, scale)
        )
        self.env_models(n)
        self._apply(rows)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.course_layout is not None:
            n = self.course_layout.shape[0]
            self.env_models(n)
            self._apply(np.arange(n))

    # --- heights and crossing ----------------------------------------------------------------------
    def trunk_height(self, qpos: torch.Tensor) -> torch.Tensor:
        """(N,) the trunk's height above the mean ground under its standing feet (differentiable in the
        trunk's z; the ground under it is a constant of the step)."""
        q = qpos.detach().cpu().numpy()
        ground = self.course.support_height(self.layouts(q.shape[0]), q, self._support)
        return base_height(qpos) - torch.from_numpy(ground).to(qpos.dtype)

    def height_scan(self, qpos: torch.Tensor) -> torch.Tensor:
        """(N, 15) ``HEIGHT_SCAN``'s raw values: the trunk's height above the ground at points ahead along
        each env's heading (its course's blocks, else the floor), no gradient."""
        q = qpos.detach().cpu().numpy()
        yaw = yaw_of(q[:, 3:7])[:, None]
        ahead = np.asarray(SCAN_AHEAD_M)
        x, y = q[:, 0:1] + np.cos(yaw) * ahead, q[:, 1:2] + np.sin(yaw) * ahead
        ground = self.course.ground_height(self.layouts(len(q)), x, y)
        return torch.from_numpy(q[:, 2:3] - ground).to(qpos.dtype)

    def command_at(self, qpos: torch.Tensor) -> torch.Tensor:
        """The drawn forward command, with the yaw rate of a heading controller that steers the trunk back
        to the course's direction (+x): ``clip(HEADING_GAIN·wrap(0 − yaw), ±HEADING_MAX_YAW_RATE)``, as
        legged_gym's heading commands. Without it, turning away from the blocks and walking off at the
        commanded body-frame speed scored as well as crossing (a first teacher learnt exactly that)."""
        command = self.commands_for(qpos.shape[0]).clone()
        yaw = torch.from_numpy(yaw_of(qpos.detach().cpu().numpy()[:, 3:7])).to(command.dtype)
        command[:, 2] = (-HEADING_GAIN * yaw).clamp(-HEADING_MAX_YAW_RATE, HEADING_MAX_YAW_RATE)
        return command

    def crossed(self, state: SimState) -> torch.Tensor:
        """(N,) bool: the trunk is past its course's finish line."""
        x = state.qpos[:, 0].detach().cpu().numpy()
        return torch.from_numpy(x >= self.course.finish_x(self.layouts(len(x))))

    @property
    def solved_rule(self) -> str:
        return f"falls == 0 and crossing_rate >= {self.course.spec.solved_crossing_rate:g}"

    def solved(self, evaluation: dict[str, float]) -> bool:
        """Solved when the robot crosses: no episode fell, and at least ``course_solved_crossing_rate`` of
        them crossed (a robot that stands still never does)."""
        rate = self.course.spec.solved_crossing_rate
        return evaluation["falls"] == 0 and evaluation["crossing_rate"] >= rate


class CourseWalkDepth(CourseWalk, LeggedWalkDepth):
    """``CourseWalk`` plus ``LeggedWalkDepth``'s depth image, from the camera the course world names; each
    env's image shows its own course."""


class CourseWalkScan(CourseWalk):
    """``CourseWalk`` whose observation ends with ``HEIGHT_SCAN``, the simulator's heights of the course
    ahead: what a privileged teacher observes in place of a camera (``algo: distill`` reads it from the
    simulator for a depth-seeing student). A robot has no topic for it: the policy node refuses the model."""

    def __init__(self, robot: Robot, base_lin_vel: bool = True, obs_history: int = 1) -> None:
        if obs_history != 1:
            raise ValueError("the height-scan task observes one frame: obs_history must be 1")
        super().__init__(robot, base_lin_vel)
        self.obs_layout = ObsLayout((*self.obs_layout.fields, HEIGHT_SCAN))

    def observation_fields(self, state: SimState, last_action: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**super().observation_fields(state, last_action), "height_scan": self.height_scan(state.qpos)}


class QuadrupedTerrain(CourseWalk):
    """``CourseWalk`` of the Go1-class quadruped in ``sim/quadruped_terrain.xml``, blind: observation 48.

    Three blocks 0.08-0.15 m high, 0.4-0.7 m long, 0-0.25 m apart, the first 0.6-1.2 m ahead; commands
    0.5-1.0 m/s; crossed 0.3 m past the last block; solved at a crossing rate of 0.9 with no fall.
    """

    default_robot = "go1"
    course_world = "quadruped_terrain"


class QuadrupedTerrainDepth(CourseWalkDepth):
    """``QuadrupedTerrain`` with the 16×16 depth image of the chin camera (50° field of view, 40° down: the
    ground ~0.35-1.2 m ahead of a standing trunk): observation 48 + 256."""

    default_robot = "go1"
    course_world = "quadruped_terrain"


class LeggedTerrain(CourseWalk):
    """``CourseWalk`` in ``sim/quadruped_terrain.xml`` for a robot file (``env.robot``) whose MJCF that world
    includes (the Go1-class quadruped's, e.g. ``config/robots/go1_trot.yaml`` with its gait prior)."""

    course_world = "quadruped_terrain"


class LeggedTerrainDepth(CourseWalkDepth):
    """``LeggedTerrain`` with the depth image of the course's camera (as ``QuadrupedTerrainDepth``)."""

    course_world = "quadruped_terrain"


class LeggedTerrainScan(CourseWalkScan):
    """``LeggedTerrain`` observing the course's heights ahead (``HEIGHT_SCAN``): a privileged teacher."""

    course_world = "quadruped_terrain"

"""Task registry: ``make_task("quadruped")`` builds a task on its MJCF world, ``make_task("legged",
robot="config/robots/go1.yaml")`` one on a robot file.

Importing this package loads nothing heavy: ``Task``, ``TaskInfo``, ``VecEnv`` and ``StepResult`` (torch,
MuJoCo) load on first use, so ``rfo_ros.envs.legged_obs`` (numpy only) stays light for the policy node.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rfo_ros.envs.base import Task, TaskInfo
    from rfo_ros.envs.vec_env import StepResult, VecEnv

# name -> "module:Class"; imported lazily so one task's dependencies never load with another's.
TASKS: dict[str, str] = {
    "cartpole": "rfo_ros.envs.cartpole:CartpoleSwingUp",
    "legged": "rfo_ros.envs.legged_walk:LeggedWalk",
    "quadruped": "rfo_ros.envs.legged_walk:QuadrupedWalk",
    "quadruped_depth": "rfo_ros.envs.legged_walk:QuadrupedWalkDepth",
    "quadruped_terrain": "rfo_ros.envs.course_walk:QuadrupedTerrain",
    "quadruped_terrain_depth": "rfo_ros.envs.course_walk:QuadrupedTerrainDepth",
    "legged_terrain": "rfo_ros.envs.course_walk:LeggedTerrain",
    "legged_terrain_depth": "rfo_ros.envs.course_walk:LeggedTerrainDepth",
    "legged_terrain_scan": "rfo_ros.envs.course_walk:LeggedTerrainScan",
    "ant": "rfo_ros.envs.ant:AntRun",
    "soft_quadruped": "rfo_ros.envs.soft_quadruped:SoftQuadrupedRun",
    "push": "rfo_ros.envs.push:PushBox",
}
_LAZY = {
    "Task": "rfo_ros.envs.base",
    "TaskInfo": "rfo_ros.envs.base",
    "StepResult": "rfo_ros.envs.vec_env",
    "VecEnv": "rfo_ros.envs.vec_env",
}


def make_task(name: str, **options) -> Task:
    """Build the named task (see ``TASKS``) with its options (``legged``: ``robot=``, a robot file).

    ``Task.options()`` of a built task gives the options that rebuild it (checkpoints store them).
    """
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    module_name, class_name = TASKS[name].split(":")
    return getattr(import_module(module_name), class_name).create(**options)


def task_from_config(
    task: str, robot: str | None = None, base_lin_vel: bool = True, obs_history: int = 1
) -> Task:
    """The task that ``env.task``, ``env.robot``, ``env.base_lin_vel`` and ``env.obs_history`` of a training
    config name."""
    options = {"robot": robot} if robot is not None else {}
    # Only legged tasks take these (the others refuse any option), so the defaults are left out.
    if not base_lin_vel:
        options["base_lin_vel"] = False
    if obs_history != 1:
        options["obs_history"] = obs_history
    return make_task(task, **options)


def task_options_from_metadata(robot_contract: dict | None) -> dict:
    """The ``make_task`` options in an exported model's robot contract: its robot description and the
    task's other options (models exported before those were stored: none)."""
    contract = robot_contract or {}
    options = dict(contract.get("task_options", {}))
    if contract.get("description") is not None:
        options["robot"] = contract["description"]
    return options


def task_from_metadata(task: str, robot_contract: dict | None) -> Task:
    """The task an exported model was trained on: its name and the robot description in its contract."""
    return make_task(task, **task_options_from_metadata(robot_contract))


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TASKS",
    "StepResult",
    "Task",
    "TaskInfo",
    "VecEnv",
    "make_task",
    "task_from_config",
    "task_from_metadata",
    "task_options_from_metadata",
]

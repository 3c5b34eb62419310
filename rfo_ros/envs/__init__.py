"""Task registry: ``make_task("quadruped")`` builds a task on its MJCF world.

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
    "quadruped": "rfo_ros.envs.quadruped:QuadrupedWalk",
    "quadruped_depth": "rfo_ros.envs.quadruped:QuadrupedWalkDepth",
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


def make_task(name: str, **kwargs) -> Task:
    """Build the named task (see ``TASKS``) on its world from ``sim/``."""
    from rfo_ros.sim.worlds import load_model

    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    module_name, class_name = TASKS[name].split(":")
    cls = getattr(import_module(module_name), class_name)
    return cls(load_model(cls.world), **kwargs)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["TASKS", "StepResult", "Task", "TaskInfo", "VecEnv", "make_task"]

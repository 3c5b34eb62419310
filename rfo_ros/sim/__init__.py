"""Batched MuJoCo simulation whose steps torch can differentiate (finite-difference Jacobians)."""

from rfo_ros.sim.autograd import SimState, mj_step_autograd
from rfo_ros.sim.batched import BatchedSim, FDConfig, Jacobians, StepOutput
from rfo_ros.sim.worlds import load_model, world_path

__all__ = [
    "BatchedSim",
    "FDConfig",
    "Jacobians",
    "SimState",
    "StepOutput",
    "load_model",
    "mj_step_autograd",
    "world_path",
]

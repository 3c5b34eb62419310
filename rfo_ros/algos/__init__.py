"""Algorithms: RFO, SHAC and SAPO (short-horizon gradients through the simulator), FPO and PPO (on-policy)."""

from __future__ import annotations

from rfo_ros.algos.base import Algorithm
from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.fpo import make_fpo
from rfo_ros.algos.ppo import make_ppo
from rfo_ros.algos.rfo import make_rfo
from rfo_ros.algos.sapo import make_sapo
from rfo_ros.algos.shac import make_shac

BUILDERS = {"rfo": make_rfo, "shac": make_shac, "sapo": make_sapo, "fpo": make_fpo, "ppo": make_ppo}
#: Which policy family each algorithm trains.
POLICY_KIND = {"rfo": "flow", "shac": "gaussian", "sapo": "gaussian", "fpo": "flow", "ppo": "gaussian"}
#: Whether the algorithm differentiates through the simulator (needs FD Jacobians).
DIFFERENTIABLE = {"rfo": True, "shac": True, "sapo": True, "fpo": False, "ppo": False}

__all__ = ["BUILDERS", "DIFFERENTIABLE", "POLICY_KIND", "Algorithm", "CriticLearner"]

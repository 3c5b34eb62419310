"""Algorithms: RFO, SHAC and SAPO (short-horizon gradients through the simulator), FPO and PPO (on-policy),
rsl_rl's PPO (``rsl_ppo``, an optional benchmark dependency) beside ours, and ``distill`` (a teacher's
actions into a flow student, the stage before RFO fine-tuning)."""

from __future__ import annotations

from rfo_ros.algos.base import Algorithm
from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.distill import make_distill
from rfo_ros.algos.fpo import make_fpo
from rfo_ros.algos.ppo import make_ppo
from rfo_ros.algos.rfo import make_rfo
from rfo_ros.algos.sapo import make_sapo
from rfo_ros.algos.shac import make_shac
from rfo_ros.config import TrainConfig
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor
from rfo_ros.nets.rsl import require_rsl_rl


def make_rsl_ppo(cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner) -> Algorithm:
    """rsl_rl's PPO; of ``critic`` only its normaliser is used (rsl_rl trains its own value network).
    rsl_rl is imported only here."""
    require_rsl_rl()  # a clear message saying how to install it, before the module's imports fail
    from rfo_ros.algos.rsl_ppo import RslPPO

    return RslPPO(cfg, env, actor, critic)


BUILDERS = {
    "rfo": make_rfo,
    "shac": make_shac,
    "sapo": make_sapo,
    "fpo": make_fpo,
    "ppo": make_ppo,
    "rsl_ppo": make_rsl_ppo,
    "distill": make_distill,
}
#: Which policy family each algorithm trains.
POLICY_KIND = {
    "rfo": "flow",
    "shac": "gaussian",
    "sapo": "gaussian",
    "fpo": "flow",
    "ppo": "gaussian",
    "rsl_ppo": "rsl_gaussian",
    "distill": "flow",
}
#: Whether the algorithm differentiates through the simulator (needs FD Jacobians).
DIFFERENTIABLE = {"rfo": True, "shac": True, "sapo": True, "fpo": False, "ppo": False, "rsl_ppo": False,
                 "distill": False}  # fmt: skip

#: Algorithms whose flow draws one sample per chunk of ``policy.chunk`` actions (the rest act one at a time).
CHUNKED = ("rfo", "distill", "fpo")

__all__ = ["BUILDERS", "CHUNKED", "DIFFERENTIABLE", "POLICY_KIND", "Algorithm", "CriticLearner"]

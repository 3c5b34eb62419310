"""RFO: the short-horizon reparameterized gradient through a flow policy, plus CFM regularisers.

``λ_stab = λ_expl = 0`` is the "naive flow RPG" ablation.
"""

from __future__ import annotations

from rfo_ros.algos.cfm import ExplorationRegularizer, StabilityRegularizer
from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.short_horizon import ShortHorizonRPG
from rfo_ros.config import TrainConfig
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


def make_rfo(cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner) -> ShortHorizonRPG:
    d = cfg.diff
    terms = [
        StabilityRegularizer(d.lambda_stab, d.cfm_batch),
        ExplorationRegularizer(d.lambda_expl, d.cfm_batch, d.expl_clip),
    ]
    return ShortHorizonRPG(cfg, env, actor, critic, [t for t in terms if t.weight > 0])

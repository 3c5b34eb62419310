"""RFO: the short-horizon reparameterized gradient through a flow policy, plus CFM regularisers.

``λ_stab = λ_expl = 0`` is the "naive flow RPG" ablation. ``diff.reuse_epochs > 1`` reuses each
window's adjoints (``rfo_ros/algos/reuse.py``), with L_stab towards the window's own pairs as the
trust region (weight ``diff.reuse_lambda_stab``).
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
    reuse_stab = d.reuse_lambda_stab if d.reuse_epochs > 1 else 0.0
    terms = [
        StabilityRegularizer(d.lambda_stab, d.cfm_batch, reuse_stab),
        ExplorationRegularizer(d.lambda_expl, d.cfm_batch, d.expl_clip),
    ]
    return ShortHorizonRPG(cfg, env, actor, critic, [t for t in terms if t.weight > 0 or t.reuse_weight > 0])

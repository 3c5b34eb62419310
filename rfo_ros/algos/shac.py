"""SHAC: the same short-horizon loop with a tanh-Gaussian policy and no extra losses."""

from __future__ import annotations

from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.short_horizon import ShortHorizonRPG
from rfo_ros.config import TrainConfig
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


def make_shac(cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner) -> ShortHorizonRPG:
    return ShortHorizonRPG(cfg, env, actor, critic, terms=[])

"""PPO with a tanh-Gaussian policy: ratio from log-probabilities."""

from __future__ import annotations

import torch

from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.on_policy import OnPolicyPG
from rfo_ros.config import TrainConfig
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


class GaussianRatio:
    """``log π_θ(a|o) - log π_old(a|o)`` for a tanh-Gaussian policy."""

    def __init__(self, clip: float) -> None:
        self.clip = clip

    def record(self, actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"log_prob": actor.policy.log_prob(obs_norm, z[:, 0])}

    def log_ratio(self, actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor, old: dict) -> torch.Tensor:
        return actor.policy.log_prob(obs_norm, z[:, 0]) - old["log_prob"]

    def entropy(self, actor: Actor) -> torch.Tensor:
        return actor.policy.entropy()


def make_ppo(cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner) -> OnPolicyPG:
    return OnPolicyPG(cfg, env, actor, critic, GaussianRatio(cfg.onpolicy.clip))

"""SAPO (Xing et al., ICLR 2025): SHAC's loop with a maximum-entropy objective.

The tanh-Gaussian's entropy bonus ``-α log π(a_t | o_t)`` joins the reward of every step, in the
differentiable objective (reparameterised, so its gradient flows into the policy) and in the critic's
TD(λ) targets (soft values); the temperature α is tuned towards a target entropy of
``target_entropy_per_dim · dim(A)`` (-dim(A)/2 by default); two critics trained on the same targets
are averaged for the bootstrap (``critic.ensemble: 2``, set in the SAPO configs).
"""

from __future__ import annotations

import math

import torch

from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.short_horizon import ShortHorizonRPG
from rfo_ros.config import SapoConfig, TrainConfig
from rfo_ros.distributed import average_gradients
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """SAC's temperature loss ``-log α · (log π + H̄)``: its gradient lowers α while the policy's
    entropy ``-log π`` exceeds the target ``H̄`` and raises it below."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


class EntropyBonus:
    """``-α log π(a|o)`` for the sample a step drew; α learnt towards the target entropy."""

    def __init__(self, cfg: SapoConfig, action_dim: int, device: torch.device | str = "cpu") -> None:
        self.log_alpha = torch.tensor(math.log(cfg.alpha_init), device=device, requires_grad=True)
        self.optim = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.target_entropy = cfg.target_entropy_per_dim * action_dim
        self._log_probs: list[torch.Tensor] = []

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def reward(self, actor: Actor, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        log_prob = actor.policy.log_prob(actor.normalizer(obs), z[:, 0])
        self._log_probs.append(log_prob.detach())
        return -self.log_alpha.detach().exp() * log_prob

    def end_iteration(self) -> dict[str, float]:
        log_prob = torch.cat(self._log_probs)
        self._log_probs = []
        self.optim.zero_grad(set_to_none=True)
        temperature_loss(self.log_alpha, log_prob, self.target_entropy).backward()
        average_gradients([self.log_alpha], True)  # the same temperature on every rank
        self.optim.step()
        return {"Policy/alpha": self.alpha, "Policy/entropy": float(-log_prob.mean())}

    def state_dict(self) -> dict:
        return {"log_alpha": self.log_alpha.detach().clone(), "optim": self.optim.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.optim.load_state_dict(state["optim"])


def make_sapo(cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner) -> ShortHorizonRPG:
    bonus = EntropyBonus(cfg.sapo, env.action_dim, actor.device)
    return ShortHorizonRPG(cfg, env, actor, critic, terms=[], bonus=bonus)

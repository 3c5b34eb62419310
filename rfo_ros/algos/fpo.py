"""FPO (flow policy optimisation): PPO-clip with a flow-matching-loss ratio.

``ratio = exp(L̂_CFM,old - L̂_CFM,θ)`` where ``L̂_CFM`` averages the CFM loss of the sampled latent over
N_mc (τ, ε) pairs drawn once per action at collection and reused at every update (so the ratio is
exactly 1 at θ = θ_old). No likelihood is evaluated.
"""

from __future__ import annotations

import torch

from rfo_ros.algos.cfm import cfm_loss_per_sample
from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.on_policy import OnPolicyPG
from rfo_ros.config import TrainConfig
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


def mc_cfm_loss(actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor, tau: torch.Tensor, eps: torch.Tensor):
    """CFM loss per sample averaged over its N_mc stored pairs: tau (B, N_mc), eps (B, N_mc, C, m) -> (B,)."""
    b, n_mc = tau.shape
    rep = lambda x: x.repeat_interleave(n_mc, dim=0)  # noqa: E731
    losses = cfm_loss_per_sample(
        actor.policy, rep(obs_norm), rep(z), tau.reshape(-1), eps.reshape(b * n_mc, *z.shape[1:])
    )
    return losses.reshape(b, n_mc).mean(1)


class FlowMatchingRatio:
    """FPO's ratio estimate from stored (τ, ε) pairs."""

    def __init__(self, clip: float, n_mc: int) -> None:
        self.clip, self.n_mc = clip, n_mc

    def record(self, actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        tau = torch.rand(z.shape[0], self.n_mc).to(z.device)
        eps = torch.randn(z.shape[0], self.n_mc, *z.shape[1:]).to(z.device)
        return {"tau": tau, "eps": eps, "cfm": mc_cfm_loss(actor, obs_norm, z, tau, eps)}

    def log_ratio(self, actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor, old: dict) -> torch.Tensor:
        return old["cfm"] - mc_cfm_loss(actor, obs_norm, z, old["tau"], old["eps"])

    def entropy(self, actor: Actor) -> torch.Tensor:
        return torch.zeros((), device=actor.device)


def make_fpo(cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner) -> OnPolicyPG:
    return OnPolicyPG(
        cfg, env, actor, critic, FlowMatchingRatio(cfg.onpolicy.fpo_clip, cfg.onpolicy.fpo_mc_samples)
    )

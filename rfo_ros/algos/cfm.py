"""Conditional flow matching (CFM) losses and the two RFO regularisers built on them.

``L_CFM = E_{u, ε} || v_θ((1-u) ε + u z, u | o) - (z - ε) ||²``, averaged over latent dimensions
(summed over the C·m latent dimensions, it was ~15x the actor loss at the start of a quick quadruped
run, and the regularisers drowned the policy gradient).
"""

from __future__ import annotations

import torch

from rfo_ros.nets.flow import FlowPolicy


def cfm_loss_per_sample(
    policy: FlowPolicy, obs_norm: torch.Tensor, z: torch.Tensor, u: torch.Tensor, eps: torch.Tensor
) -> torch.Tensor:
    """Per-sample CFM loss (B,) for latents z (B, C, m) at times u (B,) with noise eps (B, C, m)."""
    feat = policy.features(obs_norm)
    z_flat, eps_flat = z.reshape(z.shape[0], -1), eps.reshape(eps.shape[0], -1)
    x_u = (1.0 - u[:, None]) * eps_flat + u[:, None] * z_flat
    pred = policy.velocity(x_u, u, feat)
    return ((pred - (z_flat - eps_flat)) ** 2).mean(-1)


def cfm_loss(policy: FlowPolicy, obs_norm: torch.Tensor, z: torch.Tensor, generator=None) -> torch.Tensor:
    """Mean CFM loss towards targets z (B, C, m) with fresh u ~ U[0,1], ε ~ N(0, I)."""
    # Drawn on the CPU generator whatever the networks' device, so a seed means the same draws everywhere.
    u = torch.rand(z.shape[0], generator=generator).to(z.device)
    eps = torch.randn(z.shape, generator=generator).to(z.device)
    return cfm_loss_per_sample(policy, obs_norm, z, u, eps).mean()


def subsample(n: int, k: int) -> torch.Tensor:
    """At most ``k`` distinct indices of ``n`` samples, drawn at random (all of them when n <= k)."""
    return torch.randperm(n)[:k] if n > k else torch.arange(n)


class StabilityRegularizer:
    """``L_stab``: CFM towards the (observation, latent) pairs the previous iteration generated.

    A likelihood-free trust region: it keeps the new flow close to what it just did. In the reuse
    epochs (after ``end_iteration``) "the previous iteration" is the window being reused, so there it
    pulls towards the window's own pairs, with ``reuse_weight``.
    """

    name = "stab"

    def __init__(self, weight: float, batch: int, reuse_weight: float = 0.0) -> None:
        self.weight, self.batch, self.reuse_weight = weight, batch, reuse_weight
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None

    def loss(self, actor, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        if self.previous is None:
            return None
        prev_obs, prev_z = self.previous
        idx = subsample(prev_obs.shape[0], self.batch)
        obs_norm = actor.normalizer(prev_obs[idx]).detach()
        return cfm_loss(actor.policy, obs_norm, prev_z[idx])

    def end_iteration(self, obs: torch.Tensor, z: torch.Tensor) -> None:
        self.previous = (obs.detach().clone(), z.detach().clone())

    def state_dict(self) -> dict:
        return {"previous": self.previous}

    def load_state_dict(self, state: dict) -> None:
        self.previous = state["previous"]


class ExplorationRegularizer:
    """``L_expl``: CFM towards actions uniform in the action box, at the current rollout's states.

    Uniform actions are clipped to ±``clip`` before ``atanh`` so their latents stay finite.
    An entropy substitute: it keeps the action distribution spread out.
    """

    name = "expl"

    def __init__(self, weight: float, batch: int, clip: float) -> None:
        self.weight, self.batch, self.clip = weight, batch, clip
        self.reuse_weight = weight  # the same pull towards spread-out actions in every epoch

    def loss(self, actor, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        idx = subsample(obs.shape[0], self.batch)
        obs_norm = actor.normalizer(obs[idx]).detach()
        uniform = torch.empty(len(idx), *z.shape[1:]).uniform_(-self.clip, self.clip).to(z.device)
        return cfm_loss(actor.policy, obs_norm, torch.atanh(uniform))

    def end_iteration(self, obs: torch.Tensor, z: torch.Tensor) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

"""tanh-squashed diagonal Gaussian policy (SHAC and PPO)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from rfo_ros.nets.encoders import ObsSplit
from rfo_ros.nets.mlp import mlp

_LOG_2 = math.log(2.0)


class TanhGaussianPolicy(nn.Module):
    """``a = tanh(μ(o) + σ ε)``, state-independent learnable log σ; chunk length is always 1."""

    chunk = 1

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        init_log_std: float = -0.5,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.features = ObsSplit(obs_dim, image_shape)
        self.mean_net = mlp(self.features.out_dim, hidden, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), init_log_std))

    def distribution(self, obs_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-squash mean (B, m) and std (m,)."""
        return self.mean_net(self.features(obs_norm)), self.log_std.clamp(-5.0, 2.0).exp()

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise (batch, 1, m): ``forward(obs_norm, noise)`` is the reparameterisation."""
        return torch.randn(batch, 1, self.action_dim, generator=generator)

    def forward(
        self, obs_norm: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Action (B, 1, m) in [-1, 1] and pre-squash latent z (B, 1, m); ``noise=0`` gives the mean."""
        mean, std = self.distribution(obs_norm)
        if noise is None:  # the CPU generator on every device (the same draws as randn_like on the CPU)
            noise = self.sample_noise(mean.shape[0]).to(mean)
        z = (mean + std * noise.reshape(mean.shape))[:, None]  # the action is a function of this z
        return torch.tanh(z), z

    def log_prob(self, obs_norm: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log π(a | o) of the squashed action a = tanh(z), for z (B, m) -> (B,)."""
        mean, std = self.distribution(obs_norm)
        normal = torch.distributions.Normal(mean, std)
        # log|d tanh(z)/dz| = 2 (log 2 - z - softplus(-2 z)), numerically stable.
        log_det = 2.0 * (_LOG_2 - z - nn.functional.softplus(-2.0 * z))
        return (normal.log_prob(z) - log_det).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the pre-squash Gaussian (a per-dimension-summed scalar)."""
        return (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std.clamp(-5.0, 2.0)).sum()

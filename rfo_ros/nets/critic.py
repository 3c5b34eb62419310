"""State-value critic V(o)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rfo_ros.nets.encoders import ObsSplit
from rfo_ros.nets.mlp import mlp


class Critic(nn.Module):
    """V(o_norm) -> (B,)."""

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int] = (256, 256),
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        self.features = ObsSplit(obs_dim, image_shape)
        self.net = mlp(self.features.out_dim, hidden, 1)

    def forward(self, obs_norm: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(obs_norm)).squeeze(-1)

    @property
    def members(self) -> list[Critic]:
        """The critics that are regressed on the targets (one)."""
        return [self]


class CriticEnsemble(nn.Module):
    """Several critics regressed on the same targets; V is their mean (SAPO: two, averaged)."""

    def __init__(self, critics: Sequence[Critic]) -> None:
        super().__init__()
        self.critics = nn.ModuleList(critics)

    def forward(self, obs_norm: torch.Tensor) -> torch.Tensor:
        return torch.stack([c(obs_norm) for c in self.critics]).mean(0)

    @property
    def members(self) -> list[Critic]:
        return list(self.critics)


def make_critic(
    obs_dim: int, hidden: Sequence[int], ensemble: int = 1, image_shape: tuple[int, int, int] | None = None
) -> Critic | CriticEnsemble:
    """One critic, or an averaged ensemble of ``ensemble`` independently initialised ones."""
    if ensemble == 1:
        return Critic(obs_dim, hidden, image_shape=image_shape)
    return CriticEnsemble([Critic(obs_dim, hidden, image_shape=image_shape) for _ in range(ensemble)])

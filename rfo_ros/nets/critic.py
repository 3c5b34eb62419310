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

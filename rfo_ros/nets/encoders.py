"""Observation encoders: identity for state vectors, a small CNN for flattened image observations."""

from __future__ import annotations

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """Small CNN for a (channels, H, W) image -> ``out_dim`` features."""

    def __init__(self, channels: int, height: int, width: int, out_dim: int = 64) -> None:
        super().__init__()
        self.shape = (channels, height, width)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, 5, stride=2, padding=2),
            nn.ELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ELU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ELU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, *self.shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat, out_dim), nn.ELU())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(image.reshape(-1, *self.shape)))


class ObsSplit(nn.Module):
    """Feature extractor for observations laid out as ``[proprio (P), image pixels (C·H·W)]``.

    With no image shape it is the identity; otherwise the image part goes through an
    ``ImageEncoder`` and is concatenated back after the proprioception.
    """

    def __init__(
        self, obs_dim: int, image_shape: tuple[int, int, int] | None = None, image_features: int = 64
    ):
        super().__init__()
        self.image_shape = tuple(image_shape) if image_shape else None
        if self.image_shape is None:
            self.encoder = None
            self.proprio_dim = obs_dim
            self.out_dim = obs_dim
        else:
            pixels = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
            self.proprio_dim = obs_dim - pixels
            if self.proprio_dim < 0:
                raise ValueError(f"obs_dim {obs_dim} is smaller than the image's {pixels} pixels")
            self.encoder = ImageEncoder(*self.image_shape, out_dim=image_features)
            self.out_dim = self.proprio_dim + image_features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            return obs
        proprio, pixels = obs[..., : self.proprio_dim], obs[..., self.proprio_dim :]
        # Any leading dims (batch, or time x batch): the CNN sees them flattened, the result gets them back.
        features = self.encoder(pixels.reshape(-1, pixels.shape[-1])).reshape(*pixels.shape[:-1], -1)
        return torch.cat([proprio, features], dim=-1)

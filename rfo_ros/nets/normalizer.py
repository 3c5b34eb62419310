"""Running mean/variance observation normalisation (frozen inside the graph, updated outside it)."""

from __future__ import annotations

import torch
from torch import nn

from rfo_ros.distributed import merge_moments


class ObsNormalizer(nn.Module):
    """``(obs - mean) / sqrt(var + eps)``, clipped to ±``clip``; statistics live in buffers.

    ``update`` folds a batch (B, D) into the statistics (parallel Welford); ``forward`` is
    differentiable w.r.t. the observation and exported as part of the policy graph.
    """

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip, self.eps = clip, eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        batch = obs.reshape(-1, obs.shape[-1]).float()
        b_mean, b_var, b_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        # Under torchrun every rank folds in the whole (all ranks') batch, so the statistics stay equal.
        b_count, b_mean, b_var = merge_moments(b_count, b_mean, b_var)
        delta, total = b_mean - self.mean, self.count + b_count
        self.mean += delta * b_count / total
        self.var = (self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total) / total
        self.count = total

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.mean) / torch.sqrt(self.var + self.eps)).clamp(-self.clip, self.clip)

"""Plain MLP builder shared by every network."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import nn


def mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ELU
) -> nn.Sequential:
    """``in_dim -> hidden... -> out_dim`` with ``activation`` between layers (none after the last)."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in pairwise(dims):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)

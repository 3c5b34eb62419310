"""Actor = observation normaliser + policy: the unit that is trained, checkpointed and exported."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rfo_ros.nets.flow import FlowPolicy
from rfo_ros.nets.gaussian import TanhGaussianPolicy
from rfo_ros.nets.normalizer import ObsNormalizer
from rfo_ros.nets.rsl import RslGaussianPolicy

POLICY_KINDS: dict[str, type[nn.Module]] = {
    "flow": FlowPolicy,
    "gaussian": TanhGaussianPolicy,
    "rsl_gaussian": RslGaussianPolicy,  # needs the optional rsl_rl (requirements/bench.txt)
}


class Actor(nn.Module):
    """Raw observation (B, obs_dim) and noise (B, C, m) -> action chunk in [-1, 1] (B, C, m) and latent z."""

    def __init__(self, kind: str, policy_kwargs: dict[str, Any]) -> None:
        super().__init__()
        if kind not in POLICY_KINDS:
            raise ValueError(f"unknown policy kind {kind!r}; known: {sorted(POLICY_KINDS)}")
        self.kind, self.policy_kwargs = kind, dict(policy_kwargs)
        self.policy = POLICY_KINDS[kind](**policy_kwargs)
        self.normalizer = ObsNormalizer(policy_kwargs["obs_dim"])

    @property
    def chunk(self) -> int:
        return self.policy.chunk

    @property
    def action_dim(self) -> int:
        return self.policy.action_dim

    @property
    def obs_dim(self) -> int:
        return self.policy.obs_dim

    @property
    def device(self) -> torch.device:
        """Where the networks live (``run.device``); observations go there, actions come back."""
        return next(self.parameters()).device

    def forward(
        self, obs: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy(self.normalizer(obs), noise)

    def spec(self) -> dict[str, Any]:
        """What ``Actor.from_spec`` needs to rebuild this actor (stored in checkpoints)."""
        return {"kind": self.kind, "kwargs": self.policy_kwargs, "state": self.state_dict()}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Actor:
        actor = cls(spec["kind"], spec["kwargs"])
        actor.load_state_dict(spec["state"])
        return actor

"""Flow policy: actions from integrating a learned velocity field from Gaussian noise.

``x_0 = ε ~ N(0, I)`` of shape (B, C, m); ``x_{k+1} = x_k + (1/K) v_θ(x_k, k/K | o)``; latent
``z = x_K``; action ``a = tanh(z)`` in [-1, 1] (the task maps it to actuator units). The map
``ε -> a`` is differentiable, so the reparameterized gradient needs no likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rfo_ros.nets.encoders import ObsSplit
from rfo_ros.nets.mlp import mlp

SOLVERS = ("euler", "midpoint", "rk4", "dopri5")


def time_embedding(u: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of flow time ``u`` (B,) in [0, 1] -> (B, dim)."""
    freqs = torch.arange(1, dim // 2 + 1, dtype=u.dtype, device=u.device) * math.pi
    angles = u[:, None] * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def euler_integrate(velocity, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """K explicit Euler steps of ``dx/du = velocity(x, u)`` from u=0 to u=1 (unrolled; exportable)."""
    x, h = x0, 1.0 / steps
    for k in range(steps):
        u = torch.full((x.shape[0],), k * h, dtype=x.dtype, device=x.device)
        x = x + h * velocity(x, u)
    return x


class FlowPolicy(nn.Module):
    """Velocity field ``v_θ(x, u | o)`` over action chunks, plus its ODE sampler.

    Args:
        obs_dim: observation size (after normalisation; images flattened at the end, see ``ObsSplit``).
        action_dim: m, actuators per step.
        chunk: C, actions per flow sample.
        steps: K integration steps.
        solver: "euler" (hand-unrolled, the default and what export uses) or a torchdiffeq fixed/adaptive
            method ("midpoint", "rk4", "dopri5").
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        chunk: int = 1,
        steps: int = 4,
        hidden: Sequence[int] = (256, 256),
        time_dim: int = 16,
        solver: str = "euler",
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        if solver not in SOLVERS:
            raise ValueError(f"unknown flow solver {solver!r}; choose one of {SOLVERS}")
        self.obs_dim, self.action_dim, self.chunk, self.steps = obs_dim, action_dim, chunk, steps
        self.solver, self.time_dim = solver, time_dim
        self.features = ObsSplit(obs_dim, image_shape)
        self.latent_dim = chunk * action_dim
        self.net = mlp(self.features.out_dim + self.latent_dim + time_dim, hidden, self.latent_dim)

    def velocity(self, x: torch.Tensor, u: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        """v_θ for flat latents x (B, C·m), times u (B,), observation features (B, F) -> (B, C·m)."""
        return self.net(torch.cat([feat, x, time_embedding(u, self.time_dim)], dim=-1))

    def first_layer_parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The velocity MLP's first ``Linear([features, x, emb(u)])`` split by input: (W_feat, W_x,
        W_time, bias), views of the live parameters (gradients flow into them)."""
        first = self.net[0]
        n_feat, n_x = self.features.out_dim, self.latent_dim
        if not isinstance(first, nn.Linear) or first.in_features != n_feat + n_x + self.time_dim:
            raise ValueError(
                "flow velocity net must start with Linear(features + latent + time embedding); "
                f"got {first!r} for sizes {n_feat} + {n_x} + {self.time_dim}"
            )
        w = first.weight
        return w[:, :n_feat], w[:, n_feat : n_feat + n_x], w[:, n_feat + n_x :], first.bias

    def latent(self, obs_norm: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Integrate the flow: noise (B, C, m) -> latent z (B, C, m)."""
        feat = self.features(obs_norm)
        x0 = noise.reshape(noise.shape[0], self.latent_dim)
        if self.solver == "euler":
            z = self._euler_split(feat, x0)
        else:
            z = self._odeint(lambda x, u: self.velocity(x, u, feat), x0)
        return z.reshape(noise.shape)

    def _euler_split(self, feat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``euler_integrate`` of ``velocity``, the same maths in fewer operations: the first layer's
        observation part is computed once per sample and its time part once per step (for all
        samples), so each step recomputes only ``W_x·x``."""
        w_feat, w_x, w_time, bias = self.first_layer_parts()
        h = 1.0 / self.steps
        times = torch.arange(self.steps, dtype=x.dtype, device=x.device) * h
        stage_bias = F.linear(time_embedding(times, self.time_dim), w_time, bias)  # (K, H)
        context = F.linear(feat, w_feat)  # (B, H)
        rest = self.net[1:]
        for k in range(self.steps):
            x = x + h * rest(torch.addmm(context + stage_bias[k], x, w_x.t()))
        return x

    def _odeint(self, field, x0: torch.Tensor) -> torch.Tensor:
        from torchdiffeq import odeint

        t = torch.tensor([0.0, 1.0], dtype=x0.dtype, device=x0.device)
        options = None if self.solver == "dopri5" else {"step_size": 1.0 / self.steps}
        func = lambda u, x: field(x, u.expand(x.shape[0]))  # noqa: E731
        return odeint(func, x0, t, method=self.solver, options=options)[-1]

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, self.chunk, self.action_dim, generator=generator)

    def forward(
        self, obs_norm: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Action chunk in [-1, 1] (B, C, m) and its latent z (B, C, m). ``noise=0`` is the
        deterministic (zero-noise) mode; ``None`` draws fresh Gaussian noise."""
        if noise is None:
            noise = self.sample_noise(obs_norm.shape[0]).to(obs_norm)
        z = self.latent(obs_norm, noise)
        return torch.tanh(z), z

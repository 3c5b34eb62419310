"""rsl_rl's Gaussian MLP actor as one of our policy kinds (``rsl_gaussian``), for ``algo: rsl_ppo``.

rsl_rl is an optional benchmark dependency (``requirements/bench.txt``): it is imported only when this
kind is built, and its absence is a clear error rather than an ImportError deep in a stack.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

import torch
from torch import nn

from rfo_ros.nets.encoders import ObsSplit

INSTALL_HINT = "pip install -r requirements/bench.txt (rsl-rl-lib, the PPO of legged_gym, Isaac Lab, mjlab)"


def require_rsl_rl() -> ModuleType:
    """The ``rsl_rl`` package; raises ImportError saying how to install it when it is missing."""
    try:
        return importlib.import_module("rsl_rl")
    except ImportError as exc:
        raise ImportError(f"algo rsl_ppo needs rsl_rl, which is not installed: {INSTALL_HINT}") from exc


def as_obs_dict(obs_norm: torch.Tensor, critic_obs_norm: torch.Tensor | None = None):  # -> TensorDict
    """rsl_rl's observation form (tensordict, rsl_rl's dependency, imported lazily): the ``policy`` group
    (B, D), and the ``critic`` group (B, D') when the critic observes privileged fields."""
    from tensordict import TensorDict

    groups = {"policy": obs_norm}
    if critic_obs_norm is not None:
        groups["critic"] = critic_obs_norm
    return TensorDict(groups, batch_size=[obs_norm.shape[0]], device=obs_norm.device)


#: Both of rsl_rl's networks read the one ``policy`` observation group.
OBS_GROUPS = {"actor": ["policy"], "critic": ["policy"]}
#: With privileged fields, rsl_rl's critic reads its own ``critic`` group (asymmetric actor-critic).
PRIVILEGED_OBS_GROUPS = {"actor": ["policy"], "critic": ["critic"]}


class RslGaussianPolicy(nn.Module):
    """rsl_rl's ``MLPModel`` with its Gaussian head: ``a = clip(μ(o) + σ ε, -1, 1)``, chunk length 1.

    The latent ``z = μ + σ ε`` is what rsl_rl samples and scores (its log-probability ignores the clip,
    as rsl_rl does with Isaac Lab's action clipping); the action is ``z`` clipped to our [-1, 1] box.
    Observations come normalised by the ``Actor``'s ``ObsNormalizer``, so rsl_rl's own is off.
    """

    chunk = 1

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (512, 256, 128),
        activation: str = "elu",
        init_std: float = 1.0,
        image_shape: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        require_rsl_rl()
        from rsl_rl.models import MLPModel

        if image_shape is not None:
            raise ValueError(f"algo rsl_ppo: rsl_rl's MLP actor takes no image input (image {image_shape})")
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.features = ObsSplit(obs_dim)  # the identity: declares the layout (proprio_dim) to export
        self.model = MLPModel(
            as_obs_dict(torch.zeros(1, obs_dim)),
            OBS_GROUPS,
            "actor",
            action_dim,
            hidden_dims=list(hidden),
            activation=activation,
            obs_normalization=False,
            distribution_cfg={
                "class_name": "GaussianDistribution",
                "init_std": init_std,
                "std_type": "scalar",  # rsl_rl's default parameterisation
            },
        )

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise (batch, 1, m)."""
        return torch.randn(batch, 1, self.action_dim, generator=generator)

    def forward(
        self, obs_norm: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Action (B, 1, m) in [-1, 1] and the unclipped sample z (B, 1, m); ``noise=0`` gives the mean."""
        dist = self.model.distribution
        dist.update(self.model.mlp(self.model.get_latent(as_obs_dict(obs_norm))))
        mean, std = dist.mean, dist.std
        if noise is None:  # the CPU generator on every device, as the other policy kinds
            noise = self.sample_noise(mean.shape[0]).to(mean)
        z = (mean + std * noise.reshape(mean.shape))[:, None]
        return z.clamp(-1.0, 1.0), z

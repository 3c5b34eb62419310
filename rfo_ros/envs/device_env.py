"""Networks on a GPU, simulation on the CPU: the env boundary moves tensors between the two.

MuJoCo and the finite-difference Jacobians run on CPU threads whatever ``run.device`` says; only the
networks (and everything the algorithms compute from observations) move. ``Tensor.to`` is
differentiable, so the reparameterised gradient still flows from the rewards on the device, through
the CPU simulator's Jacobians, back to the actions that the device produced.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from rfo_ros.envs.vec_env import StepResult, VecEnv

#: Where the simulation and its tensors live.
SIM_DEVICE = torch.device("cpu")


class DeviceEnv:
    """A ``VecEnv`` seen from ``device``: observations, rewards and flags arrive there, actions leave it.

    Everything else (``num_envs``, ``stats``, ``sim``, ``state_dict``, ...) is the wrapped env's.
    """

    def __init__(self, env: VecEnv, device: torch.device) -> None:
        self.env, self.device = env, device

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self) -> torch.Tensor:
        return self.env.reset().to(self.device)

    def observe(self) -> torch.Tensor:
        return self.env.observe().to(self.device)

    def critic_view(self, obs: torch.Tensor) -> torch.Tensor:
        return self.env.critic_view(obs.to(SIM_DEVICE)).to(self.device)

    def step(self, action: torch.Tensor) -> StepResult:
        result = self.env.step(action.to(SIM_DEVICE))
        moved = {f.name: getattr(result, f.name).to(self.device) for f in dataclasses.fields(result)}
        return StepResult(**moved)


def on_device(env: VecEnv, device: torch.device) -> VecEnv | DeviceEnv:
    """``env`` as networks on ``device`` see it (the env itself on the CPU: nothing to move)."""
    return env if device == SIM_DEVICE else DeviceEnv(env, device)


def resolve_device(requested: str, local_rank: int = 0) -> tuple[torch.device, str | None]:
    """The device ``run.device`` names, and a warning when it falls back to the CPU.

    ``cpu``; ``cuda`` (under torchrun: ``cuda:LOCAL_RANK``, one GPU per rank); ``cuda:N``; ``auto``:
    CUDA where it is available, else the CPU. A CUDA request on a machine without CUDA trains on the
    CPU, and says so, rather than failing a run a user may have copied from a GPU workstation.
    """
    if requested == "cpu":
        return SIM_DEVICE, None
    if not torch.cuda.is_available():
        if requested == "auto":
            return SIM_DEVICE, None
        return (
            SIM_DEVICE,
            f"run.device {requested!r}: CUDA is not available here; the networks train on the CPU",
        )
    if requested in ("cuda", "auto"):
        return torch.device("cuda", local_rank % torch.cuda.device_count()), None
    device = torch.device(requested)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"run.device {requested!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return device, None


def tensors_to(tree: Any, device: torch.device) -> Any:
    """``tree`` (nested dicts, lists, tuples) with every tensor moved to ``device`` (checkpoints load on
    the CPU; an algorithm's saved state goes back to its networks' device)."""
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: tensors_to(v, device) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(tensors_to(v, device) for v in tree)
    return tree


def act_on(actor: Any, obs: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """``actor``'s action chunk for CPU ``obs``, computed on the actor's device, returned on the CPU
    (an ``OnnxActor`` or any actor without a ``device`` runs where the observation is)."""
    device = getattr(actor, "device", SIM_DEVICE)
    actions, _ = actor(obs.to(device), None if noise is None else noise.to(device))
    return actions.to(SIM_DEVICE)

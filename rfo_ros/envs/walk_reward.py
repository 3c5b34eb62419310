"""The velocity-tracking reward of ``LeggedWalk``: its terms, written once, and its closed-form gradient.

``reward_terms`` is the definition, over numpy arrays or torch tensors alike. In training the reward runs
in numpy inside one ``torch.autograd.Function`` whose backward is ``_reward_vjp``: through autograd the
same sum was ~200 small torch operations forward and as many backward nodes per control step, which at
32 envs cost more than the arithmetic (tests/test_walk_reward.py checks the closed form against
autograd of ``reward_terms`` on torch tensors, every term and every input).

Inputs, per env (N rows), all in the body frame after the step unless named otherwise: ``command``
(vx, vy, yaw rate) the policy saw, trunk ``height``, linear velocity ``lin_vel``, angular velocity
``ang_vel``, projected ``gravity``, ``joint_vel`` (N, n), and the PD torque's parts at the step's start:
``target`` (N, n) position targets, ``joint_pos`` and ``joint_vel_before`` (N, n).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Array = Any  # np.ndarray or torch.Tensor

#: The order of ``walk_reward``'s tensor inputs.
INPUTS = ("command", "height", "lin_vel", "ang_vel", "gravity", "joint_vel", "target", "joint_pos",
          "joint_vel_before")  # fmt: skip


@dataclass(frozen=True)
class WalkRewardSpec:
    """What a robot file fixes about the reward: term weights (0 leaves a term out), kernel widths,
    the height band and the PD gains that turn targets into torques (arrays (n,))."""

    weights: dict[str, float]
    lin_vel_sigma_sq: float
    yaw_rate_sigma_sq: float
    height_band: tuple[float, float]
    height_width: float
    kp: np.ndarray
    kd: np.ndarray
    torque_limit: np.ndarray

    def as_tensors(self) -> WalkRewardSpec:
        """This spec with torch gains, for evaluating ``reward_terms`` on tensors."""
        kp, kd, limit = (torch.as_tensor(np.asarray(x)) for x in (self.kp, self.kd, self.torque_limit))
        return dataclasses.replace(self, kp=kp, kd=kd, torque_limit=limit)


def _is_tensor(x: Array) -> bool:
    return isinstance(x, torch.Tensor)


def _exp(x: Array) -> Array:
    return torch.exp(x) if _is_tensor(x) else np.exp(x)


def _relu(x: Array) -> Array:
    return torch.relu(x) if _is_tensor(x) else np.maximum(x, 0.0)


def _clip(x: Array, limit: Array) -> Array:
    if _is_tensor(x):
        return torch.maximum(torch.minimum(x, limit), -limit)
    return np.clip(x, -limit, limit)


def raw_torque(spec: WalkRewardSpec, target: Array, joint_pos: Array, joint_vel: Array) -> Array:
    """The PD torque before its limit: ``kp (q* - q) - kd q̇`` (N, n)."""
    return spec.kp * (target - joint_pos) - spec.kd * joint_vel


def reward_terms(spec: WalkRewardSpec, x: dict[str, Array]) -> dict[str, Array]:
    """Each weighted term (N,) by name, terms of weight 0 left out; the reward is their sum.

    ``x`` maps every name of ``INPUTS`` to its array. ``spec`` holds numpy gains for numpy inputs and
    torch gains (``as_tensors``) for tensors."""
    w, cmd, v, omega = spec.weights, x["command"], x["lin_vel"], x["ang_vel"]
    low, high = spec.height_band

    def band() -> Array:
        distance = _relu(low - x["height"]) + _relu(x["height"] - high)
        return _exp(-((distance / spec.height_width) ** 2))

    terms = {
        "track_lin_vel": lambda: _exp(-((cmd[:, :2] - v[:, :2]) ** 2).sum(1) / spec.lin_vel_sigma_sq),
        "track_yaw_rate": lambda: _exp(-((cmd[:, 2] - omega[:, 2]) ** 2) / spec.yaw_rate_sigma_sq),
        "height": band,
        "orientation": lambda: (x["gravity"][:, :2] ** 2).sum(1),
        "lin_vel_z": lambda: v[:, 2] ** 2,
        "ang_vel_xy": lambda: (omega[:, :2] ** 2).sum(1),
        "joint_vel": lambda: (x["joint_vel"] ** 2).sum(1),
        "torque": lambda: (_clip(raw_torque(spec, x["target"], x["joint_pos"], x["joint_vel_before"]),
                                 spec.torque_limit) ** 2).sum(1),  # fmt: skip
    }
    return {name: w[name] * term() for name, term in terms.items() if w[name] != 0}


def _reward_vjp(spec: WalkRewardSpec, x: dict[str, np.ndarray], g: np.ndarray) -> dict[str, np.ndarray]:
    """The reward's gradient times the upstream ``g`` (N,), per input of ``reward_terms`` (numpy)."""
    w, cmd, v, omega = spec.weights, x["command"], x["lin_vel"], x["ang_vel"]
    grads = {name: np.zeros_like(x[name]) for name in INPUTS}
    g1 = g[:, None]
    if w["track_lin_vel"]:
        error = cmd[:, :2] - v[:, :2]
        kernel = np.exp(-(error**2).sum(1) / spec.lin_vel_sigma_sq)
        d = (w["track_lin_vel"] * 2.0 / spec.lin_vel_sigma_sq) * (g * kernel)[:, None] * error
        grads["lin_vel"][:, :2] += d
        grads["command"][:, :2] -= d
    if w["track_yaw_rate"]:
        error = cmd[:, 2] - omega[:, 2]
        kernel = np.exp(-(error**2) / spec.yaw_rate_sigma_sq)
        d = (w["track_yaw_rate"] * 2.0 / spec.yaw_rate_sigma_sq) * g * kernel * error
        grads["ang_vel"][:, 2] += d
        grads["command"][:, 2] -= d
    if w["height"]:
        low, high = spec.height_band
        h = x["height"]
        below, above = np.maximum(low - h, 0.0), np.maximum(h - high, 0.0)
        distance = below + above
        kernel = np.exp(-((distance / spec.height_width) ** 2))
        slope = (above > 0).astype(h.dtype) - (below > 0)  # d distance / d h, 0 inside the band
        grads["height"] += w["height"] * g * kernel * (-2.0 * distance / spec.height_width**2) * slope
    if w["orientation"]:
        grads["gravity"][:, :2] += 2.0 * w["orientation"] * g1 * x["gravity"][:, :2]
    if w["lin_vel_z"]:
        grads["lin_vel"][:, 2] += 2.0 * w["lin_vel_z"] * g * v[:, 2]
    if w["ang_vel_xy"]:
        grads["ang_vel"][:, :2] += 2.0 * w["ang_vel_xy"] * g1 * omega[:, :2]
    if w["joint_vel"]:
        grads["joint_vel"] += 2.0 * w["joint_vel"] * g1 * x["joint_vel"]
    if w["torque"]:
        tau = raw_torque(spec, x["target"], x["joint_pos"], x["joint_vel_before"])
        inside = np.abs(tau) < spec.torque_limit  # the limit passes no gradient
        d_tau = 2.0 * w["torque"] * g1 * tau * inside
        grads["target"] += spec.kp * d_tau
        grads["joint_pos"] -= spec.kp * d_tau
        grads["joint_vel_before"] -= spec.kd * d_tau
    return grads


class _WalkReward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec: WalkRewardSpec, *inputs: torch.Tensor) -> torch.Tensor:
        # Copies: the backward must see the values of now even if a caller later writes into its tensors.
        x = {name: np.array(t.detach().numpy()) for name, t in zip(INPUTS, inputs, strict=True)}
        ctx.spec, ctx.x = spec, x
        total = np.zeros(len(x["height"]))
        for term in reward_terms(spec, x).values():  # summed in the order the terms are listed
            total = total + term
        return torch.from_numpy(total)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grads = _reward_vjp(ctx.spec, ctx.x, grad.numpy())
        wanted = ctx.needs_input_grad[1:]
        pairs = zip(INPUTS, wanted, strict=True)
        return (None, *(torch.from_numpy(grads[name]) if want else None for name, want in pairs))


def walk_reward(spec: WalkRewardSpec, x: dict[str, torch.Tensor]) -> torch.Tensor:
    """The reward (N,) float64 of CPU tensors ``x`` (``INPUTS``), one autograd node with ``_reward_vjp``
    as its backward."""
    tensors = [x[name].to(torch.float64) for name in INPUTS]
    if any(t.device.type != "cpu" for t in tensors):  # the simulator's tensors live on the CPU
        raise ValueError(f"walk_reward takes CPU tensors (the simulator's), got {tensors[0].device}")
    return _WalkReward.apply(spec, *tensors)


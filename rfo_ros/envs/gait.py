"""A gait clock and an open-loop stepping prior that the policy's action adds to (residual learning).

A robot file's ``gait`` section (``rfo_ros.robot.Gait``) names a stepping frequency f and, per policy
joint, a phase offset p_j (cycles) and a lift amplitude l_j (rad). With t the time since the episode
(or the controller) started and φ = 2π f t:

    clock(t)   = (sin φ, cos φ)                                   an observation field, ``gait_clock``
    prior_j(t) = l_j · max(sin(φ + 2π p_j), 0)                    added to the joint target

so each leg lifts in the swing half of its own phase and rests in the other half; a trot is two
diagonal pairs half a cycle apart. The prior alone steps in place: walking, balance and speed are the
policy's. Why: a first-order method (RFO, SHAC) starting from a standing robot sees a gradient that
improves standing and none that discovers stepping, and on the fine-timestep Go1 it stays standing; a
periodic baseline with a residual policy gives it a stepping robot to improve (residual policy learning
over a simple gait for first-order gradients: Luo et al., 2024, arXiv:2410.03076).

Everything here is written over ``sin φ`` and ``cos φ`` so that the exported graph can compute the prior
from the observation's clock field alone (``prior_from_clock``): a deployment only supplies the clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rfo_ros.envs.legged_obs import ObsLayout, _is_tensor

if TYPE_CHECKING:
    import torch

__all__ = ["GaitPrior", "clock_columns"]


Array = Any  # np.ndarray or torch.Tensor: the node loads no torch


def clock_columns(layout: ObsLayout, history: int = 1) -> slice:
    """Where the newest frame's ``gait_clock`` field sits in an observation of ``history`` frames of
    ``layout`` (oldest first): what the exported graph and the node read the prior's clock from."""
    field = layout.slice("gait_clock")
    start = (history - 1) * layout.size
    return slice(start + field.start, start + field.stop)


def _swing_lift(swing: Array, lift: np.ndarray) -> Array:
    """``lift · max(swing, 0)`` for numpy arrays or torch tensors (in the tensor's dtype)."""
    if _is_tensor(swing):
        import torch

        return torch.as_tensor(lift, dtype=swing.dtype) * torch.clamp(swing, min=0.0)
    return lift * np.maximum(swing, 0.0)


class GaitPrior:
    """The clock and prior of one robot's ``gait`` section, for a control period ``dt`` (s).

    The clock's functions take torch tensors (training); the prior's take numpy arrays or torch tensors
    (the node and the exported graph).
    """

    def __init__(self, frequency_hz: float, phase: Sequence[float], lift: Sequence[float], dt: float) -> None:
        if not frequency_hz > 0:
            raise ValueError(f"gait.frequency_hz must be > 0, got {frequency_hz}")
        if len(phase) != len(lift):
            raise ValueError(f"gait.phase has {len(phase)} values, gait.lift {len(lift)}")
        self.frequency_hz, self.dt = float(frequency_hz), float(dt)
        angle = 2 * math.pi * np.asarray(phase, dtype=np.float64)
        self._cos_p, self._sin_p = np.cos(angle), np.sin(angle)
        self._lift = np.asarray(lift, dtype=np.float64)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], dt: float) -> GaitPrior:
        """From a robot file's ``gait`` section as a mapping (a model's metadata carries it so)."""
        return cls(spec["frequency_hz"], spec["phase"], spec["lift"], dt)

    @property
    def step_angle(self) -> float:
        """How far φ advances in one control step (rad)."""
        return 2 * math.pi * self.frequency_hz * self.dt

    def clock(self, steps: torch.Tensor) -> torch.Tensor:
        """(N, 2) ``(sin φ, cos φ)`` after ``steps`` (N,) control steps."""
        import torch

        phi = steps.to(torch.float64) * self.step_angle
        return torch.stack([torch.sin(phi), torch.cos(phi)], dim=1)

    def clock_at(self, step: int) -> np.ndarray:
        """(2,) ``(sin φ, cos φ)`` after ``step`` control steps (a controller's own count)."""
        phi = step * self.step_angle
        return np.array([math.sin(phi), math.cos(phi)])

    def prior_from_clock(self, clock: Array, ahead: int = 0) -> Array:
        """(N, n) joint offsets (rad) ``ahead`` control steps after the time whose clock is ``clock``
        (N, 2): the clock is turned by ``ahead`` steps, then each joint's phase is added."""
        sin, cos = clock[:, :1], clock[:, 1:2]
        if ahead:
            turn_sin, turn_cos = math.sin(ahead * self.step_angle), math.cos(ahead * self.step_angle)
            sin, cos = sin * turn_cos + cos * turn_sin, cos * turn_cos - sin * turn_sin
        if _is_tensor(clock):
            import torch

            p_cos, p_sin = (torch.as_tensor(x, dtype=clock.dtype) for x in (self._cos_p, self._sin_p))
        else:
            p_cos, p_sin = self._cos_p, self._sin_p
        return _swing_lift(sin * p_cos + cos * p_sin, self._lift)  # lift · max(sin(φ + 2π p_j), 0)

    def chunk_prior(self, clock: Array, chunk: int) -> Array:
        """(N, C, n): the prior at each of a chunk's ``chunk`` steps, the first at ``clock`` (N, 2)."""
        priors = [self.prior_from_clock(clock, ahead=k) for k in range(chunk)]
        if _is_tensor(clock):
            import torch

            return torch.stack(priors, dim=1)
        return np.stack(priors, axis=1)

    def prior(self, steps: torch.Tensor) -> torch.Tensor:
        """(N, n) joint offsets (rad) after ``steps`` (N,) control steps."""
        return self.prior_from_clock(self.clock(steps))

"""``R(q)ᵀ v`` for batched CPU tensors as one autograd node with its closed-form gradient.

The training loop rotates the trunk's velocity and gravity into the body frame several times per
control step; through torch's autograd each rotation is ~12 small operations forward and as many
backward nodes, which at 32 envs cost far more than the arithmetic. Here the forward and the
vector-Jacobian product run in numpy, one node per rotation. ``legged_obs.quat_rotate_inverse`` calls
this for CPU tensors; tests/test_closed_form_grads.py checks it against autograd of the formula.

With ``u`` the quaternion's vector part and ``w`` its scalar part, ``f = v - 2w (u×v) + 2 u×(u×v)``
(not assuming a unit quaternion, as the formula torch differentiates), and for an upstream gradient ``ḡ``:
``∂f/∂v ᵀ ḡ = ḡ + 2w (u×ḡ) + 2 u×(u×ḡ)``, ``∂f/∂w ᵀ ḡ = -2 (u×v)·ḡ``,
``∂f/∂u ᵀ ḡ = -2w (v×ḡ) + 2 [ḡ (u·v) + v (u·ḡ) - 2 u (v·ḡ)]``.
"""

from __future__ import annotations

import numpy as np
import torch

from rfo_ros.envs import legged_obs


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (N, 3) arrays: ``legged_obs``'s, which is the forward's too."""
    return legged_obs._cross(a, b, like=a)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product (N, 1)."""
    return np.einsum("ij,ij->i", a, b)[:, None]


class _QuatRotateInverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # Copies: the backward must see the values of now even if a caller later writes into its tensors.
        qn, vn = np.array(q.detach().numpy()), np.array(v.detach().numpy())
        ctx.arrays = (qn, vn)
        return torch.from_numpy(legged_obs.quat_rotate_inverse(qn, vn))  # its numpy path

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        (q, v), g = ctx.arrays, grad.numpy()
        w, u = q[:, :1], q[:, 1:]
        grad_q = grad_v = None
        if ctx.needs_input_grad[0]:
            grad_w = -2.0 * _dot(_cross(u, v), g)
            grad_u = -2.0 * w * _cross(v, g) + 2.0 * (g * _dot(u, v) + v * _dot(u, g) - 2.0 * u * _dot(v, g))
            grad_q = torch.from_numpy(np.concatenate((grad_w, grad_u), axis=1))
        if ctx.needs_input_grad[1]:
            grad_v = torch.from_numpy(g + 2.0 * w * _cross(u, g) + 2.0 * _cross(u, _cross(u, g)))
        return grad_q, grad_v


def can_rotate(q: torch.Tensor, v: torch.Tensor) -> bool:
    """True where the numpy node applies: (N, 4) and (N, 3) float64 CPU tensors, N the same."""
    return (
        q.dim() == 2 == v.dim()
        and q.shape[0] == v.shape[0]
        and q.shape[1] == 4
        and v.shape[1] == 3
        and q.dtype == torch.float64 == v.dtype
        and q.device.type == "cpu" == v.device.type
    )


def quat_rotate_inverse_cpu(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``R(q)ᵀ v`` (N, 3) as one autograd node; ``can_rotate(q, v)`` must hold."""
    return _QuatRotateInverse.apply(q, v)

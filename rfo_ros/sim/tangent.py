"""Maps between gradients w.r.t. ``qpos`` (nq) and w.r.t. MuJoCo's tangent space (nv).

Hinge and slide joints are 1:1. A quaternion q (ball joints, the rotation of free joints) moves in
the tangent space as ``q ⊗ exp(v/2)`` (local frame, as ``mj_integratePos``), so
``J = d q / d v = ½ Λ(q)[:, 1:]`` (4x3), with Λ(q) the left-multiplication matrix, and
``L = d v / d q = 2 Λ(q)[:, 1:]ᵀ`` (3x4) for a unit q; ``L J = I``.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch


def _quat_left_matrix_cols(q: torch.Tensor) -> torch.Tensor:
    """Λ(q)[:, 1:] for q of shape (N, 4) -> (N, 4, 3): the columns that multiply a pure quaternion."""
    w, x, y, z = q.unbind(-1)
    rows = [
        torch.stack([-x, -y, -z], -1),
        torch.stack([w, -z, y], -1),
        torch.stack([z, w, -x], -1),
        torch.stack([-y, x, w], -1),
    ]
    return torch.stack(rows, -2)


def joint_layout(model: mujoco.MjModel) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Where each coordinate lives: (qpos indices, dof indices) of the 1:1 ones (hinge, slide and the
    free joint's position), and (qpos address, dof address) of every quaternion."""
    lin_q, lin_v, quats = [], [], []
    for j in range(model.njnt):
        qa, da, jtype = int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j]), model.jnt_type[j]
        if jtype == mujoco.mjtJoint.mjJNT_FREE:
            lin_q += range(qa, qa + 3)
            lin_v += range(da, da + 3)
            quats.append((qa + 3, da + 3))
        elif jtype == mujoco.mjtJoint.mjJNT_BALL:
            quats.append((qa, da))
        else:
            lin_q.append(qa)
            lin_v.append(da)
    return lin_q, lin_v, quats


class TangentMap:
    """Index bookkeeping of one model's joints, for batched gradient conversions."""

    def __init__(self, model: mujoco.MjModel) -> None:
        lin_q, lin_v, quats = joint_layout(model)
        self.nq, self.nv = model.nq, model.nv
        self.lin_q = torch.tensor(lin_q, dtype=torch.long)
        self.lin_v = torch.tensor(lin_v, dtype=torch.long)
        self.quats = quats
        self.identity = not quats

    def qpos_grad_to_tangent(self, g_qpos: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """Jᵀ g: gradient w.r.t. qpos (N, nq) at ``qpos`` -> gradient w.r.t. the tangent (N, nv)."""
        if self.identity:
            return g_qpos
        g = g_qpos.new_zeros(g_qpos.shape[0], self.nv)
        g[:, self.lin_v] = g_qpos[:, self.lin_q]
        for qa, da in self.quats:
            cols = _quat_left_matrix_cols(qpos[:, qa : qa + 4])
            g[:, da : da + 3] = 0.5 * torch.einsum("nij,ni->nj", cols, g_qpos[:, qa : qa + 4])
        return g

    def tangent_grad_to_qpos(self, g_tan: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """Lᵀ g: gradient w.r.t. the tangent (N, nv) at ``qpos`` -> gradient w.r.t. qpos (N, nq)."""
        if self.identity:
            return g_tan
        g = g_tan.new_zeros(g_tan.shape[0], self.nq)
        g[:, self.lin_q] = g_tan[:, self.lin_v]
        for qa, da in self.quats:
            cols = _quat_left_matrix_cols(qpos[:, qa : qa + 4])
            g[:, qa : qa + 4] = 2.0 * torch.einsum("nij,nj->ni", cols, g_tan[:, da : da + 3])
        return g


def integrate_tangent(model: mujoco.MjModel, qpos: np.ndarray, v: np.ndarray) -> np.ndarray:
    """qpos ⊕ v for one env (used by finite-difference tests to perturb states correctly)."""
    out = np.array(qpos, dtype=np.float64)
    mujoco.mj_integratePos(model, out, np.asarray(v, dtype=np.float64), 1.0)
    return out

"""One ``torch.autograd.Function`` over a batched ``mj_step``.

Forward steps all envs (and, only if some input requires grad, has ``mjd_transitionFD`` Jacobians
computed, inline or overlapped in the background); backward waits for them and applies ``Aᵀ`` and ``Bᵀ``
to the incoming gradient, converting between qpos and tangent coordinates. Diverged envs, and env-steps
whose Jacobians came out non-finite, get zero gradient so they can never poison the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from rfo_ros.sim.batched import BatchedSim
from rfo_ros.sim.tangent import TangentMap


@dataclass
class SimState:
    """Physical state of N envs, float64: qpos (N, nq), qvel (N, nv), act (N, na)."""

    qpos: torch.Tensor
    qvel: torch.Tensor
    act: torch.Tensor

    def detach(self) -> SimState:
        return SimState(self.qpos.detach(), self.qvel.detach(), self.act.detach())

    def where(self, mask: torch.Tensor, other: SimState) -> SimState:
        """Rows of ``other`` where ``mask`` (N,) is true, else of ``self`` (graph flows per row)."""
        m = mask[:, None]
        return SimState(
            torch.where(m, other.qpos, self.qpos),
            torch.where(m, other.qvel, self.qvel),
            torch.where(m, other.act, self.act),
        )


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


class _MjStep(torch.autograd.Function):
    # The Jacobians stay numpy arrays on ctx and backward's products run in numpy: at these sizes torch's
    # intra-op thread pool costs more than the maths, and it competes with the simulation threads
    # (measured on a loaded 2-core machine: 2 ms per torch.einsum vs 15 us per np.matmul).
    @staticmethod
    def forward(ctx, sim: BatchedSim, tmap: TangentMap, qpos, qvel, act, ctrl):
        want_grad = any(ctx.needs_input_grad[2:])
        out = sim.step(_np(qpos), _np(qvel), _np(act), _np(ctrl), jacobians=want_grad)
        qpos_next = torch.from_numpy(out.qpos)
        diverged = torch.from_numpy(out.diverged)
        if want_grad:
            qpos_prev = qpos.detach().to(torch.float64)
            if out.diverged.any():
                # A diverged env gets zero gradient (its Jacobians are zeroed in backward, once they
                # exist). The states its tangent maps read may hold NaN, and NaN * 0 is NaN: overwrite.
                drop = diverged[:, None]
                qpos_prev = torch.where(drop, 0.0, qpos_prev)
                qpos_next_safe = torch.where(drop, 0.0, qpos_next)
            else:
                qpos_next_safe = qpos_next
            ctx.save_for_backward(qpos_prev, qpos_next_safe)
            ctx.jacobians, ctx.diverged = out.jacobians, out.diverged
            ctx.tmap = tmap
            ctx.nv, ctx.na = sim.nv, sim.na
        ctx.mark_non_differentiable(diverged)
        return qpos_next, torch.from_numpy(out.qvel), torch.from_numpy(out.act), diverged

    @staticmethod
    @once_differentiable
    def backward(ctx, g_qpos, g_qvel, g_act, _g_diverged):
        qpos_prev, qpos_next = ctx.saved_tensors
        tmap, nv, na = ctx.tmap, ctx.nv, ctx.na
        A, B = ctx.jacobians.result()  # waits here if they are being computed in the background
        if ctx.diverged.any():
            A[ctx.diverged] = 0.0
            B[ctx.diverged] = 0.0
        g_next = torch.cat([tmap.qpos_grad_to_tangent(g_qpos, qpos_next), g_qvel, g_act[:, :na]], dim=1)
        g_row = g_next.to(torch.float64).numpy()[:, None, :]  # (N, 1, 2nv+na)
        g_prev = torch.from_numpy(np.matmul(g_row, A)[:, 0])  # Aᵀ g per env
        g_ctrl = torch.from_numpy(np.matmul(g_row, B)[:, 0])  # Bᵀ g per env
        g_qpos_prev = tmap.tangent_grad_to_qpos(g_prev[:, :nv], qpos_prev)
        return None, None, g_qpos_prev, g_prev[:, nv : 2 * nv], g_prev[:, 2 * nv :], g_ctrl


def mj_step_autograd(
    sim: BatchedSim, tmap: TangentMap, state: SimState, ctrl: torch.Tensor
) -> tuple[SimState, torch.Tensor]:
    """One differentiable step of every env. Returns the next state and the (N,) divergence mask.

    Jacobians are only computed when ``state`` or ``ctrl`` requires grad and grad mode is on; the
    no-grad path costs a plain ``mj_step``.
    """
    n = sim.num_envs
    expected = {"qpos": (n, sim.nq), "qvel": (n, sim.nv), "act": (n, sim.na), "ctrl": (n, sim.nu)}
    given = {"qpos": state.qpos, "qvel": state.qvel, "act": state.act, "ctrl": ctrl}
    for name, shape in expected.items():
        if tuple(given[name].shape) != shape:
            got = tuple(given[name].shape)
            raise ValueError(f"{name} must have shape {shape} (num_envs, dim), got {got}")
    qpos, qvel, act, diverged = _MjStep.apply(
        sim, tmap, state.qpos, state.qvel, state.act, ctrl.to(torch.float64)
    )
    return SimState(qpos, qvel, act), diverged

"""N ``MjData`` sharing one ``MjModel``: threaded stepping and finite-difference step Jacobians.

MuJoCo's Python bindings release the GIL inside ``mj_step`` and ``mjd_transitionFD``, so a small
thread pool scales across cores without processes. The calling thread works too, and every worker pulls
the next env index from one shared iterator: a thread that the OS (or a neighbour's job) slows down
simply takes fewer envs, instead of holding the whole batch up as a fixed chunk would.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import mujoco
import numpy as np

# Warnings that mean the step cannot be trusted (MuJoCo may also silently reset the data on BADQACC).
# BADCTRL: a NaN/huge ctrl that MuJoCo silently replaced by zeros, so the step is not the one asked for.
_FATAL_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADCTRL,
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQPOS,
)
_FATAL_INDEX = np.array([int(w) for w in _FATAL_WARNINGS])


@dataclass(frozen=True)
class FDConfig:
    """Finite-difference settings for ``mjd_transitionFD``.

    eps 1e-6 with centered differences matched whole-rollout finite differences to ~1e-7 relative
    on a contact-rich legged model; forward differences at the same eps only to ~1e-3 (see DESIGN §3).
    """

    eps: float = 1e-6
    centered: bool = True


@dataclass
class StepOutput:
    """Next state of every env and, when asked for, the tangent-space step Jacobians.

    Shapes: qpos (N, nq), qvel (N, nv), act (N, na); A (N, 2nv+na, 2nv+na), B (N, 2nv+na, nu);
    ``diverged`` (N,) marks envs whose step produced a non-finite or exploding state or a solver warning.
    """

    qpos: np.ndarray
    qvel: np.ndarray
    act: np.ndarray
    diverged: np.ndarray
    A: np.ndarray | None = None
    B: np.ndarray | None = None


class BatchedSim:
    """Steps ``num_envs`` copies of one model in a thread pool, optionally with FD Jacobians."""

    def __init__(
        self,
        model: mujoco.MjModel,
        num_envs: int,
        threads: int | None = None,
        fd: FDConfig = FDConfig(),
        max_qvel: float = 1e3,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.model = model
        self.num_envs = num_envs
        self.fd = fd
        self.max_qvel = max_qvel
        self.threads = max(1, min(threads or os.cpu_count() or 1, num_envs))
        self.datas = [mujoco.MjData(model) for _ in range(num_envs)]
        self.nq, self.nv, self.na, self.nu = model.nq, model.nv, model.na, model.nu
        self.state_dim = 2 * self.nv + self.na
        # Per-env numpy views into MjData, made once: building them is most of the per-env Python cost.
        self._views = [(d.qpos, d.qvel, d.act, d.ctrl, d.warning.number) for d in self.datas]
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        #: Seconds spent in mj_step and in mjd_transitionFD, summed over threads / threads (≈ wall).
        self.timing = {"step": 0.0, "fd": 0.0}

    def warmstart(self) -> np.ndarray:
        """Each env's solver warm-start (N, nv): part of the state for bit-exact resumption."""
        return np.stack([d.qacc_warmstart.copy() for d in self.datas])

    def set_warmstart(self, warmstart: np.ndarray) -> None:
        for d, w in zip(self.datas, warmstart, strict=True):
            d.qacc_warmstart[:] = w

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _map(self, fn) -> list:
        """``fn(indices)`` on every thread (the caller's included), all drawing from one env iterator.

        ``next`` on a shared ``range`` iterator is atomic under the GIL, so each env is taken once.
        """
        indices = iter(range(self.num_envs))
        if self._pool is None:
            return [fn(indices)]
        futures = [self._pool.submit(fn, indices) for _ in range(self.threads - 1)]
        try:
            mine = fn(indices)
        finally:  # never leave a worker touching the MjData after returning, even on an error
            theirs = [future.result() for future in futures]
        return [mine, *theirs]

    def step(
        self,
        qpos: np.ndarray,
        qvel: np.ndarray,
        act: np.ndarray,
        ctrl: np.ndarray,
        jacobians: bool = False,
    ) -> StepOutput:
        """Advance every env one ``mj_step`` from the given state and controls (float64 arrays)."""
        n, m = self.num_envs, self.model
        out = StepOutput(
            qpos=np.empty((n, self.nq)),
            qvel=np.empty((n, self.nv)),
            act=np.empty((n, self.na)),
            diverged=np.zeros(n, dtype=bool),
        )
        if jacobians:
            out.A = np.empty((n, self.state_dim, self.state_dim))
            out.B = np.empty((n, self.state_dim, self.nu))
        eps, centered = self.fd.eps, self.fd.centered
        datas, views, na = self.datas, self._views, self.na
        A, B = out.A, out.B
        perf_counter, fd_call, step_call = time.perf_counter, mujoco.mjd_transitionFD, mujoco.mj_step

        def work(indices) -> tuple[float, float]:
            t_fd = t_step = 0.0
            for i in indices:
                d = datas[i]
                d_qpos, d_qvel, d_act, d_ctrl, warning = views[i]
                d_qpos[:] = qpos[i]
                d_qvel[:] = qvel[i]
                if na:
                    d_act[:] = act[i]
                d_ctrl[:] = ctrl[i]
                warnings_before = warning[_FATAL_INDEX].sum()
                t0 = perf_counter()
                if jacobians:
                    fd_call(m, d, eps, centered, A[i], B[i], None, None)
                t1 = perf_counter()
                step_call(m, d)
                t2 = perf_counter()
                t_fd += t1 - t0
                t_step += t2 - t1
                out.qpos[i] = d_qpos
                out.qvel[i] = d_qvel
                if na:
                    out.act[i] = d_act
                out.diverged[i] = warning[_FATAL_INDEX].sum() > warnings_before
            return t_fd, t_step

        times = self._map(work)
        self.timing["fd"] += sum(t[0] for t in times) / self.threads
        self.timing["step"] += sum(t[1] for t in times) / self.threads
        finite = np.isfinite(out.qpos).all(1) & np.isfinite(out.qvel).all(1)
        exploding = np.abs(np.nan_to_num(out.qvel, nan=np.inf)).max(1, initial=0.0) > self.max_qvel
        out.diverged |= ~finite | exploding
        if jacobians:
            out.diverged |= ~(np.isfinite(out.A).all((1, 2)) & np.isfinite(out.B).all((1, 2)))
        return out

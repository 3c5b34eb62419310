"""Finite differences of a whole control step: ``nsteps`` simulator steps with the control held.

A robot description that steps at 0.002 s under a 50 Hz policy spans 10 simulator steps per control
step. Chaining one ``mjd_transitionFD`` per step costs 10 Python round trips and 10 matrix products per env;
differencing the whole control step instead perturbs the pre-step state along every tangent direction
and the control along every actuator, rolls each perturbed copy the ``nsteps`` steps in one
``mujoco.rollout`` call (in C, without the GIL), and differences the final states. Same columns,
``mjd_transitionFD``'s layout: ``A`` (2nv+na, 2nv+na), ``B`` (2nv+na, nu), tangent space.

On a gradient twin (``rfo_ros.sim.gradient_model``) stepped more than once per control step, the same
routine differences the twin's steps. With ``nsteps == 1`` it reproduces ``mjd_transitionFD`` (tested).
"""

from __future__ import annotations

import threading

import mujoco
import numpy as np

from rfo_ros.sim.jacobians import Layout, perturb_positions, tangent_difference, thread_rollout

_STATE = int(mujoco.mjtState.mjSTATE_FULLPHYSICS)


class ControlStepFD:
    """Step Jacobians of ``nsteps`` steps of a model (of ``model``'s structure) by whole-step differences.

    ``eps``/``centered`` as ``FDConfig``. A control at its upper limit is perturbed downwards (forward
    differences), as ``mjd_transitionFD`` does, so a clamped control still gets its one-sided derivative.
    """

    def __init__(self, model: mujoco.MjModel, nsteps: int, eps: float = 1e-6, centered: bool = False) -> None:
        if nsteps < 1:
            raise ValueError(f"nsteps must be >= 1, got {nsteps}")
        self.layout = Layout.of(model)
        self.nsteps, self.eps, self.centered = nsteps, eps, centered
        self.nq, self.nv, self.na, self.nu = model.nq, model.nv, model.na, model.nu
        self.nstate = mujoco.mj_stateSize(model, _STATE)
        self.nsensordata = model.nsensordata
        # Perturbed directions: the non-exact position columns, every velocity, activation and control.
        self.npos = len(self.layout.fd_cols)
        self.columns = self.npos + self.nv + self.na + self.nu
        self.rows = 1 + self.columns * (2 if centered else 1)  # row 0: the nominal control step
        self._runners = threading.local()

    def __call__(self, model: mujoco.MjModel, data: mujoco.MjData, A: np.ndarray, B: np.ndarray) -> None:
        """Write the Jacobians of ``nsteps`` steps of ``model`` from ``data``'s state and ctrl into ``A``
        and ``B``; ``data``'s state and warm-start are restored (it is the scratch of the rollout)."""
        L, eps, nq, nv, na = self.layout, self.eps, self.nq, self.nv, self.na
        state = np.empty(self.nstate)
        mujoco.mj_getState(model, data, state, _STATE)
        warmstart, ctrl = data.qacc_warmstart.copy(), data.ctrl.copy()
        # A limited control at its upper bound is differenced downwards (its derivative one-sided).
        direction = np.ones(self.nu)
        upper = model.actuator_ctrlrange[:, 1]
        direction[model.actuator_ctrllimited.astype(bool) & (ctrl + eps > upper)] = -1.0
        starts = np.repeat(state[None], self.rows, axis=0)
        controls = np.repeat(ctrl[None], self.rows, axis=0)
        signs = (1.0, -1.0) if self.centered else (1.0,)
        vel, act, ctl = self.npos, self.npos + nv, self.npos + nv + na
        for s, sign in enumerate(signs):
            first = 1 + s * self.columns
            block = starts[first : first + self.columns]
            positions = block[None, : self.npos, 1 : 1 + nq]
            perturb_positions(positions, sign * eps, L)  # a view: writes into ``starts``
            block[np.arange(vel, act), 1 + nq + np.arange(nv)] += sign * eps
            block[np.arange(act, ctl), 1 + nq + nv + np.arange(na)] += sign * eps
            controls[first + ctl + np.arange(self.nu), np.arange(self.nu)] += sign * eps * direction
        out = np.empty((self.rows, self.nsteps, self.nstate))
        try:
            thread_rollout(self._runners).rollout(
                [model] * self.rows,
                [data],
                starts,
                np.ascontiguousarray(np.repeat(controls[:, None, :], self.nsteps, axis=1)),
                initial_warmstart=np.repeat(warmstart[None], self.rows, axis=0),
                nstep=self.nsteps,
                skip_checks=True,  # shapes are right by construction
                state=out,
                sensordata=np.empty((self.rows, self.nsteps, self.nsensordata)),
            )
        finally:
            mujoco.mj_setState(model, data, state, _STATE)
            data.qacc_warmstart[:] = warmstart
            data.ctrl[:] = ctrl
        final = out[:, -1]
        nominal = final[0]
        diff = np.empty((self.rows - 1, 2 * nv + na))
        diff[:, : 2 * nv] = tangent_difference(final[None, 1:], nominal[None, 1 : 1 + nq],
                                               nominal[None, 1 + nq : 1 + nq + nv], L)[0]  # fmt: skip
        acts = slice(1 + nq + nv, 1 + nq + nv + na)
        diff[:, 2 * nv :] = final[1:, acts] - nominal[acts]
        if self.centered:
            delta = (diff[: self.columns] - diff[self.columns :]) / (2 * eps)
        else:
            delta = diff / eps
        A[:] = 0.0
        A[:, L.fd_cols] = delta[: self.npos].T
        for c in L.exact_cols:  # a horizontal translation moves the next state by the same translation
            A[c, c] = 1.0
        A[:, nv : 2 * nv + na] = delta[vel:ctl].T
        B[:] = delta[ctl:].T * direction

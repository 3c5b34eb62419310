"""Refuse a gradient twin that does not follow the robot it stands in for.

A twin (``rfo_ros.sim.gradient_model``) steps the robot at the control rate, so its Jacobians are only
worth having if its control step lands near the simulator's. From states that a short random walk of
the task visits (its own seeded generator: the env's streams are untouched), one control step of the
simulator and one of the twin, from the same state with the same control: the RMS difference of their
next velocities, relative to the RMS velocity change of the simulator's step, must stay under
``max_twin_error``. A twin that is unstable for the robot (stiff actuators at a long explicit step)
misses by orders of magnitude; a coarse but sound one by a fraction (0.1-0.4 on the worlds in sim/).
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from rfo_ros.envs.base import Task
from rfo_ros.sim.gradient_model import GradientModel, UnstableTwinError

#: Probe size: envs × control steps of uniform-random actions in [-PROBE_ACTION, PROBE_ACTION].
PROBE_ENVS, PROBE_STEPS, PROBE_ACTION = 8, 25, 0.5
_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS


def twin_error(
    model: mujoco.MjModel, twin: mujoco.MjModel, substeps: int, twin_steps: int, states: np.ndarray,
    ctrls: np.ndarray,
) -> float:
    """From each of ``states`` (n, full-physics state) with ``ctrls`` (n, nu): the RMS difference between
    the twin's next qvel (``twin_steps`` steps) and the simulator's (``substeps`` steps), over the RMS
    change of the simulator's qvel; inf when the twin's state goes non-finite."""
    real, approx = mujoco.MjData(model), mujoco.MjData(twin)
    miss = change = 0.0
    for state, ctrl in zip(states, ctrls, strict=True):
        for m, d, steps in ((model, real, substeps), (twin, approx, twin_steps)):
            mujoco.mj_setState(m, d, state, _FULL)
            d.ctrl[:] = ctrl
            mujoco.mj_step(m, d, steps)
        if not np.isfinite(approx.qvel).all():
            return float("inf")
        start = state[1 + model.nq : 1 + model.nq + model.nv]
        miss += float(np.sum((approx.qvel - real.qvel) ** 2))
        change += float(np.sum((real.qvel - start) ** 2))
    return float(np.sqrt(miss / max(change, 1e-30)))


def probe_states(task: Task, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-physics states (n, nstate) and the controls applied from them (n, nu), from a random walk
    of ``PROBE_ENVS`` envs over ``PROBE_STEPS`` control steps of ``task``'s nominal model."""
    model = task.model
    rng = np.random.default_rng(seed)
    start = task.initial_state(PROBE_ENVS, rng)
    d = mujoco.MjData(model)
    size = mujoco.mj_stateSize(model, _FULL)
    states, ctrls = [], []
    for i in range(PROBE_ENVS):
        mujoco.mj_resetData(model, d)
        d.qpos[:], d.qvel[:] = start.qpos[i].numpy(), start.qvel[i].numpy()
        if model.na:
            d.act[:] = start.act[i].numpy()
        for _ in range(PROBE_STEPS):
            action = rng.uniform(-PROBE_ACTION, PROBE_ACTION, (1, task.action_dim))
            ctrl = task.action_to_ctrl(torch.from_numpy(action).to(torch.get_default_dtype()))
            state = np.empty(size)
            mujoco.mj_getState(model, d, state, _FULL)
            states.append(state)
            ctrls.append(ctrl[0].double().numpy())
            d.ctrl[:] = ctrls[-1]
            mujoco.mj_step(model, d, task.substeps)
            if not np.isfinite(d.qvel).all():  # the simulation itself failed: end this walk
                break
    return np.array(states), np.array(ctrls)


def check_twin(task: Task, gradient: GradientModel, seed: int = 0) -> float:
    """The twin's relative error on ``task`` (``twin_error``); raises ``UnstableTwinError``, naming the
    settings to change, when it exceeds ``gradient.max_twin_error``."""
    twin = gradient.apply(task.model, task.substeps)
    steps = gradient.jacobian_steps(task.substeps)
    states, ctrls = probe_states(task, seed)
    error = twin_error(task.model, twin, task.substeps, steps, states, ctrls)
    if not error <= gradient.max_twin_error:
        integrator = mujoco.mjtIntegrator(twin.opt.integrator).name.removeprefix("mjINT_").lower()
        raise UnstableTwinError(
            f"the gradient twin ({steps} x {twin.opt.timestep:g} s, {integrator}) does not follow the "
            f"simulated robot: from the same state its control step misses the next velocities by "
            f"{error:.3g} times the step's own velocity change (env.gradient_model.max_twin_error = "
            f"{gradient.max_twin_error:g}). Raise env.gradient_model.steps (shorter twin steps), or leave "
            "env.gradient_model.steps out to differentiate the simulator's own steps."
        )
    return error

"""Per-env world perturbations for ``VecEnv``: randomised physics, actuation latency, sensor noise, pushes.

``VecEnv`` calls four hooks of its ``Perturbations`` at fixed points of every step; ``NoPerturbations``
(the default) leaves the nominal world untouched, bit for bit. ``WorldPerturbations`` applies a
``rfo_ros.randomization.Randomization``:

- physics: each env owns a copy of the MjModel; at every reset its constants are redrawn (friction,
  trunk mass and CoM, link masses, motor strength, kp/kd, joint damping, armature, friction loss) and
  ``mj_setConst`` refreshes what MuJoCo derives from them. The simulator steps and differentiates every
  env with its own model.
- latency: the actuators receive the command of ``d`` control steps ago (``d`` per env, drawn at reset);
  the delayed commands keep their autograd graph, so the gradient reaches the action that acted.
- sensor noise: uniform ± noise per observation field, added to the observation (differentiable).
- pushes: every ``push_interval_s`` each env's trunk gets a random horizontal velocity impulse
  (added to qvel, so gradients pass through it unchanged); with ``push_ramp_s`` their largest size grows
  linearly from 0 over that much simulated time (the control steps taken since construction).
- rough ground: the world gains a heightfield (``rfo_ros.envs.terrain``); each env's model holds its own
  terrain, redrawn at reset.
- a task whose world already differs per env (an obstacle course, ``Task.env_models``) owns the per-env
  models: the physics is drawn into those (rough ground, which would replace its world, is refused).

Perturbations draw from their own generator: switching them on leaves the reset-state stream as it was.
"""

from __future__ import annotations

import copy
from typing import Any

import mujoco
import numpy as np
import torch

from rfo_ros.envs.terrain import draw_heights, rough_world
from rfo_ros.randomization import PHYSICS_RANGES, Randomization
from rfo_ros.sim.autograd import SimState

__all__ = ["NoPerturbations", "Perturbations", "WorldPerturbations", "make_perturbations"]

#: Seed offset of the perturbations' generator (``VecEnv`` seed ``s`` -> ``[s, PERTURB_STREAM]``).
PERTURB_STREAM = 0x5EED


class Perturbations:
    """The hooks ``VecEnv`` calls; this base class is the nominal world (every hook the identity)."""

    #: One MjModel per env when physics is randomised, else None (all envs share the task's model).
    models: list[mujoco.MjModel] | None = None

    def reset(self, mask: np.ndarray) -> None:
        """Redraw the per-env perturbations of the envs in ``mask`` (N,) bool (also at construction)."""

    def actuate(self, ctrl: torch.Tensor) -> torch.Tensor:
        """The controls the actuators receive this step, given the ones commanded now (N, nu)."""
        return ctrl

    def push(self, state: SimState) -> SimState:
        """The state the step starts from (impulses applied)."""
        return state

    def observe(self, obs: torch.Tensor) -> torch.Tensor:
        """The observation the policy receives (N, obs_dim)."""
        return obs

    def detach(self) -> None:
        """Cut the autograd graph of anything carried between steps (window boundary)."""

    # --- what a privileged critic may read (rfo_ros.envs.privileged) --------------------------------
    def drawn_physics(self) -> dict[str, np.ndarray]:
        """The drawn physics constants per env: name -> (N, ...) (empty: the nominal world's)."""
        return {}

    def delay_steps(self, n: int) -> np.ndarray:
        """Each env's actuation delay in control steps (n,)."""
        return np.zeros(n, dtype=np.int64)

    def push_state(self, n: int) -> np.ndarray:
        """(n, 3): each env's last push impulse (world x, y; m/s) and the fraction of the push interval
        elapsed since it (zeros without pushes)."""
        return np.zeros((n, 3))

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class NoPerturbations(Perturbations):
    """The nominal world."""


def make_perturbations(task, num_envs: int, randomization: Randomization | None, seed: int) -> Perturbations:
    """``WorldPerturbations`` for an active ``randomization``, else ``NoPerturbations``."""
    if randomization is None or not randomization.active:
        return NoPerturbations()
    return WorldPerturbations(task, num_envs, randomization, np.random.default_rng([seed, PERTURB_STREAM]))


class WorldPerturbations(Perturbations):
    """``randomization`` applied to ``num_envs`` envs of a legged ``task`` (one with a ``robot``)."""

    def __init__(self, task, num_envs: int, randomization: Randomization, rng: np.random.Generator) -> None:
        robot = task.robot
        if robot is None:
            name = type(task).__name__
            raise ValueError(f"env.randomization needs a legged task (a robot file); {name} has none")
        self.cfg, self.rng, self.n = randomization, rng, num_envs
        self.task, self.robot = task, robot
        self.dt = task.dt
        # A task whose world differs per env (an obstacle course) owns the per-env models: the physics is
        # drawn into those (it writes constants the course never touches).
        task_models = task.env_models(num_envs)
        if task_models is not None and randomization.rough_ground_m is not None:
            raise ValueError(
                f"env.randomization.rough_ground_m: {type(task).__name__}'s world already differs per env "
                "(an obstacle course); rough ground would replace it"
            )
        m = self._base_model(task, robot, randomization)
        self._trunk = m.body(robot.description.trunk).id
        # The robot's other bodies: the trunk's subtree (every body whose root is the trunk), minus the trunk.
        self._links = np.flatnonzero((m.body_rootid == self._trunk) & (np.arange(m.nbody) != self._trunk))
        self._dofs = robot.dof_adr
        self._actuators = robot.actuator_ids
        if randomization.physics:
            self.models = task_models or [copy.copy(m) for _ in range(num_envs)]
        self._terrain_cells = int(m.hfield_nrow[0]) if randomization.rough_ground_m is not None else 0
        self._scratch = mujoco.MjData(m) if self.models else None
        self._nominal = copy.copy(m)
        #: The drawn physics per env: name -> (N, ...) array (what resume re-applies).
        self.params: dict[str, np.ndarray] = {}
        self._check_noise_fields()
        self.delay = np.zeros(num_envs, dtype=np.int64)
        self._history: list[torch.Tensor] = []  # commanded controls, newest first (latency)
        self._rest_ctrl = task.action_to_ctrl(torch.zeros(1, task.action_dim)).detach()
        interval = randomization.push_interval_s
        self._push_every = max(1, round(interval / self.dt)) if interval is not None else None
        self._push_clock = np.zeros(num_envs, dtype=np.int64)
        self._last_push = np.zeros((num_envs, 2))  # each env's last impulse, for a privileged critic
        self._steps_taken = 0  # control steps since construction: the push curriculum's clock
        self.reset(np.ones(num_envs, dtype=bool))

    # --- what the hooks do ----------------------------------------------------------------------------
    def reset(self, mask: np.ndarray) -> None:
        cfg, k = self.cfg, int(mask.sum())
        if k == 0:
            return
        if self.models is not None:
            for name, value in self._draw_physics(k).items():
                self.params.setdefault(name, np.zeros((self.n, *value.shape[1:])))[mask] = value
            for i in np.flatnonzero(mask):
                self._apply_physics(i)
        if cfg.latency_steps is not None:
            low, high = cfg.latency_steps
            self.delay[mask] = self.rng.integers(low, high + 1, k)
            mask_t = torch.from_numpy(mask)[:, None]
            self._history = [torch.where(mask_t, self._rest_ctrl, h) for h in self._history]
        if self._push_every is not None:  # a random phase: the envs' pushes do not all land together
            self._push_clock[mask] = self.rng.integers(0, self._push_every, k)
            self._last_push[mask] = 0.0

    def actuate(self, ctrl: torch.Tensor) -> torch.Tensor:
        if self.cfg.latency_steps is None:
            return ctrl
        depth = self.cfg.latency_steps[1] + 1
        if not self._history:
            self._history = [self._rest_ctrl.expand_as(ctrl)] * (depth - 1)
        self._history = [ctrl, *self._history][:depth]
        stacked = torch.stack(self._history)  # (depth, N, nu): stacked[d] = commanded d steps ago
        return stacked[torch.from_numpy(self.delay), torch.arange(ctrl.shape[0])]

    def push(self, state: SimState) -> SimState:
        if self._push_every is None:
            return state
        self._steps_taken += 1
        self._push_clock += 1
        due = self._push_clock >= self._push_every
        if not due.any():
            return state
        self._push_clock[due] = 0
        v = self.push_velocity
        impulse = np.zeros((self.n, state.qvel.shape[1]))
        impulse[due, 0:2] = self.rng.uniform(-v, v, (int(due.sum()), 2))  # free joint: world-frame linear
        self._last_push[due] = impulse[due, 0:2]
        return SimState(state.qpos, state.qvel + torch.from_numpy(impulse), state.act)

    @property
    def push_velocity(self) -> float:
        """The largest push now (m/s per horizontal axis): ``push_velocity``, ramped by ``push_ramp_s``."""
        ramp = self.cfg.push_ramp_s
        fraction = 1.0 if ramp is None else min(1.0, self._steps_taken * self.dt / ramp)
        return self.cfg.push_velocity * fraction

    def observe(self, obs: torch.Tensor) -> torch.Tensor:
        if self._noise is None:
            return obs
        noise = self.rng.uniform(-1.0, 1.0, obs.shape) * self._noise
        return obs + torch.from_numpy(noise).to(obs.dtype)

    def detach(self) -> None:
        self._history = [h.detach() for h in self._history]

    def drawn_physics(self) -> dict[str, np.ndarray]:
        return self.params

    def delay_steps(self, n: int) -> np.ndarray:
        return self.delay

    def push_state(self, n: int) -> np.ndarray:
        if self._push_every is None:
            return np.zeros((n, 3))
        return np.concatenate([self._last_push, (self._push_clock / self._push_every)[:, None]], axis=1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "params": {k: v.copy() for k, v in self.params.items()},
            "delay": self.delay.copy(),
            "history": [h.detach() for h in self._history],
            "push_clock": self._push_clock.copy(),
            "last_push": self._last_push.copy(),
            "steps_taken": self._steps_taken,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.params = {k: v.copy() for k, v in state["params"].items()}
        if self.models is not None:
            for i in range(self.n):
                self._apply_physics(i)
        self.delay, self._push_clock = state["delay"].copy(), state["push_clock"].copy()
        self._history = list(state["history"])
        self._steps_taken = state.get("steps_taken", 0)  # absent in checkpoints from before the ramp
        # Absent in checkpoints from before privileged critics: no push remembered.
        self._last_push = state.get("last_push", np.zeros((self.n, 2))).copy()

    # --- physics ----------------------------------------------------------------------------------
    def _draw_physics(self, k: int) -> dict[str, np.ndarray]:
        """Each randomised constant for ``k`` envs (the ones left out keep their nominal value)."""
        cfg, rng, out = self.cfg, self.rng, {}
        for name in PHYSICS_RANGES:
            value = getattr(cfg, name)
            if value is not None:
                out[name] = rng.uniform(value[0], value[1], k)
        if cfg.com_offset_m is not None:
            out["com_offset_m"] = rng.uniform(-cfg.com_offset_m, cfg.com_offset_m, (k, 3))
        if self._terrain_cells:  # a seed per terrain: checkpoints store 8 bytes, not the heights
            out["terrain_seed"] = rng.integers(0, 2**62, k).astype(np.float64)
        return out

    @staticmethod
    def _base_model(task, robot, cfg: Randomization) -> mujoco.MjModel:
        """The model every env's copy starts from: the task's, or with rough ground its world plus a
        heightfield (and the task model's actuator gains, which a robot file may have set)."""
        if cfg.rough_ground_m is None:
            return task.model
        m = rough_world(robot.mjcf_path, cfg.rough_ground_m)
        for name in ("actuator_gainprm", "actuator_biasprm", "actuator_forcerange"):
            getattr(m, name)[:] = getattr(task.model, name)
        return m

    def _apply_physics(self, i: int) -> None:
        """Write env ``i``'s drawn constants into its model, from the nominal ones."""
        m, m0, p = self.models[i], self._nominal, {k: v[i] for k, v in self.params.items()}
        t, links, dofs, act = self._trunk, self._links, self._dofs, self._actuators
        m.geom_friction[:, 0] = p.get("friction", m0.geom_friction[:, 0])
        m.body_mass[t] = m0.body_mass[t] + p.get("added_mass_kg", 0.0)
        m.body_ipos[t] = m0.body_ipos[t] + p.get("com_offset_m", 0.0)
        scale = p.get("link_mass_scale", 1.0)
        m.body_mass[links] = m0.body_mass[links] * scale
        m.body_inertia[links] = m0.body_inertia[links] * scale
        strength = p.get("motor_strength", 1.0)
        kp = -m0.actuator_biasprm[act, 1] * strength * p.get("kp_scale", 1.0)
        m.actuator_gainprm[act, 0] = kp
        m.actuator_biasprm[act, 1] = -kp
        m.actuator_biasprm[act, 2] = m0.actuator_biasprm[act, 2] * strength * p.get("kd_scale", 1.0)
        m.actuator_forcerange[act] = m0.actuator_forcerange[act] * strength
        m.dof_damping[dofs] = m0.dof_damping[dofs] * p.get("joint_damping_scale", 1.0)
        m.dof_armature[dofs] = m0.dof_armature[dofs] * p.get("armature_scale", 1.0)
        m.dof_frictionloss[dofs] = p.get("frictionloss", m0.dof_frictionloss[dofs])
        if "terrain_seed" in p:
            heights = draw_heights(np.random.default_rng(int(p["terrain_seed"])), self._terrain_cells)
            m.hfield_data[:] = heights.ravel()
        mujoco.mj_setConst(m, self._scratch)  # masses, inertias and armature feed derived constants

    # --- sensor noise -----------------------------------------------------------------------------
    def _check_noise_fields(self) -> None:
        noise = self.cfg.obs_noise
        if not noise:
            self._noise = None
            return
        layout = self.task.obs_layout
        unknown = sorted(set(noise) - set(layout.names) - set(self.task.omitted_obs_fields))
        if unknown:
            raise ValueError(
                f"env.randomization.obs_noise: no observation fields {unknown}; "
                f"fields: {', '.join(layout.names)}"
            )
        amplitude = np.zeros(self.task.obs_dim)
        # A field the task's options left out (base_lin_vel without odom) keeps its noise setting unused,
        # so one randomised config serves both observations.
        for name, value in ((n, v) for n, v in noise.items() if n in layout.names):
            field = layout.fields[layout.names.index(name)]
            amplitude[layout.slice(name)] = value * np.abs(field.scale)  # physical units -> observation units
        self._noise = amplitude

"""The gradient model: the world the step Jacobians are taken on, when it is not the simulated one.

An exact gradient through a hard contact is zero until the contact happens: a foot 1 mm above the
ground, or a pusher 1 cm from the box, tells the policy nothing about touching it. "Contacts from
distance" (Paulus et al. 2025, arXiv 2506.14186) differentiate a world whose contacts act before they
touch. Here that world is a copy of each env's model with a contact ``margin`` (every geom's contact
force starts ``margin`` metres before touching) and optionally softer contacts (``timeconst_scale``
on every geom's solref time constant). Only the Jacobians use it: the forward simulation, the reward
and everything the policy sees stay on the real world, bit for bit.

It can also be a *gradient twin*: the same robot at the control rate. A real robot's description steps
at 0.002 s, so a 50 Hz control step is 10 simulator steps and its exact Jacobian 10 steps' worth of
finite differences. The twin takes ``steps`` steps of (control period / ``steps``) per control step,
optionally with another ``integrator`` (implicitfast also takes the actuators' velocity gains
implicitly; Euler only the joints' damping) and ``cone`` (pyramidal is cheaper, and the hybrid Jacobians
need it), from the simulated state before each control step; its Jacobians stand in for the control
step's (Song, Kim & Scaramuzza 2024 decouple the
gradient's model from the simulated one the same way). How far its gradient is off: ``bench twin``.
A twin that does not follow the robot is refused (``check_twin``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import mujoco
import numpy as np

INTEGRATORS = {
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
}
CONES = {"pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL, "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC}


class UnstableTwinError(ValueError):
    """The gradient twin does not follow the simulated robot (the message names the setting to change)."""


@dataclass(frozen=True)
class GradientModel:
    """How the Jacobians' world differs from the simulated one (both zero-effect at the defaults)."""

    #: Contact margin (m) added to every geom: contact forces act from this distance.
    margin: float = 0.0
    #: Factor on every geom's contact time constant (solref[0]): > 1 is softer.
    timeconst_scale: float = 1.0
    #: The geoms (by name) that get the margin and the softer contacts; empty: every geom. A pair's
    #: margin is the larger of its two geoms', so naming the robot's feet, or a pusher's finger, changes
    #: exactly the contacts that gradient should see coming.
    geoms: tuple[str, ...] = ()
    #: Twin steps per control step, each (control period / steps) long; 0: the simulator's own steps.
    steps: int = 0
    #: The twin's integrator (``INTEGRATORS``) and friction cone (``CONES``); None: the model's own.
    integrator: str | None = None
    cone: str | None = None
    #: ``check_twin`` refuses a twin whose control step misses the simulator's next velocities by more
    #: than this fraction of the simulator's own velocity change (RMS over probe states): past 1, the
    #: twin's step says less about the control step than standing still does.
    max_twin_error: float = 1.0

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"gradient model margin must be >= 0, got {self.margin}")
        if self.timeconst_scale <= 0:
            raise ValueError(f"gradient model timeconst_scale must be > 0, got {self.timeconst_scale}")
        if self.steps < 0:
            raise ValueError(f"gradient model steps must be >= 0 (0: no twin), got {self.steps}")
        if self.integrator is not None and self.integrator not in INTEGRATORS:
            raise ValueError(f"gradient model integrator {self.integrator!r}: one of {sorted(INTEGRATORS)}")
        if self.cone is not None and self.cone not in CONES:
            raise ValueError(f"gradient model cone {self.cone!r}: one of {sorted(CONES)}")
        if self.max_twin_error <= 0:
            raise ValueError(f"gradient model max_twin_error must be > 0, got {self.max_twin_error}")

    @property
    def active(self) -> bool:
        return self.margin > 0 or self.timeconst_scale != 1.0 or self.twin

    @property
    def twin(self) -> bool:
        """Whether the Jacobians' world steps differently in time (its own steps, integrator or cone)."""
        return self.steps > 0 or self.integrator is not None or self.cone is not None

    def jacobian_steps(self, substeps: int) -> int:
        """Steps of the Jacobians' world per control step of ``substeps`` simulator steps."""
        return self.steps or substeps

    def geom_ids(self, model: mujoco.MjModel) -> np.ndarray:
        """The ids of the geoms this gradient model changes; refuses a name the model does not have."""
        if not self.geoms:
            return np.arange(model.ngeom)
        ids = []
        for name in self.geoms:
            gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
            if gid < 0:
                named = [model.geom(g).name for g in range(model.ngeom) if model.geom(g).name]
                raise ValueError(f"gradient model geom {name!r} is not in the model; named geoms: {named}")
            ids.append(gid)
        return np.array(ids, int)

    def apply(self, model: mujoco.MjModel, substeps: int = 1) -> mujoco.MjModel:
        """A copy of ``model`` with this gradient model's contacts and, for a twin, its own time step
        (control period = ``substeps`` × ``model``'s time step), integrator and cone (``model`` is left
        as it was)."""
        out = copy.copy(model)
        if self.steps:
            out.opt.timestep = model.opt.timestep * substeps / self.steps
        if self.integrator is not None:
            out.opt.integrator = INTEGRATORS[self.integrator]
        if self.cone is not None:
            out.opt.cone = CONES[self.cone]
        ids = self.geom_ids(model)
        out.geom_margin[ids] = model.geom_margin[ids] + self.margin
        solref = out.geom_solref
        soft = ids[solref[ids, 0] > 0]  # a negative solref is (stiffness, damping): left as it is
        solref[soft, 0] = solref[soft, 0] * self.timeconst_scale
        return out

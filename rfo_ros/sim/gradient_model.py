"""The gradient model: the world the step Jacobians are taken on, when it is not the simulated one.

An exact gradient through a hard contact is zero until the contact happens: a foot 1 mm above the
ground, or a pusher 1 cm from the box, tells the policy nothing about touching it. "Contacts from
distance" (Paulus et al. 2025, arXiv 2506.14186) differentiate a world whose contacts act before they
touch. Here that world is a copy of each env's model with a contact ``margin`` (every geom's contact
force starts ``margin`` metres before touching) and optionally softer contacts (``timeconst_scale``
on every geom's solref time constant). Only the Jacobians use it: the forward simulation, the reward
and everything the policy sees stay on the real world, bit for bit.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import mujoco
import numpy as np


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

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"gradient model margin must be >= 0, got {self.margin}")
        if self.timeconst_scale <= 0:
            raise ValueError(f"gradient model timeconst_scale must be > 0, got {self.timeconst_scale}")

    @property
    def active(self) -> bool:
        return self.margin > 0 or self.timeconst_scale != 1.0

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

    def apply(self, model: mujoco.MjModel) -> mujoco.MjModel:
        """A copy of ``model`` with this gradient model's contacts (``model`` is left as it was)."""
        out = copy.copy(model)
        ids = self.geom_ids(model)
        out.geom_margin[ids] = model.geom_margin[ids] + self.margin
        solref = out.geom_solref
        soft = ids[solref[ids, 0] > 0]  # a negative solref is (stiffness, damping): left as it is
        solref[soft, 0] = solref[soft, 0] * self.timeconst_scale
        return out

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


@dataclass(frozen=True)
class GradientModel:
    """How the Jacobians' world differs from the simulated one (both zero-effect at the defaults)."""

    #: Contact margin (m) added to every geom: contact forces act from this distance.
    margin: float = 0.0
    #: Factor on every geom's contact time constant (solref[0]): > 1 is softer.
    timeconst_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"gradient model margin must be >= 0, got {self.margin}")
        if self.timeconst_scale <= 0:
            raise ValueError(f"gradient model timeconst_scale must be > 0, got {self.timeconst_scale}")

    @property
    def active(self) -> bool:
        return self.margin > 0 or self.timeconst_scale != 1.0

    def apply(self, model: mujoco.MjModel) -> mujoco.MjModel:
        """A copy of ``model`` with this gradient model's contacts (``model`` is left as it was)."""
        out = copy.copy(model)
        out.geom_margin[:] = model.geom_margin + self.margin
        solref = out.geom_solref
        standard = solref[:, 0] > 0  # a negative solref is (stiffness, damping): left as it is
        solref[standard, 0] = solref[standard, 0] * self.timeconst_scale
        return out

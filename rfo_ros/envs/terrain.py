"""Rough ground: the robot's world with a MuJoCo heightfield of random bumps and slopes over its floor.

``rough_world(path, amplitude)`` adds one heightfield geom (``ROUGH_GEOM``) to an MJCF world, with the
contact settings of its ``floor`` geom; ``draw_heights`` makes one terrain: smooth random bumps plus a
random plane tilt, at most ``amplitude`` high, flat within ``SPAWN_RADIUS_M`` of the origin (where the
robot is dropped). Each env's model holds its own heights, redrawn at every reset
(``rfo_ros.envs.perturb``).
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

ROUGH_GEOM = "rough_ground"
#: Half-extent (m) and cell size (m) of the heightfield. A robot walking +x from the origin leaves it after
#: 8 m (~8 s of a 10 s episode at 1 m/s) and steps down onto the floor, at most the amplitude.
HALF_SIZE_M, CELL_M = 8.0, 0.1
#: Flat disc (m) around the spawn point, so no reset drops the robot's feet into a bump.
SPAWN_RADIUS_M = 0.6
#: Cells between the random control points of the bumps (~0.8 m wavelength: a stride or two).
BUMP_SPACING_CELLS = 8


def rough_world(path: str | os.PathLike, amplitude: float) -> mujoco.MjModel:
    """The world at ``path`` with a flat (all-zero) heightfield of height ``amplitude`` m over its floor."""
    spec = mujoco.MjSpec.from_file(str(path))
    n = int(round(2 * HALF_SIZE_M / CELL_M)) + 1
    spec.add_hfield(name=ROUGH_GEOM, size=[HALF_SIZE_M, HALF_SIZE_M, amplitude, 0.1], nrow=n, ncol=n,
                    userdata=[0.0] * (n * n))  # fmt: skip
    floor = next((g for g in spec.geoms if g.name == "floor"), None)
    geom = spec.worldbody.add_geom(name=ROUGH_GEOM, type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname=ROUGH_GEOM)
    geom.contype, geom.conaffinity = 1, 1
    if floor is not None:
        geom.friction, geom.solref, geom.solimp = floor.friction, floor.solref, floor.solimp
        geom.rgba = floor.rgba
    return spec.compile()


def draw_heights(rng: np.random.Generator, n: int) -> np.ndarray:
    """One terrain (n, n) in [0, 1] (times the heightfield's height): bumps and a tilt, flat at spawn."""
    coarse = n // BUMP_SPACING_CELLS + 2
    control = rng.uniform(0.0, 1.0, (coarse, coarse))
    # Bilinear upsampling of the control points: smooth bumps, no cliffs.
    grid = np.linspace(0, coarse - 1.001, n)
    i0, f = grid.astype(int), grid - grid.astype(int)
    rows = control[i0] * (1 - f)[:, None] + control[i0 + 1] * f[:, None]
    bumps = rows[:, i0] * (1 - f)[None] + rows[:, i0 + 1] * f[None]
    x = np.linspace(-1.0, 1.0, n)
    tilt = rng.uniform(-0.5, 0.5) * x[None, :] + rng.uniform(-0.5, 0.5) * x[:, None]  # a gentle slope
    heights = bumps + tilt
    heights = (heights - heights.min()) / max(np.ptp(heights), 1e-9)
    r = np.hypot(*np.meshgrid(x * HALF_SIZE_M, x * HALF_SIZE_M))
    return heights * np.clip((r - SPAWN_RADIUS_M) / SPAWN_RADIUS_M, 0.0, 1.0)  # fade in beyond the spawn disc

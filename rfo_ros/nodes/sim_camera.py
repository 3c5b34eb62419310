"""The sim node's depth camera: z-depth images in metres from an MJCF camera, as a real depth camera gives.

A real camera's resolution and field of view are not the policy's, so the sim node publishes at its own
(``depth_width`` x ``depth_height`` at ``depth_fovy_deg``, centred square pixels, K in its CameraInfo) and
the policy node resamples, as it would on a robot. Two renderers, one interface (``render(data)`` ->
(height, width) float32 metres along the optical axis, +inf = no return within ``max_range``):

- ``GLDepth``: MuJoCo's OpenGL renderer (``MUJOCO_GL=egl``; Mesa's software EGL on a machine without a
  GPU). Its depth buffer is linearised to z by ``mujoco.Renderer``. The default: measured on a shared
  2-core machine, a 320x240 frame of the quadruped's world cost ~5 ms, against ~33 ms for ray-casting
  the same 76,800 rays with ``mj_multiRay``; the two agree to < 1 mm (median ~1e-7 m).
- ``RayCastDepth``: ``mj_multiRay`` through ``rfo_ros.envs.depth.DepthCamera`` (the training task's own
  ray-caster) for any intrinsics, off-centre principal points included: no GL needed, exact, slower.

Both see the geom groups the training camera sees (the world, not the robot itself).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence

import mujoco
import numpy as np

from rfo_ros.envs.depth import DepthCamera
from rfo_ros.runtime.camera import Intrinsics

#: Geom groups a depth ray sees: those of the depth task's camera (``DepthCamera``'s default).
GEOM_GROUPS = (0, 2)


class RayCastDepth:
    """z-depth (m) of ``camera`` in ``model`` through ``intrinsics``, ray-cast with ``mj_multiRay``."""

    def __init__(
        self,
        model: mujoco.MjModel,
        camera: str,
        intrinsics: Intrinsics,
        max_range: float,
        geom_groups: Sequence[int] = GEOM_GROUPS,
    ) -> None:
        self.intrinsics = intrinsics
        rays = intrinsics.ray_directions()
        self._caster = DepthCamera(
            model, camera, intrinsics.width, intrinsics.height, max_range, geom_groups, rays_cam=rays
        )
        # distance along a ray -> z: times the ray's cosine to the optical axis (the camera looks along -z).
        self._z_per_range = (-rays[:, 2] * max_range).reshape(intrinsics.height, intrinsics.width)

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """(height, width) float32 z-depth of ``data`` (cameras current: after ``mj_forward``)."""
        normalised = self._caster.render_one(data)
        return np.where(normalised < 1.0, normalised * self._z_per_range, np.inf).astype(np.float32)

    def close(self) -> None:
        pass


class GLDepth:
    """z-depth (m) of ``camera`` in ``model`` rendered by OpenGL at a centred, square-pixel ``intrinsics``.

    Renders a copy of the model whose camera has the intrinsics' vertical field of view and whose offscreen
    buffer fits the image. Raises ``ValueError`` for an off-centre K, or when no GL context can be made.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        camera: str,
        intrinsics: Intrinsics,
        max_range: float,
        geom_groups: Sequence[int] = GEOM_GROUPS,
    ) -> None:
        w, h, k = intrinsics.width, intrinsics.height, intrinsics
        if not all(math.isclose(a, b) for a, b in ((k.fx, k.fy), (k.cx, (w - 1) / 2), (k.cy, (h - 1) / 2))):
            raise ValueError(f"GL depth renders centred square-pixel cameras only, not {intrinsics}")
        fovy = intrinsics.field_of_view_deg()[1]
        self.intrinsics, self.camera, self.max_range = intrinsics, camera, max_range
        self.model = copy.copy(model)  # the camera's fovy and buffer size change here only
        self.model.cam_fovy[model.camera(camera).id] = fovy
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, w)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, h)
        # Beyond the far clipping plane the buffer holds zfar: no geometry there.
        self._zfar = float(self.model.vis.map.zfar * self.model.stat.extent)
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = 0
        self._option.geomgroup[list(geom_groups)] = 1
        self._option.sitegroup[:] = 0
        try:
            self._renderer = mujoco.Renderer(self.model, h, w)
        except Exception as exc:  # MuJoCo picks its GL backend when first imported
            raise ValueError(
                f"depth rendering failed ({exc}); start the process with MUJOCO_GL=egl (or osmesa), or use "
                "the ray-cast depth renderer"
            ) from exc
        self._renderer.enable_depth_rendering()
        _release_gl_context()

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """(height, width) float32 z-depth of ``data`` (cameras current: after ``mj_forward``)."""
        self._renderer.update_scene(data, self.camera, self._option)
        try:
            z = self._renderer.render()
        finally:
            _release_gl_context()
        z[(z > self.max_range) | (z >= self._zfar * (1 - 1e-6))] = np.inf
        return z

    def close(self) -> None:
        self._renderer.close()


def _release_gl_context() -> None:
    """Unbind the calling thread's EGL context: an EGL context is current on one thread at a time, and a
    node made on one thread (where the renderer's context became current) may be spun on another. The
    renderer makes its context current again at every frame. Other GL backends are left as they are."""
    if os.environ.get("MUJOCO_GL", "").lower() == "egl":
        from mujoco.egl import EGL

        EGL.eglReleaseThread()


#: ``depth_renderer`` parameter value -> renderer class.
DEPTH_RENDERERS = {"gl": GLDepth, "raycast": RayCastDepth}

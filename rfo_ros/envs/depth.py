"""Ray-cast depth images from a model camera (``mj_multiRay``): cheap, CPU-only visual observations.

One ray per pixel through the pixel centre of a pinhole camera with the MJCF camera's ``fovy``
(MuJoCo cameras look along their -z axis, x to the image right, y up). Distances are along the ray,
divided by ``max_range`` and clipped to [0, 1]; a ray that hits nothing within ``max_range`` reads 1.
The image is a non-differentiable input: it is computed with numpy from ``qpos`` only (kinematics, no
dynamics), on MjData this object keeps per env.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mujoco
import numpy as np


def pinhole_ray_directions(width: int, height: int, fovy_deg: float) -> np.ndarray:
    """Unit ray directions (height*width, 3) in the camera frame, row-major from the image's top-left."""
    tan_half = math.tan(math.radians(fovy_deg) / 2)
    aspect = width / height
    u = ((np.arange(width) + 0.5) / width * 2 - 1) * tan_half * aspect
    v = (1 - (np.arange(height) + 0.5) / height * 2) * tan_half
    uu, vv = np.meshgrid(u, v)  # (H, W)
    dirs = np.stack([uu, vv, -np.ones_like(uu)], axis=-1).reshape(-1, 3)
    return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


class DepthCamera:
    """Normalised depth images (N, H, W) in [0, 1] of a named camera, for batches of ``qpos``.

    Pixels measure the distance along their ray (``depth = "ray"``), not z-depth as REP 118 images do.

    ``geom_groups`` lists the geom groups the rays can hit (e.g. the world, not the robot itself).
    ``rays_cam`` (height*width, 3): other unit rays in the camera frame, row-major (default: the pinhole
    rays of the MJCF camera's ``fovy``; ``runtime.camera.Intrinsics.ray_directions`` gives any K's).
    """

    #: What a pixel measures before normalisation: the distance along its ray (``runtime.camera``).
    depth = "ray"

    def __init__(
        self,
        model: mujoco.MjModel,
        camera: str,
        width: int = 16,
        height: int = 16,
        max_range: float = 4.0,
        geom_groups: Sequence[int] = (0, 2),
        rays_cam: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.camera_id = model.camera(camera).id
        self.width, self.height, self.max_range = width, height, float(max_range)
        #: The MJCF camera's vertical field of view (deg).
        self.fovy_deg = float(model.cam_fovy[self.camera_id])
        if rays_cam is None:
            rays_cam = pinhole_ray_directions(width, height, self.fovy_deg)
        if rays_cam.shape != (width * height, 3):
            raise ValueError(f"rays_cam has shape {rays_cam.shape}, expected ({width * height}, 3)")
        self.rays_cam = rays_cam
        self.geomgroup = np.zeros(mujoco.mjNGROUP, dtype=np.uint8)
        self.geomgroup[list(geom_groups)] = 1
        self._datas: list[mujoco.MjData] = []
        nray = width * height
        self._geomid = np.zeros(nray, dtype=np.int32)
        self._dist = np.zeros(nray)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image, as the policy's ``ObsSplit`` expects."""
        return (1, self.height, self.width)

    def render_one(self, data: mujoco.MjData, model: mujoco.MjModel | None = None) -> np.ndarray:
        """Depth image (H, W) of ``data``, whose ``mj_kinematics`` and ``mj_camlight`` must be current, in
        ``model`` (default: the camera's; another copy of it, e.g. an env's own world)."""
        cid = self.camera_id
        origin = data.cam_xpos[cid].copy()
        rays = self.rays_cam @ data.cam_xmat[cid].reshape(3, 3).T  # camera frame -> world frame
        mujoco.mj_multiRay(
            self.model if model is None else model,
            data,
            origin,
            rays.reshape(-1),
            self.geomgroup,
            1,
            -1,
            self._geomid,
            self._dist,
            None,
            len(self._dist),
            self.max_range,
        )
        dist = np.where(self._geomid >= 0, self._dist, self.max_range)
        return np.clip(dist / self.max_range, 0.0, 1.0).reshape(self.height, self.width)

    def render(self, qpos: np.ndarray, models: Sequence[mujoco.MjModel] | None = None) -> np.ndarray:
        """Depth images (N, H, W) for ``qpos`` (N, nq) float64; ``models``: each row's own copy of the
        camera's model (an env's world, e.g. its obstacle course), default the camera's for every row."""
        qpos = np.atleast_2d(np.asarray(qpos, dtype=np.float64))
        if models is not None and len(models) != qpos.shape[0]:
            raise ValueError(f"{len(models)} models for {qpos.shape[0]} states")
        while len(self._datas) < qpos.shape[0]:
            self._datas.append(mujoco.MjData(self.model))
        out = np.empty((qpos.shape[0], self.height, self.width))
        for i, q in enumerate(qpos):
            d, m = self._datas[i], self.model if models is None else models[i]
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_camlight(m, d)
            out[i] = self.render_one(d, m)
        return out

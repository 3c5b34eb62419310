"""A real depth camera's image resampled to the camera a policy was trained on (numpy only, no ROS).

Conventions:

- ``Intrinsics`` are a pinhole camera's K as ``sensor_msgs/CameraInfo`` gives it (OpenCV / ROS
  ``image_geometry``): pixel ``(u, v)`` has its centre at integer coordinates, ``u`` to the right and ``v``
  down, so an image of width W spans ``u`` in [-0.5, W - 0.5]. Lens distortion is not modelled: the image
  must be rectified (``plumb_bob`` with all-zero D, what depth cameras publish for their depth stream).
- Depth images (REP 118) hold z-depth: the distance along the optical axis, not along the pixel's ray.
- ``ModelCamera`` is the training camera (``rfo_ros.envs.depth.DepthCamera``): square pixels, vertical
  field of view ``fovy_deg``, principal point at the image centre, one ray through each pixel centre; its
  pixels hold ``depth / depth_range_m`` clipped to [0, 1] (1 = no return within range), where ``depth`` is
  the distance along the ray (``depth="ray"``, what the ray-caster measures) or z (``depth="z"``).

``DepthResampler`` projects each model ray into the real camera once, and then turns every frame into the
model's image with a gather of the 4 pixels around each model ray: the per-frame cost does not depend on
the real camera's resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: What the values of a model's depth pixels measure before normalisation.
DEPTH_KINDS = ("ray", "z")


class FieldOfViewError(ValueError):
    """The real camera's field of view does not cover the model camera's."""


@dataclass(frozen=True)
class Intrinsics:
    """A rectified pinhole camera: image size (px) and K's focal lengths and principal point (px)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera image size {self.width}x{self.height} must be at least 1x1")
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera K needs finite fx, fy > 0 and finite cx, cy, got {values}")

    @classmethod
    def from_fovy(cls, width: int, height: int, fovy_deg: float) -> Intrinsics:
        """The centred, square-pixel camera of vertical field of view ``fovy_deg`` (a MuJoCo camera's)."""
        focal = height / 2 / math.tan(math.radians(fovy_deg) / 2)
        return cls(width, height, focal, focal, (width - 1) / 2, (height - 1) / 2)

    def edge_angles_deg(self) -> dict[str, float]:
        """Angle (deg) between the optical axis and each image edge: left, right, top, bottom."""
        tangents = {
            "left": (self.cx + 0.5) / self.fx,
            "right": (self.width - 0.5 - self.cx) / self.fx,
            "top": (self.cy + 0.5) / self.fy,
            "bottom": (self.height - 0.5 - self.cy) / self.fy,
        }
        return {side: math.degrees(math.atan(t)) for side, t in tangents.items()}

    def field_of_view_deg(self) -> tuple[float, float]:
        """(horizontal, vertical) field of view (deg), edge to edge."""
        a = self.edge_angles_deg()
        return a["left"] + a["right"], a["top"] + a["bottom"]

    def normalised_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) = ((u - cx) / fx, (v - cy) / fy) of every pixel centre, each (height, width): the optical
        frame's ray (x, y, 1) through the pixel (x right, y down, z forward)."""
        x = (np.arange(self.width) - self.cx) / self.fx
        y = (np.arange(self.height) - self.cy) / self.fy
        return np.meshgrid(x, y)

    def ray_directions(self) -> np.ndarray:
        """Unit rays (height*width, 3) in the MuJoCo camera frame (x right, y up, looking along -z),
        row-major from the top-left pixel: ``envs.depth.pinhole_ray_directions`` for any K."""
        x, y = self.normalised_coordinates()
        dirs = np.stack([x, -y, -np.ones_like(x)], axis=-1).reshape(-1, 3)
        return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


@dataclass(frozen=True)
class ModelCamera:
    """The depth camera a policy observes through (see the module docstring), as its model carries it."""

    width: int
    height: int
    fovy_deg: float
    depth_range_m: float
    depth: str = "ray"

    def __post_init__(self) -> None:
        if not (0 < self.fovy_deg < 180 and self.depth_range_m > 0 and self.depth in DEPTH_KINDS):
            raise ValueError(
                f"model camera needs 0 < fovy_deg < 180, depth_range_m > 0 and depth in {DEPTH_KINDS}, got "
                f"fovy_deg={self.fovy_deg}, depth_range_m={self.depth_range_m}, depth={self.depth!r}"
            )

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics.from_fovy(self.width, self.height, self.fovy_deg)

    def to_metadata(self) -> dict:
        """The ``camera`` entry of the model's ``image`` metadata (JSON values)."""
        return {
            "projection": "pinhole, square pixels, centred, one ray through each pixel centre",
            "fovy_deg": self.fovy_deg,
            "depth_range_m": self.depth_range_m,
            "depth": self.depth,
            "values": "depth / depth_range_m clipped to [0, 1]; 1 = no return within range",
        }


def check_coverage(model: ModelCamera, camera: Intrinsics) -> None:
    """``FieldOfViewError`` with the numbers unless ``camera``'s image covers every ray of ``model``'s."""
    need, have = model.intrinsics.edge_angles_deg(), camera.edge_angles_deg()
    short = [side for side in need if have[side] < need[side] - 1e-9]
    if short:
        real, wanted = camera.field_of_view_deg(), model.intrinsics.field_of_view_deg()
        sides = ", ".join(f"{side} {have[side]:.1f} deg < {need[side]:.1f} deg" for side in short)
        raise FieldOfViewError(
            f"the camera's field of view {real[0]:.1f} x {real[1]:.1f} deg (horizontal x vertical; "
            f"{camera.width}x{camera.height}, fx {camera.fx:.1f}, fy {camera.fy:.1f}, cx {camera.cx:.1f}, "
            f"cy {camera.cy:.1f}) cannot cover the model's {wanted[0]:.1f} x {wanted[1]:.1f} deg "
            f"({model.width}x{model.height} at fovy {model.fovy_deg:g} deg); "
            f"from the optical axis: {sides}"
        )


class DepthResampler:
    """Real z-depth images (height, width) -> the model's normalised image (1, h, w) float32.

    Built once per camera (``FieldOfViewError`` if it cannot cover the model); ``__call__`` is a gather.
    Sampling: each model ray is projected into the real image with K (rays at the border clamp to the edge
    pixels) and read from the 4 pixel centres around it:

    - bilinearly, over the neighbours that hold a return (weights renormalised over them);
    - if their depths differ by more than ``edge_ratio`` of the nearest (a depth edge), the return of the
      neighbour with the largest weight: a blend would be a surface that is not there;
    - no return if the neighbours with one carry less than half the bilinear weight (a hole reads as one).

    A return is a finite depth > 0; NaN, 0 and +inf are none (REP 118: invalid, no measurement, too far)
    and read as the model's maximum range (1), as the simulator's ray-cast reads a miss; -inf (too close
    to measure) reads as 0. The sampled z becomes the model's depth along its own ray (``depth="ray"``):
    ``z * sqrt(1 + x^2 + y^2)`` with (x, y) the ray's normalised coordinates.
    """

    #: Neighbours whose depths differ by more than this fraction of the nearest are across an edge.
    edge_ratio = 0.1

    def __init__(self, model: ModelCamera, camera: Intrinsics) -> None:
        check_coverage(model, camera)
        self.model, self.camera = model, camera
        x, y = model.intrinsics.normalised_coordinates()  # (h, w): the model rays
        u = np.clip(camera.fx * x + camera.cx, 0, camera.width - 1).ravel()
        v = np.clip(camera.fy * y + camera.cy, 0, camera.height - 1).ravel()
        u0 = np.minimum(np.floor(u), max(camera.width - 2, 0)).astype(np.intp)
        v0 = np.minimum(np.floor(v), max(camera.height - 2, 0)).astype(np.intp)
        u1, v1 = np.minimum(u0 + 1, camera.width - 1), np.minimum(v0 + 1, camera.height - 1)
        du, dv = u - u0, v - v0
        #: (4, h*w) pixel rows, columns and bilinear weights of each model pixel's neighbours.
        self.rows = np.stack([v0, v0, v1, v1])
        self.cols = np.stack([u0, u1, u0, u1])
        weights = [(1 - du) * (1 - dv), du * (1 - dv), (1 - du) * dv, du * dv]
        self.weights = np.stack(weights).astype(np.float32)
        ray_length = np.sqrt(1 + x**2 + y**2).ravel() if model.depth == "ray" else np.ones(x.size)
        self._scale = (ray_length / model.depth_range_m).astype(np.float32)  # z (m) -> normalised depth

    def __call__(self, pixels: np.ndarray, metres_per_unit: float = 1.0) -> np.ndarray:
        """The model's image (1, h, w) float32 in [0, 1] from ``pixels`` (height, width): z-depth in units
        of ``metres_per_unit`` (1 for ``32FC1`` metres, 0.001 for ``16UC1`` millimetres), any dtype, any
        strides (a view on a message's rows)."""
        if pixels.shape != (self.camera.height, self.camera.width):
            raise ValueError(
                f"depth image is {pixels.shape[1]}x{pixels.shape[0]}, the camera's K is for "
                f"{self.camera.width}x{self.camera.height}"
            )
        z = pixels[self.rows, self.cols].astype(np.float32)  # (4, n): only the pixels used are read
        too_close = z == -np.inf
        z[too_close] = 0.0
        returns = ((z > 0) & (z < np.inf)) | too_close  # NaN compares False: no return
        weights = np.where(returns, self.weights, np.float32(0))
        total = weights.sum(axis=0)
        z = np.where(returns, z, np.float32(0))
        depth = (weights * z).sum(axis=0) / np.maximum(total, np.float32(1e-6))
        # Across a depth edge a blend would be a surface that is not there: the most weighted return.
        near, far = np.where(returns, z, np.inf).min(axis=0), z.max(axis=0)
        edge = far - near > self.edge_ratio * near
        if edge.any():
            nearest = weights[:, edge].argmax(axis=0)
            depth[edge] = z[nearest, np.flatnonzero(edge)]
        normalised = np.minimum(depth * (metres_per_unit * self._scale), np.float32(1))
        normalised[total < 0.5] = 1.0  # the neighbours with a return carry less than half the weight
        return normalised.reshape(1, self.model.height, self.model.width)

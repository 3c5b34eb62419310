"""The policy node's camera: ``sensor_msgs/Image`` (+ ``CameraInfo``) messages -> the model's image input.

Chosen once per model (``image_input``):

- ``ResampledDepth``: the model's contract names its depth camera (field of view, resolution, range), so
  any rectified depth camera can feed it. Each new ``CameraInfo`` (``camera/camera_info``, the topic beside
  ``camera/depth``) is checked and precomputes a ``runtime.camera.DepthResampler``; a camera that cannot
  cover the model's field of view is refused there, with the numbers. Each image (``16UC1`` millimetres
  or ``32FC1`` metres, z-depth as REP 118 defines it) is then resampled with a gather.
- ``ModelSizedImage``: RGB models, and depth models exported before their camera was recorded: the image
  must already have the model's size (as ``ros_conversions.image_to_array`` reads it).

Every refused frame raises ``MalformedMessageError`` with a reason (``encoding``, ``truncated``, ``size``,
``no_camera_info``, ``camera_refused``), which the node counts under ``dropped/image/<reason>``; nothing
from it reaches the controller, which holds on a stale image as on any stale input.
"""

from __future__ import annotations

import numpy as np

from rfo_ros.nodes.ros_conversions import (
    MalformedMessageError,
    depth_pixels,
    image_to_array,
    intrinsics_from_camera_info,
)
from rfo_ros.runtime.camera import DepthResampler, FieldOfViewError, ModelCamera
from rfo_ros.runtime.controller import ControlLog
from rfo_ros.runtime.metadata import ImageSpec

CAMERA_INFO_TOPIC = "camera/camera_info"


class ResampledDepth:
    """Depth images of any size and intrinsics, resampled to ``camera`` (see the module docstring)."""

    camera_info_topic = CAMERA_INFO_TOPIC

    def __init__(self, camera: ModelCamera, log: ControlLog) -> None:
        self.model_camera, self.log = camera, log
        self.resampler: DepthResampler | None = None
        self.refusal: str | None = None  # why the current CameraInfo was refused
        self._key: tuple | None = None  # the CameraInfo values the resampler was built from

    def camera_info(self, msg) -> None:
        """Build the resampler for a CameraInfo that differs from the last one (cheap when repeated)."""
        roi = msg.roi
        key = (
            msg.width, msg.height, tuple(msg.k), tuple(msg.d), msg.distortion_model, msg.binning_x,
            msg.binning_y, roi.x_offset, roi.y_offset, roi.width, roi.height,
        )  # fmt: skip
        if key == self._key:
            return
        self._key = key
        model = self.model_camera
        try:
            camera = intrinsics_from_camera_info(msg)
            resampler = DepthResampler(model, camera)
        except (MalformedMessageError, FieldOfViewError) as exc:
            self.resampler, self.refusal = None, f"camera refused: {exc}"
            self.log.warning(f"{self.refusal}; the policy holds until a camera that fits arrives")
            return
        self.resampler, self.refusal = resampler, None
        hfov, vfov = camera.field_of_view_deg()
        self.log.info(
            f"camera {camera.width}x{camera.height} ({hfov:.1f} x {vfov:.1f} deg) resampled to the model's "
            f"{model.width}x{model.height} at fovy {model.fovy_deg:g} deg, range {model.depth_range_m:g} m"
        )

    def image(self, msg) -> np.ndarray:
        """The model's image (1, h, w) float32 from a depth image; ``MalformedMessageError`` if refused."""
        resampler = self.resampler
        if resampler is None:
            if self.refusal is not None:
                raise MalformedMessageError("camera_refused", self.refusal)
            raise MalformedMessageError(
                "no_camera_info", f"no CameraInfo on {self.camera_info_topic} yet: cannot resample the image"
            )
        pixels, metres_per_unit = depth_pixels(msg)
        camera = resampler.camera
        if pixels.shape != (camera.height, camera.width):
            raise MalformedMessageError(
                "size",
                f"image is {msg.width}x{msg.height}, its CameraInfo says {camera.width}x{camera.height}",
            )
        return resampler(pixels, metres_per_unit)

    @property
    def status(self) -> str:
        """One line for diagnostics: the camera in use, why it was refused, or what it waits for."""
        if self.resampler is not None:
            c = self.resampler.camera
            return f"{c.width}x{c.height} fx {c.fx:.1f} fy {c.fy:.1f} cx {c.cx:.1f} cy {c.cy:.1f}"
        return self.refusal or f"waiting for {self.camera_info_topic}"


class ModelSizedImage:
    """Images that already have the model's size (RGB models; depth models without a recorded camera)."""

    camera_info_topic = None

    def __init__(self, spec: ImageSpec, depth_range_m: float) -> None:
        self.shape, self.depth_range_m = spec.shape, depth_range_m

    def image(self, msg) -> np.ndarray:
        return image_to_array(msg, self.shape, self.depth_range_m)

    @property
    def status(self) -> str:
        _, h, w = self.shape
        return f"images of the model's size {w}x{h} (the model records no camera to resample to)"


def image_input(spec: ImageSpec, depth_range_m: float, log: ControlLog) -> ResampledDepth | ModelSizedImage:
    """The camera input for a model's image ``spec`` (``depth_range_m``: only for a model without camera)."""
    if spec.camera is not None and spec.shape[0] == 1:
        return ResampledDepth(spec.camera, log)
    return ModelSizedImage(spec, depth_range_m)

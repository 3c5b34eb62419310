"""ROS message <-> numpy conversions shared by the policy and sim nodes.

Conventions: ROS quaternions are (x, y, z, w) (geometry_msgs), MuJoCo's and ``rfo_ros.envs.legged_obs``'s
are (w, x, y, z). ``sensor_msgs/Imu.angular_velocity`` and an ``Odometry`` twist are in the body frame
(REP 145 / REP 105: the twist is expressed in ``child_frame_id``).
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from rfo_ros.runtime.camera import Intrinsics
from rfo_ros.runtime.controller import MalformedInputError

#: A message that cannot be used (wrong names or lengths, non-finite values): the controller's own
#: error for a refused input, so the node counts both the same way.
MalformedMessageError = MalformedInputError


class JointStateReader:
    """Reads ``sensor_msgs/JointState`` into positions and velocities (float64) in a fixed joint order.

    The message may list the joints in any order and may carry extra joints; every joint of
    ``joint_names`` must be present, with as many positions and velocities as names. The index map is
    cached for the last name list seen, so a steady publisher costs one list comparison per message.
    """

    def __init__(self, joint_names: Sequence[str]) -> None:
        self.joint_names = tuple(joint_names)
        self._cached_names: list[str] | None = None
        self._index = np.arange(len(self.joint_names))
        self.position = np.zeros(len(self.joint_names))
        self.velocity = np.zeros(len(self.joint_names))

    def read(self, msg) -> None:
        """Fill ``position``/``velocity`` from ``msg``; ``MalformedMessageError`` leaves them unchanged."""
        names, n = msg.name, len(msg.name)
        if len(msg.position) != n or len(msg.velocity) != n:
            raise MalformedMessageError(
                "malformed",
                f"JointState has {n} names, {len(msg.position)} positions, {len(msg.velocity)} velocities",
            )
        if names != self._cached_names:
            self._index = self._index_for(names)
            self._cached_names = list(names)
        position = np.asarray(msg.position, dtype=np.float64)[self._index]
        velocity = np.asarray(msg.velocity, dtype=np.float64)[self._index]
        if not (np.isfinite(position).all() and np.isfinite(velocity).all()):
            raise MalformedMessageError("nonfinite", "JointState holds NaN or inf values")
        self.position[:] = position
        self.velocity[:] = velocity

    def _index_for(self, names: Sequence[str]) -> np.ndarray:
        where = {name: i for i, name in enumerate(names)}
        if len(where) != len(names):
            raise MalformedMessageError("malformed", f"JointState lists a joint twice: {list(names)}")
        missing = [name for name in self.joint_names if name not in where]
        if missing:
            raise MalformedMessageError(
                "malformed",
                f"JointState lacks joints {missing} (got {list(names)}; expected {list(self.joint_names)})",
            )
        return np.array([where[name] for name in self.joint_names], dtype=np.intp)


def read_quaternion_wxyz(q, out: np.ndarray) -> None:
    """Normalise a ``geometry_msgs/Quaternion`` into ``out`` as (w, x, y, z), scalar maths only (hot path).

    Raises ``MalformedMessageError`` (``out`` untouched) for NaN/inf or a norm far from 1 (not a rotation).
    """
    w, x, y, z = q.w, q.x, q.y, q.z
    norm_sq = w * w + x * x + y * y + z * z
    if not math.isfinite(norm_sq):
        raise MalformedMessageError(
            "nonfinite", f"orientation holds NaN or inf: (w, x, y, z) = {(w, x, y, z)}"
        )
    if not 0.25 < norm_sq < 4.0:
        raise MalformedMessageError(
            "malformed", f"orientation is not a rotation: (w, x, y, z) = {(w, x, y, z)}"
        )
    inv = 1.0 / math.sqrt(norm_sq)
    out[0], out[1], out[2], out[3] = w * inv, x * inv, y * inv, z * inv


def read_vector3(v, out: np.ndarray) -> None:
    """A ``geometry_msgs/Vector3`` into ``out`` (3,); ``MalformedMessageError`` on NaN/inf (out untouched)."""
    x, y, z = v.x, v.y, v.z
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
        raise MalformedMessageError("nonfinite", f"vector holds NaN or inf: {(x, y, z)}")
    out[0], out[1], out[2] = x, y, z


def set_quat_from_wxyz(q, wxyz: Sequence[float]) -> None:
    """Write a (w, x, y, z) quaternion into a ``geometry_msgs/Quaternion``."""
    q.w, q.x, q.y, q.z = (float(v) for v in wxyz)


def set_vector3(v, xyz: Sequence[float]) -> None:
    v.x, v.y, v.z = (float(c) for c in xyz)


def fill_imu(msg, stamp, frame_id: str, quat_wxyz, ang_vel_body, lin_acc=None) -> None:
    """Fill a ``sensor_msgs/Imu``; without ``lin_acc`` the acceleration is marked unknown (REP 145)."""
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    set_quat_from_wxyz(msg.orientation, quat_wxyz)
    set_vector3(msg.angular_velocity, ang_vel_body)
    if lin_acc is None:
        msg.linear_acceleration_covariance[0] = -1.0
    else:
        set_vector3(msg.linear_acceleration, lin_acc)


def fill_odometry(msg, stamp, frame_id: str, child_frame_id: str, pos, quat_wxyz, lin_vel_body, ang_vel_body):
    """Fill a ``nav_msgs/Odometry``: pose in ``frame_id``, twist in ``child_frame_id`` (the body, REP 105)."""
    msg.header.stamp, msg.header.frame_id, msg.child_frame_id = stamp, frame_id, child_frame_id
    set_vector3(msg.pose.pose.position, pos)
    set_quat_from_wxyz(msg.pose.pose.orientation, quat_wxyz)
    set_vector3(msg.twist.twist.linear, lin_vel_body)
    set_vector3(msg.twist.twist.angular, ang_vel_body)


def stamp_from_seconds(seconds: float) -> Time:
    sec = int(np.floor(seconds))
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def seconds_from_stamp(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def float_field_view(msg, field: str, size: int) -> np.ndarray:
    """Give ``msg.<field>`` (a float64 sequence) ``size`` zeros and return a writable numpy view on it.

    Writing through the view fills the message without rclpy's per-element conversion; the message keeps
    the same buffer as long as the field is not assigned again.
    """
    setattr(msg, field, array.array("d", bytes(8 * size)))
    return np.frombuffer(getattr(msg, field), dtype=np.float64)


def image_rows(msg, bytes_per_pixel: int) -> np.ndarray:
    """The pixel bytes of a ``sensor_msgs/Image`` as (height, width * bytes_per_pixel) uint8, a view on
    ``msg.data`` (row padding dropped). ``MalformedMessageError("truncated")`` unless the data is exactly
    ``step * height`` bytes and a row (``step``) holds ``width`` pixels."""
    height, width, step, size = msg.height, msg.width, msg.step, len(msg.data)
    if step < width * bytes_per_pixel or size != step * height:
        raise MalformedMessageError(
            "truncated",
            f"image {width}x{height} ({msg.encoding}, {bytes_per_pixel} bytes per pixel) needs step >= "
            f"{width * bytes_per_pixel} and step * height bytes of data; got step {step} and {size} bytes",
        )
    return np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)[:, : width * bytes_per_pixel]


def depth_pixels(msg) -> tuple[np.ndarray, float]:
    """A REP 118 depth ``sensor_msgs/Image`` as ((height, width) z-depth values, metres per unit), a view
    on the message's bytes: ``16UC1`` millimetres (0: no return) or ``32FC1`` metres (NaN/inf: none).

    ``MalformedMessageError`` with reason ``encoding`` for any other encoding, ``truncated`` for a data
    length that does not match ``step`` and the size.
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        accepted = ", ".join(f"{name} ({unit})" for name, (_, _, unit) in DEPTH_ENCODINGS.items())
        raise MalformedMessageError(
            "encoding", f"depth image encoding {msg.encoding!r} is not accepted: use {accepted} (REP 118)"
        )
    dtype, metres_per_unit, _ = DEPTH_ENCODINGS[msg.encoding]
    dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    rows = image_rows(msg, dtype.itemsize)
    return rows.view(dtype), metres_per_unit


def image_message(stamp, frame_id: str, encoding: str, pixels: np.ndarray) -> Image:
    """A ``sensor_msgs/Image`` of ``pixels`` (height, width[, channels]) in ``encoding``, rows unpadded."""
    height, width = pixels.shape[:2]
    pixels = np.ascontiguousarray(pixels)
    msg = Image(
        height=height, width=width, encoding=encoding, is_bigendian=int(pixels.dtype.byteorder == ">")
    )
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.step = pixels.strides[0]
    msg.data = pixels.tobytes()
    return msg


def depth_image_data(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    """z-depth (height, width) in metres, +inf = no return, as the pixels of a REP 118 ``encoding``: ``32FC1``
    metres as they are, ``16UC1`` rounded millimetres with 0 for no return (and beyond 65.535 m)."""
    if encoding == "32FC1":
        return np.ascontiguousarray(depth_m, dtype=np.float32)
    if encoding == "16UC1":
        mm = np.round(np.asarray(depth_m, dtype=np.float64) * 1000.0)
        return np.where(np.isfinite(mm) & (mm > 0) & (mm <= 65535), mm, 0).astype(np.uint16)
    raise ValueError(f"depth encoding {encoding!r}: choose one of {', '.join(DEPTH_ENCODINGS)}")


def image_to_array(msg, shape: Sequence[int], depth_range_m: float) -> np.ndarray:
    """A ``sensor_msgs/Image`` of exactly the model's size as float32 (channels, height, width).

    ``rgb8``/``bgr8`` become RGB in [0, 1] and ``mono8`` grey in [0, 1]. Depth (``16UC1``/``32FC1``, for
    models whose contract has no camera to resample to) becomes ``clip(depth / depth_range_m, 0, 1)`` with
    no return (NaN, 0, inf) read as 1, the ray-cast's normalisation. Raises ``MalformedMessageError`` on a
    size, encoding or data-length mismatch.
    """
    channels, height, width = (int(v) for v in shape)
    if msg.height != height or msg.width != width:
        raise MalformedMessageError(
            "malformed", f"image is {msg.width}x{msg.height}, the model expects {width}x{height}"
        )
    if channels == 1 and msg.encoding in DEPTH_ENCODINGS:
        pixels, metres_per_unit = depth_pixels(msg)
        depth = pixels.astype(np.float32) * np.float32(metres_per_unit / depth_range_m)
        depth[~((depth > 0) & (depth < np.inf))] = 1.0
        return np.minimum(depth, 1.0)[None]
    if IMAGE_ENCODINGS.get(msg.encoding) != channels:
        accepted = [name for name, n in IMAGE_ENCODINGS.items() if n == channels]
        if channels == 1:
            accepted += list(DEPTH_ENCODINGS)
        raise MalformedMessageError(
            "encoding",
            f"image encoding {msg.encoding!r} does not give the model's {channels} channel(s): use "
            f"{', '.join(accepted)}",
        )
    pixels = image_rows(msg, channels).reshape(height, width, channels)
    if msg.encoding == "bgr8":
        pixels = pixels[..., ::-1]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def intrinsics_from_camera_info(msg) -> Intrinsics:
    """The rectified pinhole camera of a ``sensor_msgs/CameraInfo``: its size and K.

    Lens distortion is not modelled, so D must be empty or all zero (``plumb_bob`` with zero D is what
    depth cameras publish for their rectified depth stream); binning and a region of interest are refused
    (publish the full image). Raises ``MalformedMessageError`` (reason ``camera_info``) naming the problem.
    """
    d = np.asarray(msg.d, dtype=np.float64)
    roi = msg.roi
    problems = []
    if d.size and not (np.isfinite(d).all() and (d == 0).all()):
        problems.append(
            f"distortion {msg.distortion_model!r} D={d.tolist()} is not zero (subscribe to the rectified "
            "depth image, whose CameraInfo has zero D)"
        )
    if msg.binning_x > 1 or msg.binning_y > 1:
        problems.append(f"binning {msg.binning_x}x{msg.binning_y} is not supported (publish unbinned images)")
    if (
        roi.x_offset
        or roi.y_offset
        or (roi.width and roi.width != msg.width)
        or (roi.height and roi.height != msg.height)
    ):
        problems.append("a region of interest is not supported (publish the full image)")
    k = np.asarray(msg.k, dtype=np.float64)
    try:
        intrinsics = Intrinsics(int(msg.width), int(msg.height), k[0], k[4], k[2], k[5])
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise MalformedMessageError("camera_info", "CameraInfo refused: " + "; ".join(problems))
    return intrinsics


def fill_camera_info(msg, stamp, frame_id: str, camera: Intrinsics) -> None:
    """Fill a ``sensor_msgs/CameraInfo`` for a rectified, distortion-free pinhole ``camera``."""
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.width, msg.height = camera.width, camera.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    msg.k = k
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0]


#: encoding -> channels of the 8-bit images a policy can take as they are.
IMAGE_ENCODINGS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
#: REP 118 depth encoding -> (pixel dtype, metres per unit, unit).
DEPTH_ENCODINGS = {
    "16UC1": (np.dtype(np.uint16), 0.001, "millimetres"),
    "32FC1": (np.dtype(np.float32), 1.0, "metres"),
}

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


def image_to_array(msg, shape: Sequence[int], depth_range_m: float) -> np.ndarray:
    """A ``sensor_msgs/Image`` as float32 (channels, height, width) matching a model's image ``shape``.

    ``rgb8``/``bgr8`` become RGB in [0, 1] and ``mono8`` grey in [0, 1]; ``32FC1`` depth (metres, REP 118)
    becomes ``clip(depth / depth_range_m, 0, 1)`` with NaN/inf (no return) read as 1, the normalisation
    of ``rfo_ros.envs.depth.DepthCamera``. Raises ``MalformedMessageError`` on a size or encoding mismatch.
    """
    channels, height, width = (int(v) for v in shape)
    if msg.height != height or msg.width != width:
        raise MalformedMessageError(
            "malformed", f"image is {msg.width}x{msg.height}, the model expects {width}x{height}"
        )
    nch, dtype = IMAGE_ENCODINGS.get(msg.encoding, (0, None))
    if nch != channels:
        raise MalformedMessageError(
            "malformed", f"image encoding {msg.encoding!r} does not give the model's {channels} channel(s)"
        )
    row = width * nch * np.dtype(dtype).itemsize
    if msg.step < row or len(msg.data) < msg.step * height:
        raise MalformedMessageError(
            "malformed", f"image data too short ({len(msg.data)} bytes, step {msg.step})"
        )
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8)[: msg.step * height].reshape(height, msg.step)
    pixels = raw[:, :row].copy().view(dtype).reshape(height, width, nch)
    if msg.is_bigendian and dtype == np.float32:
        pixels = pixels.byteswap()
    if msg.encoding == "bgr8":
        pixels = pixels[..., ::-1]
    if dtype == np.uint8:
        out = pixels.astype(np.float32) / 255.0
    else:
        out = np.clip(np.nan_to_num(pixels / depth_range_m, nan=1.0, posinf=1.0, neginf=1.0), 0.0, 1.0)
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)


#: encoding -> (channels, pixel dtype) of the images a policy can take.
IMAGE_ENCODINGS = {
    "rgb8": (3, np.uint8),
    "bgr8": (3, np.uint8),
    "mono8": (1, np.uint8),
    "32FC1": (1, np.float32),
}

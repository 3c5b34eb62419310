"""The legged observation contract, shared by the training task and the ROS policy node.

Pure array maths that works on numpy arrays AND torch tensors (batched over leading dims), with no
MuJoCo or ROS imports: the simulator task builds the observation from ``qpos``/``qvel`` and the policy
node builds the same vector from ``JointState``/``Imu``/``Odometry``/``Twist`` with the same code.

Frames. Quaternions are (w, x, y, z), rotating body-frame vectors into the world frame. "Body frame"
vectors are expressed in the trunk (IMU) frame: ``sensor_msgs/Imu.angular_velocity`` and the twist of a
``nav_msgs/Odometry`` (REP 105: expressed in ``child_frame_id``, the base) already are; in MuJoCo a free
joint's ``qvel[0:3]`` is the WORLD-frame linear velocity and ``qvel[3:6]`` the BODY-frame angular
velocity (checked against the ``velocimeter`` and ``gyro`` sensors in tests/test_worlds.py).

torch is never imported here: a torch tensor can only be passed in once the caller has loaded torch, so
numpy callers (the policy node) never pay for it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

Array = Any  # np.ndarray or torch.Tensor


def _is_tensor(x: Array) -> bool:
    """True for a torch tensor, without importing torch (no tensor exists before torch is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _stack(parts: Sequence[Array], like: Array) -> Array:
    if _is_tensor(like):
        import torch

        return torch.stack(list(parts), dim=-1)
    return np.stack(parts, axis=-1)


def _cross(a: Array, b: Array, like: Array) -> Array:
    if _is_tensor(like):  # one op (and one backward op) instead of fifteen: the training loop's hot path
        import torch

        dtype = torch.promote_types(a.dtype, b.dtype)
        return torch.linalg.cross(*torch.broadcast_tensors(a.to(dtype), b.to(dtype)), dim=-1)
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return _stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], like)


def quat_rotate_inverse(q_wxyz: Array, v: Array) -> Array:
    """Rotate world-frame vectors into the body frame: ``R(q)ᵀ v``. Shapes (..., 4), (..., 3) -> (..., 3).

    Uses ``v' = v - w t + u × t`` with ``t = 2 u × v`` (u = vector part), the conjugate rotation.
    """
    if _is_tensor(v) and not _is_tensor(q_wxyz):
        import torch

        q_wxyz = torch.as_tensor(q_wxyz, dtype=v.dtype, device=v.device)
    elif _is_tensor(q_wxyz) and not _is_tensor(v):
        import torch

        v = torch.as_tensor(v, dtype=q_wxyz.dtype, device=q_wxyz.device)
    if _is_tensor(v):
        from rfo_ros.envs.rotation_grad import can_rotate, quat_rotate_inverse_cpu

        if can_rotate(q_wxyz, v):  # the training loop's case: one autograd node, not a dozen
            return quat_rotate_inverse_cpu(q_wxyz, v)
    w, u = q_wxyz[..., 0:1], q_wxyz[..., 1:4]
    t = 2.0 * _cross(u, v, like=q_wxyz)
    return v - w * t + _cross(u, t, like=q_wxyz)


def projected_gravity(q_wxyz: Array) -> Array:
    """Unit gravity direction (0, 0, -1) in the body frame, ``R(q)ᵀ (0, 0, -1)``: (..., 4) -> (..., 3).

    (0, 0, -1) when upright; the z component is ``-cos(tilt)``.
    """
    if type(q_wxyz) is np.ndarray and q_wxyz.shape == (4,) and q_wxyz.dtype == np.float64:
        # One quaternion (the policy node): the same float64 operations on Python floats, ~10x faster.
        w, x, y, z = q_wxyz.tolist()
        return np.array((2.0 * (w * y - x * z), -2.0 * (w * x + y * z), 2.0 * (x * x + y * y) - 1.0))
    if _is_tensor(q_wxyz):  # batched tensors (training): the rotation's few vector operations
        down = q_wxyz.new_tensor((0.0, 0.0, -1.0)).expand(*q_wxyz.shape[:-1], 3)
        return quat_rotate_inverse(q_wxyz, down)
    w, x, y, z = q_wxyz[..., 0], q_wxyz[..., 1], q_wxyz[..., 2], q_wxyz[..., 3]
    return _stack([2.0 * (w * y - x * z), -2.0 * (w * x + y * z), 2.0 * (x * x + y * y) - 1.0], q_wxyz)


@dataclass(frozen=True)
class ObsField:
    """One named block of the observation: ``(value - offset) * scale``, ``size`` entries.

    ``scale`` and ``offset`` are per entry (tuples of length ``size``).
    """

    name: str
    size: int
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    description: str

    @staticmethod
    def make(name: str, size: int, description: str, scale=1.0, offset=0.0) -> ObsField:
        def per_entry(x) -> tuple[float, ...]:
            vals = tuple(float(v) for v in np.broadcast_to(np.asarray(x, dtype=np.float64), (size,)))
            return vals

        return ObsField(name, size, per_entry(scale), per_entry(offset), description)


@dataclass(frozen=True)
class ObsLayout:
    """An ordered list of fields; the observation is their scaled values concatenated in order.

    Derived values (names, size, the whole-vector offset and scale) are computed once per layout.
    """

    fields: tuple[ObsField, ...]

    @cached_property
    def size(self) -> int:
        return sum(f.size for f in self.fields)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @cached_property
    def offset(self) -> tuple[float, ...]:
        """Every field's offset, concatenated: (size,)."""
        return tuple(v for f in self.fields for v in f.offset)

    @cached_property
    def scale(self) -> tuple[float, ...]:
        """Every field's scale, concatenated: (size,)."""
        return tuple(v for f in self.fields for v in f.scale)

    @cached_property
    def _vector_cache(self) -> dict[Any, tuple[Any, Any]]:
        return {}

    def numpy_vectors(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Read-only ``(offset, scale)`` arrays (size,) of ``dtype``, built on first use per dtype."""
        vectors = self._vector_cache.get(dtype)
        if vectors is None:
            vectors = (np.array(self.offset, dtype=dtype), np.array(self.scale, dtype=dtype))
            for v in vectors:
                v.flags.writeable = False
            self._vector_cache[dtype] = vectors
        return vectors

    def torch_vectors(self, dtype: Any, device: Any) -> tuple[Any, Any]:
        """``(offset, scale)`` tensors (size,) of ``dtype`` on ``device``, built on first use per pair
        (building them from the tuples on every training step cost more than the subtraction)."""
        key = (dtype, device)
        vectors = self._vector_cache.get(key)
        if vectors is None:
            import torch

            vectors = tuple(torch.tensor(v, dtype=dtype, device=device) for v in (self.offset, self.scale))
            self._vector_cache[key] = vectors
        return vectors

    def slice(self, name: str) -> slice:
        """Where field ``name`` sits in the observation vector."""
        start = 0
        for f in self.fields:
            if f.name == name:
                return slice(start, start + f.size)
            start += f.size
        raise KeyError(f"no observation field {name!r}; fields: {', '.join(self.names)}")


def legged_obs_layout(
    joint_names: Sequence[str],
    standing_pose: Sequence[float],
    base_lin_vel: bool = True,
    gait_clock: bool = False,
) -> ObsLayout:
    """The velocity-tracking observation of a legged robot with these policy joints (12 + 3n values).

    Body-frame velocities, projected gravity, the command, the joint positions minus the standing pose,
    the joint velocities and the last action, scaled as legged_gym does (lin. vel. ×2, ang. vel. ×0.25,
    yaw-rate command ×0.25, joint velocities ×0.05). Without ``base_lin_vel`` (9 + 3n values) it is what
    joint encoders and an IMU measure: a robot needs no odometry for it. ``gait_clock`` appends the
    robot's gait clock (sin, cos of its phase, ``rfo_ros.envs.gait``), 2 more values.
    """
    n = len(joint_names)
    if len(standing_pose) != n:
        raise ValueError(f"{len(standing_pose)} standing-pose values for {n} joints")
    order = "policy joint order: " + ", ".join(joint_names)
    return ObsLayout(
        (
            *((BASE_LIN_VEL,) if base_lin_vel else ()),
            ObsField.make("base_ang_vel", 3, "trunk angular velocity, body frame (rad/s)", scale=0.25),
            ObsField.make("projected_gravity", 3, "unit gravity vector in the body frame"),
            ObsField.make(
                "command", 3, "velocity command (vx, vy m/s; yaw rate rad/s)", scale=(2.0, 2.0, 0.25)
            ),
            ObsField.make("joint_pos", n, f"joint positions (rad), {order}", offset=tuple(standing_pose)),
            ObsField.make("joint_vel", n, f"joint velocities (rad/s), {order}", scale=0.05),
            ObsField.make("last_action", n, "previous policy action in [-1, 1]"),
            *((GAIT_CLOCK,) if gait_clock else ()),
        )
    )


#: The trunk's linear velocity field (odometry), ×2 as legged_gym scales it.
BASE_LIN_VEL = ObsField.make("base_lin_vel", 3, "trunk linear velocity, body frame (m/s)", scale=2.0)

#: The gait clock's field: a deployment computes it from the time since its controller started.
GAIT_CLOCK = ObsField.make(
    "gait_clock", 2, "(sin, cos) of the gait phase 2π·f·t, t since the controller started (s)"
)


#: The privileged fields a critic may observe (``rfo_ros.envs.privileged`` computes them in training).
PRIVILEGED_FIELDS = ("base_lin_vel", "base_height", "clean_obs", "physics", "latency", "push", "height_scan")


def check_privileged_fields(fields: Sequence[str]) -> tuple[str, ...]:
    """``fields`` as a tuple; ValueError naming what is wrong (not a list of names, an unknown or a
    repeated field) and the valid fields."""
    valid = f"valid: {', '.join(PRIVILEGED_FIELDS)}"
    # A bare string is a Sequence too: "physics" would read as seven one-letter fields.
    names = not isinstance(fields, str) and isinstance(fields, Sequence)
    if not (names and all(isinstance(f, str) for f in fields)):
        raise ValueError(f"privileged fields are a list of names, got {fields!r}; {valid}")
    fields = tuple(fields)
    unknown = [f for f in fields if f not in PRIVILEGED_FIELDS]
    if unknown:
        raise ValueError(f"unknown privileged fields {unknown}; {valid}")
    repeated = sorted({f for f in fields if fields.count(f) > 1})
    if repeated:
        raise ValueError(f"privileged fields named twice: {repeated}; {valid}")
    return fields


def build_observation(fields: Mapping[str, Array], layout: ObsLayout) -> Array:
    """Concatenate ``(value - offset) * scale`` of every field of ``layout`` in order.

    ``fields`` maps each field name to an array (..., size); all numpy or all torch (the output follows
    the first field's kind, dtype and device). Extra keys are ignored; missing ones are an error.
    """
    missing = [name for name in layout.names if name not in fields]
    if missing:
        raise KeyError(f"observation fields missing: {', '.join(missing)}; layout: {', '.join(layout.names)}")
    values = [fields[name] for name in layout.names]
    for f, value in zip(layout.fields, values, strict=True):
        if value.shape[-1] != f.size:
            raise ValueError(
                f"observation field {f.name!r} needs size {f.size} last, got {tuple(value.shape)}"
            )
    first = values[0]
    if _is_tensor(first):
        return _build_observation_torch(values, layout, like=first)
    # Elementwise, so subtracting and scaling the concatenated vector gives the per-field numbers.
    dtype = np.result_type(first, np.float32)
    offset, scale = layout.numpy_vectors(dtype)
    obs = np.concatenate(values, axis=-1, dtype=dtype, casting="unsafe")
    obs -= offset
    obs *= scale
    return obs


def _build_observation_torch(values: Sequence[Array], layout: ObsLayout, like: Array) -> Array:
    """The torch path of ``build_observation``: differentiable, in ``like``'s dtype and device."""
    import torch

    kind = {"dtype": like.dtype, "device": like.device}
    obs = torch.cat([torch.as_tensor(v, **kind) for v in values], dim=-1)
    offset, scale = layout.torch_vectors(like.dtype, like.device)
    return (obs - offset) * scale


def layout_metadata(layout: ObsLayout, history: int = 1) -> dict:
    """A JSON-able description of ``layout`` for the exported model's metadata.

    ``{"size": D, "formula": ..., "fields": [{"name", "size", "start", "scale", "offset", "description"}]}``
    where ``start`` is the field's index in the observation vector. With ``history`` K > 1 the observation
    is K such frames, oldest first (``FrameHistory``): ``size`` is K·D, ``frame_size`` D, ``history`` K,
    and ``start`` indexes a frame.
    """
    out, start = [], 0
    for f in layout.fields:
        out.append(
            {
                "name": f.name,
                "size": f.size,
                "start": start,
                "scale": list(f.scale),
                "offset": list(f.offset),
                "description": f.description,
            }
        )
        start += f.size
    formula = "obs[start:start+size] = (value - offset) * scale"
    if history == 1:
        return {"size": layout.size, "formula": formula, "fields": out}
    return {
        "size": history * layout.size,
        "frame_size": layout.size,
        "history": history,
        "formula": f"obs = concat(frame[t-{history - 1}], ..., frame[t]), one frame per control step; "
        f"frame[start:start+size] = (value - offset) * scale; before {history} steps have passed "
        "(start, reset, resume after a hold) the first frame fills the older slots",
        "fields": out,
    }


def parse_layout_metadata(description: Mapping[str, Any]) -> tuple[ObsLayout, int]:
    """The ``(layout, history)`` that ``layout_metadata`` described; ValueError naming what is wrong.

    A field without ``scale``/``offset`` has scale 1 and offset 0 (a task's plain "state" field).
    """
    try:
        fields = tuple(
            ObsField.make(f["name"], int(f["size"]), str(f.get("description", "")),
                          f.get("scale", 1.0), f.get("offset", 0.0))
            for f in description["fields"]
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"has no usable fields ({exc!r}): {description!r:.200}") from exc
    return ObsLayout(fields), check_frames(description.get("history", 1), "history")


def check_frames(value: object, name: str = "frames") -> int:
    """``value`` as a history length: an integer >= 1 (bools refused), else a ValueError naming ``name``."""
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive integer (frames observed), got {value!r}")
    return value


class FrameHistory:
    """The last ``frames`` observation frames of a batch (or of one robot), concatenated oldest first.

    The policy of a robot without odometry cannot tell its speed from one instant of joints and IMU; a
    few past frames let it. The training env (torch, batched, differentiable: stored frames keep their
    graph until ``detach``) and the policy node (numpy, one frame per control step) share this class, so
    both build the model's input the same way. Until ``frames`` frames exist, the first one fills the
    older slots (also for the rows ``restart`` names: an env reset, a node resuming after a hold).
    """

    def __init__(self, frames: int) -> None:
        self.frames = check_frames(frames)
        self.stored: list[Array] = []  # the newest ``frames`` frames, oldest first; empty before the first

    def stack(self, frame: Array) -> Array:
        """The observation if ``frame`` came next, without storing it: (..., frames · D)."""
        if self.frames == 1:
            return frame
        older = self.stored[1:] if self.stored else [frame] * (self.frames - 1)
        return _concat([*older, frame], like=frame)

    def push(self, frame: Array) -> Array:
        """Store ``frame`` as the newest (dropping the oldest) and return the observation."""
        self.stored = self.stored[1:] + [frame] if self.stored else [frame] * self.frames
        return self.current()

    def restart(self, rows: Array | None, frame: Array) -> Array:
        """Every slot of the ``rows`` (a (N,) bool mask; None: all) becomes ``frame``; the observation."""
        if rows is None or not self.stored:
            self.stored = [frame] * self.frames
        else:
            self.stored = [_where(rows, frame, old) for old in self.stored]
        return self.current()

    def current(self) -> Array:
        """The stored frames concatenated, oldest first."""
        return self.stored[0] if self.frames == 1 else _concat(self.stored, like=self.stored[0])

    def clear(self) -> None:
        """Forget every frame: the next ``push`` fills the history with its frame."""
        self.stored = []

    def detach(self) -> None:
        """Cut the autograd graph of the stored (torch) frames: a training window's boundary."""
        self.stored = [frame.detach() for frame in self.stored]


def _concat(parts: Sequence[Array], like: Array) -> Array:
    if _is_tensor(like):
        import torch

        return torch.cat(list(parts), dim=-1)
    return np.concatenate(parts, axis=-1)


def _where(rows: Array, new: Array, old: Array) -> Array:
    if _is_tensor(new):
        import torch

        return torch.where(rows[:, None], new, old)
    return np.where(rows[:, None], new, old)

"""The contract an exported policy carries: ONNX ``metadata_props`` (JSON values) + its inputs/outputs.

Written by ``rfo_ros.export`` (``ModelMetadata.to_props``) and read back here by the runtime, so the
policy node needs no hidden knowledge about a model: joint names and order, control period, chunk,
observation layout, action map, image input, noise input. Every problem is a ``ModelError`` that names
the file and what is wrong with it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rfo_ros.envs.gait import GaitPrior, clock_columns
from rfo_ros.envs.legged_obs import ObsLayout, layout_metadata, parse_layout_metadata
from rfo_ros.runtime.camera import ModelCamera

FORMAT = "rfo_ros.onnx/1"
INPUT_NAMES = ("observation", "noise", "image", "committed", "committed_weight")
OUTPUT_NAME = "action_chunk"
#: Metadata keys every model must carry (values are JSON).
REQUIRED_KEYS = (
    "rfo_ros_format", "task", "algo", "policy_kind", "training_commit", "export_time",
    "joint_names", "dt", "flow_steps", "flow_solver", "chunk", "action_dim", "obs_dim", "obs_layout",
    "normalization", "action_map", "image", "zero_noise",
)  # fmt: skip
OPTIONAL_KEYS = ("robot", "checkpoint", "exporter", "inpainting", "route")


class ModelError(RuntimeError):
    """A policy model is missing, unreadable, or does not satisfy the rfo_ros model contract."""


class RobotMismatchError(ModelError):
    """The robot's joints do not match the joints the model was trained for."""


@dataclass(frozen=True)
class ImageSpec:
    """The ``image`` input: (channels, height, width) float32, and how the task produced the pixels.

    ``camera``: the depth camera the pixels come from (field of view, depth range; ``runtime.camera``), so
    a node can resample any real camera to it; None for models exported before it was recorded.
    """

    shape: tuple[int, int, int]
    encoding: str | None
    camera: ModelCamera | None = None


@dataclass(frozen=True, eq=False)
class ModelMetadata:
    """Parsed, validated model contract. Arrays are float64 of length ``action_dim``.

    ``obs_dim`` is the width of the ``observation`` input (the proprioceptive part when there is an
    image); ``flow_steps`` is 0 for tanh-Gaussian policies. The action map is
    ``ctrl = clip(action_offset + action_scale · a, action_low, action_high)``, already in the graph.
    """

    source: str
    task: str
    algo: str
    policy_kind: str
    training_commit: str
    export_time: str
    joint_names: tuple[str, ...]
    dt: float
    flow_steps: int
    flow_solver: str | None
    chunk: int
    action_dim: int
    obs_dim: int
    obs_layout: ObsLayout  # one frame's fields
    normalization: dict[str, Any]
    action_scale: np.ndarray
    action_offset: np.ndarray
    action_low: np.ndarray
    action_high: np.ndarray
    image: ImageSpec | None
    zero_noise: bool
    robot: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None
    exporter: str | None = None
    #: The graph takes ``committed`` (1, C, m) actuator commands and ``committed_weight`` (1, C) and
    #: inpaints them during the flow integration (real-time chunk execution; absent = False).
    inpainting: bool = False
    #: Frames the observation stacks, oldest first (``legged_obs.FrameHistory``): obs_dim = K · frame size.
    obs_history: int = 1
    #: How the policy was made, first stage first: each stage's algorithm, env steps, wall-clock and
    #: what it started from (``rfo_ros.route``); absent in models exported before routes were recorded.
    route: list[dict[str, Any]] | None = None
    format: str = FORMAT
    extra: dict[str, str] = field(default_factory=dict)

    # --- shapes ------------------------------------------------------------------------------------
    @property
    def policy_shape(self) -> str:
        """The policy in a few words for logs and reports: ``flow K=4 C=1`` or ``gaussian C=1``."""
        steps = f" K={self.flow_steps}" if self.policy_kind == "flow" else ""
        return f"{self.policy_kind}{steps} C={self.chunk}"

    @property
    def input_names(self) -> tuple[str, ...]:
        return (
            ("observation",)
            + (() if self.zero_noise else ("noise",))
            + (("image",) if self.image else ())
            + (("committed", "committed_weight") if self.inpainting else ())
        )

    def input_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Each graph input's shape at batch size ``batch``."""
        shapes = {
            "observation": (batch, self.obs_dim),
            "noise": (batch, self.chunk, self.action_dim),
            "committed": (batch, self.chunk, self.action_dim),
            "committed_weight": (batch, self.chunk),
        }
        if self.image:
            shapes["image"] = (batch, *self.image.shape)
        return {name: shapes[name] for name in self.input_names}

    def check_io(
        self, inputs: Sequence[tuple[str, Sequence]], outputs: Sequence[tuple[str, Sequence]]
    ) -> None:
        """Check graph inputs/outputs, given as (name, shape) with a symbolic (str/None) batch dim."""
        expected = {name: shape[1:] for name, shape in self.input_shapes().items()}
        found = {name: tuple(shape) for name, shape in inputs}
        if set(found) != set(expected):
            raise ModelError(
                f"{self.source}: inputs {sorted(found)} do not match the metadata, which implies "
                f"{sorted(expected)} (zero_noise={self.zero_noise}, image={self.image is not None}, "
                f"inpainting={self.inpainting})"
            )
        for name, shape in found.items():
            _check_shape(self.source, f"input {name!r}", shape, expected[name])
        out = dict((name, tuple(shape)) for name, shape in outputs)
        if OUTPUT_NAME not in out:
            raise ModelError(f"{self.source}: no output named {OUTPUT_NAME!r} (outputs: {sorted(out)})")
        _check_shape(self.source, f"output {OUTPUT_NAME!r}", out[OUTPUT_NAME], (self.chunk, self.action_dim))

    # --- action map --------------------------------------------------------------------------------
    @functools.cached_property
    def action_scale_inverse(self) -> np.ndarray:
        """1 / action_scale per actuator, 0 where a joint has no scale (m,)."""
        scale = self.action_scale
        return np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)

    def policy_action(self, command: np.ndarray, prior: np.ndarray | float = 0.0) -> np.ndarray:
        """The policy-space action in [-1, 1] (m,) that the action map turns into ``command`` (clipped):
        what the ``last_action`` observation field holds once ``command`` has been executed. ``prior``:
        the gait prior the graph added to that command (``gait``), zero for models without one."""
        offset = self.action_offset + prior
        return np.clip((command - offset) * self.action_scale_inverse, -1.0, 1.0)

    @functools.cached_property
    def gait(self) -> GaitPrior | None:
        """The robot's gait prior (``rfo_ros.envs.gait``) when the model was trained with one: the graph
        adds it to its commands, computed from the observation's ``gait_clock`` field, which the caller
        supplies (a controller counts its control steps)."""
        spec = ((self.robot or {}).get("description") or {}).get("gait")
        return None if spec is None else GaitPrior.from_spec(spec, self.dt)

    def _clock(self, observation: np.ndarray) -> np.ndarray:
        """(B, 2) the gait clock an observation (B, obs_dim) carries."""
        return np.asarray(observation[:, clock_columns(self.obs_layout, self.obs_history)], dtype=np.float64)

    def chunk_prior(self, observation: np.ndarray) -> np.ndarray:
        """(B, C, m) the gait prior the graph added to each command of the chunks it planned from
        ``observation`` (B, obs_dim); zeros for models without a gait."""
        if self.gait is None:
            return np.zeros((len(observation), self.chunk, self.action_dim))
        return self.gait.chunk_prior(self._clock(observation), self.chunk)

    def step_prior(self, observation: np.ndarray) -> np.ndarray:
        """(B, m) the gait prior at the time of ``observation`` (B, obs_dim): what the graph added to the
        first command of the chunk it plans from it; zeros for models without a gait."""
        if self.gait is None:
            return np.zeros((len(observation), self.action_dim))
        return self.gait.prior_from_clock(self._clock(observation))

    # --- robot -------------------------------------------------------------------------------------
    def check_robot(
        self, joint_names: Sequence[str], exact: bool = False, commanded: bool = False
    ) -> np.ndarray:
        """Indices ``idx`` with ``robot_values[idx]`` in the model's joint order.

        Raises ``RobotMismatchError`` naming the differences if a model joint is missing on the robot
        (or listed twice); with ``commanded=True`` also if the robot has joints the model does not command
        (any order: the joints a policy node drives), and with ``exact=True`` if it has other joints or
        another order.
        """
        robot = list(joint_names)
        missing = [n for n in self.joint_names if n not in robot]
        duplicated = sorted({n for n in robot if robot.count(n) > 1 and n in self.joint_names})
        extra = [n for n in robot if n not in self.joint_names]
        problems = []
        if missing:
            problems.append(f"missing on the robot: {missing}")
        if duplicated:
            problems.append(f"listed more than once by the robot: {duplicated}")
        if exact and extra:
            problems.append(f"not in the model: {extra}")
        elif commanded and extra:
            problems.append(f"robot joints {extra} are not commanded (model: {list(self.joint_names)})")
        if exact and not problems and robot != list(self.joint_names):
            problems.append(f"order differs: model {list(self.joint_names)}, robot {robot}")
        if problems:
            if extra and not (exact or commanded):
                problems.append(f"(robot joints not used by the model: {extra})")
            raise RobotMismatchError(
                f"robot joints do not match model {self.source} (task {self.task!r}): " + "; ".join(problems)
            )
        return np.array([robot.index(n) for n in self.joint_names], dtype=np.intp)

    # --- (de)serialisation -------------------------------------------------------------------------
    def to_props(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` for this contract (every value JSON)."""
        values = {
            "rfo_ros_format": self.format,
            "task": self.task,
            "algo": self.algo,
            "policy_kind": self.policy_kind,
            "training_commit": self.training_commit,
            "export_time": self.export_time,
            "joint_names": list(self.joint_names),
            "dt": self.dt,
            "flow_steps": self.flow_steps,
            "flow_solver": self.flow_solver,
            "chunk": self.chunk,
            "action_dim": self.action_dim,
            "obs_dim": self.obs_dim,
            "obs_layout": layout_metadata(self.obs_layout, self.obs_history),
            "normalization": self.normalization,
            "action_map": {
                "formula": "ctrl = clip(offset + scale * action, low, high), action = tanh(z) in [-1, 1]",
                "scale": self.action_scale.tolist(),
                "offset": self.action_offset.tolist(),
                "low": self.action_low.tolist(),
                "high": self.action_high.tolist(),
            },
            "image": None if self.image is None else {
                "input": "image", "shape": list(self.image.shape), "dtype": "float32", "layout": "CHW",
                "encoding": self.image.encoding,
                **({"camera": self.image.camera.to_metadata()} if self.image.camera else {}),
            },
            "zero_noise": self.zero_noise,
            "robot": self.robot,
            "checkpoint": self.checkpoint,
            "exporter": self.exporter,
            "inpainting": self.inpainting,
            "route": self.route,
        }  # fmt: skip
        return {key: json.dumps(value, allow_nan=False) for key, value in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str | Path) -> ModelMetadata:
        """Parse and validate ``metadata_props``; ``ModelError`` names the key and the problem."""
        source = str(source)
        missing = [key for key in REQUIRED_KEYS if key not in props]
        if missing:
            hint = " (not an rfo_ros export?)" if "rfo_ros_format" in missing else ""
            raise ModelError(f"{source}: metadata key(s) missing: {', '.join(missing)}{hint}")
        values = {}
        for key in (*REQUIRED_KEYS, *(k for k in OPTIONAL_KEYS if k in props)):
            try:
                values[key] = json.loads(props[key])
            except (TypeError, ValueError) as exc:
                raise ModelError(
                    f"{source}: metadata {key!r} is not JSON ({exc}): {props[key]!r:.80}"
                ) from exc
        return _Parser(source, values, dict(props)).metadata()


def _check_shape(source: str, what: str, shape: tuple, expected: tuple) -> None:
    if len(shape) != len(expected) + 1 or tuple(shape[1:]) != tuple(expected):
        raise ModelError(
            f"{source}: {what} has shape {list(shape)}, expected [batch, {', '.join(map(str, expected))}]"
        )


class _Parser:
    """Type-checked access to the decoded metadata values."""

    def __init__(self, source: str, values: dict[str, Any], raw: dict[str, str]) -> None:
        self.source, self.values, self.raw = source, values, raw

    def fail(self, key: str, why: str) -> ModelError:
        return ModelError(f"{self.source}: metadata {key!r} {why}, got {self.raw.get(key)!r:.120}")

    def get(self, key: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
        value = self.values.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(key, f"must be {names}")
        return value

    def positive_int(self, key: str, minimum: int = 1) -> int:
        value = self.get(key, int)
        if value < minimum:
            raise self.fail(key, f"must be >= {minimum}")
        return value

    def vector(self, key: str, name: str, size: int) -> np.ndarray:
        block = self.get(key, dict)
        try:
            arr = np.asarray(block[name], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise self.fail(key, f"needs a numeric list {name!r}") from exc
        if arr.shape != (size,) or not np.isfinite(arr).all():
            raise self.fail(key, f"{name!r} must be {size} finite numbers (one per joint)")
        return arr

    def metadata(self) -> ModelMetadata:
        fmt = self.get("rfo_ros_format", str)
        if fmt != FORMAT:
            raise self.fail(
                "rfo_ros_format", f"must be {FORMAT!r} (model written by another exporter version?)"
            )
        action_dim, chunk, obs_dim = (self.positive_int(k) for k in ("action_dim", "chunk", "obs_dim"))
        joints = self.get("joint_names", list)
        if len(joints) != action_dim or not all(isinstance(j, str) and j for j in joints):
            raise self.fail("joint_names", f"must be {action_dim} non-empty names (action_dim)")
        if len(set(joints)) != len(joints):
            raise self.fail("joint_names", "has duplicates")
        dt = self.get("dt", (int, float))
        if not (math.isfinite(dt) and dt > 0):
            raise self.fail("dt", "must be a positive number of seconds")
        low, high = (
            self.vector("action_map", "low", action_dim),
            self.vector("action_map", "high", action_dim),
        )
        if (low > high).any():
            raise self.fail("action_map", "has low > high")
        image, layout = self.image(), self.get("obs_layout", dict)
        sizes = {obs_dim} | ({obs_dim + math.prod(image.shape)} if image else set())
        if "size" in layout and layout["size"] not in sizes:
            raise self.fail("obs_layout", f"'size' must be the observation size {sorted(sizes)}")
        try:
            obs_layout, history = parse_layout_metadata(layout)
        except ValueError as exc:
            raise self.fail("obs_layout", str(exc)) from None
        if obs_layout.size * history != obs_dim:
            raise self.fail(
                "obs_layout",
                f"has {obs_layout.size} entries per frame and {history} frames, obs_dim is {obs_dim}",
            )
        return ModelMetadata(
            source=self.source,
            task=self.get("task", str),
            algo=self.get("algo", str),
            policy_kind=self.get("policy_kind", str),
            training_commit=self.get("training_commit", str),
            export_time=self.get("export_time", str),
            joint_names=tuple(joints),
            dt=float(dt),
            flow_steps=self.positive_int("flow_steps", minimum=0),
            flow_solver=self.get("flow_solver", str, optional=True),
            chunk=chunk,
            action_dim=action_dim,
            obs_dim=obs_dim,
            obs_layout=obs_layout,
            obs_history=history,
            normalization=self.get("normalization", dict),
            action_scale=self.vector("action_map", "scale", action_dim),
            action_offset=self.vector("action_map", "offset", action_dim),
            action_low=low,
            action_high=high,
            image=image,
            zero_noise=self.get("zero_noise", bool),
            robot=self.get("robot", dict, optional=True),
            checkpoint=self.get("checkpoint", dict, optional=True),
            exporter=self.get("exporter", str, optional=True),
            inpainting=bool(self.get("inpainting", bool, optional=True)),
            route=self.get("route", list, optional=True),
            format=fmt,
            extra=self.raw,
        )

    def image(self) -> ImageSpec | None:
        block = self.get("image", dict, optional=True)
        if block is None:
            return None
        shape = block.get("shape")
        if not (
            isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) and s > 0 for s in shape)
        ):
            raise self.fail("image", "needs 'shape': [channels, height, width]")
        encoding = block.get("encoding")
        if encoding is not None and not isinstance(encoding, str):
            raise self.fail("image", "'encoding' must be a string or null")
        return ImageSpec(shape=(shape[0], shape[1], shape[2]), encoding=encoding, camera=self.camera(block))

    def camera(self, image: dict[str, Any]) -> ModelCamera | None:
        """The image's ``camera`` entry (absent in models exported before it was recorded: None)."""
        block = image.get("camera")
        if block is None:
            return None
        _, height, width = image["shape"]
        try:
            return ModelCamera(
                width, height, float(block["fovy_deg"]), float(block["depth_range_m"]), block["depth"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise self.fail("image", f"'camera' needs fovy_deg, depth_range_m and depth ({exc})") from None

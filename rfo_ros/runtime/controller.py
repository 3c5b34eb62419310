"""The policy's control law without middleware: timestamped inputs in, a plan and a command (or a hold) out.

As in ros2_controllers, the law knows no ROS: the policy nodes convert messages into the calls below and
publish what they return. Times are seconds on a steady clock chosen by the caller (``time.monotonic``
in the nodes, plain numbers in tests).

- Inputs: ``joint_state`` (the control-step trigger), ``imu``, ``odom``, ``cmd_vel`` and ``image``; a
  non-finite one is refused (``MalformedInputError``) and leaves the previous value in place.
- Watchdog: every input the model needs must be younger than ``watchdog_timeout_s``; otherwise the
  controller holds the last safe command (the default pose if none), and names an input that never came.
- Observation: ``legged_obs.build_observation`` with the model's layout; with a history of K frames one
  frame per control step (``FrameHistory``), restarted after a hold so no frame from before it is seen.
- Plan: the policy runs when the chunk scheduler asks; a failed inference is never executed (hold).
- Command: the scheduled action, clamped to the joint limits and rate-limited per step.

``tick_source="state"``: each new ``joint_state`` stamp is one control step (lock-step with a simulator);
``"timer"``: ``tick`` runs the steps and a fresh ``joint_state`` only plans early when a plan is due.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rfo_ros.envs.legged_obs import FrameHistory, build_observation, projected_gravity
from rfo_ros.runtime.chunks import BLENDS, ChunkScheduler
from rfo_ros.runtime.metadata import ModelError, ModelMetadata
from rfo_ros.runtime.policy import InferenceError, Policy
from rfo_ros.runtime.stats import LatencyWindow

TICK_SOURCES = ("timer", "state")


class MalformedInputError(ValueError):
    """An input that cannot be used (wrong names or lengths, non-finite values); ``reason`` counts it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ControlLog(Protocol):
    """Where the controller reports; ``throttle`` marks messages that may repeat every step."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str, throttle: bool = False) -> None: ...


class _PythonLog:
    """``ControlLog`` on the standard logging module (tests, tools)."""

    def __init__(self) -> None:
        self._log = logging.getLogger(__name__)

    def info(self, message: str) -> None:
        self._log.info(message)

    def warning(self, message: str, throttle: bool = False) -> None:
        self._log.warning(message)


@dataclass(frozen=True)
class ControllerConfig:
    """The control parameters (the policy node's parameters of the same names)."""

    watchdog_timeout_s: float = 0.1
    max_joint_step: float = 0.5
    tick_source: str = "timer"
    replan_every: int = 0  # 0: the chunk length C
    blend: str = "latest"
    ensemble_decay: float = 0.01
    committed_steps: int = 1
    zero_noise: bool = True
    default_command: tuple[float, float, float] = (1.0, 0.0, 0.0)
    cmd_vel_timeout_s: float = 0.0  # 0: a cmd_vel never expires


@dataclass
class Inputs:
    """The latest accepted inputs (model joint order) and their steady-clock arrival times."""

    joint_pos: np.ndarray
    joint_vel: np.ndarray
    command: np.ndarray
    quat_wxyz: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))
    ang_vel: np.ndarray = field(default_factory=lambda: np.zeros(3))
    lin_vel: np.ndarray = field(default_factory=lambda: np.zeros(3))
    image: np.ndarray | None = None
    t_joint: float = -np.inf
    t_imu: float = -np.inf
    t_odom: float = -np.inf
    t_image: float = -np.inf
    t_cmd: float = -np.inf
    stamp: float | None = None  # sensor stamp (s) of the latest joint state


@dataclass
class Output:
    """What one call asks the caller to publish: a new chunk (clamped, (C, m)) and/or a command (m,)."""

    chunk: np.ndarray | None = None
    command: np.ndarray | None = None


class Controller:
    """Runs ``policy`` in closed loop; see the module docstring. Not thread-safe: callers serialise.

    Raises ``ModelError`` when the model and the configuration cannot work together.
    """

    def __init__(
        self,
        policy: Policy,
        config: ControllerConfig,
        image_input: str | None = None,
        log: ControlLog | None = None,
    ) -> None:
        self.policy, self.config, self.log = policy, config, log or _PythonLog()
        self.metadata = meta = policy.metadata
        self.layout, self.history_frames = meta.obs_layout, meta.obs_history
        _check_config(meta, config)
        self.replan_every = config.replan_every or meta.chunk
        self.image_input = image_input if meta.image is not None else None
        self.low, self.high = meta.action_low, meta.action_high
        self.default_pose = np.clip(meta.action_offset, self.low, self.high)
        m = meta.action_dim
        self.inputs = Inputs(np.zeros(m), np.zeros(m), np.array(config.default_command, dtype=np.float64))
        self.last_action = np.zeros(m)  # policy space [-1, 1]: the "last_action" observation field
        self._fields = {
            "base_lin_vel": self.inputs.lin_vel,
            "base_ang_vel": self.inputs.ang_vel,
            "projected_gravity": np.zeros(3),
            "command": self.inputs.command,
            "joint_pos": self.inputs.joint_pos,
            "joint_vel": self.inputs.joint_vel,
            "last_action": self.last_action,
        }  # every observation field the controller can build from its inputs (legged_obs names)
        self.gait = meta.gait  # its clock counts this controller's control steps (``step``)
        if self.gait is not None:
            self._fields["gait_clock"] = np.zeros(2)
        unknown = [name for name in self.layout.names if name not in self._fields]
        if unknown:
            raise ModelError(
                f"the model observes {unknown}, which the controller cannot build from its inputs "
                f"(it knows {', '.join(self._fields)})"
            )
        self.needs_odom = "base_lin_vel" in self.layout.names
        self.history = FrameHistory(self.history_frames)
        self._frame_step = -1  # the control step whose frame the history holds last
        # Zero-noise models take no noise; else zeros (deterministic) or None (the policy's seeded rng).
        self._noise = None if meta.zero_noise or not config.zero_noise else np.zeros((meta.chunk, m))
        self.scheduler = ChunkScheduler(
            meta.chunk, m, replan_every=self.replan_every, blend=config.blend,
            ensemble_decay=config.ensemble_decay, committed_steps=min(config.committed_steps, meta.chunk),
        )  # fmt: skip
        self._chunk_buf = np.zeros((meta.chunk, m))
        self.step = 0  # control steps executed
        self.command: np.ndarray | None = None  # last command out (model order), always safe
        self.holding = False
        self.active = True  # False: inputs are kept but no step runs (an inactive lifecycle node)
        self.counts = {"ticks": 0, "plans": 0, "hold_ticks": 0, "rate_limited_steps": 0}
        self.dropped: dict[str, int] = {}
        self.model_latency = LatencyWindow()

    # --- inputs ------------------------------------------------------------------------------------
    def joint_state(
        self, position: np.ndarray, velocity: np.ndarray, now: float, stamp: float = 0.0
    ) -> Output:
        """Accept the joint state (model order) measured at ``stamp`` (s; 0 = unknown), arrived at ``now``.

        With ``tick_source="state"`` a new stamp runs one control step (a repeated stamp only refreshes
        the inputs); with ``"timer"`` it plans at once if a plan is due or a hold ends.
        """
        _check_finite("joint_state", position, velocity)
        inp = self.inputs
        repeated = stamp != 0.0 and stamp == inp.stamp  # the same state sent again
        inp.joint_pos[:] = position
        inp.joint_vel[:] = velocity
        inp.t_joint, inp.stamp = now, stamp
        if not self.active or not self.fresh(now):
            return Output()
        if self.config.tick_source == "state":
            return Output() if repeated else self._control_step(now)
        if self.holding or self.scheduler.needs_plan(self.step):
            self._resume()
            return Output(chunk=self._plan())
        return Output()

    def imu(self, quat_wxyz: np.ndarray, ang_vel: np.ndarray, now: float) -> None:
        """Base orientation (w, x, y, z; normalised by the caller) and body-frame angular velocity."""
        _check_finite("imu", quat_wxyz, ang_vel)
        self.inputs.quat_wxyz[:] = quat_wxyz
        self.inputs.ang_vel[:] = ang_vel
        self.inputs.t_imu = now

    def odom(self, lin_vel: np.ndarray, now: float) -> None:
        """Body-frame base linear velocity."""
        _check_finite("odom", lin_vel)
        self.inputs.lin_vel[:] = lin_vel
        self.inputs.t_odom = now

    def cmd_vel(self, command: np.ndarray, now: float) -> None:
        """The velocity command (vx, vy, yaw rate)."""
        _check_finite("cmd_vel", command)
        self.inputs.command[:] = command
        self.inputs.t_cmd = now

    def image(self, pixels: np.ndarray, now: float) -> None:
        """The image (c, h, w) float32 the model observes."""
        _check_finite("image", pixels)
        self.inputs.image, self.inputs.t_image = pixels, now

    def drop(self, source: str, exc: MalformedInputError) -> None:
        """Count a refused input (or a failed inference) and warn, throttled."""
        key = f"{source}/{exc.reason}"
        self.dropped[key] = self.dropped.get(key, 0) + 1
        self.log.warning(f"dropped a {source} message ({exc}); {self.dropped[key]} so far", throttle=True)

    # --- watchdog ----------------------------------------------------------------------------------
    def required_inputs(self) -> dict[str, float]:
        """Input -> steady-clock time of its last accepted value, for every input the model needs."""
        inputs = {"joint_states": self.inputs.t_joint, "imu": self.inputs.t_imu}
        if self.needs_odom:
            inputs["odom"] = self.inputs.t_odom
        if self.image_input is not None:
            inputs[self.image_input] = self.inputs.t_image
        return inputs

    @property
    def missing_inputs(self) -> list[str]:
        """Inputs the model needs that have never arrived (joint_states, imu, odom, image order)."""
        return [name for name, t in self.required_inputs().items() if not math.isfinite(t)]

    def fresh(self, now: float) -> bool:
        """Every input the model needs arrived within ``watchdog_timeout_s``."""
        return now - min(self.required_inputs().values()) <= self.config.watchdog_timeout_s

    def watchdog_state(self, now: float) -> str:
        """ "waiting" (no state yet), "ok" or "stale" (holding)."""
        if not math.isfinite(self.inputs.t_joint):
            return "waiting"
        return "stale" if self.holding or not self.fresh(now) else "ok"

    # --- control loop ------------------------------------------------------------------------------
    def tick(self, now: float) -> Output:
        """The control-rate callback: expire an old cmd_vel, hold on stale state, step on a timer."""
        if not self.active:
            return Output()  # the downstream controller keeps the hold command it was sent
        inp, timeout = self.inputs, self.config.cmd_vel_timeout_s
        if timeout > 0 and now - inp.t_cmd > timeout and math.isfinite(inp.t_cmd):
            inp.command[:] = self.config.default_command
            inp.t_cmd = -np.inf
        if not self.fresh(now):
            return Output(command=self._hold(now))
        if self.config.tick_source == "timer":
            return self._control_step(now)
        return Output()

    def _control_step(self, now: float) -> Output:
        """One control step from fresh state: plan if due, then this step's command."""
        self._resume()
        chunk = None
        if self.scheduler.needs_plan(self.step):
            chunk = self._plan()
            if chunk is None:
                return Output(command=self._hold(now))
        if self.history_frames > 1:
            self.observation()  # every control step's frame enters the history, as in training
        action = self.scheduler.action(self.step)
        if action is None:  # no chunk covers this step (cannot happen after a successful plan)
            return Output(chunk, self._hold(now))
        self.last_action[:] = self.metadata.policy_action(action, self._gait_prior())
        command = self._limit(action)
        self.step += 1
        self.counts["ticks"] += 1
        return Output(chunk, command)

    def _gait_prior(self) -> np.ndarray | float:
        """The gait prior the model added to this step's command (0.0 without a gait)."""
        if self.gait is None:
            return 0.0
        return self.gait.prior_from_clock(self.gait.clock_at(self.step)[None])[0]

    def _resume(self) -> None:
        if self.holding:
            self.holding = False
            self.restart()
            self.log.info("state is fresh again: resuming the policy")

    def restart(self) -> None:
        """Forget the plans and the observation history from before a hold or an inactive spell."""
        self.scheduler.reset()
        self.history.clear()
        self._frame_step = -1

    def _plan(self) -> np.ndarray | None:
        """Run the model on this step's observation and schedule the chunk: the chunk clamped to the
        joint limits (a buffer reused by the next plan), or None if inference failed."""
        obs = self.observation()
        t0 = time.perf_counter()
        try:
            chunk = self.policy.infer(
                obs, noise=self._noise, image=self.inputs.image, **self.scheduler.conditioning(self.step)
            )
        except (InferenceError, ValueError) as exc:
            self.drop("model", MalformedInputError("nonfinite", f"inference failed: {exc}"))
            return None
        self.model_latency.add(time.perf_counter() - t0)
        self.scheduler.add(chunk, self.step)
        self.counts["plans"] += 1
        return np.minimum(np.maximum(chunk, self.low, out=self._chunk_buf), self.high, out=self._chunk_buf)

    def observation(self) -> np.ndarray:
        """The model input at this control step. With a history, this step's frame is stored once (the
        first call of the step), so the plan and the step share it."""
        if self.history_frames > 1 and self._frame_step == self.step:
            return self.history.current()  # stored already: nothing to build
        self._fields["projected_gravity"] = projected_gravity(self.inputs.quat_wxyz)
        if self.gait is not None:
            self._fields["gait_clock"][:] = self.gait.clock_at(self.step)
        if self.history_frames == 1:
            return build_observation(self._fields, self.layout)
        self._frame_step = self.step
        return self.history.push(build_observation(self._fields, self.layout))

    def _limit(self, target: np.ndarray) -> np.ndarray:
        """Clamp to the joint limits and move at most ``max_joint_step`` from the previous command (the
        measured position before the first); a non-finite target becomes the last safe command."""
        if not np.isfinite(target).all():
            target = self.hold_command()
        previous = self.command if self.command is not None else self.inputs.joint_pos
        step, low, high = self.config.max_joint_step, self.low, self.high
        # minimum/maximum rather than np.clip: the same numbers at a fraction of the call overhead.
        target = np.minimum(np.maximum(target, low), high)
        command = np.minimum(np.maximum(target, previous - step), previous + step)
        np.minimum(np.maximum(command, low, out=command), high, out=command)
        if (command != target).any():
            self.counts["rate_limited_steps"] += 1
        self.command = command
        return command

    def hold_command(self) -> np.ndarray:
        """The last safe command, or the default pose if none was ever sent."""
        return self.command if self.command is not None else self.default_pose

    def _hold(self, now: float) -> np.ndarray | None:
        """Stale state: the last safe command again (None, publish nothing, before any joint state)."""
        missing = self.missing_inputs
        if missing:
            self.log.warning(self.missing_message(missing), throttle=True)
        if not math.isfinite(self.inputs.t_joint):
            return None  # no state ever: nothing to hold against
        if not self.holding:
            self.holding = True
            if not missing:
                name, seen = min(self.required_inputs().items(), key=lambda item: item[1])
                self.log.warning(
                    f"state is stale ({name} last arrived {now - seen:.3f} s ago, limit "
                    f"{self.config.watchdog_timeout_s:.3f} s): holding the last command"
                )
        self.counts["hold_ticks"] += 1
        return self._limit(self.hold_command())

    def missing_message(self, missing: list[str]) -> str:
        """One line naming each missing input and what the model uses it for."""
        return "; ".join(f"waiting for {name}: {self.input_hint(name)}" for name in missing)

    def input_hint(self, name: str) -> str:
        """What the model uses input ``name`` for, so a message about it says what to connect."""
        if name == self.image_input:
            c, h, w = self.metadata.image.shape
            kind = "depth image" if c == 1 else "camera image"
            return f"the model observes a {h}x{w} {kind} (sensor_msgs/Image)"
        return INPUT_HINTS[name]


#: What each state input is for.
INPUT_HINTS = {
    "joint_states": "the model observes joint positions and velocities (sensor_msgs/JointState from the "
    "robot driver)",
    "imu": "the model observes base angular velocity and gravity (sensor_msgs/Imu)",
    "odom": "the model observes base_lin_vel (nav_msgs/Odometry from your state estimator)",
}


def _check_config(meta: ModelMetadata, config: ControllerConfig) -> None:
    """``ModelError`` naming the setting when the configuration cannot drive this model."""
    choices = {"tick_source": TICK_SOURCES, "blend": BLENDS}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            value = getattr(config, name)
            raise ModelError(f"parameter {name}={value!r}: choose one of {', '.join(allowed)}")
    if config.blend == "realtime" and not meta.inpainting:
        raise ModelError(
            f"blend=realtime needs a model exported with --inpainting (committed actions are graph "
            f"inputs); {meta.source} has none: re-export it, or choose latest/ensemble/overlap"
        )
    if (config.replan_every or meta.chunk) > meta.chunk:
        raise ModelError(f"replan_every={config.replan_every} exceeds the model's chunk length {meta.chunk}")


def _check_finite(source: str, *values: np.ndarray) -> None:
    for value in values:
        if not np.isfinite(value).all():
            raise MalformedInputError("nonfinite", f"{source} holds NaN or inf values")
